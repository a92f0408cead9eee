"""``seqlm adapt``: wrap a trained neural model in dynamic evaluation or a continuous cache
(``models/adapted.py``), tune its parameters on validation text only, save it as a model folder, and
optionally report its test perplexity and evaluation time."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.io.files import check_new_outputs, write_json
from seqlm.io.records import record
from seqlm.models.loader import load
from seqlm.tasks.evaluate import SplitSource, evaluate

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
    source = SplitSource(corpus or data.get("corpus"), data_dir or data.get("data_dir"), base.vocab.tokenizer.level,
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
        lm = adapted.tune(method, base, valid_lines, fixed, grids, train_lines, stats_tokens, log=say)
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
    result = {"recipe": out.name, "method": method, "params": lm.params, "metrics": metrics,
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
