"""Bounded-memory counting (stage 2 of ``external.py``): the n-grams of a tokenized file, order by order,
in chunks of whole lines whose sorted unique keys spill to bucket files by key range and are merged bucket
by bucket.  Output per order: the sorted keys, counts and suffix ranks on disk, and the rank of the k-gram
ending at every position of the text (for the next order).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import scratch_dir
from seqlm.io.runtime import Progress
from seqlm.text.bulk import TokenFile, bounded_map
from seqlm.text.bulk import read_raw as _read
from seqlm.text.vocab import BOS_ID

log = logging.getLogger(__name__)

THREADS = 2
_BYTES_PER_POSITION = 100  # counting: a chunk's ids, ranks, positions, keys, sort permutation, sorted keys, ...
_BYTES_PER_ENTRY = 100  # merging: key, count, suffix, sort permutation, the sorted copies, group numbers
_CHUNK = 1 << 22  # positions per chunk at most (sorts are faster on chunks that stay near the caches)
_MAX_BUCKETS = 256
COLUMNS = "columns"  # where estimation writes its columns in the model folder, before they are packed
SHARE = 0.7  # of the budget, for chunks and buckets (the rest: what is held whole, and Python)


# -- scratch files ----------------------------------------------------------------------------------
class NpyWriter:
    """A ``.npy`` file of a known length, written in pieces."""

    def __init__(self, path: Path, dtype, n: int):
        self.path, self.n, self.dtype, self.done = path, n, np.dtype(dtype), 0
        self.f = open(path, "wb")
        np.lib.format.write_array_header_1_0(self.f, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                      "fortran_order": False, "shape": (n,)})

    def write(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self.f.write(a.tobytes())
        self.done += len(a)

    def close(self) -> None:
        self.f.close()
        if self.done != self.n:
            raise RuntimeError(f"{self.path}: wrote {self.done} of {self.n} elements")


def line_positions(ids: np.ndarray) -> np.ndarray:
    """Each position's index in its line (<s> is 0), for a stream of whole lines."""
    starts = np.flatnonzero(ids == BOS_ID)
    at = np.zeros(len(ids), dtype=np.int64)
    at[starts] = starts
    np.maximum.accumulate(at, out=at)
    return np.arange(len(ids), dtype=np.int64) - at


class Work:
    """The scratch folder: created here (``seqlm-ngram-PID-XXXX``, sweeping those of dead runs), removed at
    the end (only what this run wrote is in it)."""

    def __init__(self, temp_dir: str | Path | None):
        base = Path(temp_dir) if temp_dir else Path(tempfile.gettempdir())
        if not base.is_dir():
            raise SeqlmError(f"--temp-dir {base} is not a folder: create it or choose another")
        try:
            self.path = scratch_dir(base, "seqlm-ngram")
        except OSError as e:
            raise SeqlmError(f"cannot write scratch files in {base} ({e.strerror}): choose a writable --temp-dir") from None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class Order:
    """One order's sorted unique n-grams on disk: keys, raw counts, suffix ranks (int64 each)."""

    def __init__(self, work: Path, k: int):
        self.k = k
        self.keys, self.counts, self.suffix = (work / f"{n}{k}.i64" for n in ("keys", "counts", "suffix"))
        self.size = 0
        self.chunks = self.buckets = 0  # how it was counted, for the record


def _chunks(line_ends: np.ndarray, per_chunk: int) -> list[tuple[int, int]]:
    """(start, end) positions of runs of whole lines of about ``per_chunk`` positions."""
    out, start, i = [], 0, 0
    n = len(line_ends)
    while i < n:
        j = int(np.searchsorted(line_ends, start + per_chunk, side="right"))
        j = max(j, i + 1)
        out.append((start, int(line_ends[j - 1])))
        start, i = int(line_ends[j - 1]), j
    return out


def sort_groups(keys: np.ndarray):
    """A stable sort of ``keys``: the permutation, the sorted keys, whether each starts a run of equal keys,
    and where the runs start."""
    perm = np.argsort(keys, kind="stable")
    sk = keys[perm]
    new = np.empty(len(sk), dtype=bool)
    new[:1] = True
    np.not_equal(sk[1:], sk[:-1], out=new[1:])
    return perm, sk, new, np.flatnonzero(new)


def chunk_ngrams(ids: np.ndarray, ranks: np.ndarray, k: int, V: int, need_ranks: bool):
    """A chunk of whole lines' distinct k-grams: sorted keys, counts, suffix ranks, and (``need_ranks``) each
    position's index among them and the positions that end a k-gram.  ``ranks``: the rank of the (k-1)-gram
    ending at each position (for k = 2, the ids)."""
    end = np.flatnonzero(line_positions(ids) >= k - 1)
    keys = ranks[end - 1].astype(np.int64) * V + ids[end]
    suffix = ranks[end]
    perm, sk, new, first = sort_groups(keys)
    counts = np.diff(np.append(first, len(sk)))
    inverse = None
    if need_ranks:
        inverse = np.empty(len(sk), dtype=np.int32)
        inverse[perm] = np.cumsum(new, dtype=np.int64) - 1
    return sk[first], counts, suffix[perm[first]].astype(np.int64), inverse, end


def merge_entries(e: np.ndarray, need_ranks: bool):
    """A bucket's (key, count, suffix) rows, runs of sorted keys one per chunk in chunk order, reduced to its
    sorted distinct keys, their summed counts and suffixes, and (``need_ranks``) each row's index among them."""
    perm, sk, new, first = sort_groups(e[:, 0])  # a stable sort merges the runs
    counts = np.add.reduceat(e[perm, 1], first) if len(first) else np.zeros(0, np.int64)
    group = None
    if need_ranks:
        group = np.empty(len(sk), dtype=np.int64)
        group[perm] = np.cumsum(new) - 1
    return sk[first], counts, e[perm[first], 2], group


def _count_order(k: int, tf: TokenFile, chunks, prev_ranks: Path | None, work: Path, V: int,
                 budget: int, need_ranks: bool, pool: ThreadPoolExecutor, bar) -> tuple[Order, Path | None]:
    """Order k's unique n-grams (and, if ``need_ranks``, the rank of the k-gram ending at each position)."""
    out = Order(work, k)

    def local(ci):
        s, e = chunks[ci]
        ids = _read(tf.ids, np.int32, s, e - s)
        return chunk_ngrams(ids, ids if prev_ranks is None else _read(prev_ranks, np.int32, s, e - s), k, V,
                            need_ranks)

    n_ends = sum(max(0, e - s) for s, e in chunks)
    buckets = max(1, -(-n_ends * _BYTES_PER_ENTRY * (THREADS + 1) // max(int(budget * SHARE), 1)))
    buckets = min(buckets, _MAX_BUCKETS)  # open files; beyond it a bucket exceeds the budget (warned at estimation)
    out.buckets = buckets
    bounds = None
    bucket_files = [work / f"bucket{k}-{b}.i64" for b in range(buckets)]
    handles = [open(f, "wb") for f in bucket_files]
    pieces = [[] for _ in range(buckets)]  # per bucket: (chunk, first local index, entries)
    local_sizes = []
    try:
        for ci, (uk, cnt, sfx, inverse, end) in enumerate(bounded_map(pool, local, range(len(chunks)), THREADS)):
            if bounds is None:
                bounds = uk[(len(uk) * np.arange(1, buckets)) // buckets] if len(uk) else np.zeros(buckets - 1, np.int64)
            cut = np.concatenate([[0], np.searchsorted(uk, bounds), [len(uk)]])
            for b in range(buckets):
                lo, hi = int(cut[b]), int(cut[b + 1])
                if hi > lo:
                    handles[b].write(np.stack([uk[lo:hi], cnt[lo:hi], sfx[lo:hi]], axis=1).tobytes())
                    pieces[b].append((ci, lo, hi - lo))
            local_sizes.append(len(uk))
            bar.update(chunks[ci][1] - chunks[ci][0])
            if need_ranks:
                inverse.tofile(work / f"inverse{ci}.i32")
                end.astype(np.int32).tofile(work / f"ends{ci}.i32")
    finally:
        for h in handles:
            h.close()

    if need_ranks:
        for ci, n in enumerate(local_sizes):
            np.zeros(n, dtype=np.int32).tofile(work / f"map{ci}.i32")

    def merge(b):
        e = _read(bucket_files[b], np.int64).reshape(-1, 3)
        bucket_files[b].unlink()
        return merge_entries(e, need_ranks)

    with open(out.keys, "wb") as fk, open(out.counts, "wb") as fc, open(out.suffix, "wb") as fs:
        for b, (keys, counts, suffix, group) in enumerate(bounded_map(pool, merge, range(buckets), THREADS)):
            if need_ranks:  # the global rank of each chunk's unique keys of this bucket
                at = 0
                for ci, lo, n in pieces[b]:
                    with open(work / f"map{ci}.i32", "r+b") as f:
                        f.seek(lo * 4)
                        f.write((group[at:at + n] + out.size).astype(np.int32).tobytes())
                    at += n
            fk.write(keys.tobytes())
            fc.write(counts.tobytes())
            fs.write(suffix.tobytes())
            out.size += len(keys)
    if out.size >= np.iinfo(np.int32).max:
        raise SeqlmError(f"more than 2^31 distinct {k}-grams: lower the order or prune")
    if not need_ranks:
        return out, None

    ranks_file = work / f"ranks{k}.i32"

    def ranks(ci):
        s, e = chunks[ci]
        r = np.full(e - s, -1, dtype=np.int32)
        m = _read(work / f"map{ci}.i32", np.int32)
        r[_read(work / f"ends{ci}.i32", np.int32)] = m[_read(work / f"inverse{ci}.i32", np.int32)]
        for name in ("map", "ends", "inverse"):
            (work / f"{name}{ci}.i32").unlink()
        return r

    with open(ranks_file, "wb") as f:
        for r in bounded_map(pool, ranks, range(len(chunks)), THREADS):
            f.write(r.tobytes())
    return out, ranks_file


def count_file(tf: TokenFile, order: int, work: Path, budget: int, pool) -> tuple[np.ndarray, list[Order]]:
    """Unigram counts (dense over the vocabulary) and the sorted n-grams of orders 2..n on disk."""
    V = len(tf.vocab)
    per_chunk = max(1 << 12, min(_CHUNK, int(budget * SHARE) // (_BYTES_PER_POSITION * (THREADS + 1))))
    n_chunks = -(-tf.positions // per_chunk)
    chunks = _chunks(tf.line_ends, -(-tf.positions // n_chunks))  # as many, of equal size
    uni = np.zeros(V, dtype=np.int64)
    for s, e in chunks:
        ids = _read(tf.ids, np.int32, s, e - s)
        uni += np.bincount(ids[ids != BOS_ID], minlength=V)
    orders, prev = [], None
    with Progress(tf.positions * (order - 1), "count", unit="tok", delay=1.0) as bar:
        for k in range(2, order + 1):
            t0 = time.perf_counter()
            o, ranks = _count_order(k, tf, chunks, prev, work, V, budget, k < order, pool, bar)
            if prev is not None:
                prev.unlink()
            prev = ranks
            o.chunks = len(chunks)
            orders.append(o)
            log.debug("order %d: %d n-grams counted in %.1fs (%d chunks, %d buckets)", k, o.size,
                     time.perf_counter() - t0, len(chunks), o.buckets)
    if prev is not None:
        prev.unlink()
    return uni, orders

