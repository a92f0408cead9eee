"""How an n-gram model is stored and queried: a trie of bit-packed records, one array per order.

An n-gram of order k is a record in order k's array; the records are sorted by (context, word), so the
n-grams that extend one context are a run.  A record holds, in this order and in as few bits as the
model needs (KenLM's trie, in its own layout):

* ``word``: the last word's id (``ceil(log2 V)`` bits; none for order 1, whose record i is word i);
* ``prob``: ln p as a float32 (31 bits: ln p <= 0, so the sign is implied), or a code of ``q`` bits into
  the order's table of 2^q values (``quantize``);
* ``bow``: ln backoff, a float32 or a q-bit code (code 0 is exactly 0); none for the highest order;
* ``child``: where the n-grams extending this one begin in order k + 1's array, as an offset from the
  base of its block of 2^b records (``base`` array, 64 bits per block; b chosen per order for the
  fewest bits).  The run of record i's children is ``[child(i), child(i + 1))``: orders below the
  highest have one more record, a sentinel that only ends the last run.

A record of order k is found from its context's record by a binary search over the context's run of
children, all in one array: the context's record (read in the step before) gives the run, and the record
found holds ln p, the backoff and its own run.  A hash index (``index{k}.npy``: the record of each key
``context * V + word`` in a table half again as large as the keys, bit-packed, io/hashindex.py's hashing)
holds the records of the runs longer than ``INDEX_RUN`` (the frequent contexts, which queries meet most;
the layout's ``index_run``), a few bits per n-gram: the compiled search probes it for those runs instead of
a binary search; the Python reference always searches.  Field ``f`` of record ``i`` is the ``width(f)``
bits at bit ``i * record_bits + offset(f)``, read as an unaligned 64-bit word (every array ends with 8
bytes of padding).

The arrays are ``trie/order{k}.npy`` (uint8) and ``trie/base{k}.npy`` (uint64) in a model folder,
memory-mapped at load (``trie/centers{k}.npy``: the tables of quantized values); ``config.json`` records
each order's layout.  Packing reads the columns (int64 keys ``context_rank * V + word``, float64 ln p and
ln backoff) a batch at a time, so the columns can be memory-mapped files of any size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io import hashindex

FIELDS = ("word", "prob", "bow", "child")
PAD = 8  # bytes after the last record: every field is read as a 64-bit word
BATCH = 1 << 20  # records packed at a time (a multiple of 8: batches start on a byte)
INDEX_RUN = 32  # the records of the runs longer than this get a hash index (the runs of frequent contexts, which
# queries meet most: a binary search there is several reads one after the other); the compiled search's
# PROBE_RUN (fastquery.pyx), the run from which probing the index beats a binary search (measured)


def bit_length(n: int) -> int:
    return int(n).bit_length()


class Trie:
    """The records of every order (``data[k - 1]``), the child bases and the quantization tables, with
    vectorized reads (index arrays in, NumPy arrays out).  ``layout[k - 1]`` describes order k."""

    def __init__(self, vocab_size: int, layout: list[dict], data: list, base: list, centers: list, index: list):
        self.V = vocab_size
        self.layout = layout
        self.data = data
        self.base = base
        self.centers = centers
        self.index = index
        self.order = len(layout)
        # every byte's 64-bit little-endian word (overlapping views of the data: no copy)
        self._words = [np.ndarray(shape=(max(len(d) - (PAD - 1), 0),), dtype="<u8", buffer=d, strides=(1,))
                       for d in data]

    # -- sizes --------------------------------------------------------------------------------------
    def sizes(self) -> list[int]:
        return [int(lay["n"]) for lay in self.layout]

    def nbytes(self) -> int:
        return sum(int(a.nbytes) for arrays in (self.data, self.base, self.centers, self.index)
                   for a in arrays if a is not None)

    # -- fields of records ----------------------------------------------------------------------------
    def _field(self, k: int, idx: np.ndarray, name: str) -> np.ndarray:
        lay = self.layout[k - 1]
        width = lay[name + "_bits"]
        idx = np.asarray(idx, dtype=np.int64)
        if width == 0:
            return np.zeros(idx.shape, dtype=np.uint64)
        pos = idx.astype(np.uint64) * np.uint64(lay["record_bits"]) + np.uint64(lay[name + "_offset"])
        w = self._words[k - 1][(pos >> np.uint64(3)).astype(np.int64)]
        return (w >> (pos & np.uint64(7))) & np.uint64((1 << width) - 1)

    def word(self, k: int, idx) -> np.ndarray:
        if k == 1:
            return np.asarray(idx, dtype=np.int64)
        return self._field(k, idx, "word").astype(np.int64)

    def prob(self, k: int, idx) -> np.ndarray:
        return self._value(k, idx, "prob")

    def bow(self, k: int, idx) -> np.ndarray:
        if k == self.order:
            return np.zeros(np.shape(idx))
        return self._value(k, idx, "bow")

    def _value(self, k: int, idx, name: str) -> np.ndarray:
        code = self._field(k, idx, name)
        how = self.layout[k - 1][name]
        if how == "q":
            return self.centers[k - 1][0 if name == "prob" else 1][code.astype(np.int64)].astype(np.float64)
        v = code.astype(np.uint32).view(np.float32).astype(np.float64)
        return -v if how == "neg31" else v

    def begin(self, k: int, idx) -> np.ndarray:
        """Where the children of order k's records ``idx`` begin in order k + 1 (``idx`` up to ``n``: the
        sentinel)."""
        idx = np.asarray(idx, dtype=np.int64)
        base = self.base[k - 1][idx >> self.layout[k - 1]["block_log"]]
        return (base + self._field(k, idx, "child")).astype(np.int64)

    def children(self, k: int, idx) -> tuple[np.ndarray, np.ndarray]:
        """The run ``[lo, hi)`` of order k + 1 records extending each of order k's records ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        return self.begin(k, idx), self.begin(k, idx + 1)

    # -- searches -------------------------------------------------------------------------------------
    def find(self, k: int, parents, words) -> tuple[np.ndarray, np.ndarray]:
        """The order-k record of each (context record of order k - 1, word), and whether it is stored
        (where not, the index is any valid one or 0).  A binary search over each context's run, all
        queries at once."""
        parents = np.asarray(parents, dtype=np.int64)
        words = np.asarray(words, dtype=np.int64)
        if k == 1:
            return words.copy(), np.ones(words.shape, dtype=bool)
        lo, end = self.children(k - 1, parents)
        hi = end.copy()
        live = np.flatnonzero(lo < hi)
        while len(live):  # lo: the first record of the run whose word is >= the query's
            mid = (lo[live] + hi[live]) >> 1
            right = self.word(k, mid) < words[live]
            lo[live[right]] = mid[right] + 1
            hi[live[~right]] = mid[~right]
            live = live[lo[live] < hi[live]]
        found = lo < end
        at = np.flatnonzero(found)
        found[at] = self.word(k, lo[at]) == words[at]
        lo[~found] = 0
        return lo, found

    def parents(self, k: int, idx) -> np.ndarray:
        """The context record (order k - 1) of each of order k's records ``idx``: the run holding it."""
        idx = np.asarray(idx, dtype=np.int64)
        if k == 1:
            raise ValueError("order 1 has no context")
        lo = np.zeros(idx.shape, dtype=np.int64)
        hi = np.full(idx.shape, self.layout[k - 2]["n"], dtype=np.int64)
        live = np.flatnonzero(lo < hi)
        while len(live):  # the last context whose run begins at or before the record
            mid = (lo[live] + hi[live] + 1) >> 1
            before = self.begin(k - 1, mid) <= idx[live]
            lo[live[before]] = mid[before]
            hi[live[~before]] = mid[~before] - 1
            live = live[lo[live] < hi[live]]
        return lo

    def keys(self, k: int, start: int, stop: int) -> np.ndarray:
        """The int64 keys ``context_rank * V + word`` of order k's records ``start:stop``."""
        idx = np.arange(start, stop, dtype=np.int64)
        if k == 1:
            return idx
        if not len(idx):
            return idx
        first, last = self.parents(k, np.array([start, stop - 1]))
        begins = self.begin(k - 1, np.arange(first, last + 2))
        ctx = first + np.searchsorted(begins, idx, side="right") - 1
        return ctx * self.V + self.word(k, idx)

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        for k in range(1, self.order + 1):
            np.save(folder / f"order{k}.npy", self.data[k - 1], allow_pickle=False)
            if self.base[k - 1] is not None:
                np.save(folder / f"base{k}.npy", self.base[k - 1], allow_pickle=False)
            if self.centers[k - 1] is not None:
                np.save(folder / f"centers{k}.npy", self.centers[k - 1], allow_pickle=False)
            if self.index[k - 1] is not None:
                np.save(folder / f"index{k}.npy", self.index[k - 1], allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, vocab_size: int, layout, file_bytes: dict) -> "Trie":
        """The arrays of ``folder`` memory-mapped read-only, checked against ``layout`` and the file sizes
        config.json records (headers only: no data is read)."""
        if not isinstance(layout, list) or not all(isinstance(x, dict) for x in layout):
            raise SeqlmError(f"{folder.parent}/config.json has no valid trie layout: retrain the model")
        data, base, centers, index = [], [], [], []
        try:
            for k, lay in enumerate(layout, start=1):
                last = k == len(layout)
                data.append(open_array(folder / f"order{k}.npy", np.uint8, _data_bytes(lay, last), file_bytes))
                base.append(None if last else open_array(folder / f"base{k}.npy", np.uint64, _blocks(lay), file_bytes))
                q = "q" in (lay["prob"], lay.get("bow"))
                centers.append(open_array(folder / f"centers{k}.npy", np.float32, None, file_bytes) if q else None)
                index.append(open_array(folder / f"index{k}.npy", np.uint8, _index_bytes(lay), file_bytes)
                             if lay["index_bits"] else None)
        except KeyError as e:
            raise SeqlmError(f"{folder.parent}/config.json's trie layout lacks {e}: retrain the model") from None
        return cls(vocab_size, layout, data, base, centers, index)


def _data_bytes(lay: dict, last: bool) -> int:
    return (lay["records"] * lay["record_bits"] + 7) // 8 + PAD


def _index_bytes(lay: dict) -> int:
    return (lay["index_size"] * lay["index_bits"] + 7) // 8 + PAD


def _blocks(lay: dict) -> int:
    return ((lay["records"] - 1) >> lay["block_log"]) + 1


def open_array(f: Path, dtype, n: int | None, file_bytes: dict) -> np.ndarray:
    if f.is_file() and f.name in file_bytes and f.stat().st_size != file_bytes[f.name]:
        raise SeqlmError(f"{f} does not have the size recorded in config.json (truncated or modified): "
                         f"copy the model folder again or retrain")
    try:
        a = np.load(f, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise SeqlmError(f"{f} is missing: retrain the model") from None
    except (ValueError, OSError) as e:
        raise SeqlmError(f"{f} is damaged ({e}): retrain the model") from None
    if a.dtype != dtype or (n is not None and (a.ndim != 1 or len(a) != n)):
        raise SeqlmError(f"{f} does not match {f.parent.parent}/config.json: retrain the model")
    return a.view(np.ndarray)  # still the mapped file; plain indexing (np.memmap's is slower)


# -- packing ------------------------------------------------------------------------------------------
def pack(vocab_size: int, keys: list, logprob: list, logbow: list, quantize: int | None = None,
         folder: Path | None = None) -> Trie:
    """The trie of the columns of every order (index 0: order 1; ``keys`` sorted, int64), in memory or,
    with ``folder``, written there as ``.npy`` files and memory-mapped.  ``quantize``: bits of the codes
    of ln p and ln backoff above order 1 (as KenLM's ``build_binary -q -b``), or None for float32."""
    if quantize is not None:
        from seqlm.config import check_quantize  # here: querying a model needs no training configuration

        check_quantize(quantize)
    V, order = vocab_size, len(keys)
    layout, data, base, centers, index = [], [], [], [], []
    if folder is not None:
        folder.mkdir(exist_ok=True)
    begins = None
    for j in range(order):
        runs_below = begins  # where the runs of this order's records begin (the order below's children)
        k, last = j + 1, j == order - 1
        n = len(keys[j])
        lay = {"n": n, "records": n if last else n + 1}
        lay["word_bits"] = 0 if k == 1 else max(1, bit_length(V - 1))
        quant = quantize if k > 1 else None
        # ln p: q-bit codes, or float32 without the sign (every ln p <= 0), or float32
        cent = [None, None]
        if quant:
            cent[0], lay["prob"], lay["prob_bits"] = _centers(logprob[j], quant, False), "q", quant
        else:
            lay["prob"] = "neg31" if _max(logprob[j]) <= 0 else "f32"
            lay["prob_bits"] = 31 if lay["prob"] == "neg31" else 32
        if last:
            lay["bow"], lay["bow_bits"] = "none", 0
        elif quant:
            cent[1], lay["bow"], lay["bow_bits"] = _centers(logbow[j], quant, True), "q", quant
        else:
            lay["bow"], lay["bow_bits"] = "f32", 32
        # where each record's children begin in the order above, and the block size of the child bases
        if last:
            begins, lay["child_bits"], lay["block_log"], bases = None, 0, 0, None
        else:
            begins = _begins(keys[j + 1], n, V)
            lay["block_log"], lay["child_bits"] = _block_size(begins)
            bases = begins[::1 << lay["block_log"]].astype(np.uint64)
        offset = 0
        for f in FIELDS:
            lay[f + "_offset"] = offset
            offset += lay[f + "_bits"]
        lay["record_bits"] = offset
        if lay["child_bits"] > 57 or offset == 0:
            raise SeqlmError(f"order {k} has too many n-grams to pack ({n})")
        nbytes = _data_bytes(lay, last)
        if folder is not None:
            out = np.lib.format.open_memmap(folder / f"order{k}.npy", mode="w+", dtype=np.uint8, shape=(nbytes,))
        else:
            out = np.zeros(nbytes, dtype=np.uint8)
        for s in range(0, lay["records"], BATCH):
            e = min(s + BATCH, lay["records"])
            real = min(e, n)  # records s:real are n-grams; the sentinel (index n) carries only its child
            fields = []
            if lay["word_bits"]:
                fields.append((_pad(np.asarray(keys[j][s:real]) % V, e - s), lay["word_bits"]))
            fields.append((_pad(_encode(np.asarray(logprob[j][s:real]), lay["prob"], cent[0]), e - s),
                           lay["prob_bits"]))
            if lay["bow_bits"]:
                fields.append((_pad(_encode(np.asarray(logbow[j][s:real]), lay["bow"], cent[1], True), e - s),
                               lay["bow_bits"]))
            if lay["child_bits"]:
                idx = np.arange(s, e)
                fields.append(((begins[s:e] - bases[idx >> lay["block_log"]].astype(np.int64)).astype(np.uint64),
                               lay["child_bits"]))
            packed = _pack_bits(fields)
            at = s * lay["record_bits"] // 8
            out[at:at + len(packed)] |= packed  # |=: a batch's last byte may be shared with the next
        if folder is not None:
            out.flush()
            del out
            out = np.load(folder / f"order{k}.npy", mmap_mode="r").view(np.ndarray)
        c = None
        if quant:
            c = np.zeros((2, 1 << quant), dtype=np.float32)
            for row, tab in enumerate(cent):
                if tab is not None:
                    c[row, :len(tab)] = tab
        table = _index(lay, keys[j], n, runs_below)
        layout.append(lay)
        index.append(table)
        data.append(out)
        base.append(bases)
        centers.append(c)
    trie = Trie(V, layout, data, base, centers, index)
    if folder is not None:
        for k in range(1, order + 1):
            for name, arrays in (("base", base), ("centers", centers), ("index", index)):
                if arrays[k - 1] is not None:
                    np.save(folder / f"{name}{k}.npy", arrays[k - 1], allow_pickle=False)
    return trie


def _index(lay: dict, keys, n: int, runs_below) -> np.ndarray | None:
    """The bit-packed hash index of an order's records in runs longer than ``INDEX_RUN``, or None where
    there are none (``lay`` gets its size, bits and ``index_run``; folders of an earlier layout index every
    record of an order, ``index_run`` 0)."""
    lay["index_size"] = lay["index_bits"] = lay["index_run"] = 0
    if runs_below is None or n == 0:
        return None
    runs = np.diff(runs_below)
    long = np.flatnonzero(runs > INDEX_RUN)
    count = int(runs[long].sum())
    if not count:
        return None
    lay["index_run"] = INDEX_RUN
    starts, lengths = runs_below[long].astype(np.int64), runs[long].astype(np.int64)
    first = np.cumsum(lengths) - lengths  # where each run starts among the selected records

    def batches():
        for s in range(0, count, hashindex.BATCH):
            at = np.arange(s, min(s + hashindex.BATCH, count), dtype=np.int64)
            run = np.searchsorted(first, at, side="right") - 1
            positions = starts[run] + (at - first[run])
            yield np.asarray(keys)[positions], positions

    lay["index_size"], lay["index_bits"] = count + count // 2 + 1, bit_length(n)
    slots = hashindex.build_pairs(count, batches(), lay["index_size"])
    table = np.zeros(_index_bytes(lay), dtype=np.uint8)
    for s in range(0, len(slots), BATCH):
        packed = _pack_bits([(slots[s:s + BATCH].astype(np.uint64), lay["index_bits"])])
        at = s * lay["index_bits"] // 8
        table[at:at + len(packed)] = packed
    return table


def _max(a) -> float:
    m = -np.inf
    for s in range(0, len(a), BATCH):
        part = np.asarray(a[s:s + BATCH])
        if np.isnan(part).any():
            raise SeqlmError("the model has NaN probabilities: it is damaged, retrain it")
        m = max(m, float(part.max()))
    return m


def _begins(next_keys, n: int, V: int) -> np.ndarray:
    """Where each of the ``n`` records' children begin among the order above's sorted keys (n + 1 values)."""
    counts = np.zeros(n, dtype=np.int64)
    for s in range(0, len(next_keys), BATCH):
        counts += np.bincount(np.asarray(next_keys[s:s + BATCH]) // V, minlength=n)
    begins = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=begins[1:])
    return begins


def _block_size(begins: np.ndarray) -> tuple[int, int]:
    """(log2 records per base, bits of the offsets) with the fewest bits in all."""
    best = None
    n = len(begins)
    for log in range(2, 17):
        size = 1 << log
        starts = np.arange(0, n, size)
        span = int((begins[np.minimum(starts + size - 1, n - 1)] - begins[starts]).max()) if n else 0
        bits = bit_length(span)
        cost = n * bits + 64 * len(starts)
        if best is None or cost < best[0]:
            best = (cost, log, bits)
    return best[1], best[2]


def _centers(values, bits: int, keep_zero: bool) -> np.ndarray:
    """The table of at most 2^bits values standing for ``values``: equal-count bins of the sorted values,
    each the mean of its bin (KenLM's binning).  With ``keep_zero`` (backoffs), entry 0 is exactly 0: a
    backoff of 1 stays exact, as whether a context extends depends on it.  ln 0 (-inf) keeps an entry of
    its own.  The other entries ascend."""
    v = np.asarray(values, dtype=np.float64)
    if keep_zero:
        v = v[v != 0]
    finite = np.sort(v[np.isfinite(v)])
    head = ([0.0] if keep_zero else []) + ([-np.inf] if len(finite) < len(v) else [])
    n_bins = max((1 << bits) - len(head), 1)
    uniq = np.unique(finite)
    if len(uniq) <= n_bins:
        tab = uniq
    else:
        edges = np.linspace(0, len(finite), n_bins + 1).astype(np.int64)
        sums = np.concatenate([[0.0], np.cumsum(finite)])
        counts = np.diff(edges)
        tab = np.unique((sums[edges[1:]] - sums[edges[:-1]])[counts > 0] / counts[counts > 0])
    return np.concatenate([head, tab]).astype(np.float32)


def _encode(values: np.ndarray, how: str, table=None, keep_zero: bool = False) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if how == "neg31":
        return np.abs(values).astype(np.float32).view(np.uint32).astype(np.uint64)
    if how == "f32":
        return values.astype(np.float32).view(np.uint32).astype(np.uint64)
    # q: the nearest entry of the table's ascending part (after 0 and -inf, which only they map to)
    tab = np.asarray(table, dtype=np.float64)
    lo = int(keep_zero)
    neg_inf = lo < len(tab) and tab[lo] == -np.inf
    lo += int(neg_inf)
    code = np.zeros(len(values), dtype=np.uint64)
    if lo < len(tab):
        code[:] = np.searchsorted((tab[lo:-1] + tab[lo + 1:]) / 2, values) + lo
    if neg_inf:
        code[values == -np.inf] = lo - 1
    if keep_zero:
        code[values == 0] = 0
    return code


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    a = np.asarray(a).astype(np.uint64)
    if len(a) < n:
        a = np.concatenate([a, np.zeros(n - len(a), dtype=np.uint64)])
    return a


def _pack_bits(fields: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Records of the given fields (values, width) laid side by side, as bytes (little-endian bit order).

    Each field is OR-ed into 64-bit words, its low part into the word holding its first bit and the rest
    into the next.  Records closer than 128 bits can share words, so the records are taken in classes
    ``i mod m`` whose members lie at least 128 bits apart: within a class no two writes meet."""
    n = len(fields[0][0])
    rbits = sum(w for _, w in fields)
    words = np.zeros((n * rbits + 63) // 64 + 1, dtype=np.uint64)
    m = -(-128 // rbits)
    offset = 0
    for values, width in fields:
        v = np.asarray(values, dtype=np.uint64) & np.uint64((1 << width) - 1)
        for r in range(min(m, n)):
            pos = np.arange(r, n, m, dtype=np.uint64) * np.uint64(rbits) + np.uint64(offset)
            at = (pos >> np.uint64(6)).astype(np.int64)
            shift = pos & np.uint64(63)
            part = v[r::m]
            words[at] |= part << shift
            spill = np.flatnonzero(shift + np.uint64(width) > 64)
            if len(spill):
                words[at[spill] + 1] |= part[spill] >> (np.uint64(64) - shift[spill])
        offset += width
    return words.view(np.uint8)[:(n * rbits + 7) // 8]
