"""NGramLM: queries on estimated tables (see smoothing.py), one at a time or vectorized.

Query rule (ARPA backoff): ln p(w | h) = logprob of the longest stored n-gram ``h' w`` (h' a suffix of h)
plus the ``logbow`` of every stored context longer than h'.  For add-k (``unseen == "uniform"``), an
unseen word after the longest *seen* context h' (one followed by some word in training) gets
bow(h') / |V| = k / (c(h'.) + k|V|) instead; a context never seen backs off to the next shorter one, at
every order alike (a one-word context that is a known word but was never followed by one included).

Batched scoring looks up, for every position of the padded token stream and every order k, the k-gram
ending there with one ``np.searchsorted`` per order: no Python loop per token.  The history never reaches
back past the sentence's ``<s>``, so stream and sentence modes agree (see interface.py).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io import hashindex as ngram_index
from seqlm.io.files import atomic_dir, write_config
from seqlm.models.interface import LanguageModel, State, check_mode
from seqlm.models.ngram.counts import pad_stream
from seqlm.models.ngram.smoothing import Tables
from seqlm.text.vocab import BOS_ID, EOS_ID, Vocab

log = logging.getLogger(__name__)

FORMAT = "seqlm-ngram-1"


def find_keys(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in sorted ``keys`` and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(query), np.int64), np.zeros(len(query), bool)
    idx = np.searchsorted(keys, query)
    np.minimum(idx, len(keys) - 1, out=idx)
    return idx, keys[idx] == query


class NGramLM(LanguageModel):
    kind = "ngram"

    def __init__(self, vocab: Vocab, tables: Tables, config: dict | None = None):
        if tables.vocab_size != len(vocab):
            raise SeqlmError(f"model tables are for {tables.vocab_size} tokens but the vocabulary has "
                             f"{len(vocab)}: the model folder is inconsistent, retrain it")
        self.vocab = vocab
        self.tables = tables
        self.order = tables.order
        self.config = dict(config or {})
        self._log_n_pred = np.log(len(vocab) - 1)
        # add-k: which stored (k-1)-grams were seen as contexts (followed by a word) in training
        self._index: list = [None] * tables.order  # hash index of each order's keys (index.py), built on use
        self._extends: list = [None] * tables.order  # which n-grams can be context (full_step), built on use
        self._querier = None  # the compiled query loop (fastquery.pyx), built on use; False: not available
        self._seen_ctx = [np.bincount(tables.keys[k] // len(vocab), minlength=len(tables.keys[k - 1])) > 0
                          for k in range(1, tables.order)] if tables.unseen == "uniform" else None

    # -- single queries -----------------------------------------------------------------------
    def start(self) -> State:
        return (BOS_ID,)[-(self.order - 1):] if self.order > 1 else ()

    def advance(self, state: State, token: int) -> State:
        if self.order == 1:
            return ()
        if token == EOS_ID:
            return self.start()
        return (tuple(state) + (int(token),))[-(self.order - 1):]

    def _rank(self, words: Sequence[int]) -> int | None:
        """Index of the n-gram ``words`` in its order's table, or None if not stored."""
        V = self.tables.vocab_size
        r = int(words[0])
        for j in range(1, len(words)):
            keys = self.tables.keys[j]
            key = r * V + int(words[j])
            i = int(np.searchsorted(keys, key))
            if i >= len(keys) or keys[i] != key:
                return None
            r = i
        return r

    def next_logprobs(self, state: State) -> np.ndarray:
        t = self.tables
        V = t.vocab_size
        out = t.logprob[0].copy()
        state = tuple(state)
        for k in range(2, self.order + 1):
            if len(state) < k - 1:
                break
            r = self._rank(state[-(k - 1):])
            if r is None:
                break
            keys = t.keys[k - 1]
            lo, hi = np.searchsorted(keys, [r * V, (r + 1) * V])
            if self._seen_ctx is not None and lo == hi:
                break  # add-k: a context never seen backs off to the shorter one (the rule of every order)
            bow = t.logbow[k - 2][r]
            if t.unseen == "uniform":
                out[:] = bow - self._log_n_pred
            else:
                out += bow
            out[keys[lo:hi] % V] = t.logprob[k - 1][lo:hi]
        out[BOS_ID] = -np.inf
        return out

    # -- one word at a time, from the ranks of the context (a decoder's step) ------------------------
    def full_step(self, ranks: tuple, word: int) -> tuple[float, int, tuple]:
        """ln p(``word`` | the context ``ranks``), the length of the n-gram that matched, and the ranks
        after ``word``.

        ``ranks[j]`` is the rank (index in its order's table) of the context's last j + 1 tokens: the
        state that needs no lookup of the context again.  The matched n-gram is the longest stored one
        ending in ``word``; the backoff weights of every longer stored context are added (ARPA's rule).
        The ranks after the word keep only what can still extend: n-grams with a stored continuation or
        a backoff weight (as KenLM's state does), so equal states predict equally."""
        t = self.tables
        if t.unseen == "uniform":
            raise SeqlmError("add-k above order 1 has no backoff form: query it with seqlm.score, not step by step")
        V = t.vocab_size
        lp = float(t.logprob[0][word])
        new = [word]
        j, n = 0, min(len(ranks), self.order - 1)
        while j < n:
            idx = ngram_index.find_one(self.index(j + 2), t.keys[j + 1], ranks[j] * V + word)
            if idx < 0:
                break
            lp = float(t.logprob[j + 1][idx])
            new.append(idx)
            j += 1
        matched = j + 1
        for k in range(j, n):  # the stored contexts longer than the match back off
            lp += float(t.logbow[k][ranks[k]])
        del new[self.order - 1:]
        while new and not self.extends(len(new))[new[-1]]:
            new.pop()
        return lp, matched, tuple(new)

    def querier(self):
        """The compiled query loop over this model's tables (``fastquery.pyx``: :meth:`full_step` and whole
        sentences in C), or None where it was not built (one warning; the Python reference answers)."""
        if self._querier is None:
            try:
                from seqlm.models.ngram.fastquery import Querier
            except ImportError:
                warnings.warn("seqlm's compiled n-gram query loop is not built (reinstall with a C compiler: "
                              "pip install -e .): queries one word at a time use the Python reference, slower",
                              RuntimeWarning, stacklevel=2)
                self._querier = False
            else:
                t, n = self.tables, self.order
                self._querier = Querier(
                    n, t.vocab_size, [np.ascontiguousarray(t.keys[k], dtype=np.int64) for k in range(n)],
                    [np.zeros(0, np.int32)] + [self.index(k) for k in range(2, n + 1)],
                    [np.ascontiguousarray(t.logprob[k], dtype=np.float64) for k in range(n)],
                    [np.ascontiguousarray(t.logbow[k], dtype=np.float64) for k in range(n - 1)],
                    [self.extends(k).view(np.uint8) for k in range(1, n)], BOS_ID, EOS_ID)
        return self._querier or None

    def extends(self, k: int) -> np.ndarray:
        """For each n-gram of order ``k``: whether it is a stored context (a longer n-gram continues it)
        or carries a backoff weight; only those matter as context."""
        if self._extends[k - 1] is None:
            t = self.tables
            if k >= self.order:
                flags = np.zeros(len(t.keys[k - 1]), dtype=bool)
            else:
                flags = np.bincount(t.keys[k] // t.vocab_size, minlength=len(t.keys[k - 1])) > 0
                flags |= np.asarray(t.logbow[k - 1]) != 0
            self._extends[k - 1] = flags
        return self._extends[k - 1]

    def index(self, k: int) -> np.ndarray:
        """The hash table of order ``k``'s keys (built on first use, or memory-mapped from the folder)."""
        if self._index[k - 1] is None:
            self._index[k - 1] = ngram_index.build(self.tables.keys[k - 1])
        return self._index[k - 1]

    # -- batched scoring ------------------------------------------------------------------------
    def score_lines(self, lines, mode="sentence", state=None):
        check_mode(mode)
        fast = self.querier() if self.tables.unseen != "uniform" and self.order <= 32 else None
        if fast is not None:  # the compiled loop (the same numbers as score_stream below: tested)
            try:
                return fast.score_lines(list(lines)), (self.start() if mode == "stream" else None)
            except IndexError:
                raise SeqlmError("token ids outside the vocabulary: encode text with the model's vocabulary") from None
        lengths = np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines))
        ids = np.concatenate([np.asarray(x, dtype=np.int64) for x in lines]) if lengths.sum() else \
            np.zeros(0, np.int64)
        return self.score_stream(ids, lengths), (self.start() if mode == "stream" else None)

    def score_stream(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """ln p of every token and every ``</s>`` of the lines given as flat ``ids`` + ``lengths``."""
        t = self.tables
        V = t.vocab_size
        toks, pos = pad_stream(ids, lengths)
        target = np.flatnonzero(pos > 0)  # every predicted position
        w = toks[target]
        if (w < 0).any() or (w >= V).any():
            raise SeqlmError("token ids outside the vocabulary: encode text with the model's vocabulary")
        lp = t.logprob[0][w]
        n = len(target)
        # live: the predicted positions i (indices into target) whose (k-1)-gram ending at i is stored, with
        # its rank; the context of order k at i + 1 is that (k-1)-gram when i + 1 continues i's sentence.
        # Order 2's contexts are single tokens, <s> included (every unigram is stored): all positions.
        live = np.arange(n)
        ranks = toks[target - 1]
        shift = 0  # order 2 looks up (token before i, token at i); the orders above (rank at i, token at i + 1)
        continues = np.zeros(n, dtype=bool)
        continues[:-1] = pos[target[1:]] > 1
        for k in range(2, self.order + 1):
            if shift:
                keep = continues[live]
                live, ranks = live[keep] + 1, ranks[keep]
            if self._seen_ctx is not None:  # add-k: only seen contexts (see the module docstring)
                keep = self._seen_ctx[k - 2][ranks]
                live, ranks = live[keep], ranks[keep]
            idx, found = ngram_index.find(self.index(k), t.keys[k - 1], ranks * V + w[live])
            bow = t.logbow[k - 2][ranks]
            if t.unseen == "uniform":
                lp[live] = np.where(found, t.logprob[k - 1][idx], bow - self._log_n_pred)
            else:
                lp[live] = np.where(found, t.logprob[k - 1][idx], lp[live] + bow)
            live, ranks, shift = live[found], idx[found], 1
            if not len(live):
                break
        return lp

    # -- persistence ----------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"kind": self.kind, "order": self.order, "smoothing": self.config.get("smoothing"),
                "vocab_size": len(self.vocab), "ngrams": self.tables.sizes()}

    def save(self, path: str | Path) -> None:
        """A model folder: config.json, vocab.json and ``tables/``, one ``.npy`` file per array, which
        :meth:`load` memory-maps (instant, and shared by every process that loads the same folder)."""
        t = self.tables
        with atomic_dir(path) as tmp:
            (tmp / TABLES).mkdir()
            for name, arrays in (("keys", t.keys), ("logprob", t.logprob), ("logbow", t.logbow)):
                for k, a in enumerate(arrays, start=1):
                    np.save(tmp / TABLES / f"{name}{k}.npy", np.ascontiguousarray(a), allow_pickle=False)
            for k in range(2, self.order + 1):
                np.save(tmp / TABLES / f"index{k}.npy", self.index(k), allow_pickle=False)
            write_folder(tmp, self.vocab, self.config, self.order, t.unseen, t.sizes(), t.info)

    @classmethod
    def load(cls, path: str | Path, config: dict, device: str = "cpu") -> "NGramLM":
        """The model in folder ``path`` (its parsed ``config``); ``device`` is ignored (tables are memory-mapped)."""
        path = Path(path)
        vocab = Vocab.load(path / "vocab.json")
        order = config.get("order")
        if not isinstance(order, int) or order < 1:
            raise SeqlmError(f"{path}/config.json has no valid order: retrain the model")
        if (path / TABLES).is_dir():
            keys, logprob, logbow, index = _map_tables(path, order, config.get("ngrams"), config.get("table_bytes") or {})
        else:
            keys, logprob, logbow = _read_npz(path, order)
            index = [None] * order
        tables = Tables(len(vocab), keys, logprob, logbow, config.get("unseen", "backoff"),
                        config.get("estimation", {}))
        lm = cls(vocab, tables, config)
        lm._index = index
        return lm


TABLES = "tables"


def write_folder(folder: Path, vocab: Vocab, config: dict, order: int, unseen: str, sizes: list[int],
                 info: dict) -> dict:
    """vocab.json and config.json of a model folder whose ``tables/`` are written; returns the config."""
    config = dict(config)
    config.update(kind=NGramLM.kind, format=FORMAT, order=order, unseen=unseen, ngrams=[int(n) for n in sizes],
                  estimation=info)
    # sizes, checked at load without reading the data (a checksum would read every byte)
    config["table_bytes"] = {f.name: f.stat().st_size for f in sorted((folder / TABLES).iterdir())}
    vocab.save(folder / "vocab.json")
    write_config(folder, config, default=_jsonable)
    return config


def _map_tables(path: Path, order: int, sizes, file_bytes: dict) -> tuple[list, list, list, list]:
    """The arrays of ``path/tables``, memory-mapped read-only; checked against the file sizes and n-gram
    counts config.json records (the files' headers only: no data is read).  Returns keys, logprob,
    logbow and the hash index of each order (None where the folder has none: built on use)."""

    def open_array(f: Path, dtype, n):
        if f.is_file() and f.name in file_bytes and f.stat().st_size != file_bytes[f.name]:
            raise SeqlmError(f"{f} does not have the size recorded in config.json (truncated or modified): "
                             f"copy the model folder again or retrain")
        try:
            a = np.load(f, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise SeqlmError(f"{f} is missing: retrain the model") from None
        except (ValueError, OSError) as e:
            raise SeqlmError(f"{f} is damaged ({e}): retrain the model") from None
        if a.dtype != dtype or a.ndim != 1 or (n is not None and len(a) != n):
            raise SeqlmError(f"{f} does not match {path}/config.json: retrain the model")
        return a.view(np.ndarray)  # still the mapped file; plain indexing (np.memmap's is slower)

    counts = sizes if isinstance(sizes, list) and len(sizes) == order else [None] * order
    out = [[open_array(path / TABLES / f"{name}{k}.npy", dtype, counts[k - 1]) for k in range(1, order + 1)]
           for name, dtype in (("keys", np.int64), ("logprob", np.float64), ("logbow", np.float64))]
    index = [None]
    for k in range(2, order + 1):
        f = path / TABLES / f"index{k}.npy"
        n = 1 << ngram_index.table_bits(len(out[0][k - 1]))
        index.append(open_array(f, np.int32, n) if f.is_file() else None)
    return out[0], out[1], out[2], index


def _read_npz(path: Path, order: int) -> tuple[list, list, list]:
    """Model folders written before ``tables/`` (one model.npz), read whole."""
    try:
        with np.load(path / "model.npz", allow_pickle=False) as z:
            keys = [z[f"keys{k}"] for k in range(1, order + 1)]
            logprob = [z[f"logprob{k}"] for k in range(1, order + 1)]
            logbow = [z[f"logbow{k}"] for k in range(1, order + 1)]
    except FileNotFoundError:
        raise SeqlmError(f"{path} has neither tables/ nor model.npz: retrain the model") from None
    except Exception as e:  # zipfile.BadZipFile, KeyError, ValueError from a damaged file
        raise SeqlmError(f"{path}/model.npz is damaged ({type(e).__name__}: {e}): retrain the model") from None
    for k in range(order):
        if not (len(keys[k]) == len(logprob[k]) == len(logbow[k])) or keys[k].dtype != np.int64:
            raise SeqlmError(f"{path}/model.npz is inconsistent at order {k + 1}: retrain the model")
        if k > 0 and len(keys[k]) > 1 and not (np.diff(keys[k]) > 0).all():
            raise SeqlmError(f"{path}/model.npz has unsorted keys at order {k + 1}: retrain the model")
    return keys, logprob, logbow


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")
