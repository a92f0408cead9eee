"""N-gram counting, vectorized: sentences of ids -> sorted unique n-grams of every order with counts.

Input: the training text as one flat id array plus line lengths (no specials).  Each line is padded
as ``<s> w1 ... wn </s>`` (one ``<s>``, as KenLM does); an n-gram is any window of that padded line
that does not end in ``<s>``.

Representation (used by every stage after this one).  Order 1 is dense over the vocabulary: the
rank of unigram ``w`` is its id.  An n-gram ``h w`` of order k > 1 has the key
``rank_{k-1}(h) * V + w``, where ``rank_{k-1}(h)`` is the index of ``h`` in the sorted unique
(k-1)-grams.  Because ranks follow lexicographic order, sorting keys sorts n-grams lexicographically,
all extensions of one context form one contiguous key range, and the context of an n-gram is
``key // V`` — no tuples, no Python loop per n-gram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqlm.text.vocab import BOS_ID, EOS_ID


@dataclass
class OrderCounts:
    """Unique n-grams of one order.

    keys: (U,) int64, sorted; counts: (U,) raw occurrence counts;
    suffix: (U,) index of the n-gram without its first word in the previous order (order > 1);
    starts_bos: (U,) bool, the n-gram begins with ``<s>``.
    """

    keys: np.ndarray
    counts: np.ndarray
    suffix: np.ndarray
    starts_bos: np.ndarray


def pad_stream(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``<s> line </s>`` for every line, flattened; and each token's position in its padded line."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = lengths + 2
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(padded[:-1], out=starts[1:])
    total = int(padded.sum())
    toks = np.empty(total, dtype=np.int64)
    word = np.ones(total, dtype=bool)
    word[starts] = False
    word[starts + lengths + 1] = False
    toks[starts] = BOS_ID
    toks[starts + lengths + 1] = EOS_ID
    toks[word] = ids
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, padded)
    return toks, pos


def count_ngrams(ids: np.ndarray, lengths: np.ndarray, order: int, vocab_size: int) -> list[OrderCounts]:
    """Counts of every order 1..``order`` (index 0 holds order 1)."""
    toks, pos = pad_stream(ids, lengths)
    V = vocab_size
    result: list[OrderCounts] = []
    # Order 1, dense: rank == id.  <s> is never an n-gram's last word, so its count stays 0.
    uni = np.bincount(toks[pos > 0], minlength=V).astype(np.int64)
    result.append(OrderCounts(np.arange(V, dtype=np.int64), uni, np.zeros(V, np.int64), np.zeros(V, bool)))
    prev_rank = toks  # rank of the (k-1)-gram ending at each position (valid where pos >= k-2)
    for k in range(2, order + 1):
        end = np.flatnonzero(pos >= k - 1)  # positions where a k-gram ends
        if len(end) == 0:
            empty = np.zeros(0, np.int64)
            result.append(OrderCounts(empty, empty, empty, np.zeros(0, bool)))
            prev_rank = np.full_like(toks, -1)
            continue
        keys = prev_rank[end - 1] * V + toks[end]
        uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        occurrence = np.empty(len(uniq), dtype=np.int64)
        occurrence[inverse] = end
        # the suffix of a k-gram is the (k-1)-gram ending at the same position
        suffix = prev_rank[occurrence]
        result.append(OrderCounts(uniq, counts.astype(np.int64), suffix, pos[occurrence] == k - 1))
        rank = np.full_like(toks, -1)
        rank[end] = inverse
        prev_rank = rank
    return result
