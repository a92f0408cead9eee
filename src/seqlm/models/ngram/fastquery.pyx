# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled query path of an n-gram model: NGramLM.full_step in C over the model's trie (trie.py), and
whole sentences scored without a Python object per word.

The same arithmetic as the Python reference (``model.NGramLM.full_step`` over ``trie.Trie``), tested equal
to it: records are read field by field as unaligned 64-bit words, a word is searched for in its context's
run of children, the matched n-gram is the longest stored one, the backoff weights of every longer stored
context are added, and the context is kept only as far as it can extend.  Built by the package's install
(Cython); where it is not built, the Python reference answers (slower, with one warning).
"""

from libc.math cimport INFINITY, exp, isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcpy

import os

import numpy as np

DEF MAX_ORDER = 32
DEF SCAN = 8  # runs this short are scanned, longer ones binary-searched (interpolation measured slower: the
# ids of frequent words, which most runs hold, are small)
DEF PROBE_RUN = 32  # runs longer than this are searched by the hash index where there is one: trie.INDEX_RUN
DEF PART_BYTES = 1 << 16  # lines are scored in threads in parts of at least this many bytes (about 12k words:
# a millisecond of scoring, against tens of microseconds to hand a part to a thread)
DEF PREFETCH_LINES = 4  # a run of children up to this many cache lines is fetched whole before it is searched
cdef uint64_t MULT = 0x9E3779B97F4A7C15  # io/hashindex.py's
cdef uint64_t SEED = 0x243F6A8885A308D3  # a word hash's start (any odd constant)

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
    uint64_t irun  # the index holds the records of the runs longer than this (0: every record)
    int ibits
    uint64_t rbits
    int wbits, pbits, bbits, cbits, blog
    int poff, boff, coff
    int pmode, bmode  # 0: float32 without its sign (ln p <= 0), 1: float32, 2: code into the table; bow 3: none


cdef inline bint probes(const Order* o, uint64_t run) noexcept nogil:
    """Whether a run of ``run`` records of order ``o`` is searched by its hash index: where the order has one
    and holds this run (all runs, or those longer than ``irun``), and the run is longer than ``PROBE_RUN`` (a
    shorter run is binary-searched faster than the index's two reads one after the other: measured)."""
    return o.index != NULL and run > (o.irun if o.irun > PROBE_RUN else PROBE_RUN)


cdef inline uint64_t bits_at(const uint8_t* data, uint64_t pos, int width) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, data + (pos >> 3), 8)
    return (w >> (pos & 7)) & ((<uint64_t>1 << width) - 1)


cdef inline double value(uint64_t code, int mode, const float* table) noexcept nogil:
    cdef uint32_t u = <uint32_t>code
    cdef float f
    if mode == 2:
        return table[code]
    memcpy(&f, &u, 4)
    return -f if mode == 0 else f


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    char* PyBytes_AS_STRING(object data)
    Py_ssize_t PyBytes_GET_SIZE(object data)


cdef inline const char* utf8(object text, Py_ssize_t* size) except NULL:
    """The UTF-8 bytes of a str (for ASCII text, its own buffer: nothing is copied) or of bytes."""
    if isinstance(text, str):
        return PyUnicode_AsUTF8AndSize(text, size)
    if isinstance(text, bytes):
        size[0] = PyBytes_GET_SIZE(text)
        return PyBytes_AS_STRING(text)
    raise TypeError(f"a sentence is a str, not {type(text).__name__}")


cdef inline uint64_t hash_bytes(const char* p, Py_ssize_t n) noexcept nogil:
    """A 64-bit hash of ``n`` bytes, eight at a time (multiply-xorshift)."""
    cdef uint64_t h = SEED ^ (<uint64_t>n * MULT), w
    while n >= 8:
        memcpy(&w, p, 8)
        h = (h ^ w) * MULT
        h ^= h >> 29
        p += 8
        n -= 8
    if n > 0:
        w = 0
        memcpy(&w, p, n)
        h = (h ^ w) * MULT
        h ^= h >> 29
    return (h ^ (h >> 32)) * MULT


cdef struct Entry:
    uint64_t hash
    int64_t id  # -1: an empty slot


cdef class Reader:
    """How lines of text become word ids in C, as KenLM reads them: the words split at the bytes of
    ``blanks`` and looked up by a 64-bit hash of their UTF-8 bytes in an open-addressing table of the
    vocabulary.  As in KenLM, a word's hash stands for the word: the vocabulary's hashes are distinct (tested
    when the table is made, else ValueError), and an unknown word shares one with a known word with
    probability 2^-64 times the vocabulary's size (about 1e-14 for 200k words).  ``scale``: what the
    kenlm-style calls multiply ln p by (1/ln 10 for log10)."""

    cdef Entry* table
    cdef object memory
    cdef uint64_t mask
    cdef int shift
    cdef uint8_t blank[256]
    cdef readonly int64_t unknown
    cdef readonly double scale

    def __init__(self, dict stoi, bytes blanks, double scale=1.0, int64_t unknown=0):
        """``stoi``: word -> id (words that are not valid UTF-8 are left out: no text that is reaches them
        here); ``unknown``: the id of a word not in it."""
        cdef int bits = 4
        cdef uint64_t h, slot
        cdef const char* p
        cdef Py_ssize_t n
        while (<uint64_t>1 << bits) < 2 * len(stoi) + 16:  # load factor at most one half
            bits += 1
        self.memory = np.empty((1 << bits) * sizeof(Entry), dtype=np.uint8)
        cdef uint8_t[::1] mem = self.memory
        self.table = <Entry*>&mem[0]
        self.mask, self.shift = (<uint64_t>1 << bits) - 1, 64 - bits
        for slot in range(self.mask + 1):
            self.table[slot].id = -1
        self.unknown, self.scale = unknown, scale
        for slot in range(256):
            self.blank[slot] = 0
        for b in blanks:
            self.blank[b] = 1
        for word, i in stoi.items():
            try:
                data = word.encode("utf-8")
            except UnicodeEncodeError:
                continue
            p, n = data, len(data)
            h = hash_bytes(p, n)
            slot = h >> self.shift
            while self.table[slot].id >= 0:
                if self.table[slot].hash == h:
                    raise ValueError(f"two words share a 64-bit hash ({word!r})")
                slot = (slot + 1) & self.mask
            self.table[slot].hash, self.table[slot].id = h, i

    cdef inline int64_t find(self, const char* p, Py_ssize_t n) noexcept nogil:
        """The id of the word in ``p[:n]``, or ``self.unknown``."""
        return self.find_hash(hash_bytes(p, n))

    cdef inline void fetch(self, uint64_t h) noexcept nogil:
        """Start fetching the table slot of hash ``h`` (:meth:`find_hash` soon after finds it in cache)."""
        SEQLM_PREFETCH(&self.table[h >> self.shift])

    cdef inline int64_t find_hash(self, uint64_t h) noexcept nogil:
        """The id of the word of hash ``h``, or ``self.unknown``."""
        cdef uint64_t slot = h >> self.shift
        while self.table[slot].id >= 0:
            if self.table[slot].hash == h:
                return self.table[slot].id
            slot = (slot + 1) & self.mask
        return self.unknown

    cdef inline bint next_word(self, const char* s, Py_ssize_t size, Py_ssize_t* i, Py_ssize_t* j) noexcept nogil:
        """The next word of ``s[:size]`` from ``i[0]``: ``s[i[0]:j[0]]`` (True), or none is left (False)."""
        cdef Py_ssize_t a = i[0], b
        while a < size and self.blank[<uint8_t>s[a]]:
            a += 1
        if a == size:
            return False
        b = a
        while b < size and not self.blank[<uint8_t>s[b]]:
            b += 1
        i[0], j[0] = a, b
        return True

    def ids(self, text):
        """The ids of the words of ``text`` (str or UTF-8 bytes): for tests and inspection."""
        cdef Py_ssize_t size, i = 0, j
        cdef const char* s = utf8(text, &size)
        out = []
        while self.next_word(s, size, &i, &j):
            out.append(self.find(s + i, j - i))
            i = j
        return out


cdef class State:
    """The kenlm module's ``State`` in C (seqlm.kenlm's where this module is built): a query's context as the
    ranks of its records, kept only as far as a longer n-gram can still match, so two states that predict
    the same are equal.  Compared (by length, then ranks), hashed and copied as decoders use it."""

    cdef int n
    cdef int64_t r[MAX_ORDER]

    def __init__(self):
        self.n = 0

    @property
    def ranks(self):
        """The context's record ranks, one per order from the last word's unigram up (a tuple)."""
        return tuple([self.r[j] for j in range(self.n)])

    @ranks.setter
    def ranks(self, tuple ranks):
        if len(ranks) > MAX_ORDER:
            raise ValueError(f"a state holds at most {MAX_ORDER} ranks")
        for j in range(len(ranks)):
            self.r[j] = ranks[j]
        self.n = len(ranks)

    cdef int compare(self, State other) noexcept:
        cdef int j
        if self.n != other.n:
            return -1 if self.n < other.n else 1
        for j in range(self.n):
            if self.r[j] != other.r[j]:
                return -1 if self.r[j] < other.r[j] else 1
        return 0

    def __richcmp__(self, other, int op):
        if not isinstance(other, State):
            if op == 2:
                return False
            if op == 3:
                return True
            return NotImplemented
        cdef int c = self.compare(<State>other)
        return (c < 0, c <= 0, c == 0, c != 0, c > 0, c >= 0)[op]

    def __hash__(self):
        cdef uint64_t h = SEED ^ <uint64_t>self.n
        cdef int j
        for j in range(self.n):
            h = (h ^ <uint64_t>self.r[j]) * MULT
            h ^= h >> 29
        return <Py_ssize_t>(h >> 2)

    def __copy__(self):
        cdef State out = State.__new__(State)
        out.n = self.n
        memcpy(out.r, self.r, self.n * sizeof(int64_t))
        return out

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __reduce__(self):
        return _state, (self.ranks,)

    def __repr__(self):
        return f"State(length={self.n})"


def _state(tuple ranks):
    """A :class:`State` of ``ranks`` (unpickling)."""
    cdef State out = State()
    out.ranks = ranks
    return out


cdef struct Part:
    Py_ssize_t first, last  # its lines
    int64_t* ids  # room for its longest line's word ids
    double* out  # its tokens' ln p from 0 (or NULL)
    uint8_t* oov  # and whether each is unknown
    Py_ssize_t count, unknown  # the tokens and unknown words it scored
    # a block of text (:func:`block_sums`): its bytes, the room its longest line needs so far, and its sums
    const char* begin
    const char* end
    Py_ssize_t room
    bint failed  # no memory for a line
    double logp, known  # ln p of all tokens, and of those in the vocabulary
    Py_ssize_t lines, words, nbytes  # non-blank lines; words as str.split() makes them, plus one a line; bytes


cdef struct Text:  # text written in C (seqlm score --per token), in a buffer grown as it fills
    char* buf
    Py_ssize_t pos, cap
    bint failed  # no memory to grow it


cdef inline bint text_room(Text* t, Py_ssize_t n) noexcept nogil:
    """Whether ``t`` has (now) room for ``n`` more bytes."""
    cdef char* grown
    cdef Py_ssize_t cap
    if t.pos + n <= t.cap:
        return True
    cap = max(2 * t.cap, t.pos + n, <Py_ssize_t>1 << 16)
    grown = <char*>realloc(t.buf, cap)
    if grown == NULL:
        t.failed = True
        return False
    t.buf, t.cap = grown, cap
    return True


cdef inline void text_put(Text* t, const char* s, Py_ssize_t n) noexcept nogil:
    if text_room(t, n):
        memcpy(t.buf + t.pos, s, n)
        t.pos += n


cdef inline void text_number(Text* t, double x) noexcept nogil:
    """``x`` as Python's ``f"{x:.4f}"`` writes it: C's correctly rounded ``%.4f`` (``inf``, ``-inf`` alike), and
    ``nan`` without a sign."""
    if text_room(t, 400):  # the longest double to four decimals: 309 digits, a sign, a point and four
        t.pos += snprintf(t.buf + t.pos, 400, "%.4f", x) if x == x else snprintf(t.buf + t.pos, 400, "nan")


cdef uint8_t PY_SPACE[256]  # the ASCII bytes str.split() and str.strip() take for whitespace
for _b in (0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c, 0x1c, 0x1d, 0x1e, 0x1f):  # " \t\n\r\v\f" and \x1c-\x1f
    PY_SPACE[_b] = 1


cdef void list_line(Reader rd, Text* t, double total, const char* head, Py_ssize_t hsize, const char* s,
                    Py_ssize_t size, const double* out, const uint8_t* oov) noexcept nogil:
    """One line of ``seqlm score --per token`` (cli/evaluate.score_lines' format): its total ln p and the line
    as shown (``head``), then each word of ``s`` (the line as read) with its ln p and ``  (OOV)`` where
    unknown, and ``</s>``; ``out``/``oov``: its tokens' values."""
    cdef Py_ssize_t i = 0, j, at = 0
    text_number(t, total)
    text_put(t, "\t", 1)
    text_put(t, head, hsize)
    text_put(t, "\n", 1)
    while rd.next_word(s, size, &i, &j):
        text_put(t, "\t", 1)
        text_number(t, out[at])
        text_put(t, "\t", 1)
        text_put(t, s + i, j - i)
        if oov[at]:
            text_put(t, "  (OOV)\n", 8)
        else:
            text_put(t, "\n", 1)
        at += 1
        i = j
    text_put(t, "\t", 1)
    text_number(t, out[at])
    text_put(t, "\t</s>\n", 6)


cdef class Job:
    """Lines of text to be scored without the GIL, in parts of about equal bytes, one per thread: each line's
    UTF-8 (the lines held, so their buffers stay put) and what scoring writes: each part's tokens (where
    ``tokens``) and each line's total, tokens and unknown words (where ``per_line``)."""

    cdef list texts
    cdef const char** s
    cdef Py_ssize_t* size
    cdef Py_ssize_t n
    cdef double* totals
    cdef Py_ssize_t* counts
    cdef Py_ssize_t* unknowns
    cdef Part* parts
    cdef readonly int nparts
    cdef list values, flags  # the parts' token buffers (bytearrays: returned without a copy)
    cdef bint block  # a block of text (block_sums), not a list of lines
    # a listing (Querier.token_listing): each line as shown (held, their UTF-8) and each part's text
    cdef list shown
    cdef const char** heads
    cdef Py_ssize_t* hsizes
    cdef Text* text

    def __dealloc__(self):
        cdef int k
        if self.parts != NULL:
            for k in range(self.nparts):
                free(self.parts[k].ids)
                if self.block:  # the room it grew itself
                    free(self.parts[k].out)
                    free(self.parts[k].oov)
        if self.text != NULL:
            for k in range(self.nparts):
                free(self.text[k].buf)
        free(self.text)
        free(self.heads)
        free(self.hsizes)
        free(self.parts)
        free(self.s)
        free(self.size)
        free(self.totals)
        free(self.counts)
        free(self.unknowns)

    def __init__(self, list texts, int threads, bint tokens, bint per_line):
        """``texts``: a list no other code holds (its items' buffers are read without the GIL)."""
        cdef Py_ssize_t i, n = len(texts), total = 0, longest, bound, line = 0, done = 0
        cdef int k, nparts
        self.texts, self.n, self.values, self.flags = texts, n, [], []
        self.s = <const char**>malloc(max(n, 1) * sizeof(char*))
        self.size = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
        if self.s == NULL or self.size == NULL:
            raise MemoryError()
        for i in range(n):
            self.s[i] = utf8(texts[i], &self.size[i])
            total += self.size[i]
        if per_line:
            self.totals = <double*>malloc(max(n, 1) * sizeof(double))
            self.counts = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
            self.unknowns = <Py_ssize_t*>malloc(max(n, 1) * sizeof(Py_ssize_t))
            if self.totals == NULL or self.counts == NULL or self.unknowns == NULL:
                raise MemoryError()
        nparts = <int>min(<Py_ssize_t>max(threads, 1), max(total // PART_BYTES, 1), max(n, 1))
        self.parts = <Part*>calloc(nparts, sizeof(Part))
        if self.parts == NULL:
            raise MemoryError()
        self.nparts = nparts
        for k in range(nparts):  # part k ends where the lines' bytes pass (k + 1) / nparts of the total
            self.parts[k].first = line
            longest = bound = 0
            while line < n and (k == nparts - 1 or done < total * (k + 1) // nparts):
                longest = max(longest, self.size[line])
                bound += self.size[line] // 2 + 2  # words are separated: at most this many tokens
                done += self.size[line]
                line += 1
            self.parts[k].last = line
            self.parts[k].ids = <int64_t*>malloc((longest // 2 + 1) * sizeof(int64_t))
            if self.parts[k].ids == NULL:
                raise MemoryError()
            if tokens:
                self.values.append(bytearray(8 * bound))
                self.flags.append(bytearray(bound))
                self.parts[k].out = <double*><char*>self.values[k]
                self.parts[k].oov = <uint8_t*><char*>self.flags[k]

    def logp(self):
        """(ln p, oov) of every token, the parts' in order (two arrays)."""
        if self.nparts == 1:
            return (np.frombuffer(self.values[0], dtype=np.float64, count=self.parts[0].count),
                    np.frombuffer(self.flags[0], dtype=np.uint8, count=self.parts[0].count))
        return (np.concatenate([np.frombuffer(self.values[k], dtype=np.float64, count=self.parts[k].count)
                                for k in range(self.nparts)]),
                np.concatenate([np.frombuffer(self.flags[k], dtype=np.uint8, count=self.parts[k].count)
                                for k in range(self.nparts)]))


PART = PART_BYTES  # (for tests)


def block_job(bytes data, int threads):
    """A :class:`Job` over the lines of ``data``, ASCII text cut at ``\\n`` (a ``\\r`` before it dropped, blank
    lines skipped, as corpora.decode_lines reads a file), in parts of about equal bytes that end at a line's
    end; its lines are found by the threads that score them (:meth:`Querier.block_sums`)."""
    cdef Job job = Job.__new__(Job)
    cdef const char* s = PyBytes_AS_STRING(data)
    cdef const char* cut
    cdef Py_ssize_t total = PyBytes_GET_SIZE(data), at = 0, target
    cdef int k, nparts = <int>min(<Py_ssize_t>max(threads, 1), max(total // PART_BYTES, 1))
    job.texts, job.values, job.flags, job.block = [data], [], [], True
    job.parts = <Part*>calloc(nparts, sizeof(Part))
    if job.parts == NULL:
        raise MemoryError()
    job.nparts = nparts
    for k in range(nparts):
        job.parts[k].begin = s + at
        target = total if k == nparts - 1 else max(at, total * (k + 1) // nparts)
        if target < total:  # on to the end of the line there
            cut = <const char*>memchr(s + target, 10, total - target)
            target = total if cut == NULL else cut - s + 1
        at = target
        job.parts[k].end = s + at
    return job


_pool = None
_pool_pid = 0


def _workers(int n):
    """A pool of at least ``n`` threads, made once per process (a pool made before a fork has no threads in
    the child)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid() or _pool._max_workers < n:
        from concurrent.futures import ThreadPoolExecutor

        _pool, _pool_pid = ThreadPoolExecutor(n, thread_name_prefix="seqlm-score"), os.getpid()
    return _pool


cdef class Querier:
    """Pointers into one model's trie (kept alive by ``self.arrays``) and the query loops over it."""

    cdef int order
    cdef int64_t V
    cdef int64_t bos, eos
    cdef Order o[MAX_ORDER]
    cdef list arrays
    cdef bint lookahead
    cdef readonly int threads
    cdef int64_t* ids  # a line's word ids (line_c), grown as lines need
    cdef Py_ssize_t capacity

    def __dealloc__(self):
        free(self.ids)

    cdef int64_t* id_buffer(self, Py_ssize_t n) except NULL:
        """Room for ``n`` word ids."""
        cdef int64_t* grown
        if n > self.capacity:
            grown = <int64_t*>realloc(self.ids, max(n, 2 * self.capacity) * sizeof(int64_t))
            if grown == NULL:
                raise MemoryError()
            self.ids, self.capacity = grown, max(n, 2 * self.capacity)
        return self.ids

    def __init__(self, trie, int64_t bos, int64_t eos, bint lookahead=False, int threads=1):
        """The arrays of a :class:`seqlm.models.ngram.trie.Trie`; ``bos``/``eos``: the ids of ``<s>`` and
        ``</s>`` (an unknown word is id 0, ``<unk>``); ``lookahead``: fetch the memory of the words ahead
        while one is scored (:meth:`ahead`; pays where the trie does not fit in cache); ``threads``: how many
        score a long list of lines at once (:class:`Job`)."""
        self.lookahead, self.threads = lookahead, max(threads, 1)
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
            self.o[j].irun = lay.get("index_run", 0)
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
        cdef bint hashed[MAX_ORDER]
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
            hashed[k] = probes(o, end[k] - lo[k])
            if hashed[k]:
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
            if hashed[j]:
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
        while k > 0 and not (self.bow(k - 1, new[k - 1]) != 0
                             or self.begin(k - 1, new[k - 1] + 1) > self.begin(k - 1, new[k - 1])):
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

    cdef double state_step(self, Reader rd, bint unk_context, State in_state, object word, State out_state,
                           int* matched, bint* oov) except? -1:
        """:meth:`step` from ``in_state`` by ``word`` (str or UTF-8 bytes, looked up by ``rd``) into
        ``out_state`` (which may be ``in_state``); after an unknown word the state is ``(unknown,)`` where
        ``unk_context`` (KenLM's state after the ``<unk>`` it makes for a file without one)."""
        cdef Py_ssize_t size
        cdef const char* s = utf8(word, &size)
        cdef int64_t wid = rd.find(s, size)
        cdef int64_t r[MAX_ORDER]
        cdef int n = in_state.n
        memcpy(r, in_state.r, n * sizeof(int64_t))
        cdef double lp = self.step_c(r, &n, wid, matched)
        oov[0] = wid == rd.unknown
        if oov[0] and unk_context:
            r[0], n = rd.unknown, 1
        memcpy(out_state.r, r, n * sizeof(int64_t))
        out_state.n = n
        return lp

    def base_score(self, Reader rd, bint unk_context, State in_state, word, State out_state):
        """log p (ln times ``rd.scale``) of ``word`` after ``in_state``; ``out_state`` becomes the state after
        it (:meth:`state_step`): the kenlm module's ``BaseScore``."""
        cdef int matched
        cdef bint oov
        return self.state_step(rd, unk_context, in_state, word, out_state, &matched, &oov) * rd.scale

    def begin_sentence_write(self, State state):
        """``state`` becomes the context ``<s>``: the kenlm module's ``BeginSentenceWrite``."""
        state.n = self.begin_sentence(state.r)

    @staticmethod
    def null_context_write(State state):
        """``state`` becomes the empty context: the kenlm module's ``NullContextWrite``."""
        state.n = 0

    def base_full_score(self, Reader rd, bint unk_context, State in_state, word, State out_state):
        """(log p, matched length, oov) of :meth:`base_score`: the kenlm module's ``BaseFullScore``."""
        cdef int matched
        cdef bint oov
        cdef double lp = self.state_step(rd, unk_context, in_state, word, out_state, &matched, &oov)
        return lp * rd.scale, matched, oov

    cdef inline void ahead(self, int64_t a, int64_t b, bint slot) noexcept nogil:
        """Start fetching what the step to ``b`` after ``a`` will read, a word or two ahead: ``slot``: the
        record of ``b`` and the hash-index slot of the bigram (a, b) (two words ahead); else the bigram's
        record that slot names, or the run of ``a``'s children where order 2 has no index (one ahead).
        Every word of a line is known before it is scored, so the next words' memory is fetched while this
        one is scored."""
        cdef Order* o = &self.o[1]
        cdef uint64_t t, first, last
        if slot:
            SEQLM_PREFETCH(self.o[0].data + ((<uint64_t>b * self.o[0].rbits) >> 3))
            if o.index != NULL:
                SEQLM_PREFETCH(o.index + ((self.home(1, a, b) * o.ibits) >> 3))
            return
        first, last = self.begin(0, a), self.begin(0, a + 1)
        if probes(o, last - first):
            t = bits_at(o.index, self.home(1, a, b) * o.ibits, o.ibits)
            if t:
                SEQLM_PREFETCH(o.data + (((t - 1) * o.rbits) >> 3))
            return
        first = (first * o.rbits) >> 3
        last = (last * o.rbits + 7) >> 3
        if last > first + 64 * PREFETCH_LINES:
            last = first + 64 * PREFETCH_LINES
        while first < last:
            SEQLM_PREFETCH(o.data + first)
            first += 64

    cdef double ids_c(self, const int64_t* ids, Py_ssize_t nw, bint bos, bint eos, double* out, int* lengths,
                      Py_ssize_t* count) noexcept nogil:
        """Total ln p of the words ``ids[:nw]`` [and ``</s>``] [from ``<s>``]; each word's ln p and matched
        length into ``out``/``lengths`` where not NULL; the number of values added to ``count``."""
        cdef int64_t r[MAX_ORDER]
        cdef int n = 0, matched
        cdef Py_ssize_t t, p = count[0], steps = nw + (1 if eos else 0)
        cdef int64_t w, w1, w2
        cdef double lp, total = 0
        if bos:
            n = self.begin_sentence(r)
        cdef bint look = self.lookahead and self.order > 1
        if look and steps > 1:
            self.ahead(ids[0], ids[1] if nw > 1 else self.eos, True)
        for t in range(steps):
            w = ids[t] if t < nw else self.eos
            if look and t + 1 < steps:
                w1 = ids[t + 1] if t + 1 < nw else self.eos
                self.ahead(w, w1, False)
                if t + 2 < steps:
                    w2 = ids[t + 2] if t + 2 < nw else self.eos
                    self.ahead(w1, w2, True)
            lp = self.step_c(r, &n, w, &matched)
            total += lp
            if out != NULL:
                out[p] = lp
            if lengths != NULL:
                lengths[p] = matched
            p += 1
        count[0] = p
        return total

    cdef double line_c(self, Reader rd, const char* s, Py_ssize_t size, bint bos, bint eos,
                       double* out, uint8_t* oov, int* lengths, Py_ssize_t* count,
                       Py_ssize_t* unknown) except? -1:
        """:meth:`line_ids` with this querier's buffer of word ids (grown as the line needs)."""
        return self.line_ids(rd, s, size, bos, eos, self.id_buffer(size // 2 + 1), out, oov, lengths, count,
                             unknown)

    cdef double line_ids(self, Reader rd, const char* s, Py_ssize_t size, bint bos, bint eos, int64_t* ids,
                         double* out, uint8_t* oov, int* lengths, Py_ssize_t* count,
                         Py_ssize_t* unknown) noexcept nogil:
        """Total ln p of the words of one line of text [and ``</s>``] [from ``<s>``]; each word's ln p, oov
        flag and matched length into ``out``/``oov``/``lengths`` where not NULL; the number of values and
        of unknown words added to ``count`` and ``unknown``; ``ids``: room for ``size // 2 + 1`` word ids.
        The words are hashed and their table slots fetched all at once before they are looked up, so the
        lookups overlap."""
        cdef Py_ssize_t i = 0, j, k, nw = 0
        cdef uint64_t h
        while rd.next_word(s, size, &i, &j):
            h = hash_bytes(s + i, j - i)
            rd.fetch(h)
            ids[nw] = <int64_t>h
            nw += 1
            i = j
        for k in range(nw):
            ids[k] = rd.find_hash(<uint64_t>ids[k])
            if ids[k] == rd.unknown:
                unknown[0] += 1
                if oov != NULL:
                    oov[count[0] + k] = 1
        return self.ids_c(ids, nw, bos, eos, out, lengths, count)

    def score_text(self, Reader rd, sentence, bint bos=True, bint eos=True):
        """Total log p (ln, times ``rd.scale``) of the words of ``sentence`` (str or UTF-8 bytes, split at
        ``rd``'s blanks) [and ``</s>``] [from ``<s>``]: the kenlm module's ``score``."""
        cdef Py_ssize_t size, count = 0, unknown = 0
        cdef const char* s = utf8(sentence, &size)
        return self.line_c(rd, s, size, bos, eos, NULL, NULL, NULL, &count, &unknown) * rd.scale

    def full_scores_text(self, Reader rd, sentence, bint bos=True, bint eos=True):
        """``[(log p, matched length, oov)]`` for each word of ``sentence`` [and ``</s>``] (log p: ln times
        ``rd.scale``): the kenlm module's ``full_scores``."""
        cdef Py_ssize_t size, count = 0, unknown = 0, k
        cdef const char* s = utf8(sentence, &size)
        cdef Py_ssize_t most = size // 2 + 2  # words are separated: at most this many values
        cdef bytearray values = bytearray(8 * most), flags = bytearray(most), matched = bytearray(4 * most)
        cdef double* out = <double*><char*>values
        cdef uint8_t* oov = <uint8_t*><char*>flags
        cdef int* lengths = <int*><char*>matched
        self.line_c(rd, s, size, bos, eos, out, oov, lengths, &count, &unknown)
        return [(out[k] * rd.scale, lengths[k], oov[k] == 1) for k in range(count)]

    cdef void run_part(self, Reader rd, Job job, int k) noexcept nogil:
        """Score part ``k`` of ``job``: every line from ``<s>`` with its ``</s>``."""
        cdef Part* p = &job.parts[k]
        cdef Py_ssize_t line, count, unknown
        cdef double total
        for line in range(p.first, p.last):
            count, unknown = p.count, p.unknown
            total = self.line_ids(rd, job.s[line], job.size[line], True, True, p.ids, p.out, p.oov, NULL,
                                  &p.count, &p.unknown)
            if job.totals != NULL:
                job.totals[line] = total
                job.counts[line] = p.count - count
                job.unknowns[line] = p.unknown - unknown
            if job.text != NULL:
                list_line(rd, &job.text[k], total, job.heads[line], job.hsizes[line], job.s[line], job.size[line],
                          p.out + count, p.oov + count)

    cdef void run_block(self, Reader rd, Job job, int k) noexcept nogil:
        """Score part ``k`` of a :func:`block_job`: each non-blank line from ``<s>`` with its ``</s>``, into
        the part's sums."""
        cdef Part* p = &job.parts[k]
        cdef const char* s = p.begin
        cdef const char* e
        cdef Py_ssize_t n, i, words, count, unknown, room
        cdef bint inword
        cdef double lp
        while s < p.end:
            e = <const char*>memchr(s, 10, p.end - s)
            if e == NULL:
                e = p.end
            n = e - s
            if n > 0 and s[n - 1] == 13:
                n -= 1
            words, inword = 0, False
            for i in range(n):
                if PY_SPACE[<uint8_t>s[i]]:
                    inword = False
                elif not inword:
                    inword, words = True, words + 1
            if words:
                room = n // 2 + 2
                if room > p.room:  # grown as lines need (freed with the job)
                    free(p.ids)
                    free(p.out)
                    free(p.oov)
                    p.ids = <int64_t*>malloc(room * sizeof(int64_t))
                    p.out = <double*>malloc(room * sizeof(double))
                    p.oov = <uint8_t*>calloc(room, 1)
                    p.room = room
                    if p.ids == NULL or p.out == NULL or p.oov == NULL:
                        p.failed, p.room = True, 0
                        return
                count = unknown = 0
                self.line_ids(rd, s, n, True, True, p.ids, p.out, p.oov, NULL, &count, &unknown)
                for i in range(count):
                    lp = p.out[i]
                    p.logp += lp
                    if p.oov[i]:
                        p.oov[i] = 0
                    else:
                        p.known += lp
                p.count += count
                p.unknown += unknown
                p.lines += 1
                p.words += words + 1
                p.nbytes += n + 1
            s = e + 1

    def _run_part(self, Reader rd, Job job, int k):
        with nogil:
            if job.block:
                self.run_block(rd, job, k)
            else:
                self.run_part(rd, job, k)

    cdef Job score_job(self, Reader rd, list texts, bint tokens, bint per_line):
        """``texts`` scored as a :class:`Job` (:meth:`run_job`)."""
        return self.run_job(rd, Job(texts, self.threads, tokens, per_line))

    cdef Job run_job(self, Reader rd, Job job):
        """``job``'s parts scored in ``self.threads`` threads at most (this one among them), without the GIL."""
        cdef int k
        cdef list pending = []
        if job.nparts > 1:
            pool = _workers(job.nparts - 1)
            pending = [pool.submit(self._run_part, rd, job, k) for k in range(1, job.nparts)]
        self._run_part(rd, job, 0)
        for f in pending:
            f.result()
        return job

    def block_sums(self, Reader rd, bytes data):
        """The sums of scoring every non-blank line of ``data`` (ASCII text, :func:`block_job`) from ``<s>``
        with its ``</s>``: a dict of ``log_prob`` (ln), ``known_log_prob`` (the tokens in the vocabulary's),
        ``tokens``, ``oov``, ``lines``, ``words`` (as str.split() makes them, plus one a line) and ``bytes``
        (a newline counted after every line): evaluate.Totals's."""
        cdef Job job = self.run_job(rd, block_job(data, self.threads))
        cdef int k
        cdef Part* p
        out = {"log_prob": 0.0, "known_log_prob": 0.0, "tokens": 0, "oov": 0, "lines": 0, "words": 0, "bytes": 0}
        for k in range(job.nparts):
            p = &job.parts[k]
            if p.failed:
                raise MemoryError()
            out["log_prob"] += p.logp
            out["known_log_prob"] += p.known
            out["tokens"] += p.count
            out["oov"] += p.unknown
            out["lines"] += p.lines
            out["words"] += p.words
            out["bytes"] += p.nbytes
        return out

    def token_listing(self, Reader rd, list texts, list lines):
        """``seqlm score --per token``'s text (cli/evaluate.score_lines' format, made here: a Python line per
        token costs several times the scoring): for each of ``lines`` its total ln p and the line, then for each
        word its ln p, the word and ``  (OOV)`` where unknown, and ``</s>``'s, numbers to four decimals; each
        part written by the thread that scores it.  ``texts``: the lines as the reader reads them (lowercased
        copies, or ``lines`` itself)."""
        cdef Job job = Job(list(texts), self.threads, True, True)
        cdef Py_ssize_t i
        cdef int k
        job.shown = list(lines)
        if len(job.shown) != job.n:
            raise ValueError("as many lines shown as read")
        job.heads = <const char**>malloc(max(job.n, 1) * sizeof(char*))
        job.hsizes = <Py_ssize_t*>malloc(max(job.n, 1) * sizeof(Py_ssize_t))
        job.text = <Text*>calloc(job.nparts, sizeof(Text))
        if job.heads == NULL or job.hsizes == NULL or job.text == NULL:
            raise MemoryError()
        for i in range(job.n):
            job.heads[i] = utf8(job.shown[i], &job.hsizes[i])
        self.run_job(rd, job)
        for k in range(job.nparts):
            if job.text[k].failed:
                raise MemoryError()
        return "".join([PyUnicode_DecodeUTF8(job.text[k].buf, job.text[k].pos, NULL) for k in range(job.nparts)])

    def text_logp(self, Reader rd, lines):
        """(ln p, oov) of the words of each line of text and its ``</s>``, every line from ``<s>``, all lines
        concatenated (NGramLM.score_text)."""
        return self.score_job(rd, list(lines), True, False).logp()

    def text_totals(self, Reader rd, lines):
        """Each line's total ln p (its words and ``</s>``, from ``<s>``), its count of unknown words and its
        number of scored tokens: three lists (NGramLM.line_totals)."""
        cdef Job job = self.score_job(rd, list(lines), False, True)
        cdef Py_ssize_t i
        return ([job.totals[i] for i in range(job.n)], [job.unknowns[i] for i in range(job.n)],
                [job.counts[i] for i in range(job.n)])

    def line_row(self, Reader rd, str line, tuple keys, object unit):
        """One line's row of :meth:`text_rows`: the call a per-sentence user makes, scored here and its row
        made at once."""
        k_text, k_logp, k_base, k_tokens, k_ppl, k_oov, k_unit = keys
        cdef Py_ssize_t size, count = 0, unknown = 0
        cdef const char* s = utf8(line, &size)
        cdef double total = self.line_c(rd, s, size, True, True, NULL, NULL, NULL, &count, &unknown)
        return {k_text: line, k_logp: total, k_base: "e", k_tokens: count,
                k_ppl: exp(-total / count) if isfinite(total) else INFINITY, k_oov: unknown, k_unit: unit}

    def text_rows(self, Reader rd, list lines, tuple keys, object unit):
        """:meth:`text_totals` as ``seqlm.score``'s row per line, made here (a Python loop making them cost a
        tenth of scoring them): ``keys`` (tasks/score.py's ``ROW_KEYS``) name the text, its total ln p, the log
        base, the scored positions, the perplexity, the unknown words and the unit, in that order."""
        k_text, k_logp, k_base, k_tokens, k_ppl, k_oov, k_unit = keys
        # the lines held as scored (another thread may change the caller's list); one line needs no copy
        cdef list texts = list(lines) if len(lines) > 1 else lines
        cdef list out = [None] * len(texts)
        cdef Py_ssize_t size, count, unknown, i = 0
        cdef const char* s
        cdef double total
        cdef Job job
        if len(texts) == 1:  # one line: nothing made for threads
            out[0] = self.line_row(rd, texts[0], keys, unit)
            return out
        job = self.score_job(rd, texts, False, True)  # in threads where long
        # every row a copy of one made here (a copy of a small dict takes its key table whole: faster than
        # inserting seven keys), its five per-line values then set
        cdef dict row, template = {k_text: None, k_logp: 0.0, k_base: "e", k_tokens: 0, k_ppl: 0.0, k_oov: 0,
                                   k_unit: unit}
        for line in texts:
            total, count, unknown = job.totals[i], job.counts[i], job.unknowns[i]
            row = template.copy()
            row[k_text] = line
            row[k_logp] = total
            row[k_tokens] = count
            row[k_ppl] = exp(-total / count) if isfinite(total) else INFINITY
            row[k_oov] = unknown
            out[i] = row
            i += 1
        return out

    def score_flat(self, const int64_t[::1] ids, const int64_t[::1] lengths):
        """:meth:`score_lines` of lines given as flat ``ids`` and each line's ``lengths`` (NGramLM.score_flat)."""
        cdef Py_ssize_t total = ids.shape[0] + lengths.shape[0], p = 0, i = 0, line
        out = np.empty(total, dtype=np.float64)
        cdef double[::1] o = out
        if sum(lengths) != ids.shape[0]:
            raise ValueError("the lengths do not add up to the ids")
        for line in range(ids.shape[0]):
            if ids[line] < 0 or ids[line] >= self.V:
                raise IndexError(ids[line])
        for line in range(lengths.shape[0]):
            self.ids_c(&ids[i] if lengths[line] else NULL, lengths[line], True, True, &o[0], NULL, &p)
            i += lengths[line]
        return out
