"""A hash index over one order's sorted n-gram keys: key -> position, vectorized, ~1.5 probes a lookup.

``np.searchsorted`` on a million keys costs ~20 dependent memory reads per query; this open-addressing
table (linear probing, at most half full) answers most queries with one read of the table and one of
the keys.  Both build and lookup are array operations over all pending keys at once: each round places
(or resolves) every key whose slot is free (or holds it) and moves the rest one slot on.

The table stores position + 1 (0 = empty) as int32.  The n-gram trie (models/ngram/trie.py) keeps such a
table, bit-packed, for the orders whose runs of children are long.
"""

from __future__ import annotations

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the high bits of key * 2^64/phi


def table_bits(n: int) -> int:
    return max(4, int(2 * max(n, 1) - 1).bit_length())


def _home(keys: np.ndarray, size: int) -> np.ndarray:
    """Each key's first slot in a table of ``size`` slots: the high 32 bits of ``key * 2^64/phi`` scaled to the
    size (Lemire's multiply-shift; for a power of two, the top bits).  The trie's compiled search computes
    the same (fastquery.pyx)."""
    with np.errstate(over="ignore"):
        h = (keys.view(np.uint64) * _MULT) >> np.uint64(32)
        return ((h * np.uint64(size)) >> np.uint64(32)).view(np.int64)


def _next(slot: np.ndarray, size: int) -> np.ndarray:
    slot = slot + 1
    slot[slot == size] = 0
    return slot


BATCH = 1 << 22


def build(keys: np.ndarray, size: int | None = None) -> np.ndarray:
    """The hash table of ``keys`` (distinct int64), of ``size`` slots (default: a power of two, at most half full)."""
    return build_batches(len(keys), (keys[s:s + BATCH] for s in range(0, len(keys), BATCH)), size)


def build_batches(n: int, batches, size: int | None = None) -> np.ndarray:
    """The hash table of ``n`` distinct keys given in consecutive batches of :data:`BATCH` (the last may
    be shorter), each key's position its place in the sequence: keys are placed a batch at a time, so the
    build needs memory for one batch, and the table is the same whether the keys come from memory or from
    a file."""
    def pairs():
        offset = 0
        for batch in batches:
            batch = np.asarray(batch, dtype=np.int64)
            yield batch, np.arange(offset, offset + len(batch), dtype=np.int64)
            offset += len(batch)

    return build_pairs(n, pairs(), size)


def build_pairs(n: int, batches, size: int | None = None) -> np.ndarray:
    """The hash table of ``n`` distinct keys given as batches of ``(keys, positions)``: each key's slot
    holds its position + 1 (a selection of an array's keys, as the trie indexes its long runs)."""
    if n >= np.iinfo(np.int32).max:
        raise ValueError("too many n-grams of one order for an int32 index")
    size = size or 1 << table_bits(n)
    if size <= n:
        raise ValueError(f"a table of {size} slots cannot hold {n} keys")
    table = np.zeros(size, dtype=np.int32)
    placed = 0
    for batch, positions in batches:
        batch = np.asarray(batch, dtype=np.int64)
        value = (np.asarray(positions, dtype=np.int64) + 1).astype(np.int32)
        pending = np.arange(len(batch), dtype=np.int64)
        slot = _home(batch, size)
        while len(pending):
            s = slot[pending]
            free = table[s] == 0
            cand, cs = pending[free], s[free]
            table[cs] = value[cand]  # several keys for one free slot: one of them wins
            won = np.zeros(len(pending), dtype=bool)
            won[np.flatnonzero(free)[table[cs] == value[cand]]] = True
            pending = pending[~won]
            slot[pending] = _next(slot[pending], size)
        placed += len(batch)
    if placed != n:
        raise ValueError(f"the index was given {placed} keys for {n}")
    return table


def find(table: np.ndarray, keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each query in ``keys`` (any valid index where absent) and whether it is there."""
    size = len(table)
    if len(keys) == 0 or len(query) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    query = np.ascontiguousarray(query, dtype=np.int64)
    slot = _home(query, size)
    t = table[slot]  # first probe for every query: most are answered here
    occupied = t > 0
    idx = t.astype(np.int64) - 1
    found = occupied & (keys[idx] == query)
    more = np.flatnonzero(occupied & ~found)
    while len(more):  # the rest walk on, one slot per round
        slot_m = _next(slot[more], size)
        slot[more] = slot_m
        t = table[slot_m]
        occupied = t > 0
        i = t.astype(np.int64) - 1
        hit = occupied & (keys[i] == query[more])
        idx[more[hit]] = i[hit]
        found[more[hit]] = True
        more = more[occupied & ~hit]
    return idx, found
