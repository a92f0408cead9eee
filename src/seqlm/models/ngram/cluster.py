"""Estimation on a cluster: the stages of ``external.py`` as tasks of Dask distributed (``--cluster local:N`` or
``--cluster tcp://HOST:PORT``), the same model bit for bit.

Every task reads its inputs from, and writes its outputs to, the scratch folder (``--temp-dir``: storage every
worker mounts at the same path); what comes back to the client is small (sizes, first and last keys, the counts
of counts, a text block's distinct types).  The kernels are the single-process path's own (``chunk_ngrams``,
``merge_entries``, ``order_step``, ``pack``); only the partitioning differs, and it cannot change a number:

1. **Text**: the file is cut at line ends into blocks; a task per block tokenizes it (``tokenize_block``) and
   writes its token hashes and line lengths, returning its distinct types.  The client merges the types into
   the vocabulary (the one global table) and writes hash -> id; a task per block writes its id stream.
2. **Counting**, order by order: a task per block (the chunk) sorts its k-grams (``chunk_ngrams``) and writes
   them split by key range into one piece per bucket; bucket bounds come from the counts of the order below
   (about as many text positions in each), cut at context starts so that no context spans two buckets.  A task per bucket merges its pieces
   (``merge_entries``): the bucket is the order's sorted n-grams over a range of keys, and its suffix ranks are
   split by the buckets of the order below (the shuffle of continuation counts, Kneser-Ney only).  A task per
   block then writes the rank of the k-gram ending at each position, for the next order.
3. **Adjusted counts**, order by order, a task per bucket: continuation counts from the pieces the order above
   sent it, the starts-with-``<s>`` flags from the order below; each returns its counts of counts, and the
   client computes the discounts (the small global reduce) and passes them on.
4. **Estimation**, order by order, a task per bucket (a run of whole contexts, ``order_step``), reading p of
   the order below where its suffixes point, and writing its columns in place into the model folder's column
   files (each bucket's place among the kept n-grams is known from stage 3); then one task packs the trie.  The
   client writes the folder's vocabulary and config.

A task writes each file under a temporary name and renames it, and removes nothing it read, so a task that a
dead worker left half done is simply run again (the engine reschedules it: ``distributed.scheduler.
allowed-failures`` times, then the run fails with one line and no model).  Files of a stage are removed by the
client once the stage is done.  The engine (the Dask client, the memory budget) and the scratch files are in
cluster_engine.py.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.ngram.cluster_engine import Engine, Meter, fault, read_counted, remove_scratch, save, scratch
from seqlm.models.ngram.external_count import COLUMNS, SHARE, chunk_ngrams, merge_entries
from seqlm.models.ngram.smoothing import (
    Tables,
    counts_of_counts,
    order_discounts,
    order_step,
    safe_log,
    unigram_probs,
)
from seqlm.text.bulk import TypeTable, pad_lines, tokenize_block
from seqlm.text.corpora import open_text
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab

log = logging.getLogger(__name__)

_BYTES_PER_POSITION = 120  # a block in a task: ids, ranks, keys, the sort and its copies, inverse, ends
_BYTES_PER_NGRAM = 200  # a bucket in a task: the merge's rows and copies, or estimation's columns and temporaries
_MAX_BUCKETS = 4096


class Segmented:
    """An array of an order held as one file per bucket (``name{k}-{b}``), read by global index."""

    def __init__(self, work: Path, name: str, k: int, starts, dtype):
        self.work, self.name, self.k, self.dtype = work, name, k, np.dtype(dtype)
        self.starts = np.asarray(starts, dtype=np.int64)  # (buckets + 1,): where each bucket begins, then the size

    def _file(self, b: int) -> Path:
        return scratch(self.work, self.name, self.k, b)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Elements ``lo .. hi``."""
        out = []
        b = int(np.searchsorted(self.starts, lo, side="right")) - 1
        while lo < hi:
            s, e = int(self.starts[b]), int(self.starts[b + 1])
            if e > lo:
                out.append(read_counted(self._file(b), self.dtype, lo - s, min(hi, e) - lo))
                lo = min(hi, e)
            b += 1
        return np.concatenate(out) if out else np.zeros(0, self.dtype)

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """Elements at ``idx`` (any order), each bucket's file mapped once."""
        out = np.empty(len(idx), dtype=self.dtype)
        seg = np.searchsorted(self.starts, idx, side="right") - 1
        order = np.argsort(seg, kind="stable")
        cuts = np.searchsorted(seg[order], np.arange(len(self.starts)))
        for b in range(len(self.starts) - 1):
            sel = order[cuts[b]:cuts[b + 1]]
            if len(sel):
                mm = np.memmap(self._file(b), dtype=self.dtype, mode="r")
                out[sel] = mm[idx[sel] - self.starts[b]]
                Meter.read += len(sel) * self.dtype.itemsize
                del mm
        return out

    def count_before(self, at: int, prefix: np.ndarray) -> int:
        """For a bool array: how many are true before ``at`` (``prefix``: the trues before each bucket)."""
        b = int(np.searchsorted(self.starts, at, side="right")) - 1
        b = min(b, len(self.starts) - 2)
        return int(prefix[b]) + int(self.read(int(self.starts[b]), at).sum())


# -- 1. text -------------------------------------------------------------------------------------------
def line_cuts(path: Path, block: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of whole lines, about ``block`` bytes each."""
    size = path.stat().st_size
    cuts = [0]
    with open_text(path) as f:
        pos = block
        while pos < size:
            f.seek(pos)
            while True:
                data = f.read(1 << 16)
                nl = data.find(b"\n")
                if nl >= 0 or not data:
                    break
                pos += len(data)
            if nl < 0:
                break
            cuts.append(pos + nl + 1)
            pos = cuts[-1] + block
    if size > cuts[-1]:
        cuts.append(size)
    return list(zip(cuts[:-1], cuts[1:]))


def _read_block(i: int, start: int, end: int, *, path: str, tokenizer: Tokenizer, work: Path):
    fault(work, "read", i)
    with open_text(Path(path)) as f:
        f.seek(start)
        data = f.read(end - start)
    Meter.read += len(data)
    hashes, per_line, text_of = tokenize_block(data, path, start, tokenizer)
    hashes = hashes.view(np.int64)
    save(scratch(work, "hashes", i), hashes)
    save(scratch(work, "lines", i), per_line.astype(np.int64))
    u, first, c = np.unique(hashes, return_index=True, return_counts=True)
    return u, c, [text_of(j) for j in first.tolist()], len(per_line)


def _ids_block(i: int, *, work: Path):
    fault(work, "ids", i)
    lengths = read_counted(scratch(work, "lines", i), np.int64)
    h = read_counted(scratch(work, "hashes", i), np.int64)
    if not len(lengths):
        save(scratch(work, "ids", i), np.zeros(0, np.int32))
        return 0
    hashes = read_counted(work / "type-hashes.bin", np.int64)
    ids = read_counted(work / "type-ids.bin", np.int32)[np.searchsorted(hashes, h)]
    save(scratch(work, "ids", i), pad_lines(ids, lengths))
    return len(ids) + 2 * len(lengths)


def read_text(engine: Engine, path: Path, work: Path, tokenizer: Tokenizer, block: int, min_count: int,
              max_size: int | None, vocab: Vocab | None):
    """Stage 1: the vocabulary, each block's id stream (``ids{i}``), the blocks' sizes in positions, the
    unigram counts (from the type table: every token is one of its types) and the token and line counts."""
    blocks = line_cuts(path, block)
    types, lines = TypeTable(), 0
    for u, c, words, n in engine.map(_read_block, range(len(blocks)), *zip(*blocks), path=str(path),
                                     tokenizer=tokenizer, work=work):
        lines += n
        if len(u):
            types.add(u, c, np.arange(len(u)), words.__getitem__)
    if not lines:
        raise SeqlmError(f"{path} is empty (no non-blank line): give a file with text")
    if vocab is None:
        vocab = Vocab.from_counts(dict(zip(types.words, types.counts.tolist())), tokenizer, min_count, max_size)
    word_ids = np.array([vocab.text_stoi.get(w, UNK_ID) for w in types.words], dtype=np.int32)
    order = np.argsort(types.hashes)
    save(work / "type-hashes.bin", types.hashes[order])
    save(work / "type-ids.bin", word_ids[order])
    sizes = engine.map(_ids_block, range(len(blocks)), work=work)
    remove_scratch(work, "hashes", "lines")
    uni = np.bincount(word_ids, weights=types.counts, minlength=len(vocab)).astype(np.int64)
    uni[EOS_ID] = lines
    return vocab, sizes, uni, int(types.counts.sum()), lines


# -- 2. counting ---------------------------------------------------------------------------------------
def _count_block(ci: int, *, work: Path, k: int, V: int, need_ranks: bool, bounds: np.ndarray):
    fault(work, f"count{k}", ci)
    ids = read_counted(scratch(work, "ids", ci), np.int32)
    ranks = ids if k == 2 else read_counted(scratch(work, f"ranks{k - 1}-", ci), np.int32)
    uk, counts, suffix, inverse, end = chunk_ngrams(ids, ranks, k, V, need_ranks)
    cut = np.concatenate([[0], np.searchsorted(uk, bounds), [len(uk)]])
    sizes = []
    for b in range(len(bounds) + 1):
        lo, hi = int(cut[b]), int(cut[b + 1])
        if hi > lo:
            save(scratch(work, f"piece{k}-", ci, b), np.stack([uk[lo:hi], counts[lo:hi], suffix[lo:hi]], axis=1))
        sizes.append(hi - lo)
    if need_ranks:
        save(scratch(work, f"inverse{k}-", ci), inverse)
        save(scratch(work, f"ends{k}-", ci), end.astype(np.int32))
    return sizes


def bounds(cum: np.ndarray, ranks: np.ndarray, buckets: int, V: int) -> np.ndarray:
    """Bucket bounds (keys) of the order above from the cumulative counts ``cum`` of the contexts ``ranks``
    (sorted): about as many text positions fall in each bucket (so its merge's rows fit a task's share of the
    budget), and every bound is the first key of a context, so that no context spans two buckets."""
    if not len(cum):
        return np.zeros(buckets - 1, np.int64)
    at = np.searchsorted(cum, cum[-1] * np.arange(1, buckets) / buckets)
    return ranks[np.minimum(at, len(ranks) - 1)].astype(np.int64) * V


def _merge_bucket(b: int, blocks: list[int], *, work: Path, k: int, need_ranks: bool, below):
    fault(work, f"merge{k}", b)
    parts = [read_counted(scratch(work, f"piece{k}-", ci, b), np.int64).reshape(-1, 3) for ci in blocks]
    e = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    keys, counts, suffix, group = merge_entries(e, need_ranks)
    save(scratch(work, "keys", k, b), keys)
    save(scratch(work, "counts", k, b), counts)
    save(scratch(work, "suffix", k, b), suffix)
    if need_ranks:
        save(scratch(work, "group", k, b), group)
    if below is not None:  # Kneser-Ney: the suffix ranks, to the buckets of the order below that hold them
        s = np.sort(suffix)
        cut = np.searchsorted(s, below)
        for t in range(len(below) - 1):
            if cut[t + 1] > cut[t]:
                save(scratch(work, f"cont{k - 1}-", t, b), (s[cut[t]:cut[t + 1]] - below[t]).astype(np.int32))
    cum = np.cumsum(counts)  # a sample of the cumulative counts, for the bounds of the order above
    at = np.unique(np.searchsorted(cum, np.linspace(0, cum[-1], 65)[1:])) if len(cum) else np.zeros(0, np.int64)
    return len(keys), (int(keys[-1]) if len(keys) else -1), at, cum[at]


def _block_ranks(ci: int, n: int, pieces, *, work: Path, k: int, starts):
    fault(work, f"ranks{k}", ci)
    m = [read_counted(scratch(work, "group", k, b), np.int64, at, size) + starts[b] for b, at, size in pieces]
    m = np.concatenate(m).astype(np.int32) if m else np.zeros(0, np.int32)
    r = np.full(n, -1, dtype=np.int32)
    r[read_counted(scratch(work, f"ends{k}-", ci), np.int32)] = m[read_counted(scratch(work, f"inverse{k}-", ci), np.int32)]
    save(scratch(work, f"ranks{k}-", ci), r)


class Order:
    """One order's n-grams as bucket files: where each bucket begins, and each bucket's last context."""

    def __init__(self, k: int, sizes: list[int], last_keys: list[int], V: int):
        self.k, self.sizes = k, sizes
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.size = int(self.starts[-1])
        self.last_ctx = [key // V for key in last_keys]

    def nonempty(self) -> list[int]:
        return [b for b, n in enumerate(self.sizes) if n]


def count(engine: Engine, work: Path, sizes: list[int], order: int, V: int, kn: bool, uni: np.ndarray,
          lines: int) -> list[Order]:
    """Stage 2: the sorted n-grams of orders 2..n as bucket files, and (Kneser-Ney) the continuation pieces."""
    blocks = [i for i, n in enumerate(sizes) if n]
    positions = sum(sizes)
    need = -(-positions * _BYTES_PER_NGRAM // max(1, int(engine.budget * SHARE)))  # buckets the budget needs
    buckets = int(min(_MAX_BUCKETS, max(need, min(4 * engine.workers, positions >> 16), 1)))
    orders, below = [], np.array([0, V], dtype=np.int64)
    context = uni.astype(np.float64)  # how often each word is a bigram's context: the counts, <s> once a line
    context[BOS_ID] = lines
    cum, ranks = np.cumsum(context), np.arange(V)
    for k in range(2, order + 1):
        need_ranks = k < order
        per_block = engine.map(_count_block, blocks, work=work, k=k, V=V, need_ranks=need_ranks,
                               bounds=bounds(cum, ranks, buckets, V))  # [block][bucket] sizes
        holders = [[blocks[j] for j in range(len(blocks)) if per_block[j][b]] for b in range(buckets)]
        merged = engine.map(_merge_bucket, range(buckets), holders, work=work, k=k, need_ranks=need_ranks,
                            below=below if kn else None)
        o = Order(k, [m[0] for m in merged], [m[1] for m in merged], V)
        if o.size >= np.iinfo(np.int32).max:
            raise SeqlmError(f"more than 2^31 distinct {k}-grams: lower the order or prune")
        base = np.concatenate([[0], np.cumsum([m[3][-1] if len(m[3]) else 0 for m in merged])])
        ranks = np.concatenate([o.starts[b] + m[2] for b, m in enumerate(merged)]).astype(np.int64)
        cum = np.concatenate([base[b] + m[3] for b, m in enumerate(merged)]).astype(np.float64)
        remove_scratch(work, f"piece{k}-")
        if need_ranks:
            at = np.zeros(buckets, dtype=np.int64)
            pieces = []
            for j in range(len(blocks)):
                pieces.append([(b, int(at[b]), n) for b, n in enumerate(per_block[j]) if n])
                at += per_block[j]
            engine.map(_block_ranks, blocks, [sizes[i] for i in blocks], pieces, work=work, k=k, starts=o.starts)
            remove_scratch(work, f"group{k}-", f"inverse{k}-", f"ends{k}-")
        if k > 2:
            remove_scratch(work, f"ranks{k - 1}-")
        orders.append(o)
        below = o.starts
    remove_scratch(work, "ranks", "ids")
    return orders


# -- 3. adjusted counts ------------------------------------------------------------------------------------
def _unigram_continuations(_i: int, *, work: Path, V: int, sources: int) -> np.ndarray:
    cont = np.zeros(V, dtype=np.int64)
    for src in range(sources):
        f = scratch(work, "cont1-", 0, src)
        if f.exists():
            cont += np.bincount(read_counted(f, np.int32), minlength=V)
    return cont


def _adjust(b: int, *, work: Path, k: int, V: int, continuations: int, below: Segmented | None, prune_k: int):
    fault(work, f"adjust{k}", b)
    keys = read_counted(scratch(work, "keys", k, b), np.int64)
    raw = read_counted(scratch(work, "counts", k, b), np.int64)
    ctx = keys // V
    if k == 2:
        sb = ctx == BOS_ID
    else:  # the context's flag (contexts are sorted: one read of the range they span)
        sb = below.read(int(ctx[0]), int(ctx[-1]) + 1)[ctx - ctx[0]] if len(keys) else np.zeros(0, bool)
    a = raw
    if continuations:  # Kneser-Ney below the highest order: N1+(. g) from the pieces the order above sent
        cont = np.zeros(len(keys), dtype=np.int64)
        for src in range(continuations):
            f = scratch(work, f"cont{k}-", b, src)
            if f.exists():
                cont += np.bincount(read_counted(f, np.int32), minlength=len(keys))
        a = np.where(sb, raw, cont)
    save(scratch(work, "adjusted", k, b), a)
    save(scratch(work, "bos", k, b), sb)
    return counts_of_counts(a), int((raw > prune_k).sum())


# -- 4. estimation --------------------------------------------------------------------------------------
def _estimate_bucket(b: int, c0: int, c1: int, at: int, *, work: Path, columns: dict, k: int, V: int,
                     smoothing: str, d, prune_k: int, kval: float, lower: Segmented, kept_below: Segmented | None,
                     kept_prefix, last: bool) -> int:
    """A bucket's estimate, its columns written in place into the model folder's column files: its kept n-grams
    from ``at``, the backoff weights of its contexts' kept n-grams of the order below from where they begin."""
    fault(work, f"estimate{k}", b)
    keys = read_counted(scratch(work, "keys", k, b), np.int64)
    raw = read_counted(scratch(work, "counts", k, b), np.int64)
    a = read_counted(scratch(work, "adjusted", k, b), np.int64)
    suffix = read_counted(scratch(work, "suffix", k, b), np.int64)
    p, bow, kept = order_step(smoothing, raw, a, keys // V - c0, c1 - c0, lower.gather(suffix), d, prune_k, kval,
                              V - 1)
    kk = keys[kept]
    if kept_below is None:
        kp, bow_at = np.ones(c1 - c0, dtype=bool), c0
    else:  # pruning below: contexts are renumbered among the kept n-grams of the order below
        kp, bow_at = kept_below.read(c0, c1), kept_below.count_before(c0, kept_prefix)
        rank = bow_at + np.cumsum(kp) - 1
        kk = rank[kk // V - c0] * V + kk % V
    _write_at(columns, f"keys{k}", at, kk)
    _write_at(columns, f"logprob{k}", at, safe_log(p[kept]))
    _write_at(columns, f"logbow{k - 1}", bow_at, safe_log(bow[kp]))
    if not last:
        save(scratch(work, "p", k, b), p)
        save(scratch(work, "kept", k, b), kept)
    return int(kept.sum())


def _write_at(columns: dict, name: str, at: int, a: np.ndarray) -> None:
    """Elements ``at``... of a column file (``columns``: name -> (path, where its data begins)); rewriting them is
    harmless, so a task run again after a dead worker writes the same bytes."""
    path, start = columns[name]
    with open(path, "r+b") as f:
        f.seek(start + at * a.dtype.itemsize)
        f.write(np.ascontiguousarray(a).tobytes())
    Meter.written += a.nbytes


def column_files(folder: Path, kept_n: list[int]) -> dict:
    """The empty column files of every order (keys, ln p, ln backoff: .npy of their final sizes, zeros until
    written): name -> (path, where the data begins)."""
    folder.mkdir(exist_ok=True)
    out = {}
    for k, n in enumerate(kept_n, start=1):
        for name, dtype in (("keys", np.int64), ("logprob", np.float64), ("logbow", np.float64)):
            path = folder / f"{name}{k}.npy"
            with open(path, "wb") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                         "fortran_order": False, "shape": (n,)})
                start = f.tell()
                f.truncate(start + n * 8)
            out[f"{name}{k}"] = (path, start)
    return out


def _pack(_i: int, *, work: Path, out: Path, V: int, kept_n: list[int], quantize, unseen: str, info: dict, entropy,
          buckets: list[int]):
    """Entropy pruning if asked, and the trie of the model folder's columns."""
    from seqlm.models.ngram.model import TRIE
    from seqlm.models.ngram.trie import pack

    fault(work, "pack", 0)
    N = len(kept_n)
    cols = out / COLUMNS
    shutil.rmtree(out / TRIE, ignore_errors=True)  # what a dead worker left
    columns = [[np.load(cols / f"{name}{k}.npy", mmap_mode="r") for k in range(1, N + 1)]
               for name in ("keys", "logprob", "logbow")]
    sizes = list(kept_n)
    if entropy is not None:
        from seqlm.models.ngram.prune import entropy_prune

        threshold, max_ngrams, prune = entropy
        counts = [read_counted(work / "unigrams.bin", np.int64)] + [np.concatenate([read_counted(scratch(work, "counts", k, b), np.int64) for b in range(buckets[k - 2])])
                          for k in range(2, N)]
        pruned = entropy_prune(Tables(V, *columns, unseen, info), threshold, max_ngrams, counts, prune)
        columns, info, sizes = [pruned.keys, pruned.logprob, pruned.logbow], pruned.info, pruned.sizes()
    trie = pack(V, *columns, quantize=quantize, folder=out / TRIE)
    del columns
    shutil.rmtree(cols)
    return trie.layout, info, sizes


def _contexts(o: Order, n_ctx: int) -> tuple[list[int], list[int], list[int]]:
    """The nonempty buckets of ``o`` and the contexts each gives backoff weights to: from the one after the
    previous bucket's last context (so contexts without continuations get theirs too) to its own last."""
    bs = o.nonempty()
    c0, c1, prev = [], [], 0
    for i, b in enumerate(bs):
        end = n_ctx if i == len(bs) - 1 else o.last_ctx[b] + 1
        c0.append(prev)
        c1.append(end)
        prev = end
    return bs, c0, c1


def estimate(path: Path, out: Path, work: Path, spec: str, *, order: int, smoothing: str, k: float,
             prune: list[int], tokenizer: Tokenizer, min_count: int, max_size: int | None, vocab: Vocab | None,
             memory, quantize, prune_entropy, max_ngrams):
    """The whole estimate on the cluster ``spec``, the trie written into ``out``: (vocab, trie layout,
    estimation info, n-gram sizes, tokens, lines, a record of how it ran)."""
    t0 = time.perf_counter()
    with Engine(spec, memory) as engine:
        started = time.perf_counter() - t0
        engine.check_storage(work, out)
        per_byte = 24 if tokenizer.level == "word" else 160
        block = int(min(4 << 20, max(1 << 12, engine.budget * SHARE // per_byte)))  # the budget's, at most 4 MB,
        block = min(block, max(1 << 20, Path(path).stat().st_size // (4 * engine.workers)))  # 4 per worker
        vocab, sizes, uni, tokens, lines = read_text(engine, Path(path), work, tokenizer, block, min_count,
                                                     max_size, vocab)
        V = len(vocab)
        kn = smoothing in ("mkn", "ikn")
        t1 = time.perf_counter()
        orders = count(engine, work, sizes, order, V, kn, uni, lines)
        t2 = time.perf_counter()
        # 3. adjusted counts and discounts
        coc = []
        if kn:
            a1 = uni.copy() if order == 1 else engine.map(
                _unigram_continuations, [0], work=work, V=V, sources=len(orders[0].sizes))[0]
            a1[BOS_ID] = 0
            coc.append(counts_of_counts(a1))
        kept_n, kept_at = [V], [None]  # n-grams kept per order, and where each bucket's begin among them
        below = None
        for j, o in enumerate(orders):
            above = orders[j + 1] if j + 1 < len(orders) else None
            res = engine.map(_adjust, range(len(o.sizes)), work=work, k=o.k, V=V, below=below, prune_k=prune[j + 1],
                             continuations=len(above.sizes) if (kn and above is not None) else 0)
            coc.append(np.sum([c for c, _ in res], axis=0) if res else np.zeros(6, np.int64))
            kept_n.append(sum(n for _, n in res))
            kept_at.append(np.concatenate([[0], np.cumsum([n for _, n in res])]).astype(np.int64))
            below = Segmented(work, "bos", o.k, o.starts, bool)
        remove_scratch(work, "cont", "bos")
        if not kn:
            coc = [None] * order
        discounts, info = order_discounts(smoothing, coc)
        if smoothing == "add-k":
            info["k"] = k
        # 4. estimation, order by order
        lower = unigram_probs(smoothing, a1 if kn else uni, V, discounts[0], k)
        lp = safe_log(lower)
        lp[BOS_ID] = -np.inf
        save(scratch(work, "p", 1, 0), lower)
        columns = column_files(out / COLUMNS, kept_n)
        _write_at(columns, "keys1", 0, np.arange(V, dtype=np.int64))
        _write_at(columns, "logprob1", 0, lp)
        lower_seg, kept_below, kept_prefix = Segmented(work, "p", 1, [0, V], np.float64), None, None
        for o in orders:
            bs, c0, c1 = _contexts(o, int(lower_seg.starts[-1]))
            last = o.k == order
            kept = engine.map(_estimate_bucket, bs, c0, c1, [int(kept_at[o.k - 1][b]) for b in bs], work=work,
                              columns=columns, k=o.k, V=V, smoothing=smoothing, d=discounts[o.k - 1],
                              prune_k=prune[o.k - 1], kval=k, lower=lower_seg, kept_below=kept_below,
                              kept_prefix=kept_prefix, last=last)
            remove_scratch(work, f"p{o.k - 1}-", f"kept{o.k - 1}-", f"adjusted{o.k}-", f"suffix{o.k}-", f"keys{o.k}-")
            lower_seg = Segmented(work, "p", o.k, o.starts, np.float64)
            per_bucket = np.zeros(len(o.sizes), dtype=np.int64)
            per_bucket[bs] = kept
            all_kept = sum(kept) == o.size
            kept_below = None if all_kept else Segmented(work, "kept", o.k, o.starts, bool)
            kept_prefix = np.concatenate([[0], np.cumsum(per_bucket)])
        entropy = (prune_entropy, max_ngrams, prune) if (prune_entropy is not None or max_ngrams is not None) else None
        if entropy:  # histories are weighed by their counts
            save(work / "unigrams.bin", uni)
        layout, info, kept_n = engine.map(
            _pack, [0], work=work, out=out, V=V, kept_n=kept_n, quantize=quantize,
            unseen="uniform" if smoothing == "add-k" else "backoff", info=info, entropy=entropy,
            buckets=[len(o.sizes) for o in orders])[0]
        t3 = time.perf_counter()
        record = {"spec": spec, "workers": engine.workers, "memory_bytes_per_worker": engine.budget,
                  "blocks": len(sizes), "buckets": [len(o.sizes) for o in orders],
                  "seconds": {"text": round(t1 - t0, 3), "count": round(t2 - t1, 3), "estimate": round(t3 - t2, 3)},
                  "worker_peak_rss_mb": engine.peak_rss_mb(),
                  "stages": {n: {k: round(v, 3) if isinstance(v, float) else v for k, v in st.items()}
                             for n, st in engine.stages.items()}}
        record["seconds"]["start"] = round(started, 3)  # the engine (local:N: its worker processes)
        record["seconds"]["client"] = round(t3 - t0 - started - sum(st["wall_s"] for st in engine.stages.values()), 3)
    log.info("%d-gram %s on %s: %s n-grams (read %.2fs, count %.2fs, estimate %.2fs; %d blocks)", order, smoothing,
             spec, "/".join(map(str, kept_n)), t1 - t0, t2 - t1, t3 - t2, len(sizes))
    return vocab, layout, info, kept_n, tokens, lines, record
