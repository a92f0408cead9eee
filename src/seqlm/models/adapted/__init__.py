"""Evaluation-time adaptation of a trained neural LM, as models of their own: dynamic evaluation and the
continuous cache pointer.  Each wraps a saved neural model behind the same LanguageModel interface, so
``evaluate``, ``score``, ``predict``, ``generate`` (and anything written against the interface) use it; each
is saved as a folder holding its base model (``base/``), its parameters and how they were tuned.

Both read text as a stream, left to right, and score every token *before* anything learns from it:

**Dynamic evaluation** (``dynamic.py``, Krause et al. 2018) moves the weights by the gradient of each
segment after scoring it; the **continuous cache** (``cache.py``, Grave et al. 2017) mixes in a pointer
distribution over the recent positions' hidden states.  Each module states its equations.

Both results do not depend on how the text is cut into calls: the state carries the segment or the cache.
Sentence mode restarts both at every line (the trained weights, an empty cache).

Modules: ``base`` (parameters, the shared wrapper), ``cache``, ``dynamic``; this file builds and loads
them (the table of kinds names :func:`load_adapted`).  Tuning on validation text is the ``seqlm adapt``
workflow (``workflows/adapt.py``).
"""

from __future__ import annotations

from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.models.adapted.base import EXTEND, FORMAT, METHODS, PARAMS, Adapted, Param, check_params
from seqlm.models.adapted.cache import CacheLM, CacheState, mix_cache
from seqlm.models.adapted.dynamic import DynamicLM, DynamicState, gradient_stats
from seqlm.models.neural.lm import NeuralLM

__all__ = ["EXTEND", "FORMAT", "METHODS", "PARAMS", "Adapted", "Param", "check_params", "CacheLM", "CacheState",
           "mix_cache", "DynamicLM", "DynamicState", "gradient_stats", "build", "load_adapted"]


def build(method: str, base: NeuralLM, params: dict, stats=None, info=None) -> Adapted:
    if method == "cache":
        return CacheLM(base, params, info)
    return DynamicLM(base, params, info, stats)


def load_adapted(path: Path, config: dict, device: str = "auto") -> Adapted:
    from safetensors.torch import load_file

    from seqlm.models.loader import load

    method = config.get("kind")
    if config.get("format") != FORMAT or not isinstance(config.get("params"), dict):
        raise SeqlmError(f"{path}/config.json is not a seqlm adapted model ({FORMAT}): create it again with seqlm adapt")
    base = load(path / "base", device=str(device))
    if not isinstance(base, NeuralLM):
        raise SeqlmError(f"{path}/base is not a neural model: create the folder again with seqlm adapt")
    stats = None
    stats_file = path / "gradient_stats.safetensors"
    if method == "dynamic" and stats_file.is_file():
        tensors = load_file(str(stats_file))
        stats = [tensors[f"ms.{k}"].to(base.device) for k in range(len(tensors))]
    return build(method, base, config["params"], stats, config.get("info"))
