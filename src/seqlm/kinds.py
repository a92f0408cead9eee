"""The one table of model kinds: kind -> family, what builds it, its state, backends and precisions.

Every place that needs to know the kinds (the config's validation, the CLI's help, training, loading)
reads this table; builders are named as dotted paths and imported on use, so the table stays at the
bottom of the house (a family may import it without closing an import circle).

Adding a kind: one row here, plus its code (an estimator for an n-gram smoothing, a cell for a recurrent
kind) and its tests.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import SeqlmError


@dataclass(frozen=True)
class Kind:
    name: str
    family: str  # ngram | neural
    builder: str  # "module:function" building it (n-gram: the estimator; neural: the nn.Module class)
    doc: str
    state: str = "ngram"  # ngram (the last n-1 tokens) | recurrent (hidden state) | window (n-1 token ids)
    backends: tuple[str, ...] = ()  # neural: fused (library kernels) and/or reference (cells.py)
    precisions: tuple[str, ...] = ("fp32",)
    arpa: str = "yes"  # yes | order-1 (add-k: only a unigram model is ARPA-expressible) | no
    alias_of: str | None = None  # the same estimator under another name

    @property
    def canonical(self) -> str:
        return self.alias_of or self.name


_NGRAM = "seqlm.ngram.smoothing:estimate"
_RECURRENT = "seqlm.neural.recurrent:RecurrentLM"
_NEURAL = dict(family="neural", backends=("fused", "reference"), precisions=("fp32", "bf16"), arpa="no",
               state="recurrent", builder=_RECURRENT)

KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("mle", "ngram", _NGRAM, "maximum likelihood (no smoothing: unseen words get 0 in a seen context)"),
    Kind("add-k", "ngram", _NGRAM, "add-k (Lidstone) smoothing, --k K", arpa="order-1"),
    Kind("laplace", "ngram", _NGRAM, "add-one smoothing", arpa="order-1", alias_of="add-k"),
    Kind("wb", "ngram", _NGRAM, "interpolated Witten-Bell smoothing"),
    Kind("ikn", "ngram", _NGRAM, "interpolated Kneser-Ney, one discount per order"),
    Kind("mkn", "ngram", _NGRAM, "interpolated modified Kneser-Ney, three discounts per order (KenLM's lmplz)"),
    Kind("kn", "ngram", _NGRAM, "the same as mkn", alias_of="mkn"),
    Kind("lstm", doc="LSTM (Hochreiter & Schmidhuber 1997)", **_NEURAL),
    Kind("gru", doc="GRU (Cho et al. 2014)", **_NEURAL),
    Kind("rnn_tanh", doc="vanilla (Elman) RNN, tanh", **_NEURAL),
    Kind("rnn_relu", doc="vanilla (Elman) RNN, ReLU", **_NEURAL),
    Kind("mogrifier", doc="Mogrifier LSTM (Melis et al. 2020): input and state gate each other before each "
         "LSTM step (reference backend only)", **{**_NEURAL, "backends": ("reference",)}),
    Kind("window", "neural", "seqlm.neural.window:WindowLM", "fixed-window feed-forward LM (Bengio et al. 2003)",
         state="window", backends=("fused",), precisions=("fp32", "bf16"), arpa="no"),
]}


def names(family: str | None = None) -> tuple[str, ...]:
    return tuple(k for k, v in KINDS.items() if family is None or v.family == family)


def get(name: str) -> Kind:
    if not isinstance(name, str) or name not in KINDS:
        raise SeqlmError(f"unknown model kind {name!r} (--model, model.kind): choose one of {', '.join(KINDS)}")
    return KINDS[name]


def builder(name: str):
    """The object (function or class) that builds ``name``, imported on use."""
    module, attr = get(name).builder.split(":")
    return getattr(importlib.import_module(module), attr)


def help_text() -> str:
    return "; ".join(f"{k.name}: {k.doc}" for k in KINDS.values())
