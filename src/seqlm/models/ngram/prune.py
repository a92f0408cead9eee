"""Entropy pruning of a backoff n-gram model (Stolcke 1998, "Entropy-based pruning of backoff language
models"), as SRILM's ``ngram -prune THRESHOLD``, and pruning to a size (``max_ngrams``).

Dropping the n-gram (h, w) of order >= 2 changes two things: p(w | h) becomes the backed-off estimate
bow'(h) p(w | h'), and the backoff weight of h becomes bow'(h) = (N(h) + p(w|h)) / (D(h) + p(w|h')), where
N(h) = 1 - sum_{v in S(h)} p(v|h) and D(h) = 1 - sum_{v in S(h)} p(v|h') over the words S(h) stored after
h.  The relative entropy between the model and the model without (h, w) is

    dH = -P(h) [ p(w|h) (ln p(w|h') + ln bow'(h) - ln p(w|h)) + N(h) (ln bow'(h) - ln bow(h)) ]

with P(h) the probability of the history, and the relative change of the model's perplexity is exp(dH) - 1.
SRILM computes P(h) by the model's own chain rule (a leading ``<s>`` counts as p(``</s>``)), what
:func:`prune_model` does for any model; where the training counts are at hand (``seqlm train``), P(h) is
their relative frequency c(h) / N instead (:func:`history_from_counts`; SRILM's ``-prune-history-lm`` takes a
separate model for it).  A Kneser-Ney model's lower orders are continuation distributions, poor estimates of
how often a history occurs (Chelba et al. 2010 show entropy pruning of KN models degrading under heavy
pruning): with the counts' P(h), entropy pruning beats count pruning at equal size on PTB where the chain
rule's loses (bench/prune.py).  Every
n-gram's change is computed against the unpruned model, all at once (SRILM computes each context's against
the model before any of its n-grams are dropped: the same), and an n-gram is dropped when its change is
below the threshold, unless a longer n-gram that is kept needs it: as its context (SRILM keeps those too)
or as its suffix (seqlm's trie finds an n-gram through its suffixes, as KenLM's does; SRILM has no such
rule, and KenLM fills the gaps it leaves with blank entries).  Unigrams are never dropped.  The n-grams
kept keep their probabilities; the backoff weight of every context that lost an n-gram is recomputed,
bow(h) = N(h) / D(h) over the n-grams kept, so that every distribution sums to one again.

``max_ngrams``: the smallest threshold whose model has at most that many n-grams (all orders), found by
bisection.  Count pruning (``--prune``) keeps the n-grams seen most; entropy pruning keeps the ones whose
loss would cost the most: at equal size, the lower perplexity (measured in bench/prune.py).
"""

from __future__ import annotations

import logging

import numpy as np

from seqlm.config import check_entropy
from seqlm.errors import SeqlmError
from seqlm.models.ngram.smoothing import Tables, reindex
from seqlm.text.vocab import BOS_ID, EOS_ID

log = logging.getLogger(__name__)

BISECTIONS = 60  # halvings of the threshold's range (in log space) when pruning to a size


def prune_tables(tables: Tables, threshold: float | None = None, max_ngrams: int | None = None,
                 history: list[np.ndarray] | None = None) -> Tables:
    """``tables`` without the n-grams whose removal changes the perplexity by less than ``threshold``
    (relative), or pruned to at most ``max_ngrams`` n-grams; backoff weights recomputed (module docstring).
    ``history``: ln P(h) of the records of orders 1..n-1 (:func:`history_from_counts`), default the model's
    own chain rule."""
    check_entropy(threshold, max_ngrams)
    if tables.unseen != "backoff":
        raise SeqlmError("an add-k model has no backoff form: entropy pruning needs one (use kn, wb or mle)")
    V, order = tables.vocab_size, tables.order
    keys = [np.asarray(tables.keys[j], dtype=np.int64) for j in range(order)]
    logp = [np.asarray(tables.logprob[j], dtype=np.float64) for j in range(order)]
    logbow = [np.array(tables.logbow[j], dtype=np.float64) for j in range(order)]
    info = dict(tables.info)
    if order == 1 or (threshold is not None and threshold == 0):
        info["prune_entropy"] = threshold
        return Tables(V, keys, logp, logbow, tables.unseen, info)
    suffix = suffixes(keys, V)
    change = _changes(keys, logp, logbow, suffix, V, history)
    if max_ngrams is not None:
        threshold = _threshold_for(max_ngrams, change, keys, suffix, V)
    keep = _select(threshold, change, keys, suffix, V)
    _recompute_bows(keys, logp, logbow, suffix, keep, V)
    before = sum(len(k) for k in keys)
    keys = reindex(keys, keep, V)
    logp = [lp[m] for lp, m in zip(logp, keep)]
    logbow = [lb[m] for lb, m in zip(logbow, keep)]
    log.info("entropy pruning (threshold %.3g): %d of %d n-grams kept (%s)", threshold, sum(len(k) for k in keys),
             before, "/".join(str(len(k)) for k in keys))
    info["prune_entropy"] = float(threshold)
    info["prune_history"] = "model" if history is None else "counts"
    return Tables(V, keys, logp, logbow, tables.unseen, info)


def entropy_prune(tables: Tables, threshold: float | None, max_ngrams: int | None, counts: list[np.ndarray],
                  count_prune: list[int] | None) -> Tables:
    """What an estimator calls: :func:`prune_tables` with P(h) from the training ``counts`` of orders 1..n-1
    (in the tables' key order), or from the model's chain rule where count pruning dropped n-grams (the
    counts no longer line up with the records)."""
    aligned = not any(count_prune or [])
    return prune_tables(tables, threshold, max_ngrams, history_from_counts(counts) if aligned else None)


def pruned_config(info: dict, max_ngrams: int | None) -> dict:
    """What an entropy-pruned model's config records (from its tables' ``info``; nothing for another)."""
    if "prune_entropy" not in info:
        return {}
    out = {"prune_entropy": info["prune_entropy"], "prune_history": info.get("prune_history", "model")}
    return {**out, "max_ngrams": max_ngrams} if max_ngrams is not None else out


def prune_model(lm, threshold: float | None = None, max_ngrams: int | None = None, config: dict | None = None):
    """The n-gram model ``lm`` entropy-pruned (:func:`prune_tables`): a new model with the same vocabulary,
    and ``config`` (default ``lm``'s; its ``quantize`` says how the values are stored)."""
    from seqlm.models.ngram.model import NGramLM

    t = lm.tables
    pruned = prune_tables(Tables(lm.trie.V, t.keys, t.logprob, t.logbow, t.unseen, t.info), threshold, max_ngrams)
    if config is None:
        config = {k: v for k, v in lm.config.items() if k not in ("trie", "table_bytes", "files", "config_sha256",
                                                                 "format")}
    return NGramLM(lm.vocab, pruned, {**config, **pruned_config(pruned.info, max_ngrams)})


def suffixes(keys: list[np.ndarray], V: int) -> list:
    """For each order k >= 2 (index k - 1), the record of order k - 1 that is each n-gram's suffix (its
    words but the first)."""
    out = [None, keys[1] % V]  # the suffix of a bigram (h, w) is the unigram w, record w
    for j in range(2, len(keys)):
        target = out[j - 1][keys[j] // V] * V + keys[j] % V
        at = np.minimum(np.searchsorted(keys[j - 1], target), len(keys[j - 1]) - 1)
        if not (keys[j - 1][at] == target).all():
            raise SeqlmError(f"the model lacks {j}-grams that are suffixes of its {j + 1}-grams (an ARPA file pruned "
                             f"by another tool?): entropy pruning needs them; prune the unpruned model")
        out.append(at)
    return out


def history_from_counts(counts: list[np.ndarray]) -> list[np.ndarray]:
    """ln P(h) of the records of orders 1..n-1 from their raw training counts (``counts[j]``: order j + 1's, in
    key order): c(h) / N, N the tokens predicted (``</s>`` included), a leading ``<s>`` counted as ``</s>``
    (SRILM's ``-prune-history-lm`` gives a separate model for P(h); the counts are the most direct one)."""
    first = np.asarray(counts[0], dtype=np.float64).copy()
    first[BOS_ID] = first[EOS_ID]
    total = first.sum() - first[BOS_ID]
    with np.errstate(divide="ignore"):  # a word never seen in training has no history weight
        return [np.log(first / total)] + [np.log(np.asarray(c, dtype=np.float64) / total) for c in counts[1:]]


def _history_logprob(keys: list[np.ndarray], logp: list[np.ndarray], V: int) -> list[np.ndarray]:
    """ln P(h) of every record of the orders below the highest, by the chain rule (a leading ``<s>`` as
    ``</s>``: p(``<s>``) is 0 in an n-gram model, and a sentence starts as often as one ends)."""
    first = logp[0].copy()
    first[BOS_ID] = logp[0][EOS_ID]
    out = [first]
    for j in range(1, len(keys) - 1):
        out.append(logp[j] + out[j - 1][keys[j] // V])
    return out


def _changes(keys, logp, logbow, suffix, V, history=None) -> list:
    """For each order k >= 2 (index k - 1), each n-gram's relative change of perplexity if it alone were
    dropped (module docstring); ``history``: ln P(h) per order, default the chain rule."""
    history = _history_logprob(keys, logp, V) if history is None else history
    out = [None]
    for j in range(1, len(keys)):
        ctx = keys[j] // V
        n_ctx = len(keys[j - 1])
        p, lq = np.exp(logp[j]), logp[j - 1][suffix[j]]
        q = np.exp(lq)
        num = np.maximum(1.0 - np.bincount(ctx, weights=p, minlength=n_ctx), 0.0)[ctx]
        den = np.maximum(1.0 - np.bincount(ctx, weights=q, minlength=n_ctx), 0.0)[ctx]
        new_bow = np.log(num + p) - np.log(den + q)
        with np.errstate(invalid="ignore"):  # no mass left (MLE): that term is 0 whatever the weights
            rest = np.where(num > 0, num * (new_bow - logbow[j - 1][ctx]), 0.0)
        dh = -np.exp(history[j - 1][ctx]) * (p * (lq + new_bow - logp[j]) + rest)
        out.append(np.expm1(dh))
    return out


def _select(threshold: float, change, keys, suffix, V) -> list[np.ndarray]:
    """Which records each order keeps: those whose change is not below ``threshold`` (> 0), and those a
    kept longer n-gram needs as its context or its suffix."""
    order = len(keys)
    keep = [None] * order
    needed = np.zeros(len(keys[-1]), dtype=bool)
    for j in range(order - 1, 0, -1):
        k = needed | ~(change[j] < threshold)
        keep[j] = k
        needed = np.zeros(len(keys[j - 1]), dtype=bool)
        needed[keys[j][k] // V] = True
        needed[suffix[j][k]] = True
    keep[0] = np.ones(len(keys[0]), dtype=bool)
    return keep


def _threshold_for(max_ngrams: int, change, keys, suffix, V) -> float:
    """The smallest threshold (to a relative 1e-12) whose pruned model has at most ``max_ngrams`` n-grams."""
    unigrams = len(keys[0])
    if max_ngrams < unigrams:
        raise SeqlmError(f"--max-ngrams {max_ngrams} is below the model's {unigrams} unigrams, which are never "
                         f"pruned: give at least {unigrams}")

    def size(t: float) -> int:
        return sum(int(k.sum()) for k in _select(t, change, keys, suffix, V))

    if size(0.0) <= max_ngrams:
        return 0.0
    top = max(max(float(c.max()) for c in change[1:]), 1e-300) * 2
    lo, hi = np.log(1e-300), np.log(top)  # size(e^hi) = unigrams + what must stay (nothing above order 1)
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if size(float(np.exp(mid))) <= max_ngrams:
            hi = mid
        else:
            lo = mid
    return float(np.exp(hi))


def _recompute_bows(keys, logp, logbow, suffix, keep, V) -> None:
    """The backoff weight of every context that lost an n-gram: N(h) / D(h) over the kept ones (in place)."""
    for j in range(1, len(keys)):
        ctx, kept = keys[j] // V, keep[j]
        n_ctx = len(keys[j - 1])
        lost = np.bincount(ctx[~kept], minlength=n_ctx) > 0
        if not lost.any():
            continue
        c = ctx[kept]
        q_at = suffix[j][kept]
        num = 1.0 - np.bincount(c, weights=np.exp(logp[j][kept]), minlength=n_ctx)
        den = 1.0 - np.bincount(c, weights=np.exp(logp[j - 1][q_at]), minlength=n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            # no mass left on either side (the kept words cover it all): a weight of 1, as SRILM gives it
            bow = np.where(den > 1e-12, np.log(np.maximum(num, 0.0)) - np.log(np.maximum(den, 1e-300)), 0.0)
        logbow[j - 1] = np.where(lost, bow, logbow[j - 1])
