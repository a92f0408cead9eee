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
* ``wb``: interpolated Witten-Bell: gamma(h) = N1+(h.) / (c(h.) + N1+(h.)) (see :func:`order_step`).
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

from seqlm.errors import SeqlmError
from seqlm.models.ngram.counts import OrderCounts
from seqlm.text.vocab import BOS_ID

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


def _ranges(orders: list[int]) -> str:
    """``[2, 3, 4, 7]`` -> ``"2-4, 7"``."""
    parts, start = [], orders[0]
    for a, b in zip(orders, orders[1:] + [None]):
        if b != a + 1:
            parts.append(str(start) if start == a else f"{start}-{a}")
            start = b
    return ", ".join(parts)


def canonical(smoothing: str) -> str:
    from seqlm import kinds

    if smoothing not in kinds.names("ngram"):
        raise SeqlmError(f"unknown n-gram model {smoothing!r}: choose one of {', '.join(kinds.names('ngram'))}")
    return kinds.get(smoothing).canonical


def safe_log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def counts_of_counts(adjusted: np.ndarray) -> np.ndarray:
    """How many n-grams have (adjusted) count 1, 2, 3, 4, 5+ (index 0: count 0, not used)."""
    return np.bincount(np.minimum(adjusted, 5), minlength=6).astype(np.int64)


def mkn_discounts(n: np.ndarray, modified: bool) -> tuple[np.ndarray, bool]:
    """Discounts [0, D1, D2, D3+] from the counts of counts ``n`` (:func:`counts_of_counts`; C&G eq. 26).

    Returns the discounts and whether the fallback was used.
    """
    n = np.asarray(n, dtype=np.float64)
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
    """Estimate a smoothed n-gram model from :func:`counts.count_ngrams` output (all in memory; the
    bounded-memory estimator, external.py, runs the same per-order steps over runs of contexts)."""
    smoothing = canonical(smoothing)
    order = len(counts)
    prune = check_prune(prune, order)
    check_k(smoothing, k, prune)
    V = vocab_size
    kn = smoothing in ("mkn", "ikn")
    if kn:
        adjusted = [adjusted_counts(counts[j], counts[j + 1] if j + 1 < order else None, j + 1 == order)
                    for j in range(order)]
        adjusted[0][BOS_ID] = 0
        discounts, info = order_discounts(smoothing, [counts_of_counts(a) for a in adjusted])
    else:
        adjusted = [c.counts for c in counts]
        discounts, info = order_discounts(smoothing, [None] * order)
    if smoothing == "add-k":
        info["k"] = k
    probs = [unigram_probs(smoothing, adjusted[0], V, discounts[0], k)]
    bows, keep = [], [np.ones(V, dtype=bool)]
    for j in range(1, order):
        c = counts[j]
        p, bow, kept = order_step(smoothing, c.counts, adjusted[j], c.keys // V, len(counts[j - 1].keys),
                                  probs[j - 1][c.suffix], discounts[j], prune[j], k, V - 1)
        probs.append(p)
        bows.append(bow)
        keep.append(kept)
    bows.append(np.ones(len(counts[-1].keys)))
    if smoothing == "mle" and any(x > 0 for x in prune):
        log.warning("pruned MLE backs off with the raw freed mass: distributions over the pruned "
                    "contexts are not renormalized")
    keys = reindex([c.keys for c in counts], keep, V)
    logprob = [safe_log(p[m]) for p, m in zip(probs, keep)]
    logbow = [safe_log(b[m]) for b, m in zip(bows, keep)]
    logprob[0][BOS_ID] = -np.inf
    return Tables(V, keys, logprob, logbow, "uniform" if smoothing == "add-k" else "backoff", info)


def check_k(smoothing: str, k: float, prune: list[int]) -> None:
    if smoothing != "add-k":
        return
    if k <= 0:
        raise SeqlmError(f"add-k needs k > 0 (got {k}); use the mle model for k = 0")
    if any(p > 0 for p in prune):
        raise SeqlmError("pruning is not defined for add-k smoothing: prune a Kneser-Ney model (mkn) instead, or drop the pruning")


def adjusted_counts(c: OrderCounts, above: OrderCounts | None, highest: bool) -> np.ndarray:
    """Kneser-Ney's adjusted counts of one order: raw counts at the highest order and for n-grams that
    start with ``<s>``, else the continuation count N1+(. g) (how many n-grams of the order above have g as
    their suffix)."""
    if highest:
        a = c.counts.copy()
    else:
        cont = np.bincount(above.suffix, minlength=len(c.keys)).astype(np.int64)
        a = np.where(c.starts_bos, c.counts, cont)
    return a


def order_discounts(smoothing: str, counts_of_counts: list[np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """Discounts of every order from the counts of counts (index j: how many n-grams have count j,
    5 meaning 5 or more; index 0 is ignored), and the model info they go in."""
    info: dict = {"smoothing": smoothing}
    if smoothing not in ("mkn", "ikn"):
        return [None] * len(counts_of_counts), info
    discounts, fell_back = [], []
    for k, n in enumerate(counts_of_counts, start=1):
        d, fb = mkn_discounts(n, smoothing == "mkn")
        discounts.append(d)
        if fb:
            fell_back.append(k)
    if fell_back:  # one line, whatever the order (a 32-gram of a small text falls back at most orders)
        log.info("order%s %s: counts of counts give no valid discount; using the fallback %s",
                 "s" if len(fell_back) > 1 else "", _ranges(fell_back),
                 list(FALLBACK_DISCOUNTS) if smoothing == "mkn" else 0.5)
    info.update(discounts=[list(map(float, d[1:])) for d in discounts], discount_fallback=fell_back)
    return discounts, info


def unigram_probs(smoothing: str, c1: np.ndarray, V: int, d: np.ndarray | None, kval: float) -> np.ndarray:
    """p(w) of every token from the (adjusted, for Kneser-Ney) unigram counts; p(<s>) = 0."""
    n_pred = V - 1  # every token but <s>
    if smoothing in ("mkn", "ikn"):
        a_int = c1.copy()
        a_int[BOS_ID] = 0
        a = a_int.astype(np.float64)
        dd = d[np.minimum(a_int, 3)]
        denom = a.sum()
        if denom <= 0:
            raise SeqlmError("the training text has no tokens: give a longer --train file")
        gamma0 = (dd[a > 0]).sum() / denom
        p = (a - dd) / denom + gamma0 / n_pred
    else:
        c = c1.astype(np.float64)
        c[BOS_ID] = 0
        if smoothing == "mle":
            p = c / c.sum()
        elif smoothing == "wb":
            total, types = c.sum(), float((c > 0).sum())
            if total <= 0:
                raise SeqlmError("the training text has no tokens: give a longer --train file")
            p = (c + types / n_pred) / (total + types)
        else:
            p = (c + kval) / (c.sum() + kval * n_pred)
    p[BOS_ID] = 0.0
    return p


def _context_sums(ctx: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(ctx, weights=weights, minlength=size)


def order_step(smoothing: str, raw: np.ndarray, adjusted: np.ndarray, ctx: np.ndarray, n_ctx: int,
               lower: np.ndarray, d: np.ndarray | None, prune_k: int, kval: float, n_pred: int):
    """One order's estimate over a run of whole contexts (all of the order, or a slice of it).

    ``raw``/``adjusted``: the n-grams' raw and adjusted counts (adjusted = raw but for Kneser-Ney);
    ``ctx``: each n-gram's context, numbered from the run's first context; ``n_ctx``: the run's contexts;
    ``lower``: p(w | h') of each n-gram's suffix.  Returns p of every n-gram, the backoff weight of every
    context of the run (1 where it has no continuation) and the n-grams kept by pruning.
    """
    kept = raw > prune_k
    if smoothing in ("mkn", "ikn"):
        # C&G eq. 26: mass given back = the discounts of kept n-grams plus all of the pruned ones (lmplz)
        a = adjusted.astype(np.float64)
        dd = d[np.minimum(adjusted, 3)]
        denom = _context_sums(ctx, a, n_ctx)
        freed = _context_sums(ctx, np.where(kept, dd, a), n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, freed / denom, 1.0)
        p = (a - dd) / denom[ctx] + gamma[ctx] * lower
    elif smoothing == "mle":
        # a seen context keeps all its mass on the seen words; pruned ones hand theirs to backoff
        c = raw.astype(np.float64)
        denom = _context_sums(ctx, c, n_ctx)
        p = c / denom[ctx]
        freed = _context_sums(ctx, np.where(kept, 0.0, c), n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, freed / denom, 1.0)
    elif smoothing == "wb":
        # Witten-Bell: gamma(h) = N1+(h.) / (c(h.) + N1+(h.)); pruned n-grams hand their counts to gamma
        c = raw.astype(np.float64)
        types = np.bincount(ctx, minlength=n_ctx)
        denom = _context_sums(ctx, c, n_ctx) + types  # c(h.) + N1+(h.)
        freed = types + _context_sums(ctx, np.where(kept, 0.0, c), n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            gamma = np.where(denom > 0, freed / denom, 1.0)
        p = c / denom[ctx] + gamma[ctx] * lower
    else:  # add-k: for a seen context, every unseen word gets k / (c(h.) + k|V|) = bow(h) / |V|
        denom = _context_sums(ctx, raw.astype(np.float64), n_ctx)
        p = (raw + kval) / (denom[ctx] + kval * n_pred)
        gamma = np.where(denom > 0, kval * n_pred / (denom + kval * n_pred), 1.0)
    return p, np.where(denom > 0, gamma, 1.0), kept


def reindex(keys: list[np.ndarray], keep: list[np.ndarray], V: int) -> list[np.ndarray]:
    """Keys of the kept n-grams of every order, re-ranked: context ranks refer to the kept n-grams of the
    order below (count pruning here, entropy pruning in prune.py)."""
    out = [keys[0][keep[0]]]
    remap = None if keep[0].all() else np.cumsum(keep[0]) - 1  # old rank -> new rank, for the previous order
    for k in range(2, len(keys) + 1):
        m = keep[k - 1]
        kk = keys[k - 1][m]
        if remap is not None:
            kk = remap[kk // V] * V + kk % V
        out.append(kk)
        remap = None if m.all() else np.cumsum(m) - 1
    return out
