"""Counts as a unit of work: a text's n-gram counts written to a folder (``seqlm count``), and the counts of
several such folders merged (``seqlm train --counts``) into exactly what counting their concatenated text gives.
New text is then counted alone and merged in, not recounted.

Format ``seqlm-counts-1``, a folder written atomically:

* ``counts.json``: ``format``, ``order``, ``tokenizer`` (how the text was read), ``vocab`` (every type of the
  text, specials first: ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``), ``tokens``, ``lines``, ``source``;
* ``ngrams{k}.npy``: (n_k, k) int32, the distinct k-grams as ids of that vocabulary, sorted (a line is counted
  as ``<s> w1 ... wn </s>``, as counts.py counts it; order 1 lists every id);
* ``counts{k}.npy``: (n_k,) int64, how often each occurs.

Word ids are each folder's own: a merge maps them through the words, so folders counted separately need no
common vocabulary.  The merged vocabulary is built from the summed type counts with the usual rules
(``--min-count``, ``--max-size``), n-grams of words left out become ``<unk>`` n-grams (their counts summed),
and the result is the :class:`~seqlm.models.ngram.counts.OrderCounts` counting the concatenated text gives,
to the last count (tested), so the estimate is the same model bit for bit.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir
from seqlm.models.ngram.counts import OrderCounts
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS_ID, SPECIALS, Vocab

FORMAT = "seqlm-counts-1"


def rows(counts: list[OrderCounts], V: int) -> list[np.ndarray]:
    """The n-grams of every order as (n_k, k) rows of word ids, from their rank-based keys."""
    out = [np.arange(V, dtype=np.int64)[:, None]]
    for k in range(2, len(counts) + 1):
        keys = counts[k - 1].keys
        out.append(np.column_stack([out[k - 2][keys // V], keys % V]))
    return out


def write_counts(out: str | Path, vocab: Vocab, counts: list[OrderCounts], meta: dict) -> None:
    """Write a counts folder (module docstring)."""
    grams = rows(counts, len(vocab))
    with atomic_dir(out) as tmp:
        for k, (r, c) in enumerate(zip(grams, counts), 1):
            np.save(tmp / f"ngrams{k}.npy", r.astype(np.int32), allow_pickle=False)
            np.save(tmp / f"counts{k}.npy", c.counts.astype(np.int64), allow_pickle=False)
        (tmp / "counts.json").write_text(json.dumps({
            "format": FORMAT, "order": len(counts), "tokenizer": vocab.tokenizer.to_dict(), "vocab": vocab.itos,
            **meta}, indent=1))


def read_counts(folder: str | Path) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    """A counts folder's metadata, n-gram rows and counts of every order."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "counts.json").read_text())
    except (OSError, ValueError):
        raise SeqlmError(f"{folder} is not a counts folder (no readable counts.json): write one with seqlm count") from None
    if meta.get("format") != FORMAT:
        raise SeqlmError(f"{folder} holds counts of format {meta.get('format')!r}, not {FORMAT}: count the text again")
    grams, counts = [], []
    for k in range(1, meta["order"] + 1):
        try:
            grams.append(np.load(folder / f"ngrams{k}.npy", allow_pickle=False).astype(np.int64))
            counts.append(np.load(folder / f"counts{k}.npy", allow_pickle=False))
        except (OSError, ValueError):
            raise SeqlmError(f"{folder}: ngrams{k}.npy or counts{k}.npy is missing or damaged: count the text "
                             f"again") from None
    return meta, grams, counts


def merge(folders, order: int, min_count: int = 1, max_size: int | None = None) -> tuple[Vocab, list[OrderCounts], dict]:
    """The vocabulary and counts of orders 1..``order`` that counting the concatenation of the texts behind the
    counts ``folders`` gives (module docstring), and their summed token and line counts."""
    if not folders:
        raise SeqlmError("give one or more counts folders (seqlm count TEXT --out COUNTS)")
    shards = [read_counts(f) for f in folders]
    first = shards[0][0]
    for f, (meta, _, _) in zip(folders, shards):
        if meta["tokenizer"] != first["tokenizer"]:
            raise SeqlmError(f"{f} was counted reading text another way ({meta['tokenizer']}) than {folders[0]} "
                             f"({first['tokenizer']}): count every text with the same options")
        if meta["order"] < order:
            raise SeqlmError(f"{f} holds counts up to order {meta['order']}: a {order}-gram model needs them up to "
                             f"{order} (count it again with --order {order})")
    types: Counter[str] = Counter()
    for meta, grams, counts in shards:  # the text's type counts: order-1 counts of the words (</s> is not one)
        for word, c in zip(meta["vocab"], counts[0]):
            if word not in SPECIALS[1:]:
                types[word] += int(c)
    vocab = Vocab.from_counts(types, Tokenizer.from_dict(first["tokenizer"]), min_count, max_size)
    V = len(vocab)
    mapped = [[] for _ in range(order)]
    for meta, grams, counts in shards:
        to_final = np.array([vocab.stoi.get(w, 0) for w in meta["vocab"]], dtype=np.int64)
        for k in range(order):
            mapped[k].append((to_final[grams[k]], counts[k]))
    result: list[OrderCounts] = []
    for k in range(1, order + 1):
        r = np.concatenate([m[0] for m in mapped[k - 1]])
        c = np.concatenate([m[1] for m in mapped[k - 1]])
        if k == 1:
            uni = np.bincount(r[:, 0], weights=c, minlength=V).astype(np.int64)
            result.append(OrderCounts(np.arange(V, dtype=np.int64), uni, np.zeros(V, np.int64), np.zeros(V, bool)))
            continue
        key = _rank(r[:, :-1], result, V) * V + r[:, -1]
        uniq, inverse = np.unique(key, return_inverse=True)
        total = np.bincount(inverse, weights=c, minlength=len(uniq)).astype(np.int64)
        first_row = np.zeros(len(uniq), dtype=np.int64)
        first_row[inverse[::-1]] = np.arange(len(r))[::-1]  # any row of each n-gram: they agree
        rep = r[first_row]
        suffix = _rank(rep[:, 1:], result, V)
        result.append(OrderCounts(uniq, total, suffix, rep[:, 0] == BOS_ID))
    return vocab, result, {"tokens": sum(m["tokens"] for m, _, _ in shards), "lines": sum(m["lines"] for m, _, _ in shards),
                           "counts": [str(f) for f in folders]}


def _rank(words: np.ndarray, counts: list[OrderCounts], V: int) -> np.ndarray:
    """The rank among the n-grams of order ``words.shape[1]`` (already in ``counts``) of each row of ``words``."""
    r = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        keys = counts[j].keys
        at = np.searchsorted(keys, r * V + words[:, j])
        if len(keys) == 0 or not (keys[np.minimum(at, len(keys) - 1)] == r * V + words[:, j]).all():
            raise SeqlmError("the counts folders are inconsistent (an n-gram's context was never counted): count "
                             "the texts again")
        r = at
    return r
