"""Vanishing gradients, measured: how much the log-probability of the next token depends on the hidden
state k steps back, and on the input k steps back.

For positions t sampled from a text (the validation split), the norm of d ln p(x_{t+1} | x_<=t) / d h_{t-k}
for k = 0..K, for every layer's hidden state h (and the LSTM's cell state c), and of d ln p / d e_{t-k}, the
input embedding of the token k steps back (the curve named ``input``), summarised over the positions (median
and quartiles).  The input curve is the one every kind has: a Transformer carries no recurrent state (its
state is a window of layer inputs), so its figure is the input curve alone, and that curve compares it with
the recurrent kinds (the issue's definition of gradients through time for it).

Recurrent kinds: the positions run as one batch: each row starts from the state the model carries at t-K
(computed without gradients), then steps one token at a time with every state kept for autograd; rows are
independent, so the gradient of the summed log-probabilities with respect to a row's state is that row's own
gradient.  Any recurrent kind and backend (the fused kernels are called one step at a time).  Other kinds (the
Transformer, the fixed window): the window of K+1 tokens is read in one forward pass from the state carried at
its start; beyond what the model can see (a Transformer: layers x context tokens back; a window model: its n-1)
the input gradient is exactly 0.

The "gradient horizon" of a curve is the first k where its median falls below 1e-3 of its value at k = 0
(None when it never does within K).  An LSTM's cell state starts at k = 1: the c_t a fused kernel returns
is a copy that nothing at step t reads (h_t came from the kernel's own c_t), so its k = 0 gradient is 0
here, while c_{t-1} is read by step t and so on back: the seed's "the gradient signal gets smaller and smaller as it
backpropagates", as one number.
"""

from __future__ import annotations

import numpy as np
import torch

from seqlm.errors import SeqlmError
from seqlm.io.files import PNG_METADATA
from seqlm.models.interface import check_model
from seqlm.text.encode import encode_lines, join_with_eos
from seqlm.text.vocab import EOS_ID

HORIZON_RATIO = 1e-3
INPUT = "input"  # the curve of d ln p / d (the input embedding k steps back)
WARMUP = 300  # tokens read before a row's first step, to give it the state the model carries there


def _states(state) -> list[torch.Tensor]:
    """The state tensors of a recurrent model's state, in order: h (and c) of every layer."""
    out = []
    for st in state:
        out.extend(st if isinstance(st, tuple) else (st,))
    return out


def recurrent(module) -> bool:
    return hasattr(module, "layers")


def state_names(module) -> list[str]:
    """The curves measured for ``module``: the input, then each layer's state (recurrent kinds)."""
    names = [INPUT]
    if not recurrent(module):
        return names
    for k, st in enumerate(module.init_state(1)):
        names += [f"layer{k + 1}.h", f"layer{k + 1}.c"] if isinstance(st, tuple) else [f"layer{k + 1}.h"]
    return names


def _step(module, tokens: torch.Tensor, state):
    """One step of a recurrent LM (eval mode) in which each layer's new hidden state is itself what goes up
    to the next layer and to the output: so its gradient is the total derivative (through the output at
    this step and through every later step), which the layer's separate output tensor would hide."""
    x = module.embed(tokens)  # (B, 1, E)
    x.retain_grad()
    inputs = x
    new = []
    for layer, st in zip(module.layers, state):
        _, st = layer(x, st)
        h = st[0] if isinstance(st, tuple) else st  # (1, B, H)
        x = h.transpose(0, 1)  # (B, 1, H): the layer's output at this step, the same values
        new.append(st)
    for fc in module.fc:
        x = torch.relu(fc(x))
    return module.decoder(x)[:, 0], new, inputs  # (B, V), the states, the input (B, 1, E)


class Inputs:
    """Keeps every output of the module's embedding layer (``module.embedding``, which the Transformer and the
    window model call) while open, each retaining its gradient: the inputs e_t the measurement differentiates
    with respect to."""

    def __init__(self, module):
        self.layer = module.embedding
        self.kept: list[torch.Tensor] = []

    def __enter__(self):
        def keep(_layer, _args, out):
            out.retain_grad()
            self.kept.append(out)

        self.handle = self.layer.register_forward_hook(keep)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def gradient_norms(module, stream: np.ndarray, positions: np.ndarray, K: int) -> np.ndarray:
    """(positions, K+1, curves) norms of d ln p(x_{t+1}) / d (input and state)_{t-k} (:func:`state_names`);
    ``stream[i]`` is read at step i."""
    module.eval()
    B = len(positions)
    device = next(module.parameters()).device
    starts = positions - K  # the first token whose step keeps its state
    with torch.no_grad():
        state = module.init_state(B, device)
        prefix = int(min(starts.min(), WARMUP))
        # each row's state at its start, from the WARMUP tokens before it (a carried state forgets the rest)
        tokens = torch.from_numpy(np.stack([stream[s - prefix:s] for s in starts])).to(device) if prefix else None
        if tokens is not None:
            for i in range(0, prefix, 512):
                _, state = module(tokens[:, i:i + 512], state)
    window = torch.from_numpy(np.stack([stream[s:s + K + 1] for s in starts])).to(device)  # (B, K+1)
    target = torch.from_numpy(stream[positions + 1]).to(device)
    if not recurrent(module):
        with Inputs(module) as inputs:
            logits, _ = module(window, module.detach_state(state))
        torch.log_softmax(logits[:, -1].float(), dim=-1).gather(1, target[:, None]).sum().backward()
        grad = inputs.kept[0].grad  # (B, K+1, E)
        return grad.norm(dim=-1).flip(1).double().cpu().numpy()[:, :, None]  # column k: K - j
    kept, inputs = [], []
    state = module.detach_state(state)
    for j in range(K + 1):
        logits, state, x = _step(module, window[:, j:j + 1], state)
        tensors = _states(state)
        for s in tensors:
            s.retain_grad()
        kept.append(tensors)
        inputs.append(x)
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp.gather(1, target[:, None]).sum().backward()
    norms = np.zeros((B, K + 1, 1 + len(kept[0])))
    for j, (x, tensors) in enumerate(zip(inputs, kept)):
        k = K - j  # this state is k steps before the last one
        norms[:, k, 0] = x.grad[:, 0].norm(dim=-1).double().cpu().numpy()  # (B, 1, E) -> per row
        for n, s in enumerate(tensors, 1):
            g = s.grad if s.grad is not None else torch.zeros_like(s)
            norms[:, k, n] = g[0].norm(dim=-1).double().cpu().numpy()  # (1, B, H) -> per row
    return norms


def summarize(norms: np.ndarray, names: list[str]) -> dict:
    out = {}
    for n, name in enumerate(names):
        q1, med, q3 = np.quantile(norms[:, :, n], [0.25, 0.5, 0.75], axis=0)
        start = int(np.argmax(med > 0)) if (med > 0).any() else 0  # c: from k = 1 (see the module docstring)
        below = np.flatnonzero(med[start:] < HORIZON_RATIO * med[start]) + start if med[start] > 0 else []
        out[name] = {"median": med.tolist(), "q1": q1.tolist(), "q3": q3.tolist(), "from_k": start,
                     "horizon": int(below[0]) if len(below) else None}
    return out


def diagnose_gradients(model, lines, K: int = 100, positions: int = 200, seed: int = 0,
                       at_init: bool = True) -> dict:
    """The measurement for ``model`` (a recurrent NeuralLM) on ``lines``, and for the same model at
    initialisation (same config and seed, untrained) when ``at_init``."""
    check_model(model, "diagnose_gradients")
    module = getattr(model, "module", None)
    kind = getattr(module, "kind", None) or "n-gram"
    if module is None or not (recurrent(module) or kind == "transformer"):
        raise SeqlmError(f"the gradient diagnostic needs a recurrent model (lstm, gru, rnn_tanh, rnn_relu) or a "
                         f"transformer: a {kind} model sees a fixed window, its gradient is 0 beyond it by construction")
    if K < 1 or positions < 1:
        raise SeqlmError(f"K and positions must be >= 1 (got {K}, {positions})")
    stream = np.concatenate([[EOS_ID], join_with_eos(encode_lines(model.vocab, lines).lines)]).astype(np.int64)
    if len(stream) < K + 2 + positions:
        raise SeqlmError(f"the text has {len(stream)} tokens, too few for K={K} and {positions} positions: "
                         f"give more text or lower K")
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.choice(np.arange(K, len(stream) - 1), size=positions, replace=False))
    names = state_names(module)
    result = {"K": K, "positions": positions, "states": names, "tokens": int(len(stream)),
              "trained": summarize(gradient_norms(module, stream, pos, K), names)}
    if at_init:
        from seqlm.config import ModelConfig
        from seqlm.models.neural.lm import build_module

        torch.manual_seed(model.config.get("train", {}).get("seed", 1))
        fresh = build_module(ModelConfig(**model.config["model"]), len(model.vocab)).to(next(module.parameters()).device)
        result["init"] = summarize(gradient_norms(fresh, stream, pos, K), names)
    return result


def plot(result: dict, path) -> None:
    """Median gradient norm (quartiles shaded) against k, log scale: trained solid, at initialisation dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    k = np.arange(result["K"] + 1)
    for which, style in (("trained", "-"), ("init", "--")):
        for name, curve in result.get(which, {}).items():
            med = np.maximum(np.array(curve["median"]), 1e-30)
            line, = ax.plot(k, med, style, label=f"{name} ({which}, horizon {curve['horizon']})")
            if which == "trained":
                ax.fill_between(k, np.maximum(curve["q1"], 1e-30), np.maximum(curve["q3"], 1e-30), alpha=0.15,
                                color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("k (steps back)")
    ax.set_ylabel("|| d ln p(x_{t+1}) / d (state or input)_{t-k} ||")
    ax.set_title(result.get("title", "gradient through time"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
