# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled query path of an n-gram model: NGramLM.full_step in C over the model's trie (trie.py), and
whole sentences scored without a Python object per word.

The same arithmetic as the Python reference (``model.NGramLM.full_step`` over ``trie.Trie``), tested equal
to it: records are read field by field as unaligned 64-bit words, a word is searched for in its context's
run of children, the matched n-gram is the longest stored one, the backoff weights of every longer stored
context are added, and the context is kept only as far as it can extend.  Built by the package's install
(Cython); where it is not built, the Python reference answers (slower, with one warning).
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

import numpy as np

DEF MAX_ORDER = 32
DEF SCAN = 8  # runs this short are scanned, longer ones binary-searched (interpolation measured slower: the
# ids of frequent words, which most runs hold, are small)
DEF PREFETCH_LINES = 4  # a run of children up to this many cache lines is fetched whole before it is searched
cdef uint64_t MULT = 0x9E3779B97F4A7C15  # io/hashindex.py's

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define SEQLM_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define SEQLM_PREFETCH(p) ((void)0)
    #endif
    """
    void SEQLM_PREFETCH(const void* p) noexcept nogil


cdef struct Order:
    const uint8_t* data
    const uint64_t* base
    const float* pcent
    const float* bcent
    const uint8_t* index  # the hash index of a long-run order (trie.py), or NULL
    uint64_t isize
    int ibits
    uint64_t rbits
    int wbits, pbits, bbits, cbits, blog
    int poff, boff, coff
    int pmode, bmode  # 0: float32 without its sign (ln p <= 0), 1: float32, 2: code into the table; bow 3: none


cdef inline uint64_t bits_at(const uint8_t* data, uint64_t pos, int width) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, data + (pos >> 3), 8)
    return (w >> (pos & 7)) & ((<uint64_t>1 << width) - 1)


cdef inline int64_t word_id(dict stoi, object w):
    """The id of the word ``w`` in ``stoi``; an unknown word is ``<unk>``, id 0."""
    cdef object got = stoi.get(w)
    return 0 if got is None else <int64_t>got


cdef inline double value(uint64_t code, int mode, const float* table) noexcept nogil:
    cdef uint32_t u = <uint32_t>code
    cdef float f
    if mode == 2:
        return table[code]
    memcpy(&f, &u, 4)
    return -f if mode == 0 else f


cdef class Querier:
    """Pointers into one model's trie (kept alive by ``self.arrays``) and the query loops over it."""

    cdef int order
    cdef int64_t V
    cdef int64_t bos, eos
    cdef Order o[MAX_ORDER]
    cdef list arrays

    def __init__(self, trie, int64_t bos, int64_t eos):
        """The arrays of a :class:`seqlm.models.ngram.trie.Trie`; ``bos``/``eos``: the ids of ``<s>`` and
        ``</s>`` (an unknown word is id 0, ``<unk>``)."""
        cdef int order = trie.order
        if order > MAX_ORDER:
            raise ValueError(f"order {order} > {MAX_ORDER}")
        self.order, self.V, self.bos, self.eos = order, trie.V, bos, eos
        self.arrays = [trie.data, trie.base, trie.centers, trie.index]
        cdef const uint8_t[::1] u8
        cdef const uint64_t[::1] u64
        cdef const float[:, ::1] f32
        cdef int j
        modes = {"neg31": 0, "f32": 1, "q": 2, "none": 3}
        for j in range(order):
            lay = trie.layout[j]
            u8 = trie.data[j]
            self.o[j].data = &u8[0]
            self.o[j].base = NULL
            if trie.base[j] is not None and len(trie.base[j]):
                u64 = trie.base[j]
                self.o[j].base = &u64[0]
            self.o[j].pcent = self.o[j].bcent = NULL
            if trie.centers[j] is not None:
                f32 = trie.centers[j]
                self.o[j].pcent = &f32[0, 0]
                self.o[j].bcent = &f32[1, 0]
            self.o[j].rbits = lay["record_bits"]
            self.o[j].wbits, self.o[j].pbits = lay["word_bits"], lay["prob_bits"]
            self.o[j].bbits, self.o[j].cbits = lay["bow_bits"], lay["child_bits"]
            self.o[j].blog = lay["block_log"]
            self.o[j].poff, self.o[j].boff, self.o[j].coff = lay["prob_offset"], lay["bow_offset"], lay["child_offset"]
            self.o[j].pmode, self.o[j].bmode = modes[lay["prob"]], modes[lay["bow"]]
            self.o[j].index = NULL
            self.o[j].isize, self.o[j].ibits = lay["index_size"], lay["index_bits"]
            if trie.index[j] is not None:
                u8 = trie.index[j]
                self.o[j].index = &u8[0]

    cdef inline int begin_sentence(self, int64_t* r) noexcept nogil:
        """The state after ``<s>`` in ``r``; its length."""
        if self.order > 1:
            r[0] = self.bos
            return 1
        return 0

    cdef inline uint64_t word(self, int j, uint64_t i) noexcept nogil:
        return bits_at(self.o[j].data, i * self.o[j].rbits, self.o[j].wbits)

    cdef inline double prob(self, int j, uint64_t i) noexcept nogil:
        cdef Order* o = &self.o[j]
        return value(bits_at(o.data, i * o.rbits + o.poff, o.pbits), o.pmode, o.pcent)

    cdef inline double bow(self, int j, uint64_t i) noexcept nogil:
        cdef Order* o = &self.o[j]
        if o.bmode == 3:
            return 0.0
        return value(bits_at(o.data, i * o.rbits + o.boff, o.bbits), o.bmode, o.bcent)

    cdef inline uint64_t begin(self, int j, uint64_t i) noexcept nogil:
        cdef Order* o = &self.o[j]
        return o.base[i >> o.blog] + bits_at(o.data, i * o.rbits + o.coff, o.cbits)

    cdef inline uint64_t home(self, int j, uint64_t parent, uint64_t w) noexcept nogil:
        """The first slot of (parent, w) in order j + 1's hash index (io/hashindex.py's multiply-shift)."""
        return (((parent * <uint64_t>self.V + w) * MULT) >> 32) * self.o[j].isize >> 32

    cdef inline int64_t probe(self, int j, uint64_t slot, uint64_t lo, uint64_t end, uint64_t w) noexcept nogil:
        """The record of order j + 1 in ``[lo, end)`` whose word is ``w`` by its hash index, or -1."""
        cdef Order* o = &self.o[j]
        cdef uint64_t t
        while True:
            t = bits_at(o.index, slot * o.ibits, o.ibits)
            if t == 0:
                return -1
            t -= 1
            if lo <= t < end and self.word(j, t) == w:
                return <int64_t>t
            slot += 1
            if slot == o.isize:
                slot = 0

    cdef inline int64_t search(self, int j, uint64_t lo, uint64_t end, uint64_t w) noexcept nogil:
        """The record of order j + 1 in ``[lo, end)`` (a context's run of children) whose word is ``w``, or
        -1: a binary search, then a scan of the last few records."""
        cdef uint64_t hi = end, mid, x
        while hi - lo > SCAN:  # the first record whose word is >= w is in [lo, hi]
            mid = (lo + hi) >> 1
            if self.word(j, mid) < w:
                lo = mid + 1
            else:
                hi = mid
        cdef Order* o = &self.o[j]
        cdef uint64_t pos = lo * o.rbits
        while lo < end:
            x = bits_at(o.data, pos, o.wbits)
            if x >= w:
                return <int64_t>lo if x == w else -1
            lo += 1
            pos += o.rbits
        return -1

    cdef inline double step_c(self, int64_t* ranks, int* n, int64_t word, int* matched) noexcept nogil:
        """ln p(word | ranks[:n]); ranks and n become the state after the word."""
        cdef double lp
        cdef int64_t new[MAX_ORDER]
        cdef uint64_t lo[MAX_ORDER]
        cdef uint64_t end[MAX_ORDER]
        cdef uint64_t slot[MAX_ORDER]
        cdef uint64_t first, last, span
        cdef int q
        cdef int j = 0, k, m = n[0]
        cdef int64_t idx
        cdef Order* o
        if m > self.order - 1:
            m = self.order - 1
        new[0] = word
        # the runs of every order are known from the state (records read in the step before, in cache): their
        # ends, where the searches begin, are fetched at once, so the searches of all orders overlap instead of
        # following one another
        for k in range(m):
            lo[k] = self.begin(k, ranks[k])
            end[k] = self.begin(k, ranks[k] + 1)
            o = &self.o[k + 1]
            if o.index != NULL:
                slot[k] = self.home(k + 1, ranks[k], word)
                SEQLM_PREFETCH(o.index + ((slot[k] * o.ibits) >> 3))
            else:  # the run's records: all of a short run, the first probes' of a long one
                first = (lo[k] * o.rbits) >> 3
                last = (end[k] * o.rbits + 7) >> 3
                if last - first <= 64 * PREFETCH_LINES:
                    while first < last:
                        SEQLM_PREFETCH(o.data + first)
                        first += 64
                else:
                    span = end[k] - lo[k]
                    for q in range(1, 4):
                        SEQLM_PREFETCH(o.data + (((lo[k] + span * q // 4) * o.rbits) >> 3))
        while j < m:
            if self.o[j + 1].index != NULL:
                idx = self.probe(j + 1, slot[j], lo[j], end[j], word)
            else:
                idx = self.search(j + 1, lo[j], end[j], word)
            if idx < 0:
                break
            new[j + 1] = idx
            j += 1
        lp = self.prob(j, new[j])  # ln p of the longest match only
        matched[0] = j + 1
        for k in range(j, m):
            lp += self.bow(k, ranks[k])
        # the state keeps what can still extend: n-grams with children, or a backoff weight
        k = j + 1
        if k > self.order - 1:
            k = self.order - 1
        while k > 0 and not (self.begin(k - 1, new[k - 1] + 1) > self.begin(k - 1, new[k - 1])
                             or self.bow(k - 1, new[k - 1]) != 0):
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
        if bos:
            n = self.begin_sentence(r)
        for w in words:
            total += self.step_c(r, &n, word_id(stoi, w), &matched)
        if eos:
            total += self.step_c(r, &n, self.eos, &matched)
        return total

    def full_scores_words(self, list words, dict stoi, bint bos, bint eos):
        """``[(ln p, matched length, oov)]`` for each word [and ``</s>``] from ``<s>``."""
        cdef int64_t r[MAX_ORDER]
        cdef int n = 0, matched
        cdef double lp
        cdef int64_t wid
        cdef list out = []
        if bos:
            n = self.begin_sentence(r)
        for w in words:
            wid = word_id(stoi, w)
            lp = self.step_c(r, &n, wid, &matched)
            out.append((lp, matched, wid == 0))
        if eos:
            lp = self.step_c(r, &n, self.eos, &matched)
            out.append((lp, matched, False))
        return out

    def score_tokens(self, list lines, dict stoi):
        """(ln p, oov) of each line's tokens (str, looked up in ``stoi``; unknown: ``<unk>``, flagged) and its
        ``</s>``, every line from ``<s>``, all lines concatenated (NGramLM.score_tokens)."""
        cdef Py_ssize_t total = 0, p = 0
        cdef list line
        for line in lines:
            total += len(line) + 1
        # plain buffers (a typed memoryview costs about a microsecond to make: a call of one line pays it)
        cdef bytearray out = bytearray(8 * total), flags = bytearray(total)
        cdef double* o = <double*><char*>out
        cdef uint8_t* f = <uint8_t*><char*>flags
        cdef int64_t r[MAX_ORDER]
        cdef int64_t wid
        cdef int n, matched
        for line in lines:
            n = self.begin_sentence(r)
            for w in line:
                wid = word_id(stoi, w)
                if wid == 0:
                    f[p] = 1
                o[p] = self.step_c(r, &n, wid, &matched)
                p += 1
            o[p] = self.step_c(r, &n, self.eos, &matched)
            p += 1
        return np.frombuffer(out, dtype=np.float64), np.frombuffer(flags, dtype=np.uint8)

    def line_totals(self, list lines, dict stoi):
        """Each line's total ln p (tokens as in :meth:`score_tokens`, and ``</s>``) and its count of tokens
        out of the vocabulary: two lists (NGramLM.line_totals)."""
        cdef list totals = [], counts = [], line
        cdef int64_t r[MAX_ORDER]
        cdef int64_t wid
        cdef int n, matched
        cdef Py_ssize_t unknown
        cdef double total
        for line in lines:
            n = self.begin_sentence(r)
            total, unknown = 0.0, 0
            for w in line:
                wid = word_id(stoi, w)
                unknown += wid == 0
                total += self.step_c(r, &n, wid, &matched)
            total += self.step_c(r, &n, self.eos, &matched)
            totals.append(total)
            counts.append(unknown)
        return totals, counts

    def score_flat(self, const int64_t[::1] ids, const int64_t[::1] lengths):
        """:meth:`score_lines` of lines given as flat ``ids`` and each line's ``lengths`` (NGramLM.score_flat)."""
        cdef Py_ssize_t total = ids.shape[0] + lengths.shape[0], p = 0, i = 0, line, k
        out = np.empty(total, dtype=np.float64)
        cdef double[::1] o = out
        cdef int64_t r[MAX_ORDER]
        cdef int64_t tok
        cdef int n, matched
        if sum(lengths) != ids.shape[0]:
            raise ValueError("the lengths do not add up to the ids")
        for line in range(lengths.shape[0]):
            n = self.begin_sentence(r)
            for k in range(lengths[line]):
                tok = ids[i]
                i += 1
                if tok < 0 or tok >= self.V:
                    raise IndexError(tok)
                o[p] = self.step_c(r, &n, tok, &matched)
                p += 1
            o[p] = self.step_c(r, &n, self.eos, &matched)
            p += 1
        return out

