"""Bounded-memory estimation: a training file of any size -> a model folder, in chunks that spill to disk.

The in-memory path (counts.py + smoothing.py) holds one int64 per training token per order at once;
this one holds a chunk of the text, a bucket of n-grams, and a few arrays over the n-grams of two
adjacent orders, whatever the size of the text.  The result is the in-memory model, bit for bit (same
n-grams, keys, probabilities and backoff weights: the tests compare them under a cap small enough to
spill at every stage).

1. **Text** (text/bulk.py): the vocabulary and the id stream, every line as ``<s> ... </s>`` (int32, on
   disk), cut into chunks of whole lines that fit the memory budget.
2. **Counting** (``external_count.py``), order by order (k = 2..n), as counts.py does it but a chunk at a time.  An n-gram's key
   is ``rank_{k-1}(context) * V + word``; the rank of the (k-1)-gram ending at each position of the text
   is a file from the order below (for k = 2, the ids themselves).  Per chunk, the keys are sorted
   (``argsort``) and reduced to unique keys with counts and suffix ranks, which go to *bucket files*
   split by key range (boundaries from the first chunk's keys, so buckets come out about equal), and
   each position's index among the chunk's unique keys goes to a scratch file.  Each bucket is then read
   whole, sorted and reduced: buckets in key order give the order's sorted n-grams, written to disk, and
   each chunk learns the global rank of its unique keys, from which the rank of the k-gram ending at
   every position is written for the next order.  Chunks and buckets are processed two at a time in
   threads (NumPy's sorts release the GIL).
3. **Adjusted counts and discounts**: Kneser-Ney's continuation counts of order k are a ``bincount`` of
   order k+1's suffix ranks, streamed; the counts of counts of every order give the discounts.
4. **Estimation**, order by order, over runs of whole contexts read from disk (smoothing.order_step, the
   very function the in-memory estimator calls), holding p of the order below for the interpolation;
   the columns (keys, ln p, ln backoff) are written straight into the model folder, then packed a batch
   at a time into the model's trie (trie.py) and removed.

Memory: ``--memory`` (default half the available RAM) sizes the chunks and buckets.  What cannot be
streamed is held whole: p of two adjacent orders (8 bytes per n-gram each) and a bool or two per
n-gram; a warning says when that alone exceeds the budget.
"""

from __future__ import annotations

import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError, explain
from seqlm.io.memory import parse_memory
from seqlm.io.runtime import Progress
from seqlm.models.ngram.external_count import COLUMNS, SHARE, THREADS, NpyWriter, Order, Work, count_file
from seqlm.models.ngram.smoothing import (
    Tables,
    canonical,
    check_k,
    check_prune,
    counts_of_counts,
    order_discounts,
    order_step,
    safe_log,
    unigram_probs,
)
from seqlm.models.ngram.trie import pack
from seqlm.text.bulk import bounded_map, tokenize_file
from seqlm.text.bulk import read_raw as _read
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS_ID, Vocab

log = logging.getLogger(__name__)

_BYTES_PER_TEXT_BYTE = 20  # reading: a block's bytes, whitespace flags, token offsets, hashes, windows
_BYTES_PER_NGRAM = 200  # estimation: a run's keys, counts, adjusted counts, suffixes, p and temporaries



def _cannot_write(what: str, e: OSError, work, out: Path) -> SeqlmError:
    """The one line for a write that failed during estimation or counting: the machine's fix (a full disk, the
    file-size limit) where errors.explain knows it, else the error itself."""
    where = f"scratch files in {work.parent}, output in {out.parent}"
    fix = explain(e)
    if fix:
        return SeqlmError(f"{what} could not write its files ({where}): {fix}")
    return SeqlmError(f"{what} could not write its files ({e.strerror or e}; {where}): free disk space or choose "
                      f"another --temp-dir / --out")

def _runs(o: Order, V: int, size: int):
    """(start, end) of runs of ``o``'s n-grams made of whole contexts, about ``size`` n-grams each."""
    start = 0
    while start < o.size:
        end = min(start + size, o.size)
        while end < o.size:
            ctx = _read(o.keys, np.int64, end - 1, 2) // V
            if ctx[0] != ctx[1]:
                break
            # the run ends inside a context: back up to its first n-gram (or go on, if it is the whole run)
            keys = _read(o.keys, np.int64, start, end - start) // V
            cut = int(np.searchsorted(keys, keys[-1]))
            if cut > 0:
                end = start + cut
                break
            end = min(end + size, o.size)
        yield start, end
        start = end


def estimate_file(path: str | Path, out: Path, *, order: int, smoothing: str = "mkn", k: float = 1.0,
                  prune: list[int] | None = None, tokenizer: Tokenizer | None = None, min_count: int = 1,
                  max_size: int | None = None, vocab: Vocab | None = None, memory: str | int | None = None,
                  temp_dir: str | Path | None = None, config: dict | None = None, prune_entropy: float | None = None,
                  max_ngrams: int | None = None, cluster: str | None = None) -> dict:
    """Estimate an n-gram model from the text file ``path`` within ``memory`` and write its model folder
    into the (existing, empty) folder ``out``.  Returns the model's config (also written).  Entropy pruning
    (``prune_entropy`` / ``max_ngrams``, models/ngram/prune.py) holds the columns of every order in memory.
    ``cluster`` (``local:N``, ``tcp://HOST:PORT``): the same model estimated on Dask (cluster.py); ``memory`` is
    then each worker's budget (``local:N``: the machine's, shared by its workers)."""
    from seqlm.models.ngram.model import write_folder

    smoothing = canonical(smoothing)
    given_prune = list(prune or [])
    prune = check_prune(prune, order)
    check_k(smoothing, k, prune)
    budget = parse_memory(memory)
    tokenizer = tokenizer or (vocab.tokenizer if vocab else Tokenizer())
    entropy = prune_entropy is not None or max_ngrams is not None
    quantize = (config or {}).get("quantize")
    if cluster:
        from seqlm.models.ngram import cluster as engine

        with Work(temp_dir) as work:
            try:
                vocab, layout, info, sizes, tokens, lines, record = engine.estimate(
                    Path(path), out, work, cluster, order=order, smoothing=smoothing, k=k, prune=prune,
                    tokenizer=tokenizer, min_count=min_count, max_size=max_size, vocab=vocab, memory=memory,
                    quantize=quantize, prune_entropy=prune_entropy, max_ngrams=max_ngrams)
            except OSError as e:
                raise _cannot_write("estimation", e, work, out) from None
        how = {"cluster": record}
    else:
        vocab, layout, info, sizes, tokens, lines, how = _estimate_here(
            path, out, order, smoothing, k, prune, tokenizer, min_count, max_size, vocab, budget, temp_dir, quantize,
            prune_entropy, max_ngrams, entropy)
    cfg = {"smoothing": smoothing, "order": order, "prune": given_prune, "train_tokens": tokens, "train_lines": lines}
    if smoothing == "add-k":
        cfg["k"] = k
    if entropy:
        from seqlm.models.ngram.prune import pruned_config

        cfg.update(pruned_config(info, max_ngrams))
    cfg.update(how)  # how it was spilled or spread, for the record
    cfg.update(config or {})
    return write_folder(out, vocab, cfg, layout, "uniform" if smoothing == "add-k" else "backoff", info)


def _estimate_here(path, out: Path, order, smoothing, k, prune, tokenizer, min_count, max_size, vocab, budget,
                   temp_dir, quantize, prune_entropy, max_ngrams, entropy):
    """estimate_file in this process: (vocab, trie layout, info, n-gram sizes, tokens, lines, record)."""
    from seqlm.models.ngram.model import TRIE

    t0 = time.perf_counter()
    with Work(temp_dir) as work, ThreadPoolExecutor(THREADS) as pool:
        try:
            tf = tokenize_file(path, work, tokenizer, min_count, max_size, vocab, pool=pool,
                               block=_text_block(budget, tokenizer))
            V = len(tf.vocab)
            t1 = time.perf_counter()
            uni, orders = count_file(tf, order, work, budget, pool)
            t2 = time.perf_counter()
            tf.ids.unlink()
            info, sizes = _estimate(uni, orders, V, smoothing, k, prune, out, budget, pool, keep_counts=entropy)
            columns = [[np.load(out / COLUMNS / f"{name}{j}.npy", mmap_mode="r") for j in range(1, order + 1)]
                       for name in ("keys", "logprob", "logbow")]
            if entropy:
                from seqlm.models.ngram.prune import entropy_prune

                counts = [uni] + [_read(o.counts, np.int64, 0, o.size) for o in orders[:-1]]
                pruned = entropy_prune(Tables(V, *columns, "uniform" if smoothing == "add-k" else "backoff", info),
                                       prune_entropy, max_ngrams, counts, prune)
                columns, info, sizes = [pruned.keys, pruned.logprob, pruned.logbow], pruned.info, pruned.sizes()
            trie = pack(V, *columns, quantize=quantize, folder=out / TRIE)
            del columns
            shutil.rmtree(out / COLUMNS)
            t3 = time.perf_counter()
        except OSError as e:  # a full disk, mostly: the scratch folder and the model folder are removed
            raise _cannot_write("estimation", e, work, out) from None
    log.info("%d-gram %s: %s n-grams (read %.2fs, count %.2fs, estimate %.2fs; memory budget %s)", order,
             smoothing, "/".join(map(str, sizes)), t1 - t0, t2 - t1, t3 - t2, _human(budget))
    how = {"external": {"memory_bytes": budget, "chunks": orders[0].chunks if orders else 1,
                        "buckets": [o.buckets for o in orders]}}
    return tf.vocab, trie.layout, info, sizes, tf.tokens, tf.lines, how


def count_text_file(path: str | Path, out: str | Path, *, order: int, tokenizer: Tokenizer,
                    memory: str | int | None = None, temp_dir: str | Path | None = None) -> dict:
    """The counts folder (countfiles.py's format) of the text file ``path``, counted as :func:`estimate_file`
    counts: the text a block at a time, the n-grams of each order sorted in runs spilled to ``temp_dir`` beyond
    ``memory``; the counts folder's arrays are then written from the sorted files.  Returns its description."""
    from seqlm.models.ngram.countfiles import write_counts
    from seqlm.models.ngram.counts import OrderCounts

    budget = parse_memory(memory)
    with Work(temp_dir) as work, ThreadPoolExecutor(THREADS) as pool:
        try:
            tf = tokenize_file(path, work, tokenizer, pool=pool, block=_text_block(budget, tokenizer))
            V = len(tf.vocab)
            uni, orders = count_file(tf, order, work, budget, pool)
            none = np.zeros(0, np.int64)
            counts = [OrderCounts(np.arange(V, dtype=np.int64), uni, none, none.astype(bool))]
            counts += [OrderCounts(_read(o.keys, np.int64, 0, o.size), _read(o.counts, np.int64, 0, o.size), none,
                                   none.astype(bool)) for o in orders]
            meta = {"tokens": tf.tokens, "lines": tf.lines, "source": str(path)}
            write_counts(out, tf.vocab, counts, meta)
        except OSError as e:
            raise _cannot_write("counting", e, work, Path(out)) from None
    return {"ngrams": [len(c.keys) for c in counts], "types": V - 3, **meta}


def _estimate(uni, orders, V, smoothing, kval, prune, out: Path, budget: int, pool: ThreadPoolExecutor,
              keep_counts: bool = False):
    """Adjusted counts, discounts and the columns of every order, written into ``out/columns``; the scratch
    files of each order are removed once used (but the raw counts of the orders below the highest with
    ``keep_counts``: entropy pruning weighs histories by them)."""
    N = len(orders) + 1
    kn = smoothing in ("mkn", "ikn")
    held = _held_bytes([V] + [o.size for o in orders])
    if held > budget:
        log.warning("--memory %s is less than what estimation holds whole for this model (%s: p of two adjacent "
                    "orders, a flag per n-gram, the trie being packed); going on with that",
                    _human(budget), _human(held))
    # runs in flight share what the budget leaves beside what is held whole (runs much shorter than ~256k
    # n-grams cost more time than they save memory; tiny budgets, as in the tests, get tiny runs)
    floor = min(1 << 18, max(1 << 10, int(budget * SHARE) // (_BYTES_PER_NGRAM * (THREADS + 1))))
    run = max(floor, min(1 << 21, (int(budget * SHARE) - held) // (_BYTES_PER_NGRAM * (THREADS + 1))))
    tables = out / COLUMNS
    tables.mkdir()
    work = orders[0].keys.parent if orders else None
    # starts-with-<s> flags (order k: the context's flag), continuation counts, adjusted counts, counts of counts
    starts_bos = [np.zeros(V, dtype=bool)]
    adjusted_files, coc, kept_n = [], [], [V]
    for j, o in enumerate(orders):  # order j + 2
        above = orders[j + 1] if j + 1 < len(orders) else None
        if kn and j == 0:
            cont = _continuations(o, V)
            a1 = cont  # order 1: no unigram starts with <s> but <s> itself, whose count is 0
            a1[BOS_ID] = 0
            coc.append(counts_of_counts(a1))
            uni_adjusted = a1
        cont = _continuations(above, o.size) if (kn and above is not None) else None
        sb = np.zeros(o.size, dtype=bool)
        f = work / f"adjusted{j + 2}.i64"
        n_kept = 0
        c = np.zeros(6, dtype=np.int64)
        with open(f, "wb") as fa:
            for s, e in _pieces(o.size, run):
                keys = _read(o.keys, np.int64, s, e - s)
                raw = _read(o.counts, np.int64, s, e - s)
                sb[s:e] = starts_bos[-1][keys // V] if j else (keys // V == BOS_ID)
                a = np.where(sb[s:e], raw, cont[s:e]) if cont is not None else raw
                c += counts_of_counts(a)
                n_kept += int((raw > prune[j + 1]).sum())
                fa.write(a.tobytes())
        starts_bos.append(sb)
        adjusted_files.append(f)
        coc.append(c)
        kept_n.append(n_kept)
        del cont
    if not kn:
        uni_adjusted = uni
        coc = [None] * N
    elif N == 1:
        uni_adjusted = uni.copy()
        uni_adjusted[BOS_ID] = 0
        coc = [counts_of_counts(uni_adjusted)]
    del starts_bos
    discounts, info = order_discounts(smoothing, coc)
    if smoothing == "add-k":
        info["k"] = kval

    lower = unigram_probs(smoothing, uni_adjusted, V, discounts[0], kval)
    lp = safe_log(lower)
    lp[BOS_ID] = -np.inf
    np.save(tables / "keys1.npy", np.arange(V, dtype=np.int64))
    np.save(tables / "logprob1.npy", lp)
    kept_prev = np.ones(V, dtype=bool)
    remap = None  # rank among the kept n-grams of the order below (with pruning)
    bow_writer = NpyWriter(tables / "logbow1.npy", np.float64, V)
    with Progress(sum(o.size for o in orders), "estimate", unit="n-gram", delay=1.0) as bar:
        for j, o in enumerate(orders):
            k = j + 2
            n_ctx = kept_prev.shape[0]
            last = k == N
            keep = np.zeros(o.size, dtype=bool)
            probs = np.empty(o.size) if not last else None
            writers = [NpyWriter(tables / f"{n}{k}.npy", dt, kept_n[k - 1])
                       for n, dt in (("keys", np.int64), ("logprob", np.float64))]
            # runs of whole contexts, and the contexts each gives backoff weights to (from the one after the
            # previous run's last context, so contexts without continuations get theirs too)
            runs, c_next = [], 0
            for s, e in _runs(o, V, run):
                c_end = int(_read(o.keys, np.int64, e - 1, 1)[0] // V) + 1 if e < o.size else n_ctx
                runs.append((s, e, c_next, c_end))
                c_next = c_end

            def step(i, j=j, o=o, k=k, lower=lower, remap=remap, kept_prev=kept_prev, runs=runs):
                s, e, c0, c1 = runs[i]
                keys = _read(o.keys, np.int64, s, e - s)
                raw = _read(o.counts, np.int64, s, e - s)
                a = _read(adjusted_files[j], np.int64, s, e - s)
                suffix = _read(o.suffix, np.int64, s, e - s)
                ctx = keys // V
                p, bow, kept = order_step(smoothing, raw, a, ctx - c0, c1 - c0, lower[suffix],
                                          discounts[k - 1], prune[k - 1], kval, V - 1)
                kk = keys[kept]
                if remap is not None:
                    kk = remap[kk // V] * V + kk % V
                return s, e, p, kept, kk, safe_log(p[kept]), safe_log(bow[kept_prev[c0:c1]])

            for s, e, p, kept, kk, logp, logbow in bounded_map(pool, step, range(len(runs)), THREADS):
                keep[s:e] = kept
                if probs is not None:
                    probs[s:e] = p
                writers[0].write(kk)
                writers[1].write(logp)
                bow_writer.write(logbow)
                bar.update(e - s)
            if o.size == 0:  # no n-gram of this order: every context keeps weight 1
                bow_writer.write(np.zeros(int(kept_prev.sum())))
            for w in writers:
                w.close()
            bow_writer.close()
            bow_writer = NpyWriter(tables / f"logbow{k}.npy", np.float64, kept_n[k - 1])
            remap = None if keep.all() else np.cumsum(keep) - 1
            kept_prev, lower = keep, probs
            for f in (o.keys, o.suffix, adjusted_files[j]) + (() if keep_counts and k < N else (o.counts,)):
                f.unlink()
    bow_writer.write(np.zeros(kept_n[-1]))
    bow_writer.close()
    return info, kept_n


def _text_block(budget: int, tokenizer: Tokenizer) -> int:
    """Bytes of text per block: the blocks in flight (one per thread, one waiting) within the budget's share.
    Word level works on ~20 bytes per byte of text (offsets, hashes, the hashing windows); character level
    makes a Python string per character, ~8x more."""
    per_byte = _BYTES_PER_TEXT_BYTE * (1 if tokenizer.level == "word" else 8)
    return int(min(16 << 20, max(1 << 16, budget * SHARE // ((THREADS + 1) * per_byte))))


def _human(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _held_bytes(sizes: list[int]) -> int:
    """What estimation holds whole at its peak: p of two adjacent orders (8 bytes per n-gram each), the
    continuation counts of one order (16: with a bincount), flags (2); packing the trie holds where each
    n-gram's children begin and the counts that give it (16 per n-gram of one order)."""
    peak = 0
    for j in range(1, len(sizes)):
        peak = max(peak, 8 * sizes[j - 1] + 8 * sizes[j] + 2 * sizes[j], 16 * sizes[j])
    return peak


def _pieces(n: int, size: int = 1 << 22):
    for s in range(0, n, size):
        yield s, min(s + size, n)


def _continuations(o: Order, n: int) -> np.ndarray:
    """N1+(. g) of every n-gram g of the order below ``o`` (how many n-grams of ``o`` have g as suffix)."""
    cont = np.zeros(n, dtype=np.int64)
    for s, e in _pieces(o.size):
        cont += np.bincount(_read(o.suffix, np.int64, s, e - s), minlength=n)
    return cont

