# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled query path of an n-gram model: NGramLM.full_step in C, and whole sentences scored without a
Python object per word.

The same arithmetic as the Python reference (``model.NGramLM.full_step`` over ``io/hashindex.find_one``),
tested equal to it: the hash index is probed with the same Fibonacci hash and linear probing, the matched
n-gram is the longest stored one, the backoff weights of every longer stored context are added, and the
context is kept only as far as it can extend.  Built by the package's install (Cython); where it is not
built, the Python reference answers (slower, with one warning).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

import numpy as np

DEF MAX_ORDER = 32

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define SEQLM_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define SEQLM_PREFETCH(p) ((void)0)
    #endif
    """
    void SEQLM_PREFETCH(const void* p) noexcept nogil

cdef uint64_t MULT = 0x9E3779B97F4A7C15


cdef class Querier:
    """Pointers into one model's tables (kept alive by ``self.arrays``) and the query loops over them."""

    cdef int order
    cdef int64_t V
    cdef int64_t bos, eos
    cdef const int64_t* keys[MAX_ORDER]
    cdef int64_t nkeys[MAX_ORDER]
    cdef const int32_t* table[MAX_ORDER]
    cdef uint64_t mask[MAX_ORDER]
    cdef int shift[MAX_ORDER]
    cdef const double* logprob[MAX_ORDER]
    cdef const double* logbow[MAX_ORDER]
    cdef const uint8_t* extends[MAX_ORDER]
    cdef list arrays

    def __init__(self, int order, int64_t vocab_size, list keys, list tables, list logprob, list logbow,
                 list extends, int64_t bos, int64_t eos):
        """Order k's arrays at index k - 1: sorted int64 keys, the int32 hash index (unused for order 1),
        float64 ln p and ln backoff, and uint8 flags of the n-grams that can be context; ``bos``/``eos``:
        the ids of ``<s>`` and ``</s>`` (an unknown word is id 0, ``<unk>``)."""
        if order > MAX_ORDER:
            raise ValueError(f"order {order} > {MAX_ORDER}")
        self.order, self.V, self.bos, self.eos = order, vocab_size, bos, eos
        self.arrays = [keys, tables, logprob, logbow, extends]
        cdef const int64_t[::1] k64
        cdef const int32_t[::1] t32
        cdef const double[::1] f64
        cdef const uint8_t[::1] u8
        cdef int j
        cdef uint64_t size
        for j in range(order):
            k64 = keys[j]
            self.nkeys[j] = k64.shape[0]
            self.keys[j] = &k64[0] if k64.shape[0] else NULL
            f64 = logprob[j]
            self.logprob[j] = &f64[0] if f64.shape[0] else NULL
            if j < order - 1:
                f64 = logbow[j]
                self.logbow[j] = &f64[0] if f64.shape[0] else NULL
                u8 = extends[j]
                self.extends[j] = &u8[0] if u8.shape[0] else NULL
            else:
                self.logbow[j] = NULL
                self.extends[j] = NULL
            if j:
                t32 = tables[j]
                size = t32.shape[0]
                self.table[j] = &t32[0] if size else NULL
                self.mask[j] = size - 1 if size else 0
                self.shift[j] = 64 - (int(size).bit_length() - 1) if size else 0
            else:
                self.table[j] = NULL

    cdef inline int64_t find(self, int j, int64_t key) noexcept nogil:
        """Position of ``key`` in order j + 1's keys, or -1."""
        cdef const int32_t* table = self.table[j]
        cdef uint64_t slot
        cdef int32_t t
        if table == NULL or self.nkeys[j] == 0:
            return -1
        slot = ((<uint64_t>key) * MULT) >> self.shift[j]
        while True:
            t = table[slot]
            if t == 0:
                return -1
            if self.keys[j][t - 1] == key:
                return t - 1
            slot = (slot + 1) & self.mask[j]

    cdef inline double step_c(self, int64_t* ranks, int* n, int64_t word, int* matched) noexcept nogil:
        """ln p(word | ranks[:n]); ranks and n become the state after the word."""
        cdef double lp = self.logprob[0][word]
        cdef int64_t new[MAX_ORDER]
        cdef int j = 0, k, m = n[0]
        cdef int64_t idx
        if m > self.order - 1:
            m = self.order - 1
        new[0] = word
        # every order's key is known from the state, so the memory reads of all orders can overlap instead of
        # following one another: first the home slots, then the keys and ln p they point to
        cdef int64_t slot_pos[MAX_ORDER]
        cdef uint64_t slot
        cdef int32_t t
        for k in range(m):
            if self.table[k + 1] != NULL:
                slot = ((<uint64_t>(ranks[k] * self.V + word)) * MULT) >> self.shift[k + 1]
                slot_pos[k] = slot
                SEQLM_PREFETCH(&self.table[k + 1][slot])
            if self.logbow[k] != NULL:
                SEQLM_PREFETCH(&self.logbow[k][ranks[k]])
        for k in range(m):
            if self.table[k + 1] != NULL:
                t = self.table[k + 1][slot_pos[k]]
                if t > 0:
                    SEQLM_PREFETCH(&self.keys[k + 1][t - 1])
                    SEQLM_PREFETCH(&self.logprob[k + 1][t - 1])
        while j < m:
            idx = self.find(j + 1, ranks[j] * self.V + word)
            if idx < 0:
                break
            lp = self.logprob[j + 1][idx]
            new[j + 1] = idx
            j += 1
        matched[0] = j + 1
        for k in range(j, m):
            lp += self.logbow[k][ranks[k]]
        k = j + 1
        if k > self.order - 1:
            k = self.order - 1
        while k > 0 and not self.extends[k - 1][new[k - 1]]:
            k -= 1
        for j in range(k):
            ranks[j] = new[j]
        n[0] = k
        return lp

    def step(self, tuple ranks, int64_t word):
        """(ln p, matched length, ranks after): NGramLM.full_step."""
        cdef int64_t r[MAX_ORDER]
        cdef int n = len(ranks), j, matched
        if n > MAX_ORDER:
            n = MAX_ORDER
        for j in range(n):
            r[j] = ranks[j]
        cdef double lp = self.step_c(r, &n, word, &matched)
        return lp, matched, tuple([r[j] for j in range(n)])

    def score_words(self, list words, dict stoi, bint bos, bint eos):
        """Total ln p of ``words`` (each looked up in ``stoi``; unknown: id 0) [and ``</s>``] [from ``<s>``]."""
        cdef int64_t r[MAX_ORDER]
        cdef int n = 0, matched
        cdef double total = 0
        cdef object wid
        if bos and self.order > 1:
            r[0] = self.bos
            n = 1
        for w in words:
            wid = stoi.get(w)
            total += self.step_c(r, &n, 0 if wid is None else <int64_t>wid, &matched)
        if eos:
            total += self.step_c(r, &n, self.eos, &matched)
        return total

    def full_scores_words(self, list words, dict stoi, bint bos, bint eos):
        """``[(ln p, matched length, oov)]`` for each word [and ``</s>``] from ``<s>``."""
        cdef int64_t r[MAX_ORDER]
        cdef int n = 0, matched
        cdef double lp
        cdef int64_t wid
        cdef object got
        cdef list out = []
        if bos and self.order > 1:
            r[0] = self.bos
            n = 1
        for w in words:
            got = stoi.get(w)
            wid = 0 if got is None else <int64_t>got
            lp = self.step_c(r, &n, wid, &matched)
            out.append((lp, matched, wid == 0))
        if eos:
            lp = self.step_c(r, &n, self.eos, &matched)
            out.append((lp, matched, False))
        return out

    def score_lines(self, list lines):
        """ln p of each line's tokens and its ``</s>``, every line from ``<s>``, all lines concatenated
        (NGramLM.score_lines for sentences).  A token id outside the vocabulary raises IndexError."""
        cdef Py_ssize_t total = 0, i, p = 0
        for line in lines:
            total += len(line) + 1
        out = np.empty(total, dtype=np.float64)
        cdef double[::1] o = out
        cdef const int64_t[::1] ids
        cdef int64_t r[MAX_ORDER]
        cdef int64_t tok
        cdef int n, matched
        for line in lines:
            ids = np.ascontiguousarray(line, dtype=np.int64)
            n = 0
            if self.order > 1:
                r[0] = self.bos
                n = 1
            for i in range(ids.shape[0]):
                tok = ids[i]
                if tok < 0 or tok >= self.V:
                    raise IndexError(tok)
                o[p] = self.step_c(r, &n, tok, &matched)
                p += 1
            o[p] = self.step_c(r, &n, self.eos, &matched)
            p += 1
        return out
