"""The prefix cache of a served model: typing extends the previous request's text, so a suggestion must not
re-read the whole text.  Each model keeps a bounded LRU of its states by token prefix; a request starts from
the longest cached prefix of its tokens and reads only the rest.

Prefixes are found by hash: h_L = sum_j (id_j + 1) P^(L-1-j) mod M for every L at once, with int64 arithmetic
(M < 2^31, so every product of two residues fits); a hit is confirmed by comparing the ids, so a collision
only costs a miss.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from seqlm.models.interface import LanguageModel

P, M = 1_000_003, (1 << 31) - 1


class PrefixHashes:
    """The hash of every prefix of a list of ids, vectorized; the tables of P^i and P^-i mod M grow (by
    doubling) as longer texts come, and belong to this object (no module-level state)."""

    def __init__(self):
        self.powers = [np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64)]  # P^i, P^-i mod M

    def of_prefixes(self, ids: list[int]) -> np.ndarray:
        """Index L: the hash of the first L ids."""
        n = len(ids)
        while len(self.powers[0]) < n + 1:  # double the tables: base^(m+i) = base^i * base^m
            m = len(self.powers[0])
            for k, base in enumerate((P, pow(P, -1, M))):
                self.powers[k] = np.concatenate([self.powers[k], self.powers[k] * pow(base, m, M) % M])
        pw, inv = self.powers
        out = np.zeros(n + 1, dtype=np.int64)
        if n:
            c = (np.asarray(ids, dtype=np.int64) + 1) * inv[:n] % M  # (id_j + 1) P^-j
            out[1:] = np.cumsum(c) % M * pw[:n] % M  # times P^(L-1)
        return out


class PrefixCache:
    """A bounded LRU of a model's states after ``<s>`` + a prefix of token ids.  ``state(ids)`` starts from
    the longest cached prefix of ``ids`` (found by prefix hashes, confirmed by comparing the ids) and reads
    only the remaining tokens; the state after all of ``ids`` is then cached."""

    def __init__(self, model: LanguageModel, capacity: int = 1024):
        self.model, self.capacity = model, capacity
        self.entries: OrderedDict = OrderedDict()  # (length, hash) -> (ids tuple, state)
        self.start_state = None
        self.hits = self.misses = 0
        self.hashes = PrefixHashes()

    def state(self, ids) -> tuple[object, int]:
        """(the state after ``ids``, how many of them came from the cache)."""
        ids = [int(i) for i in ids]
        state, start, key = self.lookup(ids)
        state = self.model.advance_tokens(state, ids[start:])
        self.insert(key, ids, state, start)
        return state, start

    def lookup(self, ids: list[int]) -> tuple[object, int, tuple]:
        """The state after the longest cached prefix of ``ids`` (the start state if none), its length, and
        the cache key of ``ids`` itself (for :meth:`insert`)."""
        hashes = self.hashes.of_prefixes(ids).tolist()
        key = (len(ids), hashes[-1])
        for n in range(len(ids), -1, -1):
            hit = self.entries.get((n, hashes[n]))
            if hit is not None and hit[0] == tuple(ids[:n]):
                self.entries.move_to_end((n, hashes[n]))
                if n == len(ids):
                    self.hits += 1
                else:
                    self.misses += 1
                return hit[1], n, key
        self.misses += 1
        if self.start_state is None:  # states are values (advance returns a new one): the start state is shared
            self.start_state = self.model.start()
        return self.start_state, 0, key

    def insert(self, key: tuple, ids: list[int], state, start: int) -> None:
        """Cache the state after ``ids`` under ``key`` (unless it came whole from the cache)."""
        if start == len(ids):
            return
        self.entries[key] = (tuple(ids), state)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
