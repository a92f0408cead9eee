"""The result files under ``results/``: JSON written by real runs, each saying its ``type`` (one of
:data:`TYPES`), read in one place for the tables, the figures, the reports and the docs."""

from __future__ import annotations

import json
from pathlib import Path

from seqlm.errors import SeqlmError

# type -> what writes it
TYPES = {
    "train": "seqlm train --results (a recipe run, n-gram or neural)",
    "adapt": "seqlm adapt --results",
    "mix": "seqlm mix --results",
    "gradients": "seqlm diagnose gradients --out",
    "probe": "seqlm diagnose recall --out",
    "ngram-ptb": "bench/ngram.py",
    "prune": "bench/prune.py",
    "counts": "bench/counts.py",
    "ngram-cluster": "bench/cluster.py",
    "units": "bench/units.py",
    "unit-bits": "bench/unit_bits.py",
    "subword-libs": "bench/subword_libs.py",
    "interpolate": "bench/interpolate.py",
    "neural-defaults": "bench/neural_defaults.py",
    "ngram-scale": "bench/ngram.py --scale",
    "kenlm-api": "bench/kenlm_api.py",
    "asr": "bench/asr.py",
    "groupby": "bench/groupby.py",
    "serve": "bench/serve.py",
    "step-time": "bench/step_time.py",
    "train-throughput": "bench/train_throughput.py",
    "train-throughput-ddp": "bench/train_throughput.py --ddp",
}


def read_results(folder: Path, *types: str) -> list[tuple[Path, dict]]:
    """(path, result) for every ``*.json`` in ``folder`` in name order, only those of ``types`` if given.
    A file without a known ``type`` is a one-line error naming it."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SeqlmError(f"{path} is not valid JSON ({e}): results are written by seqlm's runs") from None
        kind = res.get("type") if isinstance(res, dict) else None
        if kind not in TYPES:
            raise SeqlmError(f"{path} has no known \"type\" (got {kind!r}): a result file says one of "
                             f"{', '.join(TYPES)}")
        if kind == "train" and not res.get("recipe"):
            res["recipe"] = path.stem  # a run without a recipe (settings fitted to the data) is named by its file
        if not types or kind in types:
            out.append((path, res))
    return out


def text_level(res: dict) -> str:
    """Whether a training run modelled characters or words ("char" or "word"): a character run's metrics give
    bits per character."""
    return "char" if "test_bits_per_character" in res.get("metrics", {}) else "word"
