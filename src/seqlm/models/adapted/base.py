"""What dynamic evaluation and the cache share: their parameters (with the values a search tries), the
wrapper around a saved neural model that scores a stream and saves itself, and the stream helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, write_config
from seqlm.models.interface import LanguageModel, State, check_mode
from seqlm.models.neural.lm import NeuralLM
from seqlm.text.encode import join_with_eos

FORMAT = "seqlm-adapted-1"
EXTEND = 3  # tuning: steps past the edge of an lr grid whose best value lies on that edge
METHODS = ("dynamic", "cache")




@dataclass(frozen=True)
class Param:
    default: float
    grid: tuple
    kind: type = float
    doc: str = ""


PARAMS: dict[str, dict[str, Param]] = {
    "dynamic": {
        "lr": Param(2e-5, (5e-6, 1e-5, 2e-5, 5e-5, 1e-4), doc="step size (rms: of the normalised gradient)"),
        "decay": Param(0.01, (0.0, 0.003, 0.01, 0.03), doc="pull back towards the trained weights, per segment"),
        "segment": Param(5, (), int, "tokens per update (Krause et al.: 5 on PTB)"),
        "epsilon": Param(0.002, (), doc="rms: added to the gradient RMS"),
        "rule": Param("rms", (), str, "rms (Krause et al.) or sgd"),
    },
    "cache": {
        "size": Param(500, (100, 500, 2000), int, "positions kept (the window)"),
        "theta": Param(0.3, (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0), doc="sharpness of the pointer's softmax"),
        "lambda": Param(0.1, (0.05, 0.1, 0.15, 0.2, 0.25, 0.3), doc="weight of the cache in the mixture"),
    },
}


def check_params(method: str, params: dict) -> dict:
    """``params`` completed with the defaults and checked; unknown names and bad values are errors."""
    if method not in METHODS:
        raise SeqlmError(f"unknown adaptation method {method!r}: choose {' or '.join(METHODS)}")
    known = PARAMS[method]
    for name in params:
        if name not in known:
            raise SeqlmError(f"{method} has no parameter {name!r}: its parameters are {', '.join(known)}")
    out = {name: p.default for name, p in known.items()}
    out.update(params)
    for name, p in known.items():
        value = out[name]
        try:
            value = p.kind(value)
        except (TypeError, ValueError):
            raise SeqlmError(f"{method} parameter {name} must be a {p.kind.__name__} (got {value!r})") from None
        if p.kind is float and not math.isfinite(value):
            raise SeqlmError(f"{method} parameter {name} must be finite (got {value!r})")
        out[name] = value
    if method == "dynamic":
        if out["rule"] not in ("rms", "sgd"):
            raise SeqlmError(f"dynamic parameter rule must be rms or sgd (got {out['rule']!r})")
        if out["lr"] < 0 or out["epsilon"] <= 0 or out["segment"] < 1 or not 0 <= out["decay"] < 1:
            raise SeqlmError("dynamic parameters: lr >= 0, epsilon > 0, segment >= 1, decay in [0, 1)")
    else:
        if out["size"] < 1 or out["theta"] < 0 or not 0 <= out["lambda"] < 1:
            raise SeqlmError("cache parameters: size >= 1, theta >= 0, lambda in [0, 1)")
    return out


class Adapted(LanguageModel):
    """A neural model read through an evaluation-time method; subclasses define the stream engine
    ``_feed(state, targets) -> (ln p of each target, state)`` and the full distribution of a state."""

    method = ""

    def __init__(self, base: NeuralLM, params: dict, info: dict | None = None):
        if not isinstance(base, NeuralLM):
            raise SeqlmError(f"{self.method} works on neural models (got a {getattr(base, 'kind', '?')} model): "
                             f"give a folder from seqlm train with a neural --model")
        self.base = self.source = base  # source: the trained model as given (saved with this one, never changed)
        self.vocab = base.vocab
        self.params = check_params(self.method, params)
        self.info = dict(info or {})
        self.kind = self.method

    # -- the interface ------------------------------------------------------------------------------
    def score_lines(self, lines, mode="sentence", state=None):
        check_mode(mode)
        self.base.module.eval()
        if mode == "stream":
            return self._feed(state if state is not None else self.start(), join_with_eos(lines))
        parts = [self._feed(self.start(), join_with_eos([line]))[0] for line in lines]
        return (np.concatenate(parts) if parts else np.zeros(0)), None

    def advance(self, state: State, token: int) -> State:
        self.base.module.eval()
        return self._feed(state, np.array([int(token)], dtype=np.int64))[1]

    def describe(self) -> dict:
        return {**self.base.describe(), "adaptation": self.method, "adaptation_params": self.params}

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            self.source.save(tmp / "base")
            self._save_extra(tmp)
            write_config(tmp, {"kind": self.method, "format": FORMAT, "params": self.params, "info": self.info})

    def _save_extra(self, folder: Path) -> None:
        pass

    @property
    def device(self):
        return self.base.device

    def as_batch(self, ids) -> torch.Tensor:
        return torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)[None]


def grad_mode(device):
    """Autograd through the model in evaluation mode: cuDNN's RNN has no backward outside training mode, so
    on CUDA the library's native kernels run instead (same numbers)."""
    import contextlib

    return torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" else contextlib.nullcontext()

