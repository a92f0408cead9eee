"""Estimation: counts -> probabilities and backoff weights of every stored n-gram, computed once.

Output (:class:`Tables`): for each order k, the sorted keys of the stored n-grams (see counts.py),
``logprob`` = ln p(w | h) of each, and ``logbow`` = ln of the weight applied when a query backs off from
that n-gram used as a context (0 where it is not a context).  The query rule (model.py) is the ARPA one:
use the longest stored n-gram, times the backoff weights of the longer contexts that are stored.

Smoothers (Chen & Goodman 1998, "An empirical study of smoothing techniques", TR-10-98):

* ``mle``: p = c(hw) / c(h.); a seen context gives unseen words 0; an unseen context backs off.
* ``add-k`` (``laplace`` = add-1, Lidstone otherwise): p = (c(hw) + k) / (c(h.) + k|V|) for a seen
  context, the unseen words sharing the added mass uniformly (``unseen = "uniform"``); this cannot be
  written as ARPA above order 1.
* ``wb``: interpolated Witten-Bell: gamma(h) = N1+(h.) / (c(h.) + N1+(h.)) (see :func:`_witten_bell`).
* ``ikn``: interpolated Kneser-Ney, one discount per order D = n1 / (n1 + 2 n2) (C&G eq. 26 with one D).
* ``mkn`` (alias ``kn``): interpolated modified Kneser-Ney (C&G section 3.5, eqs. 17-19 and 26), three
  discounts per order from the counts of counts of the adjusted counts:
  Y = n1/(n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.

Kneser-Ney uses *adjusted* counts a(.): raw counts at the highest order and for n-grams that start with
``<s>`` (which cannot be extended to the left); elsewhere the continuation count N1+(. g), the number
of distinct words seen before g.  With gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / sum_w a(hw),
the interpolated estimate is p(w|h) = (a(hw) - D(a(hw))) / sum_w a(hw) + gamma(h) p(w|h'), and the
unigram level interpolates with the uniform distribution over the |V| predictable tokens (all but
``<s>``).  This is what KenLM's lmplz computes; stored this way the ARPA backoff lookup reproduces the
interpolated model exactly, with backoff weight gamma(h).

Discount fallback: when the counts of counts make a discount undefined or leave 0 < D_j <= j (tiny or
artificial corpora), that order uses the fixed discounts (0.5, 1.0, 1.5) (lmplz's --discount_fallback);
the orders that fell back are recorded in the model's config.  Small corpora never crash.

Pruning: ``prune[k]`` drops n-grams of order k >= 2 whose raw count is <= that threshold (thresholds
must not decrease with the order, so contexts and suffixes of kept n-grams stay).  The mass of dropped
n-grams goes to the backoff weight, so each distribution still sums to 1 (as lmplz --prune does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import SeqlmError
from ..text.vocab import BOS_ID
from .counts import OrderCounts

log = logging.getLogger(__name__)

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


@dataclass
class Tables:
    """Everything the query needs. Index 0 of each list is order 1 (dense over the vocabulary)."""

    vocab_size: int
    keys: list[np.ndarray]
    logprob: list[np.ndarray]
    logbow: list[np.ndarray]
    unseen: str = "backoff"  # "backoff" (ARPA rule) or "uniform" (add-k: bow(h)/|V| for unseen words)
    info: dict = field(default_factory=dict)

    @property
    def order(self) -> int:
        return len(self.keys)

    def sizes(self) -> list[int]:
        return [int(len(k)) for k in self.keys]


def canonical(smoothing: str) -> str:
    from .. import kinds

    if smoothing not in kinds.names("ngram"):
        raise SeqlmError(f"unknown n-gram model {smoothing!r}: choose one of {', '.join(kinds.names('ngram'))}")
    return kinds.get(smoothing).canonical


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def mkn_discounts(adjusted: np.ndarray, modified: bool) -> tuple[np.ndarray, bool]:
    """Discounts [0, D1, D2, D3+] from the counts of counts of ``adjusted`` (C&G eq. 26).

    Returns the discounts and whether the fallback was used.
    """
    n = np.bincount(np.minimum(adjusted[adjusted > 0], 5), minlength=6).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n[1] / (n[1] + 2 * n[2])
        if modified:
            d = np.array([0.0, 1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3]])
        else:
            d = np.array([0.0, y, y, y])
    limits = np.array([1.0, 2.0, 3.0]) if modified else np.ones(3)
    ok = np.all(np.isfinite(d[1:])) and np.all(d[1:] > 0) and np.all(d[1:] <= limits)
    if ok:
        return d, False
    fallback = np.array([0.0, *FALLBACK_DISCOUNTS]) if modified else np.array([0.0, 0.5, 0.5, 0.5])
    return fallback, True


def check_prune(prune: list[int] | None, order: int) -> list[int]:
    """Thresholds per order, index 0 = order 1 (never pruned)."""
    if not prune:
        return [0] * order
    prune = [int(p) for p in prune]
    if any(p < 0 for p in prune):
        raise SeqlmError(f"--prune thresholds must be >= 0 (got {prune})")
    if len(prune) > order:
        raise SeqlmError(f"--prune has {len(prune)} thresholds for an order-{order} model: give at most {order}")
    if prune[0] != 0:
        raise SeqlmError("unigrams cannot be pruned: the first --prune threshold must be 0, e.g. 0,0,1")
    prune = prune + [prune[-1]] * (order - len(prune))
    if any(b < a for a, b in zip(prune, prune[1:])):
        raise SeqlmError(f"--prune thresholds must not decrease with the order (got {prune})")
    return prune


def estimate(
    counts: list[OrderCounts],
    vocab_size: int,
    smoothing: str = "mkn",
    k: float = 1.0,
    prune: list[int] | None = None,
) -> Tables:
    """Estimate a smoothed n-gram model from :func:`counts.count_ngrams` output."""
    smoothing = canonical(smoothing)
    order = len(counts)
    prune = check_prune(prune, order)
    V = vocab_size
    n_pred = V - 1  # every token but <s>
    info: dict = {"smoothing": smoothing}
    if smoothing in ("mkn", "ikn"):
        probs, bows, keep, info_kn = _kneser_ney(counts, V, n_pred, smoothing == "mkn", prune)
        info.update(info_kn)
        unseen = "backoff"
    elif smoothing == "mle":
        probs, bows, keep = _mle(counts, V, prune)
        unseen = "backoff"
    elif smoothing == "wb":
        probs, bows, keep = _witten_bell(counts, V, n_pred, prune)
        unseen = "backoff"
    else:
        if k <= 0:
            raise SeqlmError(f"add-k needs k > 0 (got {k}); use the mle model for k = 0")
        probs, bows, keep = _add_k(counts, V, n_pred, k, prune)
        info["k"] = k
        unseen = "uniform"
    keys = _apply_pruning(counts, keep, V)
    logprob = [_log(p[m]) for p, m in zip(probs, keep)]
    logbow = [_log(b[m]) for b, m in zip(bows, keep)]
    logprob[0][BOS_ID] = -np.inf
    return Tables(V, keys, logprob, logbow, unseen, info)


def _context_sums(ctx: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(ctx, weights=weights, minlength=size)


def _kneser_ney(counts, V, n_pred, modified, prune):
    order = len(counts)
    # adjusted counts
    adjusted = []
    for k in range(1, order + 1):
        c = counts[k - 1]
        if k == order:
            a = c.counts.copy()
        else:
            cont = np.bincount(counts[k].suffix, minlength=len(c.keys)).astype(np.int64)
            a = np.where(c.starts_bos, c.counts, cont)
        if k == 1:
            a[BOS_ID] = 0
        adjusted.append(a)
    discounts, fell_back = [], []
    for k, a in enumerate(adjusted, start=1):
        d, fb = mkn_discounts(a, modified)
        discounts.append(d)
        if fb:
            fell_back.append(k)
            log.info("order %d: counts of counts give no valid discount; using the fallback %s",
                     k, [float(x) for x in d[1:]] if modified else float(d[1]))
    probs, bows, keep = [], [], []
    # order 1: interpolate with the uniform distribution over predictable tokens
    a = adjusted[0].astype(np.float64)
    d = discounts[0][np.minimum(adjusted[0], 3)]
    denom = a.sum()
    if denom <= 0:
        raise SeqlmError("the training text has no tokens: give a longer --train file")
    gamma0 = (d[a > 0]).sum() / denom
    p = (a - d) / denom + gamma0 / n_pred
    p[BOS_ID] = 0.0
    probs.append(p)
    keep.append(np.ones(V, dtype=bool))
    for k in range(2, order + 1):
        c = counts[k - 1]
        a_int = adjusted[k - 1]
        a = a_int.astype(np.float64)
        ctx = c.keys // V
        n_ctx = len(counts[k - 2].keys)
        kept = c.counts > prune[k - 1]
        d = discounts[k - 1][np.minimum(a_int, 3)]
        denom = _context_sums(ctx, a, n_ctx)
        # mass given back: the discounts of kept n-grams plus all of the pruned ones (lmplz's rule)
        freed = _context_sums(ctx, np.where(kept, d, a), n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, freed / denom, 1.0)
        p = (a - d) / denom[ctx] + gamma[ctx] * probs[k - 2][c.suffix]
        probs.append(p)
        keep.append(kept)
        is_ctx = denom > 0
        bows.append(np.where(is_ctx, gamma, 1.0))
    bows.append(np.ones(len(counts[-1].keys)))
    info = {"discounts": [list(map(float, d[1:])) for d in discounts], "discount_fallback": fell_back}
    return probs, bows, keep, info


def _mle(counts, V, prune):
    order = len(counts)
    c1 = counts[0].counts.astype(np.float64)
    c1[BOS_ID] = 0
    probs, bows, keep = [c1 / c1.sum()], [], [np.ones(V, dtype=bool)]
    for k in range(2, order + 1):
        c = counts[k - 1]
        ctx = c.keys // V
        kept = c.counts > prune[k - 1]
        denom = _context_sums(ctx, c.counts.astype(np.float64), len(counts[k - 2].keys))
        p = c.counts / denom[ctx]
        probs.append(p)
        keep.append(kept)
        # a seen context keeps all its mass on the seen words; pruned ones hand theirs to backoff
        freed = _context_sums(ctx, np.where(kept, 0.0, c.counts), len(counts[k - 2].keys))
        with np.errstate(divide="ignore", invalid="ignore"):
            bows.append(np.where(denom > 0, freed / denom, 1.0))
    bows.append(np.ones(len(counts[-1].keys)))
    if any(p > 0 for p in prune):
        log.warning("pruned MLE backs off with the raw freed mass: distributions over the pruned "
                    "contexts are not renormalized")
    return probs, bows, keep


def _witten_bell(counts, V, n_pred, prune):
    """Interpolated Witten-Bell (C&G section 2.5; SRILM's -wbdiscount -interpolate, NLTK's WittenBell):
    p(w|h) = (c(hw) + N1+(h.) p(w|h')) / (c(h.) + N1+(h.)), so gamma(h) = N1+(h.) / (c(h.) + N1+(h.)) is the
    mass the context gives to the shorter one, in proportion to how many distinct words followed it.  The
    unigram level interpolates with the uniform distribution over the predictable tokens.  Raw counts at
    every order.  Pruned n-grams hand their counts to gamma (as Kneser-Ney does here), so every
    distribution still sums to 1."""
    order = len(counts)
    c1 = counts[0].counts.astype(np.float64)
    c1[BOS_ID] = 0
    total, types = c1.sum(), float((c1 > 0).sum())
    if total <= 0:
        raise SeqlmError("the training text has no tokens: give a longer --train file")
    p = (c1 + types / n_pred) / (total + types)
    p[BOS_ID] = 0.0
    probs, bows, keep = [p], [], [np.ones(V, dtype=bool)]
    for k in range(2, order + 1):
        c = counts[k - 1]
        ctx = c.keys // V
        n_ctx = len(counts[k - 2].keys)
        a = c.counts.astype(np.float64)
        kept = c.counts > prune[k - 1]
        denom = _context_sums(ctx, a, n_ctx) + np.bincount(ctx, minlength=n_ctx)  # c(h.) + N1+(h.)
        freed = np.bincount(ctx, minlength=n_ctx) + _context_sums(ctx, np.where(kept, 0.0, a), n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, freed / denom, 1.0)
        probs.append(a / denom[ctx] + gamma[ctx] * probs[k - 2][c.suffix])
        keep.append(kept)
        bows.append(gamma)
    bows.append(np.ones(len(counts[-1].keys)))
    return probs, bows, keep


def _add_k(counts, V, n_pred, kval, prune):
    if any(p > 0 for p in prune):
        raise SeqlmError("pruning is not defined for add-k smoothing: prune a Kneser-Ney model (mkn) instead, or drop the pruning")
    order = len(counts)
    c1 = counts[0].counts.astype(np.float64)
    c1[BOS_ID] = 0
    p1 = (c1 + kval) / (c1.sum() + kval * n_pred)
    p1[BOS_ID] = 0.0
    probs, bows, keep = [p1], [], [np.ones(V, dtype=bool)]
    for k in range(2, order + 1):
        c = counts[k - 1]
        ctx = c.keys // V
        denom = _context_sums(ctx, c.counts.astype(np.float64), len(counts[k - 2].keys))
        probs.append((c.counts + kval) / (denom[ctx] + kval * n_pred))
        keep.append(np.ones(len(c.keys), dtype=bool))
        # for a seen context, every unseen word gets k / (c(h.) + k|V|) = bow(h) / |V|
        bows.append(np.where(denom > 0, kval * n_pred / (denom + kval * n_pred), 1.0))
    bows.append(np.ones(len(counts[-1].keys)))
    return probs, bows, keep


def _apply_pruning(counts: list[OrderCounts], keep: list[np.ndarray], V: int) -> list[np.ndarray]:
    """Keys of the kept n-grams, re-ranked: context ranks refer to the kept n-grams of the order below."""
    keys = [counts[0].keys]
    remap = None  # old rank -> new rank, for the previous order
    for k in range(2, len(counts) + 1):
        c = counts[k - 1]
        m = keep[k - 1]
        kk = c.keys[m]
        if remap is not None:
            kk = remap[kk // V] * V + kk % V
        keys.append(kk)
        remap = None if m.all() else np.cumsum(m) - 1
    return keys
