"""Mixtures: the linear interpolation, token by token, of models that share a vocabulary and tokenizer.

    p(w | h) = Σ_k λ_k p_k(w | h),    λ_k >= 0, Σ λ_k = 1

Models that fail differently average well (Mikolov et al. 2011: an RNN LM at 124.7 with a KN5 at 141.2 gave
105.7 on PTB).  The weights are given, or fitted by EM on validation text (the weights that maximise its
likelihood; each EM step cannot lower it): with r_k(t) = λ_k p_k(w_t) / Σ_j λ_j p_j(w_t), λ_k ← mean_t r_k(t).

A mixture is a model like any other (evaluate, score, predict, generate, and a part of another mixture);
its state is the tuple of its parts' states.  Saved as a folder holding each part (``part0/``, ...) and the
weights; parts of any kind, n-gram or neural or adapted.  Models whose vocabularies or tokenizers differ
cannot be mixed: a clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, write_config
from seqlm.models.interface import LanguageModel, State, check_mode

FORMAT = "seqlm-mixture-1"


def check_weights(weights, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise SeqlmError(f"a mixture of {n} models needs {n} weights (got {len(w)}): one per model, in order")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise SeqlmError(f"mixture weights must be >= 0 with a positive sum (got {list(weights)})")
    return w / w.sum()


def parse_weights(weights, n: int) -> np.ndarray | None:
    """``--weights`` as given (comma-separated text or a list of numbers), checked and normalised; None where
    none were given (they are then fitted)."""
    if weights is None:
        return None
    try:
        given = [float(x) for x in (weights.split(",") if isinstance(weights, str) else weights)]
    except (TypeError, ValueError):
        raise SeqlmError(f"--weights needs comma-separated numbers, one per model (got {weights!r})") from None
    return check_weights(given, n)


class MixtureLM(LanguageModel):
    kind = "mixture"

    def __init__(self, parts: list[LanguageModel], weights, info: dict | None = None):
        if len(parts) < 2:
            raise SeqlmError("a mixture needs at least two models")
        first = parts[0].vocab
        for k, part in enumerate(parts[1:], 1):
            if part.vocab.tokenizer != first.tokenizer:
                raise SeqlmError(f"model {k + 1} reads text another way ({part.vocab.tokenizer}) than model 1 "
                                 f"({first.tokenizer}): mix only models of the same level and tokenization")
            if part.vocab.itos != first.itos:
                differ = len(set(part.vocab.itos) ^ set(first.itos))
                raise SeqlmError(f"model {k + 1}'s vocabulary differs from model 1's ({len(part.vocab)} vs "
                                 f"{len(first)} tokens, {differ} not shared, or another order): mix only models "
                                 f"trained on the same vocabulary (the same training text and vocabulary options)")
        self.parts = list(parts)
        self.vocab = first
        self.weights = check_weights(weights, len(parts))
        self.log_weights = np.log(np.maximum(self.weights, 1e-300))
        self.info = dict(info or {})

    def _mix(self, lps: list[np.ndarray]) -> np.ndarray:
        """ln Σ_k λ_k p_k, elementwise over the parts' ln p arrays (each (N,) or (V,))."""
        with np.errstate(divide="ignore"):
            return np.logaddexp.reduce(np.stack(lps) + self.log_weights[:, None], axis=0)

    def start(self) -> State:
        return tuple(p.start() for p in self.parts)

    def advance(self, state: State, token: int) -> State:
        return tuple(p.advance(s, token) for p, s in zip(self.parts, state))

    def next_logprobs(self, state: State) -> np.ndarray:
        return self._mix([p.next_logprobs(s) for p, s in zip(self.parts, state)])

    def score_lines(self, lines, mode="sentence", state=None):
        check_mode(mode)
        states = state if state is not None else (None,) * len(self.parts)
        out, new = [], []
        for part, st in zip(self.parts, states):
            lp, st = part.score_lines(lines, mode, st)
            out.append(np.asarray(lp, dtype=np.float64))
            new.append(st)
        return self._mix(out), (tuple(new) if mode == "stream" else None)

    def describe(self) -> dict:
        return {"kind": "mixture", "vocab_size": len(self.vocab), "weights": [round(float(w), 6) for w in self.weights],
                "parts": [p.describe() for p in self.parts]}

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            for k, part in enumerate(self.parts):
                part.save(tmp / f"part{k}")
            write_config(tmp, {"kind": "mixture", "format": FORMAT, "weights": [float(w) for w in self.weights],
                               "parts": [f"part{k}" for k in range(len(self.parts))], "info": self.info})

    @classmethod
    def load(cls, path: Path, config: dict, device: str = "auto") -> "MixtureLM":
        from seqlm.models.loader import load

        if config.get("format") != FORMAT or not isinstance(config.get("parts"), list):
            raise SeqlmError(f"{path}/config.json is not a seqlm mixture ({FORMAT}): create it again with seqlm mix")
        parts = [load(path / name, device=device) for name in config["parts"]]
        return cls(parts, config.get("weights"), config.get("info"))


def fit_weights(part_logprobs: np.ndarray, iterations: int = 200, tol: float = 1e-7) -> tuple[np.ndarray, list[float]]:
    """EM for the weights of a mixture from each part's ln p of every token (K, N); returns the weights and
    the mean ln-likelihood after each step (never decreasing)."""
    K = part_logprobs.shape[0]
    w = np.full(K, 1.0 / K)
    history = []
    with np.errstate(divide="ignore"):
        for _ in range(iterations):
            joint = part_logprobs + np.log(np.maximum(w, 1e-300))[:, None]
            total = np.logaddexp.reduce(joint, axis=0)
            history.append(float(total.mean()))
            w_new = np.exp(joint - total[None, :]).mean(axis=1)
            done = np.abs(w_new - w).max() < tol
            w = w_new / w_new.sum()
            if done:
                break
    return w, history
