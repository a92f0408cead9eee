"""Evaluation-time adaptation of a trained neural LM, as models of their own: dynamic evaluation and the
continuous cache pointer.  Each wraps a saved neural model behind the same LanguageModel interface, so
``evaluate``, ``score``, ``predict``, ``generate`` (and anything written against the interface) use it; each
is saved as a folder holding its base model (``base/``), its parameters and how they were tuned.

Both read text as a stream, left to right, and score every token *before* anything learns from it:

**Dynamic evaluation** (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"): the stream is
cut into segments of ``segment`` tokens (from the start of the stream).  Each segment is scored with the
current weights, then the gradient g of its mean loss moves the weights:

    rms:  θ ← θ - lr · g / (MS + ε) + decay · r ⊙ (θ0 - θ)      (Krause et al.'s RMS rule)
    sgd:  θ ← θ - lr · g + decay · (θ0 - θ)

where θ0 are the trained weights, MS the root-mean-square of each weight's gradient over training data
(segments of ``segment`` tokens in batches of 100; stored with the model) and r = MS / Σ_p mean(MS_p).
The hidden state carried to the next segment is the one computed with the weights that scored it.

**Continuous cache** (Grave et al. 2017, "Improving Neural Language Models with a Continuous Cache"): the
last ``size`` positions' output-layer inputs h_i are kept with the word that followed each; the next word's
probability is mixed with a pointer distribution over them:

    p(w) = (1 - λ) p_model(w) + λ Σ_{i in cache, x_{i+1} = w} softmax_i(θ h_t · h_i)

A position enters the cache only after its word is scored, so the cache never holds the word it predicts
(tested).  With an empty cache (the first token), p = p_model.

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
