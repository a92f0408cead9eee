"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models"): the stream is
cut into segments of ``segment`` tokens (from the start of the stream).  Each segment is scored with the
current weights, then the gradient g of its mean loss moves the weights:

    rms:  θ ← θ - lr · g / (MS + ε) + decay · r ⊙ (θ0 - θ)      (Krause et al.'s RMS rule)
    sgd:  θ ← θ - lr · g + decay · (θ0 - θ)

where θ0 are the trained weights, MS the root-mean-square of each weight's gradient over training data
(segments of ``segment`` tokens in batches of 100; stored with the model) and r = MS / Σ_p mean(MS_p).
The hidden state carried to the next segment is the one computed with the weights that scored it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqlm.errors import SeqlmError
from seqlm.io.runtime import Progress
from seqlm.models.adapted.base import Adapted, grad_mode
from seqlm.models.neural.lm import NeuralLM, log_softmax
from seqlm.text.encode import batchify, stream_ids
from seqlm.text.vocab import EOS_ID


@dataclass(frozen=True)
class DynamicState:
    weights: tuple | None  # the adapted weights (None: the trained ones)
    hidden: object  # the model's state at the start of the current segment
    pending_in: tuple = ()  # the current segment's inputs and targets read so far (already scored)
    pending_out: tuple = ()
    last: int = EOS_ID  # the next input token


class DynamicLM(Adapted):
    method = "dynamic"

    def __init__(self, base: NeuralLM, params: dict, info: dict | None = None, stats: list | None = None):
        super().__init__(base, params, info)
        # the weights move as the text is read: on a copy of the model, so the given one stays as trained
        self.base = NeuralLM(base.vocab, copy.deepcopy(base.module), base.config, base.eval_chunk)
        self.weights0 = tuple(p.detach().clone() for p in self._params())
        self.loaded = None  # which weights the module holds now (None: the trained ones)
        self.stats = stats  # per parameter: RMS of the gradient over training data (the rms rule)
        if self.params["rule"] == "rms" and stats is None:
            raise SeqlmError("dynamic evaluation with the rms rule needs gradient statistics from training data: "
                             "create it with seqlm adapt (or use --param rule=sgd)")
        # the rule's per-weight factors, computed once: θ ← θ + step ⊙ g + pull ⊙ (θ0 - θ)
        lr, decay = self.params["lr"], self.params["decay"]
        if self.params["rule"] == "rms":
            total = sum(s.mean() for s in stats)
            self.step = [-lr / (s + self.params["epsilon"]) for s in stats]
            self.pull = [decay * s / total for s in stats]
        else:
            self.step = [torch.full_like(p, -lr) for p in self.weights0]
            self.pull = [torch.full_like(p, decay) for p in self.weights0]

    def _params(self):
        return list(self.base.module.parameters())

    def start(self) -> DynamicState:
        return DynamicState(None, None)

    def _load(self, weights) -> None:
        if weights is self.loaded:
            return
        with torch.no_grad():
            for p, w in zip(self._params(), weights if weights is not None else self.weights0):
                p.copy_(w)
        self.loaded = weights

    def _feed(self, state: DynamicState, targets: np.ndarray):
        if len(targets) == 0:
            return np.zeros(0), state
        self._load(state.weights)
        seg = self.params["segment"]
        done = len(state.pending_in)  # already scored
        inputs = list(state.pending_in) + [state.last] + [int(t) for t in targets[:-1]]
        outputs = list(state.pending_out) + [int(t) for t in targets]
        hidden, updated = state.hidden, False
        out = []
        bar = Progress(len(inputs), "dynamic evaluation", unit="tok") if len(inputs) > 50_000 else None
        i = 0
        while i + seg <= len(inputs):
            x, y = self.as_batch(inputs[i:i + seg]), self.as_batch(outputs[i:i + seg])
            with torch.enable_grad(), grad_mode(self.device):
                lp, new_hidden = self.base.target_logprobs(x, hidden, y)
                out.append(lp[0, max(0, done - i):].detach())
                self._update(-lp.mean())
            updated = True
            hidden = self.base.module.detach_state(new_hidden)
            i += seg
            if bar:
                bar.update(seg)
        if bar:
            bar.close()
        if i < len(inputs):  # a partial segment: scored now, learned from when it is complete
            with torch.no_grad():
                lp, _ = self.base.target_logprobs(self.as_batch(inputs[i:]), hidden, self.as_batch(outputs[i:]))
            out.append(lp[0, max(0, done - i):])
        weights = state.weights
        if updated:
            weights = tuple(p.detach().clone() for p in self._params())
            self.loaded = weights
        lp = torch.cat(out).double().cpu().numpy()
        return lp, DynamicState(weights, hidden, tuple(inputs[i:]), tuple(outputs[i:]), int(targets[-1]))

    def _update(self, loss: torch.Tensor) -> None:
        params = self._params()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():  # one fused pass per term over all weights (foreach)
            have = [k for k, g in enumerate(grads) if g is not None]
            torch._foreach_addcmul_([params[k] for k in have], [grads[k] for k in have], [self.step[k] for k in have])
            if self.params["decay"]:
                torch._foreach_addcmul_(params, torch._foreach_sub(list(self.weights0), params), self.pull)

    @torch.no_grad()
    def next_logprobs(self, state: DynamicState) -> np.ndarray:
        self.base.module.eval()
        self._load(state.weights)
        logits, _ = self.base.module(self.as_batch(list(state.pending_in) + [state.last]), state.hidden)
        return log_softmax(logits[0, -1]).double().cpu().numpy()

    def _save_extra(self, folder: Path) -> None:
        if self.stats is not None:
            from safetensors.torch import save_file

            save_file({f"ms.{k}": s.detach().cpu().contiguous() for k, s in enumerate(self.stats)},
                      str(folder / "gradient_stats.safetensors"))


def gradient_stats(base: NeuralLM, lines: list[str], segment: int, batch_size: int = 100,
                   max_tokens: int | None = None) -> list[torch.Tensor]:
    """RMS over training data of each weight's gradient of the mean loss of a (batch_size, segment) window,
    the model in evaluation mode (Krause et al.'s statistics for the rms rule)."""
    ids = stream_ids(base.vocab, lines)
    if max_tokens:
        ids = ids[:max_tokens + 1]
    batch_size = max(1, min(batch_size, (len(ids) - 1) // max(2 * segment, 1)))
    x_all, y_all = batchify(ids, batch_size)
    x_all, y_all = x_all.to(base.device), y_all.to(base.device)
    module = base.module
    module.eval()
    params = list(module.parameters())
    sums = [torch.zeros_like(p) for p in params]
    hidden, count = None, 0
    for i in range(0, x_all.shape[1] - segment + 1, segment):
        with torch.enable_grad(), grad_mode(base.device):
            lp, hidden = base.target_logprobs(x_all[:, i:i + segment], hidden, y_all[:, i:i + segment])
            grads = torch.autograd.grad(-lp.mean(), params, allow_unused=True)
        for s, g in zip(sums, grads):
            if g is not None:
                s.add_(g * g)
        hidden = module.detach_state(hidden)
        count += 1
    return [torch.sqrt(s / max(count, 1)) for s in sums]

