"""The one table of model kinds: kind -> family, what builds it, what loads its folder, its state,
backends and precisions.

Every place that needs to know the kinds (the config's validation, the CLI's help, training, loading)
reads this table.  Builders and loaders are named as dotted paths (``module:attribute[.attribute]``)
and imported on use, so the table stays at the bottom of the house: a family or a composite may import
it, and ``models.loader.load`` finds any folder's loader here, without an import circle.

Families: ``ngram`` and ``neural`` are trained (``seqlm train --model KIND``); ``composite`` kinds are
built from saved models by a workflow (``seqlm mix``, ``seqlm adapt``) and load their parts with
``load()``.

A saved folder's ``config.json`` names its ``kind``: ``ngram`` or ``neural`` for a trained model (the
family's loader reads the kind within it), the composite's own name otherwise.

Adding a kind: one row here, plus its code (an estimator for an n-gram smoothing, a cell for a recurrent
kind, a class for a composite) and its tests; the contract suite (tests/test_kinds.py) runs on every row.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from seqlm.errors import SeqlmError


@dataclass(frozen=True)
class Kind:
    name: str
    family: str  # ngram | neural | composite
    builder: str  # "module:attr" building it (n-gram: the estimator; neural: the nn.Module class; composite: its class)
    doc: str
    loader: str = ""  # "module:attr" called as loader(path, config, device) on a folder of this kind
    state: str = "ngram"  # ngram (the last n-1 tokens) | recurrent (hidden state) | window (n-1 token ids) |
    #   layers (each layer's input at the last context positions)
    backends: tuple[str, ...] = ()  # neural: fused (library kernels) and/or reference (cells.py)
    precisions: tuple[str, ...] = ("fp32",)
    arpa: str = "yes"  # yes | order-1 (add-k: only a unigram model is ARPA-expressible) | no
    alias_of: str | None = None  # the same estimator under another name

    @property
    def canonical(self) -> str:
        return self.alias_of or self.name

    @property
    def folder(self) -> str:
        """The ``kind`` a saved folder of this kind names in its config.json."""
        return self.name if self.family == "composite" else self.family


_NGRAM = "seqlm.models.ngram.smoothing:estimate"
_RECURRENT = "seqlm.models.neural.recurrent:RecurrentLM"
_NGRAM_LOADER = "seqlm.models.ngram.model:NGramLM.load"
_NEURAL_LOADER = "seqlm.models.neural.lm:NeuralLM.load"
_NG = dict(family="ngram", builder=_NGRAM, loader=_NGRAM_LOADER)
_NEURAL = dict(family="neural", backends=("fused", "reference"), precisions=("fp32", "bf16"), arpa="no",
               state="recurrent", builder=_RECURRENT, loader=_NEURAL_LOADER)
_ADAPTED = dict(family="composite", state="adapted", arpa="no", loader="seqlm.models.adapted:load_adapted")

KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("mle", doc="maximum likelihood (no smoothing: unseen words get 0 in a seen context)", **_NG),
    Kind("add-k", doc="add-k (Lidstone) smoothing, --k K", arpa="order-1", **_NG),
    Kind("laplace", doc="add-one smoothing", arpa="order-1", alias_of="add-k", **_NG),
    Kind("wb", doc="interpolated Witten-Bell smoothing", **_NG),
    Kind("ikn", doc="interpolated Kneser-Ney, one discount per order", **_NG),
    Kind("mkn", doc="interpolated modified Kneser-Ney, three discounts per order (KenLM's lmplz)", **_NG),
    Kind("kn", doc="the same as mkn", alias_of="mkn", **_NG),
    Kind("lstm", doc="LSTM (Hochreiter & Schmidhuber 1997)", **_NEURAL),
    Kind("gru", doc="GRU (Cho et al. 2014)", **_NEURAL),
    Kind("rnn_tanh", doc="vanilla (Elman) RNN, tanh", **_NEURAL),
    Kind("rnn_relu", doc="vanilla (Elman) RNN, ReLU", **_NEURAL),
    Kind("mogrifier", doc="Mogrifier LSTM (Melis et al. 2020): input and state gate each other before each "
         "LSTM step (reference backend only)", **{**_NEURAL, "backends": ("reference",)}),
    Kind("window", "neural", "seqlm.models.neural.window:WindowLM", "fixed-window feed-forward LM (Bengio et al. 2003)",
         state="window", backends=("fused",), precisions=("fp32", "bf16"), arpa="no", loader=_NEURAL_LOADER),
    Kind("transformer", "neural", "seqlm.models.neural.transformer:TransformerLM", "decoder-only Transformer "
         "(pre-LayerNorm, rotary positions; every token attends to model.context tokens back in each layer)",
         state="layers", backends=("fused",), precisions=("fp32", "bf16"), arpa="no", loader=_NEURAL_LOADER),
    Kind("mixture", "composite", "seqlm.models.mixture:MixtureLM", "linear interpolation of models that share a "
         "vocabulary, token by token (seqlm mix)", state="mixture", arpa="no", loader="seqlm.models.mixture:MixtureLM.load"),
    Kind("dynamic", builder="seqlm.models.adapted:DynamicLM", doc="a neural model updated by gradient steps on "
         "the text it has read (dynamic evaluation, Krause et al. 2018; seqlm adapt)", **_ADAPTED),
    Kind("cache", builder="seqlm.models.adapted:CacheLM", doc="a neural model mixed with a cache of its recent "
         "hidden states (Grave et al. 2017; seqlm adapt)", **_ADAPTED),
]}

TRAINED = ("ngram", "neural")  # the families seqlm train builds


def names(family: str | None = None) -> tuple[str, ...]:
    """The kinds of ``family``; by default every kind ``seqlm train`` builds (no composites)."""
    return tuple(k for k, v in KINDS.items() if (v.family in TRAINED if family is None else v.family == family))


def get(name: str) -> Kind:
    if not isinstance(name, str) or name not in KINDS or KINDS[name].family not in TRAINED:
        raise SeqlmError(f"unknown model kind {name!r} (--model, model.kind): choose one of {', '.join(names())}")
    return KINDS[name]


def resolve(dotted: str):
    """The object a dotted path ``module:attr[.attr]`` names, imported now."""
    module, _, attrs = dotted.partition(":")
    obj = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


def builder(name: str):
    """The object (function or class) that builds ``name``, imported on use."""
    return resolve(KINDS[name].builder if name in KINDS else get(name).builder)


def loader(folder_kind: str):
    """The function that loads a saved folder whose config.json says ``"kind": folder_kind``, as
    ``loader(path, config, device)``; ``None`` for a kind no row writes."""
    for row in KINDS.values():
        if row.folder == folder_kind:
            return resolve(row.loader)
    return None


def help_text() -> str:
    return "; ".join(f"{k.name}: {k.doc}" for k in KINDS.values() if k.family in TRAINED)
