"""The training step: one window of teacher forcing, eager or captured once as a CUDA graph and replayed.

Input: a (B, T) window of inputs and targets; the carried state lives in the stepper.  One step =
forward from the detached carried state, mean token cross-entropy, backward, gradient-norm clipping,
optimizer update, and the new state carried into the next window (truncated BPTT).

Why a graph: at batch 20 a 2x650 LSTM step is ~150 small kernels whose launches cost more than their work
(the GPU waits on the CPU).  On CUDA the whole step is captured once (``torch.cuda.graph``) and replayed:
one launch per step.  What must hold for that, and holds here:

- every tensor the step reads or writes lives at a fixed address: the window is copied into static input
  buffers, the carried state is copied into static state buffers inside the graph, gradients are
  allocated once by the captured backward, the optimizer's state and learning rate are device tensors
  (SGD fused with a tensor lr, Adam/AdamW ``capturable``) and the schedule changes the lr in place;
- nothing in the step synchronises with the host: the loss is summed on the device and read every
  few hundred steps (and before each checkpoint), where a non-finite loss stops training;
- dropout draws fresh masks at each replay (the graph advances the CUDA generator's offset).

A window of another shape (the last, shorter one of an epoch) runs eagerly through the same function.
If capture fails (an op that cannot be captured), training goes on eagerly with one warning.
"""

from __future__ import annotations

import logging
import math

import torch

from seqlm.models.neural.output import is_adaptive

log = logging.getLogger(__name__)


class TokenCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (N, V) logits, with the gradient softmax - onehot computed in place.

    Same value and gradient as ``F.cross_entropy``, without its zero-filled (N, V) gradient and separate
    log-softmax backward: on 2 CPU cores those two passes over the logits took ~40% of a bf16 step at
    2x200 (profiled); here the backward is two in-place passes over the saved log-probabilities.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V) fp32
        ctx.save_for_backward(logp, targets)
        ctx.in_dtype = logits.dtype
        return -logp.gather(1, targets[:, None]).mean()

    @staticmethod
    def backward(ctx, grad_out):
        logp, targets = ctx.saved_tensors
        grad = logp.exp_()  # softmax, in place: logp is not needed again
        grad[torch.arange(len(targets), device=grad.device), targets] -= 1.0
        grad.mul_(grad_out / len(targets))
        return grad.to(ctx.in_dtype), None


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return TokenCrossEntropy.apply(logits, targets)


def make_optimizer(train_cfg, params, graphed: bool = False) -> torch.optim.Optimizer:
    """The optimizer of ``train_cfg``; ``graphed``: its lr is a device tensor and its update capturable."""
    t = train_cfg
    params = list(params)
    lr = torch.tensor(float(t.lr), device=params[0].device) if graphed else t.lr
    if t.optimizer == "sgd":
        extra = {"fused": True} if graphed else {}
        return torch.optim.SGD(params, lr=lr, momentum=t.momentum, weight_decay=t.weight_decay, **extra)
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    if graphed:
        return cls(params, lr=lr, weight_decay=t.weight_decay, capturable=True, foreach=True)
    try:  # one fused pass over the parameters and both moments: on 2 CPU cores the per-op (foreach) update
        # of a 5.6M-parameter model took ~2.3x as long (measured)
        return cls(params, lr=lr, weight_decay=t.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a build or device without the fused kernel
        return cls(params, lr=lr, weight_decay=t.weight_decay)


def get_lr(optimizer) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr) if not isinstance(lr, torch.Tensor) else lr.item()


def set_lr(optimizer, value: float) -> None:
    """Set every group's lr, in place when it is a (captured) device tensor."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


def copy_state(dst, src) -> None:
    """Copy a model state (a tensor, or a list of tensors / tuples of tensors) into ``dst`` in place."""
    if isinstance(dst, torch.Tensor):
        dst.copy_(src)
        return
    for d, s in zip(dst, src):
        copy_state(d, s)


def clone_state(state):
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    return [tuple(s.detach().clone() for s in st) if isinstance(st, tuple) else st.detach().clone() for st in state]


class Stepper:
    """Runs training steps on (B, T) windows and carries the state; see the module docstring.

    ``loss_sum`` (device) and ``tokens`` (host) accumulate over the steps since the last :meth:`drain`;
    ``grad_norm`` holds the last step's gradient norm before clipping (device).
    """

    def __init__(self, module, optimizer, hidden, autocast_dtype, clip: float, graphed: bool = False,
                 full_shape: tuple[int, int] | None = None, forward=None, ar: float = 0.0, tar: float = 0.0,
                 nce=None):
        self.module, self.optimizer, self.clip = module, optimizer, clip
        self.ar, self.tar = ar, tar  # activation regularisation (Merity et al. 2018), added to the loss
        if ar or tar:
            module.record_activations = True
        self.forward = forward or module  # the module, or its DistributedDataParallel wrapper
        self.adaptive = is_adaptive(module)
        self.nce = nce  # an NCELoss: train the output layer by noise-contrastive estimation
        self.dtype = autocast_dtype  # None: fp32
        self.device = next(module.parameters()).device
        self.graphed = graphed
        self.full_shape = tuple(full_shape) if full_shape else None
        self.hidden = clone_state(hidden)
        self.loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)  # sums over many steps
        self.grad_norm = torch.zeros((), device=self.device)
        self.clipped = torch.zeros((), device=self.device)  # steps whose gradient was clipped, since drain
        self.tokens = 0
        self.graph = None
        self.static = None  # (x, y) buffers of the captured shape
        self.warmup = 3 if graphed else 0

    # the step itself: the same function eagerly and inside the graph
    def _body(self, x, y, check: bool = False) -> float | None:
        hidden = self.module.detach_state(self.hidden)
        # the autocast cache casts each weight to bf16 once per step instead of at every use (a GRU on CPU runs
        # step by step in time: at every time step); a captured graph must not keep cast copies across replays
        with torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None,
                            cache_enabled=not self.graphed):
            if self.nce is not None:
                h, new_hidden = self.forward(x, hidden, features_only=True)  # (B, T, d)
                dec = self.module.decoder
                loss = self.nce(h.flatten(0, 1), y.flatten(), dec.weight, dec.bias)
            elif self.adaptive:  # the adaptive softmax scores only the targets' clusters
                logp, new_hidden = self.forward(x, hidden, targets=y)  # (B, T)
            else:
                logits, new_hidden = self.forward(x, hidden)  # (B, T, V)
        if self.nce is None:
            loss = -logp.float().mean() if self.adaptive else token_cross_entropy(logits.flatten(0, 1), y.flatten())
        value = None
        if check:  # eager only: a non-finite loss updates nothing and carries nothing
            value = loss.item()
            if not math.isfinite(value):
                return value
        (loss + self._penalty() if self.ar or self.tar else loss).backward()
        params = [p for p in self.module.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip if self.clip > 0 else float("inf"))
        if check:  # a finite loss can still overflow its gradient (no clipping): then no update either
            size = norm.item()
            if not math.isfinite(size):
                return size
        self.optimizer.step()
        with torch.no_grad():
            self.grad_norm.copy_(norm)
            if self.clip > 0:
                self.clipped.add_((norm > self.clip).float())
            self.loss_sum.add_(loss.detach() * y.numel())
            copy_state(self.hidden, self.module.detach_state(new_hidden))
        return value

    def _penalty(self) -> torch.Tensor:
        """AR: ar * mean(h^2) of the last layer's output after dropout; TAR: tar * mean((h_t - h_{t-1})^2) of
        it before dropout (AWD-LSTM's regularisers; not part of the logged loss, which stays the
        cross-entropy)."""
        raw, dropped = self.module.activations
        penalty = self.ar * dropped.float().pow(2).mean()
        if self.tar and raw.shape[1] > 1:
            penalty = penalty + self.tar * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        return penalty

    def _zero_grad(self):
        # after capture the gradients live in the graph's memory: zero them in place, never drop them
        self.optimizer.zero_grad(set_to_none=self.graph is None)

    def step(self, x: torch.Tensor, y: torch.Tensor, check: bool = False) -> float | None:
        """One update.  ``check`` (eager only, a host sync): return the window's mean loss, and skip the
        update when it or the gradient norm is not finite (then that non-finite value is returned).  Otherwise returns None and the loss is checked at :meth:`drain`."""
        if self.graphed and self.graph is None and self.warmup <= 0 and tuple(x.shape) == self.full_shape:
            self._capture(x, y)
        if self.graph is not None and self.static[0].shape == x.shape:
            self.static[0].copy_(x)
            self.static[1].copy_(y)
            self.graph.replay()
            value = None
        elif self.graph is None and self.graphed:
            # warm-up steps on a side stream, as graph capture requires (real steps of training)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._zero_grad()
                self._body(x, y)
            torch.cuda.current_stream().wait_stream(side)
            self.warmup -= 1
            value = None
        else:
            self._zero_grad()
            value = self._body(x, y, check)
            if value is not None and not math.isfinite(value):
                return value
        self.tokens += y.numel()
        return value

    def _capture(self, x, y) -> None:
        self.static = (x.clone(), y.clone())
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        saved = (clone_state(self.hidden), self.loss_sum.clone())
        try:
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                self._body(*self.static)
        except Exception as e:  # an op that cannot be captured: train eagerly
            log.warning("CUDA graph capture failed (%s): training without graphs", str(e).splitlines()[0])
            self.graphed, self.graph, self.static = False, None, None
            torch.cuda.synchronize()
            self.optimizer.zero_grad(set_to_none=True)
            return
        # capture records the step without running it: the state and sums are as they were
        copy_state(self.hidden, saved[0])
        self.loss_sum.copy_(saved[1])
        self.graph = graph

    def drain(self) -> dict:
        """Summed loss, tokens, clipped steps since the last drain and the last gradient norm; a host sync."""
        out = {"loss_sum": self.loss_sum.item(), "tokens": self.tokens, "clipped": int(self.clipped.item()),
               "grad_norm": self.grad_norm.item()}
        self.loss_sum.zero_()
        self.clipped.zero_()
        self.tokens = 0
        return out

    def reset_state(self, hidden) -> None:
        copy_state(self.hidden, hidden)


class Averager:
    """The running average of the weights over the optimizer steps since :meth:`start` (Polyak averaging;
    after SGD steps this is averaged SGD, the "A" of AWD-LSTM's NT-ASGD).  ``avg`` after n updates is
    (w_1 + ... + w_n) / n, the weights after each of those steps (tested)."""

    def __init__(self, module):
        self.params = [p for p in module.parameters()]  # each shared (tied) tensor once
        self.avg: list[torch.Tensor] | None = None
        self.count = 0

    @property
    def active(self) -> bool:
        return self.avg is not None

    def start(self) -> None:
        self.avg, self.count = [p.detach().clone() for p in self.params], 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in (after an optimizer step)."""
        self.count += 1
        torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], 1.0 / self.count)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights and the average (twice: back as they were)."""
        for p, a in zip(self.params, self.avg):
            tmp = p.detach().clone()
            p.copy_(a)
            a.copy_(tmp)

    def tensors(self) -> dict:
        return {f"avg.{k}": a for k, a in enumerate(self.avg)} if self.avg is not None else {}

    def load(self, tensors: dict, count: int | None) -> None:
        if count is None:
            return
        self.avg = [tensors[f"avg.{k}"].to(p.device, p.dtype) for k, p in enumerate(self.params)]
        self.count = count


def use_graphs(t, device: torch.device) -> bool:
    """CUDA graphs: on CUDA unless ``train.graphs=off``; never where a NaN must be skipped step by step."""
    if device.type != "cuda" or t.graphs == "off" or t.loss == "nce":  # NCE: sampling is not captured
        return False
    if t.on_nan == "skip":
        if t.graphs == "on":
            log.warning("train.graphs=on with train.on_nan=skip: a skipped step needs a host sync, so no graphs")
        return False
    return True
