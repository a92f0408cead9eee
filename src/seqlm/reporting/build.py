"""Results tables for the README, generated from ``results/*.json`` (never typed by hand).

    python -m seqlm.reporting            # rewrite the README section between the results markers
    python -m seqlm.reporting --check    # exit 1 if the README is not what results/ says

Three shapes of result file are rendered: recipe runs (``{"recipe": ..., "metrics": {...}, ...}``), the
n-gram benchmark (``{"benchmark": "ngram-ptb", ...}``) and the training-throughput benchmark
(``{"benchmark": "train-throughput", ...}``).  Without ``--check`` it also draws the recipe runs' learning
curves into ``reports/figures/curves-{cpu,gpu}.png`` (matplotlib, the ``plot`` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _f(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def ngram_table(res: dict, source: str) -> list[str]:
    lines = [f"**n-gram models on PTB** (interpolated modified Kneser-Ney; from `{source}`, written by "
             f"`python bench/ngram.py --results {source}`; {res['hardware']['cpu']}, {res['hardware']['cores']} cores)",
             "", "| order | n-grams | valid ppl | test ppl | test ppl, sentence mode | test vs KenLM lmplz |",
             "|---|---|---|---|---|---|"]
    ken = (res.get("kenlm_reference") or res.get("lmplz_5gram", {}).get("reference", {})).get("test_perplexity", {})
    for row in res["perplexity"]:
        ref = ken.get(str(row["order"]))
        vs = f"{(row['test_stream'] / ref - 1) * 100:+.3f}% of {ref}" if ref else "–"
        lines.append(f"| {row['order']} | {sum(row['ngrams']):,} | {_f(row['valid_stream'])} | "
                     f"{_f(row['test_stream'])} | {_f(row['test_sentence'])} | {vs} |")
    est, sc = res["estimate_5gram"], res["scoring"]
    lines += ["", f"5-gram estimation, whole process from the shell: {est['seconds']:.2f} s, peak "
              f"{est['peak_mb']:.0f} MB. Scoring: {sc['seqlm_scorer_tokens_per_s'] / 1e6:.2f} M tokens/s "
              f"(scorer), {sc['seqlm_evaluate_tokens_per_s'] / 1e6:.2f} M tokens/s (evaluate, tokenizing included)"
              + (f"; the kenlm Python module on the same ARPA: {sc['kenlm_python_tokens_per_s'] / 1e6:.2f} M tokens/s."
                 if "kenlm_python_tokens_per_s" in sc else ".")]
    ken_est = res.get("lmplz_5gram", {})
    if "seconds" in ken_est:
        lines[-1] += (f" KenLM's `lmplz -o 5 -S 1G` in the same run: {ken_est['seconds']:.2f} s, peak "
                      f"{ken_est['peak_mb']:.0f} MB.")
    files = res.get("files")
    if files:
        ours, theirs = files["seqlm_read_arpa"], files.get("kenlm_read_arpa")
        lines += ["", f"Model files ({files['arpa_bytes'] / 1e6:.0f} MB ARPA of the 5-gram): write "
                  f"{files['write_arpa_seconds']:.2f} s; read {ours['seconds']:.2f} s, +{ours['added_mb']:.0f} MB over "
                  f"the process's imports"
                  + (f" (the kenlm module: {theirs['seconds']:.2f} s, +{theirs['added_mb']:.0f} MB)" if theirs else "")
                  + f"; load of the seqlm model folder (memory-mapped) {files['seqlm_load_folder']['seconds'] * 1000:.1f} ms."]
    mem = res.get("evaluate_memory")
    if mem:
        lines[-1] += (f" Evaluation's peak memory on {mem['x100']['tokens']:,} tokens is {mem['growth']:.2f}x that on "
                      f"{mem['x10']['tokens']:,} (read from a file as it is scored).")
    return lines


def recipe_table(rows: list[tuple[dict, str]]) -> list[str]:
    lines = ["**Recipe runs** (each row from its `results/` file, written by the run itself; \"vs target\" compares "
             "the target's metric with the published number the recipe names)", "",
             "| recipe | valid ppl | test ppl | target | vs target | epochs | stopped by | wall time | precision | "
             "hardware | file |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res, source in rows:
        m = res.get("metrics", {})
        target = res.get("target", {})
        tgt = (f"{target.get('metric', '').replace('_perplexity', ' ppl').replace('_bits_per_character', ' bpc')} "
               f"{target.get('value', '')}").strip() or "–"
        ours, goal = m.get(target.get("metric", "")), target.get("value")
        vs = f"{(ours / goal - 1) * 100:+.1f}%" if ours and goal else "–"
        hw = res.get("hardware", {})
        hw_s = hw.get("device") or hw.get("cpu", "")
        if res.get("concurrency", "").startswith("one of"):
            hw_s += " (shared by 6 runs)"
        if (res.get("world_size") or 1) > 1:
            hw_s += f" ({res['world_size']} processes, {res.get('backend')})"
        test = _f(m.get("test_perplexity")) + (f" ({m['test_bits_per_character']:.3f} bpc)"
                                               if "test_bits_per_character" in m else "")
        lines.append(f"| {res['recipe']} | {_f(m.get('valid_perplexity'))} | {test} | "
                     f"{tgt} | {vs} | {res.get('epochs_completed', '–')} | {res.get('stop', '–')} | "
                     f"{res.get('wall_seconds', 0) / 60:.1f} min | {res.get('precision', '–')} | {hw_s} | `{source}` |")
    return lines


def _table(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table under its title line."""
    return [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def throughput_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    rows = []
    for r in res["results"]:
        name = f"2x{r['size']} {r['kind']}" if r.get("kind") != "window" else f"window {r['size']}"
        backend = (r.get("backend") or "baseline") + (", adaptive softmax" if r.get("adaptive") else "") + \
            (f", NCE ({r['nce_samples']} noise words)" if r.get("nce_samples") else "")
        rows.append([name, backend, r["precision"], "yes" if r.get("graphed") else "no", f"{r['tokens_per_s']:,.0f}",
                     f"{r.get('vs_baseline', 1.0):.2f}x"])
    return _table(f"**Training throughput** (batch {res.get('batch')}, bptt {res.get('bptt')}, vocabulary "
                  f"{res.get('vocab'):,}; from `{source}`; {hw.get('device') or hw.get('cpu')}, torch "
                  f"{res.get('torch')}; baseline = the PyTorch word_language_model loop, measured in the same run)",
                  ["model", "backend", "precision", "CUDA graph", "tokens/s", "vs baseline"], rows)


def ddp_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    one = {r["precision"]: r["tokens_per_s"] for r in res["results"] if r["processes"] == 1}
    rows = [[str(r["processes"]), str(r["threads_per_process"]), r["precision"], f"{r['tokens_per_s']:,.0f}",
             f"{r['tokens_per_s'] / one[r['precision']]:.2f}x" if one.get(r["precision"]) else "–"]
            for r in res["results"]]
    return _table(f"**Training in several processes** (`seqlm train` under torchrun, DDP, {res['model']}, global "
                  f"batch {res['global_batch']}, bptt {res['bptt']}; tokens/s after {res['warmup_steps']} warm-up "
                  f"steps; from `{source}`; {hw.get('device') or hw.get('cpu')}, {hw.get('cores')} cores, torch "
                  f"{res.get('torch')})", ["processes", "threads each", "precision", "tokens/s", "vs one process"], rows)


def gradients_table(rows: list[tuple[dict, str]]) -> list[str]:
    lines = ["**Gradients through time** (`seqlm diagnose gradients`: median over the positions of "
             "||d ln p(x_{t+1}) / d state_{t-k}||; the horizon is the first k where it falls below 1e-3 of its "
             "first value; trained vs the same model at initialisation)", "",
             "| model | state | horizon, trained | horizon, at init | median at k=0 (trained) | at k=K (trained) | K | "
             "file |", "|---|---|---|---|---|---|---|---|"]
    for res, source in rows:
        for name in res["states"]:
            tr, ini = res["trained"][name], res.get("init", {}).get(name, {})
            hz = lambda c: "> K" if c.get("horizon") is None else str(c.get("horizon"))  # noqa: E731
            first = tr["median"][tr.get("from_k", 0)]
            lines.append(f"| {Path(res.get('model', '?')).name} | {name} | {hz(tr)} | {hz(ini) if ini else '–'} | "
                         f"{first:.3g} | {tr['median'][-1]:.3g} | {res['K']} | `{source}` |")
    return lines


def ablation_table(name: str, base: tuple[dict, str] | None, rows: list[tuple[dict, str]],
                   adapted: list[tuple[dict, str]]) -> list[str]:
    """One ablation (recipes sharing ``meta.ablation``) against its base run, and the evaluation-time
    methods (``seqlm adapt``) applied to the base model: test perplexity, change, training and evaluation time."""
    base_res = base[0] if base else None
    base_ppl = (base_res or {}).get("metrics", {}).get("test_perplexity")
    delta = lambda p: f"{(p / base_ppl - 1) * 100:+.1f}%" if p and base_ppl else "–"  # noqa: E731
    out = []
    if base_res:
        out.append(["base: " + base_res["recipe"], _f(base_res["metrics"].get("valid_perplexity")), _f(base_ppl), "–",
                    f"{base_res.get('wall_seconds', 0) / 60:.1f} min", "–", f"`{base[1]}`"])
    for res, source in sorted(rows, key=lambda r: r[0]["metrics"].get("test_perplexity") or 1e9):
        m = res["metrics"]
        title = (res.get("config") or {}).get("meta", {}).get("title", res["recipe"])
        change = title.split("CPU 15 min, ", 1)[-1]
        out.append([f"{res['recipe']}: {change}", _f(m.get("valid_perplexity")), _f(m.get("test_perplexity")),
                    delta(m.get("test_perplexity")), f"{res.get('wall_seconds', 0) / 60:.1f} min", "–", f"`{source}`"])
    for res, source in adapted:
        m, sec = res["metrics"], res.get("seconds", {})
        params = ", ".join(f"{k} {v}" for k, v in res["params"].items())
        tuned = f"tuned on {res.get('valid_lines', '?')} validation lines in {sec.get('tuning', 0) / 60:.1f} min"
        test_time = (f"test {sec['test']:.0f} s (static {sec.get('test_without', 0):.0f} s)"
                     if "test" in sec else "–")
        out.append([f"+ {res['method']} at test time ({params}; {tuned})", _f(m.get("valid_perplexity")),
                    _f(m.get("test_perplexity")), delta(m.get("test_perplexity")), "+0 (same model)", test_time,
                    f"`{source}`"])
    hw = (base_res or (rows or adapted)[0][0]).get("hardware", {})
    return _table(f"**Ablation `{name}`** (the base recipe with one change per row, each run for real on "
                  f"{hw.get('device') or hw.get('cpu')}, {hw.get('cores')} cores; evaluation-time rows wrap the base "
                  f"model, their parameters tuned on validation only; PTB, stream mode)",
                  ["row", "valid ppl", "test ppl", "vs base", "training wall time", "evaluation time", "file"], out)


def _scale_memory(res: dict) -> str:
    given = {row.get("seqlm", {}).get("memory") for row in res["rows"]} - {None}
    return res.get("seqlm_memory") or (given.pop() if len(given) == 1 else "(unbounded)")


def scale_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    lines = [f"**n-gram estimation at scale** (`python bench/ngram.py --scale`: the 5-gram from the shell on generated "
             f"text, `bench/corpus.py`; `seqlm train --memory {_scale_memory(res)}` next to "
             f"`lmplz -o {res['order']} -S {res['lmplz_memory']}`, one after the "
             f"other; from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores, "
             f"{res.get('memory_available_gb', 0):.0f} GB available)", "",
             "| tokens | word types | n-grams | seqlm seconds | seqlm peak MB | lmplz seconds | lmplz peak MB | seqlm / lmplz time |",
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for row in res["rows"]:
        ours, theirs = row.get("seqlm", {}), row.get("lmplz", {})
        if "skipped" in ours:
            notes.append(f"{row['tokens']:,} tokens, seqlm not run: {ours['skipped']}.")
        ratio = (f"{ours['seconds'] / theirs['seconds']:.2f}x" if "seconds" in ours and "seconds" in theirs else "–")
        ngrams = f"{sum(row['ngrams']):,}" if row.get("ngrams") else "–"
        lines.append(f"| {row['tokens']:,} | {row['types']:,} | {ngrams} | {_f(ours.get('seconds'), 1)} | {_f(ours.get('peak_mb'), 0)} | "
                     f"{_f(theirs.get('seconds'), 1)} | {_f(theirs.get('peak_mb'), 0)} | {ratio} |")
    agree = res.get("agreement") or {}
    if "max_abs_log10" in agree:
        same = "the same" if agree["seqlm_ngrams"] == agree["lmplz_ngrams"] else "different"
        notes.append(f"The {agree['tokens']:,}-token model, estimated spilling (`--memory {agree['memory']}`), against "
                     f"lmplz's ARPA file of the same text scored by the kenlm module: {same} n-gram counts per order, "
                     f"sentence log10 p within {agree['max_abs_log10']:.1e} on {agree['sentences']:,} sentences "
                     f"(half with shuffled words).")
    return lines + ([""] + notes if notes else [])


def plot_scale(res: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for tool, style in (("seqlm", "o-"), ("lmplz", "s--")):
        pts = [(r["tokens"], r[tool]) for r in res["rows"] if "seconds" in r.get(tool, {})]
        if not pts:
            continue
        x = [p[0] for p in pts]
        axes[0].plot(x, [p[1]["seconds"] for p in pts], style, label=tool)
        axes[1].plot(x, [p[1]["peak_mb"] / 1024 for p in pts], style, label=tool)
    for ax, what in zip(axes, ("wall seconds", "peak memory (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training tokens")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"5-gram estimation vs corpus size ({res.get('hardware', {}).get('cpu')}, "
                 f"{res.get('hardware', {}).get('cores')} cores)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)


def serve_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    rows = []
    for name, r in res["results"].items():
        for row in r["typing"]:
            rows.append([name, f"typing, {row['clients']} clients", f"{row['requests']:,}", str(row["errors"]),
                         f"{row['requests_per_s']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}"])
        for row in r["length"]:
            rows.append([name, f"text of {row['tokens']:,} tokens + 1 word", "–", "–", "–", f"{row['p50_ms']:.2f}",
                         f"{row['p99_ms']:.2f}"])
    return _table(f"**Serving** (`python bench/serve.py`: `seqlm serve` in its own process, clients on loopback on "
                  f"the same machine (one keep-alive connection each, on asyncio streams: the clients share the 2 cores "
                  f"with the server, so they must cost little), suggestion requests of people typing PTB validation "
                  f"sentences; with C clients every request waits behind up to C - 1 others, so latency under load is "
                  f"about C / (requests/s); from "
                  f"`{source}`; {hw.get('cpu')}, {hw.get('cores')} cores; server healthy after: "
                  f"{res.get('health_after', {}).get('status', '?')})",
                  ["model", "load", "requests", "errors", "requests/s", "p50 ms", "p99 ms"], rows)


def mixture_table(res: dict, source: str) -> list[str]:
    rows = [[f"`{p['model']}`", p.get("kind") or "–", f"{p['weight']:.3f}", _f(p.get("valid_perplexity")),
             _f(p.get("test_perplexity"))] for p in res["parts"]]
    m = res["metrics"]
    rows.append([f"**mixture** `{res['mixture']}`", "mixture", "1", _f(m.get("valid_perplexity")),
                 _f(m.get("test_perplexity"))])
    best = min((p.get("test_perplexity") or 1e9) for p in res["parts"])
    ratio = f"; the mixture's test perplexity is {m['test_perplexity'] / best:.3f} x its best part's" \
        if m.get("test_perplexity") else ""
    fit = res.get("fit", {})
    how = "given" if fit.get("given") else f"fitted by EM on {fit.get('valid_lines')} validation lines"
    return _table(f"**Mixture** (`seqlm mix`: p = Σ λ_k p_k per token, weights {how}{ratio}; stream mode; from "
                  f"`{source}`)", ["model", "kind", "weight", "valid ppl", "test ppl"], rows)


def probe_table(res: dict, source: str) -> list[str]:
    ds = res["distances"]
    lines = [f"**Long-range recall** (`seqlm diagnose recall`: `KEY w_1 ... w_d = KEY`, accuracy of the right key "
             f"among {round(1 / res['chance'])}, chance {res['chance']:.3f}; {res['train_lines']} training lines, "
             f"{res.get('steps', '?')} updates per neural model; from `{source}`)", "",
             "| family | " + " | ".join(f"d={d}" for d in ds) + " |", "|---|" + "---|" * len(ds)]
    for fam, acc in res["accuracy"].items():
        lines.append(f"| {fam} | " + " | ".join(f"{acc[str(d)]:.2f}" if str(d) in acc else "–" for d in ds) + " |")
    return lines


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    return matplotlib, plt


def _save(fig, plt, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return target


def _ppl_axis(matplotlib, ax) -> None:
    ax.set_yscale("log")
    ax.set_yticks([60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 400])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("perplexity (PTB)")
    ax.set_ylim(top=400)
    ax.grid(True, which="both", alpha=0.3)


def figures(results_dir: Path, out_dir: Path) -> list[Path]:
    """PNG figures of the recipe runs (needs matplotlib, the ``plot`` extra), one set per hardware:
    validation (and test) perplexity against wall-clock training time and against tokens seen, n-grams as
    horizontal lines; test perplexity per recipe; gradient norm before clipping and the clipped fraction
    over training.  Then the gradient and recall figures (:func:`analysis_figures`)."""
    matplotlib, plt = _plt()
    runs, ngrams, ablations = [], [], {}
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        if "recipe" in res and ablation_of(res):
            ablations.setdefault(ablation_of(res), []).append(res)
        elif "recipe" in res and res.get("epochs"):
            runs.append(res)
        elif "recipe" in res and res.get("metrics", {}).get("valid_perplexity") and "ngrams" in res.get("model", {}):
            ngrams.append(res)
    written = []
    is_char = lambda r: "test_bits_per_character" in r.get("metrics", {})  # noqa: E731
    chars = [r for r in runs + ngrams if is_char(r)]
    runs, ngrams = [r for r in runs if not is_char(r)], [r for r in ngrams if not is_char(r)]
    if chars:
        written.append(char_figure(chars, out_dir / "curves-char.png"))
    on_gpu = lambda r: bool(r.get("hardware", {}).get("device"))  # noqa: E731
    names = [r["recipe"] for r in runs]
    for r in runs:  # runs of one recipe in several precisions: say which is which
        r["label"] = f"{r['recipe']} ({r.get('precision')})" if names.count(r["recipe"]) > 1 else r["recipe"]
    for name in ("gpu", "cpu"):
        group = [r for r in runs if on_gpu(r) == (name == "gpu")]
        if not group:
            continue
        hw = group[0]["hardware"].get("device") or group[0]["hardware"].get("cpu")
        for axis in ("time", "tokens"):
            fig, ax = plt.subplots(figsize=(8, 5))
            for res in group:
                key = "seconds" if axis == "time" else "tokens"
                scale = 60 if axis == "time" else 1e6
                pts = [(e[key] / scale, e["valid_perplexity"]) for e in res["epochs"]
                       if "valid_perplexity" in e and key in e]
                if not pts:
                    continue
                line, = ax.plot(*zip(*pts), marker=".", label=f"{res['label']} valid")
                test = [(e[key] / scale, e["test_perplexity"]) for e in res["epochs"] if "test_perplexity" in e and key in e]
                if test:
                    ax.plot(*zip(*test), ls="--", color=line.get_color(), label=f"{res['label']} test")
            for res in ngrams if name == "cpu" else []:
                ax.axhline(res["metrics"]["valid_perplexity"], color="black", ls=":", lw=1,
                           label=f"{res['recipe']} valid (n-gram, {res.get('seconds', 0):.0f} s)")
            _ppl_axis(matplotlib, ax)
            ax.set_xlabel("training wall time (min)" if axis == "time" else "training tokens seen (millions)")
            ax.legend(fontsize=7)
            ax.set_title(f"PTB learning curves, {hw}")
            written.append(_save(fig, plt, out_dir / (f"curves-{name}.png" if axis == "time" else f"tokens-{name}.png")))
        fig, ax = plt.subplots(figsize=(8, 4))
        bars = [(r["label"], r["metrics"]["test_perplexity"]) for r in group] + \
            ([(r["recipe"], r["metrics"]["test_perplexity"]) for r in ngrams] if name == "cpu" else [])
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
        for i, (_, v) in enumerate(bars):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlabel("test perplexity (PTB)")
        ax.set_title(f"Test perplexity per recipe, {hw}")
        written.append(_save(fig, plt, out_dir / f"test-{name}.png"))
        logged = [r for r in group if r.get("log")]
        if logged:
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
            for res in logged:
                xs = [x["seconds"] / 60 for x in res["log"]]
                top.plot(xs, [x["grad_norm"] for x in res["log"]], label=res["label"], lw=1)
                bottom.plot(xs, [x["clipped_fraction"] for x in res["log"]], label=res["label"], lw=1)
            top.set_yscale("log")
            top.set_ylabel("gradient norm before clipping")
            bottom.set_ylabel("fraction of steps clipped")
            bottom.set_xlabel("training wall time (min)")
            top.legend(fontsize=7)
            top.grid(True, alpha=0.3)
            bottom.grid(True, alpha=0.3)
            top.set_title(f"Gradient norms and clipping, {hw}")
            written.append(_save(fig, plt, out_dir / f"gradnorm-{name}.png"))
    for name, group in sorted(ablations.items()):
        written.append(ablation_figure(name, group, out_dir / f"ablation-{name}.png"))
    written += analysis_figures(results_dir, out_dir)
    return written


def char_figure(group: list[dict], target: Path) -> Path:
    """Character-level runs: validation bits per character against training wall time, n-grams as lines."""
    _, plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for res in group:
        m = res["metrics"]
        if res.get("epochs"):
            pts = [(e["seconds"] / 60, e["valid_bits_per_character"]) for e in res["epochs"]
                   if "valid_bits_per_character" in e]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=f"{res['recipe']} valid (test {m['test_bits_per_character']:.3f})")
        elif "valid_bits_per_character" in m:
            ax.axhline(m["valid_bits_per_character"], color="black", ls=":", lw=1,
                       label=f"{res['recipe']} valid (n-gram; test {m['test_bits_per_character']:.3f})")
    ax.set_xlabel("training wall time (min)")
    ax.set_ylabel("bits per character (PTB characters)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    hw = group[0].get("hardware", {})
    ax.set_title(f"PTB characters, {hw.get('device') or hw.get('cpu', '')}")
    return _save(fig, plt, target)


def ablation_of(res: dict) -> str:
    return (res.get("config") or {}).get("meta", {}).get("ablation", "")


def ablation_figure(name: str, group: list[dict], target: Path) -> Path:
    """Runs of one ablation side by side, step by step: training loss, gradient norm before clipping and
    the fraction of steps clipped, against the tokens seen; each labelled with its final perplexities."""
    _, plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for res in sorted(group, key=lambda r: r["recipe"]):
        m = res.get("metrics", {})
        label = (f"{res['config']['meta'].get('title') or res['recipe']}: test ppl {_f(m.get('test_perplexity'), 1)}"
                 + (f", {res['skipped_steps']} non-finite steps skipped" if res.get("skipped_steps") else ""))
        xs = [x["tokens"] / 1e6 for x in res.get("log", [])]
        axes[0].plot(xs, [x["train_loss"] for x in res["log"]], lw=1, label=label)
        axes[1].plot(xs, [x["grad_norm"] for x in res["log"]], lw=1, label=label)
        axes[2].plot(xs, [x["clipped_fraction"] for x in res["log"]], lw=1, label=label)
    axes[0].set_ylabel("training loss (nats/token)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("gradient norm before clipping")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("fraction of steps clipped")
    axes[2].set_xlabel("training tokens seen (millions)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    hw = group[0].get("hardware", {})
    axes[0].set_title(f"Ablation: {name} ({hw.get('device') or hw.get('cpu', '')})")
    return _save(fig, plt, target)


def analysis_figures(results_dir: Path, out_dir: Path) -> list[Path]:
    """The gradient and recall figures, redrawn from their result files."""
    from seqlm.analysis import gradients, probe

    written = []
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        if "trained" in res and "K" in res:
            target = out_dir / f"{path.stem}.png"
            gradients.plot(res, target)
        elif "accuracy" in res and "distances" in res:
            target = out_dir / f"{path.stem}.png"
            probe.plot(res, target)
        elif res.get("benchmark") == "ngram-scale":
            target = out_dir / f"{path.stem}.png"
            plot_scale(res, target)
        else:
            continue
        written.append(target)
    return written


def render(results_dir: Path) -> str:
    blocks: list[list[str]] = []
    recipes, grads, adapted = [], [], []
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        rel = f"results/{path.name}"
        if res.get("benchmark") == "ngram-ptb":
            blocks.append(ngram_table(res, rel))
        elif res.get("benchmark") == "train-throughput":
            blocks.append(throughput_table(res, rel))
        elif res.get("benchmark") == "train-throughput-ddp":
            blocks.append(ddp_table(res, rel))
        elif res.get("benchmark") == "serve":
            blocks.append(serve_table(res, rel))
        elif res.get("benchmark") == "ngram-scale":
            blocks.append(scale_table(res, rel))
        elif "mixture" in res and "weights" in res:
            blocks.append(mixture_table(res, rel))
        elif res.get("method") in ("dynamic", "cache") and "params" in res:
            adapted.append((res, rel))
        elif "recipe" in res:
            recipes.append((res, rel))
        elif "trained" in res and "K" in res:
            grads.append((res, rel))
        elif "accuracy" in res and "distances" in res:
            blocks.append(probe_table(res, rel))
    if recipes:
        blocks.append(recipe_table(recipes))
    for name in sorted(({ablation_of(r) for r, _ in recipes} | set(ABLATION_BASES)) - {"", "clipping"}):
        rows = [(r, src) for r, src in recipes if ablation_of(r) == name]
        base_name = ABLATION_BASES.get(name)
        base = next(((r, src) for r, src in recipes if r["recipe"] == base_name), None)
        on_base = [(r, src) for r, src in adapted if (r.get("base") or {}).get("recipe") == base_name]
        if rows or on_base:
            blocks.append(ablation_table(name, base, rows, on_base))
    if grads:
        blocks.append(gradients_table(grads))
    if not blocks:
        return "No results yet."
    return "\n\n".join("\n".join(b) for b in blocks)


ABLATION_BASES = {"awd-cpu": "lstm-adaptive", "nce-cpu": "lstm"}  # an ablation's base run (its recipe's name)

def neighbour_lines(name: str, table: dict) -> list[str]:
    lines = [f"**{name}**", "", "| word | nearest |", "|---|---|"]
    for w, near in table.items():
        lines.append(f"| {w} | " + ", ".join(f"{n['token']} ({n['cosine']:.2f})" for n in near) + " |")
    return lines + [""]


def report(sources, out: str | Path = "reports/report", words=None) -> Path:
    """Write a report folder: ``report.md`` (the tables of every result file, the learning-curve figures,
    and, for each run folder given, the nearest neighbours of a few frequent words in its embedding)
    and the figures' PNG files.  ``sources``: results folders and/or run folders.  Returns report.md."""
    from seqlm.errors import SeqlmError
    from seqlm.io.files import atomic_write

    sources = [Path(x) for x in ([sources] if isinstance(sources, (str, Path)) else sources)]
    out = Path(out)
    missing = [str(x) for x in sources if not x.is_dir()]
    if missing:
        raise SeqlmError(f"{', '.join(missing)}: no such folder: give results folders or run folders")
    result_dirs = [x for x in sources if any(x.glob("*.json")) and not (x / "run.json").exists()]
    runs = [x for x in sources if (x / "run.json").exists() or (x / "model" / "config.json").exists()]
    if not result_dirs and not runs:
        raise SeqlmError("nothing to report: the folders hold no result files (*.json) and no run folders")
    lines = ["# seqlm report", "", "Generated by `seqlm report` from "
             + ", ".join(f"`{x}`" for x in sources) + "; every number is read from those files.", ""]
    for rd in result_dirs:
        lines += [render(rd), ""]
        try:
            written = figures(rd, out)
        except ImportError:
            written = []
            lines += ["(matplotlib is not installed: `pip install 'seqlm[plot]'` for the figures)", ""]
        lines += [f"![{p.stem}]({p.name})" for p in written] + [""]
    recorded = [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for rd in result_dirs
                for p in sorted(rd.glob("*.json"))]
    recorded = [(name, res["neighbours"]) for name, res in recorded if isinstance(res, dict) and res.get("neighbours")]
    if recorded or runs:
        from seqlm.models.loader import load
        from seqlm.models.neural.embeddings import REPORT_WORDS, neighbour_table

        lines += ["## Nearest neighbours in the input embedding (cosine)", ""]
        for name, table in recorded:  # recorded by the training run in its results file
            lines += neighbour_lines(f"{name} (from its results file)", table)
        for run in runs:
            table = neighbour_table(load(run, device="cpu"), words or REPORT_WORDS)
            if table:
                lines += neighbour_lines(run.name, table)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "report.md"
    with atomic_write(target) as f:
        f.write("\n".join(lines).rstrip() + "\n")
    return target


def update(readme: Path, results_dir: Path) -> tuple[str, str]:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render(results_dir)}\n{END}{tail}"
    return text, new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="generate the README's results tables from results/")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--results", default="results")
    ap.add_argument("--check", action="store_true", help="only check that the README is up to date")
    ap.add_argument("--figures", default="reports/figures", help="folder for the PNG curves (needs matplotlib)")
    args = ap.parse_args(argv)
    if not args.check:
        try:
            for path in figures(Path(args.results), Path(args.figures)):
                print(f"wrote {path}", file=sys.stderr)
        except ImportError:
            print("matplotlib is not installed (pip install 'seqlm[plot]'): no figures", file=sys.stderr)
    old, new = update(Path(args.readme), Path(args.results))
    if args.check:
        if old != new:
            print("README results are stale: run python -m seqlm.reporting", file=sys.stderr)
            return 1
        return 0
    if old != new:
        from seqlm.io.files import atomic_write

        with atomic_write(args.readme) as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
