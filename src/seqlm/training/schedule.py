"""The learning-rate schedules and the window lengths of a neural run: cosine over a step or time budget,
Zaremba's per-epoch decay, decay on plateau, NT-ASGD's averaging trigger, AWD-LSTM's variable BPTT."""

from __future__ import annotations

import math

import numpy as np


def scheduled_lr(t, progress: dict, total_steps: int, seconds: float) -> float | None:
    """The cosine schedule's lr for the next step (None for the per-epoch schedules): from train.lr to 0
    over the budget, whichever ends first of epochs x batches steps and train.max_minutes."""
    if t.schedule != "cosine":
        return None
    frac = progress["step"] / max(total_steps, 1)
    if t.max_minutes:
        frac = max(frac, seconds / (t.max_minutes * 60))
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))


def window_length(t, step: int) -> int:
    """Tokens per row in training step ``step``: ``bptt``, or with ``variable_bptt`` AWD-LSTM's draw
    (N(bptt, 5), N(bptt/2, 5) with probability 0.05; at least 5, at most bptt + 20), from a generator seeded
    by (seed, step), so a resumed run and every rank under torchrun draw the same lengths."""
    if not t.variable_bptt:
        return t.bptt
    rng = np.random.default_rng([t.seed, step])
    base = t.bptt if rng.random() < 0.95 else t.bptt / 2
    return int(min(max(5, int(rng.normal(base, 5))), t.bptt + 20))


def nonmonotone(history: list[float], v: float, n: int) -> bool:
    """NT-ASGD's trigger (Merity et al. 2018): validation ``v`` is worse than the best of all earlier
    validations but the last ``n``."""
    return len(history) > n and v > min(history[:-n])


def epoch_end_lr(t, lr: float, epoch: int, improved: bool) -> float:
    """The per-epoch schedules: zaremba (decay every epoch from decay_start on), plateau (decay when the
    validation did not improve)."""
    if (t.schedule == "zaremba" and epoch >= t.decay_start) or (t.schedule == "plateau" and not improved):
        return lr * t.lr_decay
    return lr
