"""The continuous cache pointer (Grave et al. 2017, "Improving Neural Language Models with a Continuous
Cache"): the last ``size`` positions' output-layer inputs h_i are kept with the word that followed each;
the next word's probability is mixed with a pointer distribution over them:

    p(w) = (1 - λ) p_model(w) + λ Σ_{i in cache, x_{i+1} = w} softmax_i(θ h_t · h_i)

A position enters the cache only after its word is scored, so the cache never holds the word it predicts
(tested).  With an empty cache (the first token), p = p_model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from seqlm.models.adapted.base import Adapted
from seqlm.models.neural.lm import log_softmax
from seqlm.models.neural.output import is_adaptive
from seqlm.text.vocab import EOS_ID


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
            x, y = self.as_batch(inputs[i:i + self.chunk]), self.as_batch(targets[i:i + self.chunk])
            h, hidden = self.base.module.features(x, hidden)
            h = h[0].float()
            lp_model = self.model_logprobs(h, y[0])
            lp, keys, values = mix_cache(lp_model, h, y[0], keys, values, self.params)
            out.append(lp)
        lp = torch.cat(out).double().cpu().numpy()
        return lp, CacheState(hidden, int(targets[-1]), keys, values)

    def model_logprobs(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dec = self.base.module.decoder
        if is_adaptive(self.base.module):
            return dec.target_log_probs(h, y).float()
        return log_softmax(dec(h)).gather(1, y[:, None])[:, 0]

    @torch.no_grad()
    def next_logprobs(self, state: CacheState) -> np.ndarray:
        self.base.module.eval()
        h, _ = self.base.module.features(self.as_batch([state.last]), state.hidden)
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


def cache_probs(h: torch.Tensor, y: torch.Tensor, size: int, theta: float, chunk: int):
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

