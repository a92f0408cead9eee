"""A hash index over one order's sorted n-gram keys: key -> position, vectorized, ~1.5 probes a lookup.

``np.searchsorted`` on a million keys costs ~20 dependent memory reads per query; this open-addressing
table (linear probing, at most half full) answers most queries with one read of the table and one of
the keys.  Both build and lookup are array operations over all pending keys at once: each round places
(or resolves) every key whose slot is free (or holds it) and moves the rest one slot on.

The table stores position + 1 (0 = empty) as int32, 8 to 16 bytes per n-gram, and is saved with the
model (``tables/index{k}.npy``) so a memory-mapped model needs no build at load.
"""

from __future__ import annotations

import numpy as np

_MULT = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the high bits of key * 2^64/phi


def table_bits(n: int) -> int:
    return max(4, int(2 * max(n, 1) - 1).bit_length())


def _home(keys: np.ndarray, bits: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((keys.view(np.uint64) * _MULT) >> np.uint64(64 - bits)).view(np.int64)


BATCH = 1 << 22


def build(keys: np.ndarray) -> np.ndarray:
    """The hash table of ``keys`` (distinct int64)."""
    return build_batches(len(keys), (keys[s:s + BATCH] for s in range(0, len(keys), BATCH)))


def build_batches(n: int, batches) -> np.ndarray:
    """The hash table of ``n`` distinct keys given in consecutive batches of :data:`BATCH` (the last may
    be shorter): keys are placed a batch at a time, so the build needs memory for one batch, and the
    table is the same whether the keys come from memory or from a file."""
    if n >= np.iinfo(np.int32).max:
        raise ValueError("too many n-grams of one order for an int32 index")
    bits = table_bits(n)
    size = 1 << bits
    table = np.zeros(size, dtype=np.int32)
    offset = 0
    for batch in batches:
        batch = np.asarray(batch, dtype=np.int64)
        pending = np.arange(len(batch), dtype=np.int64)
        slot = _home(batch, bits)
        while len(pending):
            s = slot[pending]
            free = table[s] == 0
            cand, cs = pending[free], s[free]
            table[cs] = (cand + offset + 1).astype(np.int32)  # several keys for one free slot: one of them wins
            won = np.zeros(len(pending), dtype=bool)
            won[np.flatnonzero(free)[table[cs] == cand + offset + 1]] = True
            pending = pending[~won]
            slot[pending] = (slot[pending] + 1) & (size - 1)
        offset += len(batch)
    if offset != n:
        raise ValueError(f"the index was given {offset} keys for {n}")
    return table


def find(table: np.ndarray, keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each query in ``keys`` (any valid index where absent) and whether it is there."""
    size = len(table)
    bits = size.bit_length() - 1
    if len(keys) == 0 or len(query) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    query = np.ascontiguousarray(query, dtype=np.int64)
    slot = _home(query, bits)
    t = table[slot]  # first probe for every query: most are answered here
    occupied = t > 0
    idx = t.astype(np.int64) - 1
    found = occupied & (keys[idx] == query)
    more = np.flatnonzero(occupied & ~found)
    while len(more):  # the rest walk on, one slot per round
        slot_m = (slot[more] + 1) & (size - 1)
        slot[more] = slot_m
        t = table[slot_m]
        occupied = t > 0
        i = t.astype(np.int64) - 1
        hit = occupied & (keys[i] == query[more])
        idx[more[hit]] = i[hit]
        found[more[hit]] = True
        more = more[occupied & ~hit]
    return idx, found


_MULT_INT = int(_MULT)
_MASK64 = (1 << 64) - 1


def find_one(table: np.ndarray, keys: np.ndarray, key: int) -> int:
    """The position of one ``key`` in ``keys``, or -1: :func:`find` for a single query, in Python ints
    (a step of a decoder asks one n-gram at a time, where array calls cost more than the probe)."""
    size = len(table)
    if size == 0 or len(keys) == 0:
        return -1
    slot = ((key * _MULT_INT) & _MASK64) >> (64 - (size.bit_length() - 1))
    while True:
        t = int(table[slot])
        if t == 0:
            return -1
        if int(keys[t - 1]) == key:
            return t - 1
        slot = (slot + 1) & (size - 1)
