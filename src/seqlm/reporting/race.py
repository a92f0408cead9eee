"""Why one kind beats another in the same training budget, read from the runs' own results files: for each
level (words, characters), the best CPU run of each neural kind stopped by its time budget, and every
Transformer run, side by side per second (tokens/s, tokens seen) and per token (validation after as many tokens
as every run saw), with the gap between the last epoch's training and validation perplexity (overfitting)."""

from __future__ import annotations

from seqlm.reporting.markdown import md_table, number
from seqlm.reporting.results import text_level


def _curve(res: dict, key: str) -> list[tuple[int, float]]:
    """(tokens seen, validation figure) after each epoch that was validated."""
    return [(e["tokens"], e[key]) for e in res.get("epochs", []) if e.get(key) and e.get("tokens")]


def _at(curve: list[tuple[int, float]], tokens: int) -> tuple[int, float] | None:
    """The last reading taken at or before ``tokens`` tokens seen."""
    before = [p for p in curve if p[0] <= tokens]
    return before[-1] if before else None


def _exact(res: dict) -> bool:
    """Whether the run's training loss is the model's log-likelihood (not NCE's)."""
    return not any(e.get("train_loss_is") for e in res.get("epochs", []))


def _entrants(recipes: list[tuple[dict, str]]) -> dict[str, list[tuple[dict, str]]]:
    """Per level: the best budget-stopped CPU run of each neural kind, and of each kind trained on an exact
    loss (whose training perplexity can be set against its validation), and every Transformer run."""
    runs = [(r, s) for r, s in recipes if r.get("epochs") and r.get("stop") == "max_minutes"
            and not r.get("hardware", {}).get("device") and (r.get("model") or {}).get("kind")]
    test = lambda x: x[0]["metrics"].get("test_perplexity") or 1e30  # noqa: E731
    out: dict[str, list[tuple[dict, str]]] = {}
    for level in ("word", "char"):
        mine = [(r, s) for r, s in runs if text_level(r) == level]
        kinds = {r["model"]["kind"] for r, _ in mine}
        chosen = [(r, s) for r, s in mine if r["model"]["kind"] == "transformer"]
        for kind in kinds - {"transformer"}:
            of = sorted([x for x in mine if x[0]["model"]["kind"] == kind], key=test)
            chosen += of[:1] + sorted([x for x in of if _exact(x[0])], key=test)[:1]
        unique = list({id(r): (r, s) for r, s in chosen}.values())
        if "transformer" in kinds and len(kinds) > 1:
            out[level] = sorted(unique, key=test)
    return out


def race_tables(recipes: list[tuple[dict, str]]) -> list[list[str]]:
    """One table per level where a Transformer ran against other kinds, and the sentences its numbers say."""
    blocks = []
    for level, group in _entrants(recipes).items():
        key, fig = ("valid_bits_per_character", "bpc") if level == "char" else ("valid_perplexity", "ppl")
        digits = 3 if level == "char" else 2
        curves = {id(r): _curve(r, key) for r, _ in group}
        best_tf = next(r for r, _ in group if r["model"]["kind"] == "transformer")
        common = curves[id(best_tf)][-1][0]
        rows, facts = [], {}
        for r, source in group:
            last = r["epochs"][-1]
            speed = last["tokens"] / last["seconds"] if last.get("seconds") else None
            at = _at(curves[id(r)], common)
            train, valid = last.get("train_perplexity"), last.get("valid_perplexity")
            exact = _exact(r) and bool(train and valid)
            gap = f"{train:.1f} / {valid:.1f}" if exact else "–" if _exact(r) else "– (NCE)"
            best = min((v for _, v in curves[id(r)]), default=None)
            test = r["metrics"].get("test_bits_per_character" if level == "char" else "test_perplexity")
            facts[id(r)] = {"speed": speed, "seen": last["tokens"], "at": at, "test": test,
                            "gap": valid / train if exact else None}
            rows.append([r["recipe"], r["model"]["kind"], f"{r['model'].get('parameters') or 0:,}",
                         r.get("precision") or "–", f"{speed:,.0f}" if speed else "–", f"{last['tokens'] / 1e6:.1f}M",
                         (number(at[1], digits) + ("" if at[0] == common else f" (at {at[0] / 1e6:.1f}M)")) if at else "–",
                         number(best, digits), number(test, digits), gap, f"`{source}`"])
        hw = group[0][0].get("hardware", {})
        unit = "characters" if level == "char" else "tokens"
        title = (f"**Per second and per token, PTB {'characters' if level == 'char' else 'words'}** (for each neural "
                 f"kind, its best run stopped by the same 15-minute budget on {hw.get('cpu')}, {hw.get('cores')} "
                 f"cores, and its best trained on an exact loss; every Transformer run; {unit} seen = in the epochs "
                 f"completed; \"after {common / 1e6:.1f}M\" = validation {fig} after as many {unit} as the best "
                 f"Transformer saw, or the run's last reading before; the last epoch's training perplexity is with "
                 f"dropout on, and only where the loss is exact (not NCE); tokens/s as each run measured it: the runs were "
                 f"made on different days of a shared machine, so set speeds side by side in the training throughput "
                 f"table, measured in one run; from each run's results file)")
        blocks.append(md_table(title, ["run", "kind", "parameters", "precision", f"{unit}/s", f"{unit} seen",
                                       f"valid {fig} after {common / 1e6:.1f}M", f"best valid {fig}", f"test {fig}",
                                       "last epoch: train / valid ppl", "file"], rows))
        blocks[-1] += ["", _verdict(group, facts, unit, fig, digits, common)]
    return blocks


def _verdict(group, facts, unit: str, fig: str, digits: int, common: int) -> str:
    """The best Transformer against the best run of another kind: the two factors a budget multiplies (speed,
    and what each token teaches), and the generalisation gap of the best runs on an exact loss."""
    first = lambda pick: next(((r, facts[id(r)]) for r, _ in group if pick(r)), (None, None))  # noqa: E731
    t, tf = first(lambda r: r["model"]["kind"] == "transformer")
    o, of = first(lambda r: r["model"]["kind"] != "transformer")
    says = [f"The best Transformer here, `{t['recipe']}`, ends {(tf['test'] / of['test'] - 1) * 100:+.1f}% against "
            f"`{o['recipe']}` in test {fig} ({number(tf['test'], digits)} against {number(of['test'], digits)})."]
    if tf["speed"] and of["speed"]:
        says.append(f"Per second: it ran {tf['speed'] / of['speed']:.2f}x the {unit} per second ({tf['speed']:,.0f} "
                    f"against {of['speed']:,.0f}), so it saw {tf['seen'] / of['seen']:.2f}x the {unit}.")
    if tf["at"] and of["at"]:
        says.append(f"Per token: after {common / 1e6:.1f}M {unit} its validation {fig} was "
                    f"{number(tf['at'][1], digits)} against {number(of['at'][1], digits)}.")
    te, tef = first(lambda r: r["model"]["kind"] == "transformer" and facts[id(r)]["gap"])
    oe, oef = first(lambda r: r["model"]["kind"] != "transformer" and facts[id(r)]["gap"])
    if te and oe:
        says.append(f"Generalisation, on an exact loss: at its last epoch `{te['recipe']}`'s validation perplexity "
                    f"is {tef['gap']:.2f}x its training perplexity (dropout on), `{oe['recipe']}`'s "
                    f"{oef['gap']:.2f}x.")
    return " ".join(says)
