"""The output layer: the full softmax (``nn.Linear``) or a tied adaptive softmax.

Adaptive softmax (Grave et al. 2017, "Efficient softmax approximation for GPUs"): the vocabulary, sorted by
frequency (seqlm's vocabularies are), is cut at ``cutoffs`` into a head (the frequent words) and tail
clusters.  The head softmax runs over the head words plus one entry per tail cluster; a tail word's
probability is its cluster's head probability times its probability within the cluster:

    p(w) = p_head(w)                              for w in the head
    p(w) = p_head(cluster c) * p_c(w)             for w in tail cluster c

It is an exact, normalised distribution (tested: it sums to 1), so perplexities stay exact.  Training and
stream evaluation need only the target's probability, so a tail cluster's scores are computed only for the
positions whose target lies in it: at PTB's frequencies most targets are head words, and the 10k-way output
product shrinks to the head plus a small share of the tail.

Unlike ``torch.nn.AdaptiveLogSoftmaxWithLoss`` (whose tails use narrower projections and cannot share
weights), every word here is scored against its own row of one (V, d) matrix, so that matrix can be the
input embedding (weight tying, which matters more than the tail projections on PTB).  ``<s>`` is never
predicted: its score is masked out of the head before normalising, as the full softmax's scoring does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqlm.errors import SeqlmError
from seqlm.text.vocab import BOS_ID


class AdaptiveOutput(nn.Module):
    adaptive = True

    def __init__(self, dim: int, vocab_size: int, cutoffs: list[int]):
        super().__init__()
        cutoffs = list(cutoffs)
        if not cutoffs or cutoffs != sorted(set(cutoffs)) or cutoffs[0] <= BOS_ID or cutoffs[-1] >= vocab_size:
            raise SeqlmError(f"model.adaptive_cutoffs {cutoffs} must increase strictly, from above {BOS_ID} to below "
                             f"the vocabulary size ({vocab_size}): e.g. [2000] for PTB's 10k words")
        self.cuts = [0, *cutoffs, vocab_size]
        self.head_size = cutoffs[0]
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))  # one row per word (tieable to the embedding)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.cluster_weight = nn.Parameter(torch.empty(len(cutoffs), dim))  # one head entry per tail cluster
        self.cluster_bias = nn.Parameter(torch.zeros(len(cutoffs)))
        nn.init.normal_(self.weight, std=dim ** -0.5)
        nn.init.normal_(self.cluster_weight, std=dim ** -0.5)

    def _blocks(self) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """The weight and bias rows of the head and of each tail cluster, by one split: its backward writes
        the (V, d) gradient once (slicing would zero-fill a whole (V, d) gradient per slice)."""
        sizes = [b - a for a, b in zip(self.cuts, self.cuts[1:])]
        return torch.split(self.weight, sizes), torch.split(self.bias, sizes)

    def _head(self, h: Tensor, blocks) -> Tensor:
        """ln p over the head words and the tail clusters, (N, head + clusters)."""
        (w, *_), (b, *_) = blocks
        scores = _at_least_fp32(nn.functional.linear(h, torch.cat([w, self.cluster_weight]),
                                                     torch.cat([b, self.cluster_bias])))
        scores = scores.index_fill(1, torch.tensor([BOS_ID], device=h.device), float("-inf"))
        return torch.log_softmax(scores, dim=-1)

    @staticmethod
    def _tail(h: Tensor, c: int, blocks) -> Tensor:
        w, b = blocks[0][c + 1], blocks[1][c + 1]
        return torch.log_softmax(_at_least_fp32(nn.functional.linear(h, w, b)), dim=-1)

    def forward(self, h: Tensor) -> Tensor:
        """ln p over the whole vocabulary for every position: (..., d) -> (..., V)."""
        shape = h.shape[:-1]
        h = h.reshape(-1, h.shape[-1])
        blocks = self._blocks()
        head = self._head(h, blocks)
        c0 = self.head_size
        parts = [head[:, :c0]] + [head[:, c0 + c, None] + self._tail(h, c, blocks) for c in range(len(self.cuts) - 2)]
        return torch.cat(parts, dim=-1).reshape(*shape, -1)

    def target_log_probs(self, h: Tensor, targets: Tensor) -> Tensor:
        """ln p(target) for every position, computing each tail cluster only where a target lies in it:
        (..., d), (...) -> (...)."""
        shape = targets.shape
        h = h.reshape(-1, h.shape[-1])
        y = targets.reshape(-1)
        blocks = self._blocks()
        head = self._head(h, blocks)
        c0 = self.head_size
        boundaries = torch.tensor(self.cuts[1:-1], device=y.device)
        cluster = torch.bucketize(y, boundaries, right=True)  # 0: head, c + 1: tail cluster c
        column = torch.where(cluster == 0, y, c0 + cluster - 1)
        out = head.gather(1, column[:, None])[:, 0]
        for c in range(len(self.cuts) - 2):
            rows = (cluster == c + 1).nonzero()[:, 0]
            if rows.numel():
                tail = self._tail(h[rows], c, blocks)
                out = out.index_add(0, rows, tail.gather(1, (y[rows] - self.cuts[c + 1])[:, None])[:, 0])
        return out.reshape(shape)


def _at_least_fp32(x: Tensor) -> Tensor:
    """Scores are normalised in fp32 at least (bf16 autocast products are upcast; float64 stays)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


class FeatureLM(nn.Module):
    """A neural LM module: :meth:`features` (what the output layer reads at each position, and the new state)
    then ``self.decoder``, the output layer.  Every neural kind is one."""

    def forward(self, tokens: Tensor, state=None, targets: Tensor | None = None, features_only: bool = False):
        """Logits (B, T, V) and the new state; with an adaptive output and ``targets`` (B, T), ln p of
        each target (B, T) instead (only the clusters the targets fall in are computed); ``features_only``:
        what the output layer would read (B, T, d) (training with NCE)."""
        x, new_state = self.features(tokens, state)
        if features_only:
            return x, new_state
        if targets is not None:
            return self.decoder.target_log_probs(x, targets), new_state
        return self.decoder(x), new_state  # (B, T, V)

    def features(self, tokens: Tensor, state=None):
        raise NotImplementedError


def make_output(dim: int, vocab_size: int, cutoffs: list[int]) -> nn.Module:
    """The full softmax's linear layer, or the adaptive softmax when ``cutoffs`` are given."""
    return AdaptiveOutput(dim, vocab_size, cutoffs) if cutoffs else nn.Linear(dim, vocab_size)


def is_adaptive(module: nn.Module) -> bool:
    return bool(getattr(getattr(module, "decoder", None), "adaptive", False))


class NCELoss:
    """Noise-contrastive estimation of the output layer (Mnih & Teh 2012, after Gutmann & Hyvärinen 2010):
    training tells each target word apart from ``samples`` words drawn from a noise distribution q (the
    training unigram), as a logistic regression on

        Δ(w) = s(w) - ln(k q(w)),     s(w) = h · e_w + b_w   (the unnormalised score, normaliser taken as 1)
        loss = -ln σ(Δ(target)) - Σ_{j=1..k} ln(1 - σ(Δ(noise_j)))

    so a step scores the target and k shared noise words instead of the whole vocabulary.  The model stays
    a softmax model: evaluation normalises over the full vocabulary as always (exact perplexities).
    One set of k noise words per step is shared by every position (one (N, k) product)."""

    def __init__(self, counts: torch.Tensor, samples: int):
        q = counts.double() + 0.5
        q[BOS_ID] = 0.0  # never a target, never noise
        self.noise = (q / q.sum()).float()
        self.log_kq = torch.log(samples * self.noise)
        self.samples = samples

    def to(self, device) -> "NCELoss":
        self.noise, self.log_kq = self.noise.to(device), self.log_kq.to(device)
        return self

    def __call__(self, h: Tensor, targets: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """Mean NCE loss of (N, d) output-layer inputs and (N,) targets."""
        noise = torch.multinomial(self.noise, self.samples, replacement=True)  # (k,)
        h = h.float()
        s_t = (h * weight[targets].float()).sum(-1) + bias[targets].float()
        s_n = h @ weight[noise].float().t() + bias[noise].float()  # (N, k)
        loss = nn.functional.softplus(self.log_kq[targets] - s_t) + \
            nn.functional.softplus(s_n - self.log_kq[noise]).sum(-1)
        return loss.mean()
