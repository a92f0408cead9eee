"""``seqlm adapt``: wrap a trained neural model in dynamic evaluation or a continuous cache
(``models/adapted.py``), tune its parameters on validation text only, save it as a model folder, and
optionally report its test perplexity and evaluation time."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from seqlm.errors import SeqlmError
from seqlm.io.files import check_new_outputs, write_json
from seqlm.io.locks import locks_output
from seqlm.io.records import record
from seqlm.models.loader import load
from seqlm.tasks.evaluate import SplitSource, evaluate
from seqlm.text.encode import stream_ids

if TYPE_CHECKING:  # torch-backed types, imported on use only
    from seqlm.models.adapted import Adapted
    from seqlm.models.neural.lm import NeuralLM

log = logging.getLogger(__name__)


def parse_params(items) -> tuple[dict, dict]:
    """``NAME=V`` (fixed) and ``NAME=V1,V2,...`` (searched) options, or a dict of a value or a list of
    values per name -> (fixed, grids)."""
    fixed, grids = {}, {}
    if isinstance(items, dict):
        for name, value in items.items():
            if isinstance(value, (list, tuple)) and len(value) > 1:
                grids[name] = [str(v) for v in value]
            else:
                fixed[name] = str(value[0] if isinstance(value, (list, tuple)) else value)
        return fixed, grids
    if isinstance(items, str):
        items = [items]
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not parts:
            raise SeqlmError(f"--param needs NAME=VALUE or NAME=V1,V2,... (got {item!r}), e.g. --param lambda=0.1")
        if len(parts) == 1:
            fixed[name] = parts[0]
        else:
            grids[name] = parts
    return fixed, grids


@locks_output
def adapt(model_path: str | Path, method: str, *, out: str | Path, params=(), tune: bool = True,
          corpus: str | None = None, data_dir=None, valid=None, train=None, stats_tokens: int | None = None,
          valid_lines: int | None = None, test: bool = False, results=None) -> dict:
    """Wrap the neural model at ``model_path`` in ``method`` (``dynamic`` evaluation or the ``cache``),
    its parameters searched on validation text (``tune``) or taken as given, save it in ``out`` and return
    the tuning, the perplexities and the times; ``results``: also write that result as JSON there.

    ``params``: ``NAME=V[,V...]`` strings (the CLI's ``--param``) or a dict of a value or a list of values
    per name.  The validation text is ``valid`` (a file), else the valid split of ``corpus``, else of the
    corpus the model was trained on; ``train`` gives the dynamic rms rule's training text."""
    # torch is imported here, not at the top: ``import seqlm`` stays light for n-gram users
    from seqlm.models import adapted
    from seqlm.models.neural.lm import NeuralLM

    t_start = time.perf_counter()
    out = Path(out)
    check_new_outputs(out, results)
    if stats_tokens is not None and stats_tokens < 10:
        raise SeqlmError(f"--stats-tokens must be >= 10 (got {stats_tokens})")
    fixed, grids = parse_params(params)
    if method not in adapted.METHODS:
        raise SeqlmError(f"unknown --method {method!r}: choose dynamic or cache")
    for name in list(fixed) + list(grids):
        if name not in adapted.PARAMS[method]:
            raise SeqlmError(f"{method} has no parameter {name!r}: its parameters are {', '.join(adapted.PARAMS[method])}")
    if grids and not tune:
        raise SeqlmError("--no-tune takes one value per --param (several values are a search)")
    for name, values in grids.items():  # check every value now, not after a long pass
        for v in values:
            adapted.check_params(method, {**fixed, name: v})
    adapted.check_params(method, fixed)
    if tune and not grids:
        grids = {name: list(p.grid) for name, p in adapted.PARAMS[method].items() if p.grid and name not in fixed}

    base = load(model_path)
    if not isinstance(base, NeuralLM):
        raise SeqlmError(f"{model_path} is not a neural model: dynamic evaluation and the cache need one "
                         f"(train with a neural --model)")
    data = base.config.get("data", {})
    source = SplitSource(corpus or data.get("corpus"), data_dir or data.get("data_dir"), base.vocab.tokenizer.text_level,
                         " (the model was trained on files)")
    split = source.lines

    if valid_lines is not None and valid_lines < 1:
        raise SeqlmError(f"--valid-lines must be >= 1 (got {valid_lines})")
    n_valid = valid_lines
    valid_lines = split("valid", valid)[:n_valid]
    full = adapted.check_params(method, fixed)
    train_lines = split("train", train) if method == "dynamic" and full["rule"] == "rms" else None
    say = log.info
    say("tuning %s on %s validation lines: %s", method, f"{len(valid_lines):,}",
        ", ".join(f"{k} in {v}" for k, v in grids.items()) or "no search")
    t0 = time.perf_counter()
    if tune:
        lm = search(method, base, valid_lines, fixed, grids, train_lines, stats_tokens, log=say)
    else:
        stats = (adapted.gradient_stats(base, train_lines, full["segment"], max_tokens=stats_tokens)
                 if train_lines else None)
        lm = adapted.build(method, base, full, stats, {"tuned_on": None})
    tune_seconds = time.perf_counter() - t0
    chosen = [r for r in lm.info.get("trials", []) if all(r.get(k) == v for k, v in lm.params.items())]
    metrics, seconds = {}, {"tuning": round(tune_seconds, 1)}
    if chosen:
        metrics["valid_perplexity"] = chosen[0]["valid_perplexity"]
    else:
        t = time.perf_counter()
        metrics["valid_perplexity"] = evaluate(lm, valid_lines, mode="stream")["perplexity"]
        seconds["valid"] = round(time.perf_counter() - t, 1)
    base_valid = evaluate(base, valid_lines, mode="stream")["perplexity"]
    if test:
        test_lines = split("test")
        t = time.perf_counter()
        metrics["test_perplexity"] = evaluate(lm, test_lines, mode="stream")["perplexity"]
        seconds["test"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        base_test = evaluate(base, test_lines, mode="stream")["perplexity"]
        seconds["test_without"] = round(time.perf_counter() - t, 1)
    lm.save(out)
    run_summary = _run_summary(Path(model_path))
    result = {"type": "adapt", "recipe": out.name, "method": method, "params": lm.params, "metrics": metrics,
              "base": {"path": str(model_path), "model": base.describe(), "valid_perplexity": base_valid,
                       **({"test_perplexity": base_test} if test else {}), **run_summary},
              "seconds": seconds, "valid_lines": len(valid_lines),
              "tuning": {k: v for k, v in lm.info.items() if k != "trials"},
              "trials": lm.info.get("trials", []), "device": str(base.device),
              "out": str(out), **record(t_start)}
    if results:
        write_json(Path(results), result)
    return result


def _run_summary(path: Path) -> dict:
    """What the base model's training run recorded (recipe, training time), when it is a run folder."""
    import json

    for cand in (path / "summary.json", path.parent / "summary.json"):
        if cand.is_file():
            try:
                s = json.loads(cand.read_text())
            except (OSError, ValueError):
                return {}
            return {"recipe": s.get("recipe"), "train_wall_seconds": s.get("wall_seconds"),
                    "train_metrics": s.get("metrics")}
    return {}


# -- tuning on validation text ----------------------------------------------------------------------
def search(method: str, base: NeuralLM, valid: list[str], fixed: dict, grids: dict, train_lines: list[str] | None = None,
         stats_tokens: int | None = None, log: Callable[[str], None] = print) -> Adapted:
    """The adapted model whose parameters give the lowest perplexity on ``valid`` (a stream), searching
    ``grids`` (name -> values) with the others ``fixed``: the cache by a full grid (its model pass is shared),
    dynamic evaluation one parameter at a time in the order given (each pass is a full adaptation)."""
    from seqlm.models.adapted import EXTEND, PARAMS, build, check_params, gradient_stats

    params = check_params(method, fixed)
    grids = {name: [check_params(method, {**fixed, name: v})[name] for v in values] for name, values in grids.items()}
    stats = None
    t0 = time.perf_counter()
    if method == "dynamic" and params["rule"] == "rms":
        if not train_lines:
            raise SeqlmError("the rms rule needs training text for its gradient statistics")
        stats = gradient_stats(base, train_lines, params["segment"], max_tokens=stats_tokens)
        log(f"gradient statistics from training data: {time.perf_counter() - t0:.1f}s")
    trials = []
    if method == "cache":
        trials = _tune_cache(base, valid, params, grids, log)
        best = min(trials, key=lambda r: r["valid_perplexity"])
        params = check_params(method, {k: best[k] for k in PARAMS[method] if k in best} | {
            k: v for k, v in params.items() if k not in best})
    else:
        for name, values in grids.items():
            scored = []

            def score(value):
                trial = check_params(method, {**params, name: value})
                t = time.perf_counter()
                ppl = evaluate(build(method, base, trial, stats), valid, mode="stream")["perplexity"]
                row = {**trial, "valid_perplexity": ppl, "seconds": round(time.perf_counter() - t, 1)}
                trials.append(row)
                scored.append((ppl, value))
                log(f"  {name}={value}: valid {ppl:.3f} ({row['seconds']}s)")

            for value in values:
                score(value)
            ordered = sorted(values)
            if name == "lr" and len(ordered) > 1 and ordered[0] > 0:
                # the best step size at the edge of the grid: go on past it geometrically while it improves
                for edge, ratio in ((ordered[-1], ordered[-1] / ordered[-2]), (ordered[0], ordered[0] / ordered[1])):
                    for _ in range(EXTEND):
                        if min(scored)[1] != edge:
                            break
                        edge = edge * ratio
                        log(f"  the best {name} is at the edge of the grid: trying {edge:.3g}")
                        score(edge)
            params[name] = min(scored)[1]
    info = {"tuned_on": "validation", "trials": trials, "tuning_seconds": round(time.perf_counter() - t0, 1),
            "valid_tokens": int(len(stream_ids(base.vocab, valid)[1:]))}
    return build(method, base, params, stats, info)


def _tune_cache(base: NeuralLM, valid: list[str], fixed: dict, grids: dict, log) -> list[dict]:
    """Every grid point of (size, theta, lambda) on one pass of the model over ``valid``."""
    import torch

    from seqlm.models.adapted.cache import CacheLM, cache_probs

    lm = CacheLM(base, fixed)
    base.module.eval()
    ids = stream_ids(base.vocab, valid)
    inputs, targets = ids[:-1], ids[1:]
    hs, lps, hidden = [], [], None
    with torch.no_grad():
        for i in range(0, len(targets), lm.chunk):
            x, y = lm.as_batch(inputs[i:i + lm.chunk]), lm.as_batch(targets[i:i + lm.chunk])
            h, hidden = base.module.features(x, hidden)
            hs.append(h[0].float())
            lps.append(lm.model_logprobs(h[0].float(), y[0]))
    h_all, lp_all = torch.cat(hs), torch.cat(lps)
    y_all = torch.as_tensor(targets, device=base.device)
    sizes = grids.get("size", [fixed["size"]])
    thetas = grids.get("theta", [fixed["theta"]])
    lambdas = grids.get("lambda", [fixed["lambda"]])
    trials = []
    for size in sizes:
        for theta in thetas:
            p_cache, has = cache_probs(h_all, y_all, int(size), float(theta), lm.chunk)
            for lam in lambdas:
                lp = lp_all.double()
                if lam > 0:
                    mixed = torch.logaddexp(math.log1p(-lam) + lp, math.log(lam) + torch.log(p_cache))
                    lp = torch.where(has, mixed, lp)
                ppl = math.exp(-lp.mean().item())
                trials.append({"size": int(size), "theta": float(theta), "lambda": float(lam), "valid_perplexity": ppl})
    best = min(trials, key=lambda r: r["valid_perplexity"])
    log(f"  {len(trials)} cache settings on one model pass; best size={best['size']} theta={best['theta']} "
        f"lambda={best['lambda']}: valid {best['valid_perplexity']:.3f}")
    return trials
