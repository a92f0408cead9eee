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
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, write_config
from seqlm.io.runtime import Progress
from seqlm.models.interface import LanguageModel, State, check_mode
from seqlm.models.neural.lm import NeuralLM, log_softmax
from seqlm.models.neural.output import is_adaptive
from seqlm.text.encode import join_with_eos
from seqlm.text.vocab import EOS_ID

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

    def _tensor(self, ids) -> torch.Tensor:
        return torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)[None]


def _stream(vocab, lines: list[str]) -> np.ndarray:
    """The targets of ``lines`` read as one stream (each line's tokens and its ``</s>``)."""
    from seqlm.text.encode import encode_lines

    return join_with_eos(encode_lines(vocab, lines).lines)


def _grad_mode(device):
    """Autograd through the model in evaluation mode: cuDNN's RNN has no backward outside training mode, so
    on CUDA the library's native kernels run instead (same numbers)."""
    import contextlib

    return torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" else contextlib.nullcontext()


# -- the continuous cache ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheState:
    hidden: object  # the model's state before reading ``last``
    last: int  # the next input token
    keys: torch.Tensor  # (n, d) output-layer inputs of the last n <= size positions
    values: torch.Tensor  # (n,) the word that followed each


class CacheLM(Adapted):
    method = "cache"
    chunk = 1024  # positions per forward pass (results do not depend on it)

    def start(self) -> CacheState:
        d = self.base.module.decoder.weight.shape[1]
        return CacheState(None, EOS_ID, torch.zeros(0, d, device=self.device),
                          torch.zeros(0, dtype=torch.long, device=self.device))

    @torch.no_grad()
    def _feed(self, state: CacheState, targets: np.ndarray):
        if len(targets) == 0:
            return np.zeros(0), state
        inputs = np.concatenate([[state.last], targets[:-1]])
        hidden, keys, values = state.hidden, state.keys, state.values
        out = []
        for i in range(0, len(targets), self.chunk):
            x, y = self._tensor(inputs[i:i + self.chunk]), self._tensor(targets[i:i + self.chunk])
            h, hidden = self.base.module.features(x, hidden)
            h = h[0].float()
            lp_model = self._model_logprobs(h, y[0])
            lp, keys, values = mix_cache(lp_model, h, y[0], keys, values, self.params)
            out.append(lp)
        lp = torch.cat(out).double().cpu().numpy()
        return lp, CacheState(hidden, int(targets[-1]), keys, values)

    def _model_logprobs(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dec = self.base.module.decoder
        if is_adaptive(self.base.module):
            return dec.target_log_probs(h, y).float()
        return log_softmax(dec(h)).gather(1, y[:, None])[:, 0]

    @torch.no_grad()
    def next_logprobs(self, state: CacheState) -> np.ndarray:
        self.base.module.eval()
        h, _ = self.base.module.features(self._tensor([state.last]), state.hidden)
        h = h[0, -1].float()
        lp = log_softmax(self.base.module.decoder(h[None]))[0].double()
        if len(state.keys) == 0:
            return lp.cpu().numpy()
        lam = self.params["lambda"]
        weights = torch.softmax(self.params["theta"] * (state.keys @ h), dim=0).double()
        p_cache = torch.zeros_like(lp).index_add_(0, state.values, weights)
        p = (1 - lam) * lp.exp() + lam * p_cache
        return torch.log(p).cpu().numpy()


def mix_cache(lp_model: torch.Tensor, h: torch.Tensor, y: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
              params: dict):
    """ln p of each target (T,) under the cache mixture, given the model's ln p (T,), the positions' vectors
    h (T, d) and targets y (T,), and the cache before them (keys (n, d), values (n,)); also the cache after
    them.  Query t sees the cache positions t - size .. t - 1 only: never itself nor a later one."""
    size, theta, lam = int(params["size"]), params["theta"], params["lambda"]
    n, T = len(keys), len(h)
    all_keys = torch.cat([keys, h])  # position j of all_keys is stream position j - n (relative to h[0])
    all_values = torch.cat([values, y])
    scores = theta * (h @ all_keys.T)  # (T, n + T)
    j = torch.arange(n + T, device=h.device)[None, :]
    t = torch.arange(T, device=h.device)[:, None] + n  # query t's own index in all_keys
    visible = (j < t) & (j >= t - size)
    scores = scores.masked_fill(~visible, -torch.inf)
    has_cache = visible.any(dim=1)
    weights = torch.softmax(scores.masked_fill(~has_cache[:, None], 0.0), dim=1) * visible
    p_cache = (weights * (all_values[None, :] == y[:, None])).sum(dim=1).double()
    lp_model = lp_model.double()
    mixed = torch.logaddexp(math.log1p(-lam) + lp_model, math.log(lam) + torch.log(p_cache)) if lam > 0 else lp_model
    lp = torch.where(has_cache, mixed, lp_model)
    return lp, all_keys[-size:], all_values[-size:]


# -- dynamic evaluation --------------------------------------------------------------------------------
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
            x, y = self._tensor(inputs[i:i + seg]), self._tensor(outputs[i:i + seg])
            with torch.enable_grad(), _grad_mode(self.device):
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
                lp, _ = self.base.target_logprobs(self._tensor(inputs[i:]), hidden, self._tensor(outputs[i:]))
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
        logits, _ = self.base.module(self._tensor(list(state.pending_in) + [state.last]), state.hidden)
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
    from seqlm.training.neural import batchify

    ids = np.concatenate([[EOS_ID], _stream(base.vocab, lines)])
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
        with torch.enable_grad(), _grad_mode(base.device):
            lp, hidden = base.target_logprobs(x_all[:, i:i + segment], hidden, y_all[:, i:i + segment])
            grads = torch.autograd.grad(-lp.mean(), params, allow_unused=True)
        for s, g in zip(sums, grads):
            if g is not None:
                s.add_(g * g)
        hidden = module.detach_state(hidden)
        count += 1
    return [torch.sqrt(s / max(count, 1)) for s in sums]


# -- building, tuning, loading -------------------------------------------------------------------------
def build(method: str, base: NeuralLM, params: dict, stats=None, info=None) -> Adapted:
    if method == "cache":
        return CacheLM(base, params, info)
    return DynamicLM(base, params, info, stats)


def tune(method: str, base: NeuralLM, valid: list[str], fixed: dict, grids: dict, train_lines: list[str] | None = None,
         stats_tokens: int | None = None, log: Callable[[str], None] = print) -> Adapted:
    """The adapted model whose parameters give the lowest perplexity on ``valid`` (a stream), searching
    ``grids`` (name -> values) with the others ``fixed``: the cache by a full grid (its model pass is shared),
    dynamic evaluation one parameter at a time in the order given (each pass is a full adaptation)."""
    from seqlm.tasks.evaluate import evaluate

    params = check_params(method, fixed)
    grids = {name: [check_params(method, {**fixed, name: v})[name] for v in values] for name, values in grids.items()}
    stats = None
    t0 = time.perf_counter()
    if method == "dynamic" and params["rule"] == "rms":
        if not train_lines:
            raise SeqlmError("the rms rule needs training text for its gradient statistics")
        stats = gradient_stats(base, train_lines, params["segment"], max_tokens=stats_tokens)
        log(f"gradient statistics from training data: {time.perf_counter() - t0:.1f}s")
    trials = []
    if method == "cache":
        trials = _tune_cache(base, valid, params, grids, log)
        best = min(trials, key=lambda r: r["valid_perplexity"])
        params = check_params(method, {k: best[k] for k in PARAMS[method] if k in best} | {
            k: v for k, v in params.items() if k not in best})
    else:
        for name, values in grids.items():
            scored = []

            def score(value):
                trial = check_params(method, {**params, name: value})
                t = time.perf_counter()
                ppl = evaluate(build(method, base, trial, stats), valid, mode="stream")["perplexity"]
                row = {**trial, "valid_perplexity": ppl, "seconds": round(time.perf_counter() - t, 1)}
                trials.append(row)
                scored.append((ppl, value))
                log(f"  {name}={value}: valid {ppl:.3f} ({row['seconds']}s)")

            for value in values:
                score(value)
            ordered = sorted(values)
            if name == "lr" and len(ordered) > 1 and ordered[0] > 0:
                # the best step size at the edge of the grid: go on past it geometrically while it improves
                for edge, ratio in ((ordered[-1], ordered[-1] / ordered[-2]), (ordered[0], ordered[0] / ordered[1])):
                    for _ in range(EXTEND):
                        if min(scored)[1] != edge:
                            break
                        edge = edge * ratio
                        log(f"  the best {name} is at the edge of the grid: trying {edge:.3g}")
                        score(edge)
            params[name] = min(scored)[1]
    info = {"tuned_on": "validation", "trials": trials, "tuning_seconds": round(time.perf_counter() - t0, 1),
            "valid_tokens": int(len(_stream(base.vocab, valid)))}
    return build(method, base, params, stats, info)


@torch.no_grad()
def _tune_cache(base: NeuralLM, valid: list[str], fixed: dict, grids: dict, log) -> list[dict]:
    """Every grid point of (size, theta, lambda) on one pass of the model over ``valid``."""
    lm = CacheLM(base, fixed)
    base.module.eval()
    targets = _stream(base.vocab, valid)
    inputs = np.concatenate([[EOS_ID], targets[:-1]])
    hs, lps, hidden = [], [], None
    for i in range(0, len(targets), lm.chunk):
        x, y = lm._tensor(inputs[i:i + lm.chunk]), lm._tensor(targets[i:i + lm.chunk])
        h, hidden = base.module.features(x, hidden)
        hs.append(h[0].float())
        lps.append(lm._model_logprobs(h[0].float(), y[0]))
    h_all, lp_all = torch.cat(hs), torch.cat(lps)
    y_all = torch.as_tensor(targets, device=base.device)
    sizes = grids.get("size", [fixed["size"]])
    thetas = grids.get("theta", [fixed["theta"]])
    lambdas = grids.get("lambda", [fixed["lambda"]])
    trials = []
    for size in sizes:
        for theta in thetas:
            p_cache, has = _cache_probs(h_all, y_all, int(size), float(theta), lm.chunk)
            for lam in lambdas:
                lp = lp_all.double()
                if lam > 0:
                    mixed = torch.logaddexp(math.log1p(-lam) + lp, math.log(lam) + torch.log(p_cache))
                    lp = torch.where(has, mixed, lp)
                ppl = math.exp(-lp.mean().item())
                trials.append({"size": int(size), "theta": float(theta), "lambda": float(lam), "valid_perplexity": ppl})
    best = min(trials, key=lambda r: r["valid_perplexity"])
    log(f"  {len(trials)} cache settings on one model pass; best size={best['size']} theta={best['theta']} "
        f"lambda={best['lambda']}: valid {best['valid_perplexity']:.3f}")
    return trials


def _cache_probs(h: torch.Tensor, y: torch.Tensor, size: int, theta: float, chunk: int):
    """p_cache(target) at every position of a whole stream, and whether its cache is non-empty."""
    params = {"size": size, "theta": theta, "lambda": 0.5}
    keys, values = h[:0], y[:0]
    ps, has = [], []
    for i in range(0, len(h), chunk):
        hc, yc = h[i:i + chunk], y[i:i + chunk]
        # mix_cache with lambda 1/2 and a model probability of 0 gives ln(p_cache / 2)
        lp, keys, values = mix_cache(torch.full((len(hc),), -torch.inf, device=h.device), hc, yc, keys, values, params)
        ps.append(torch.exp(lp) * 2)
        has.append(torch.arange(i, i + len(hc), device=h.device) > 0)
    return torch.cat(ps), torch.cat(has)


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
