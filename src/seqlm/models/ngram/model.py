"""NGramLM: queries on estimated tables (see smoothing.py), one at a time or vectorized.

Query rule (ARPA backoff): ln p(w | h) = logprob of the longest stored n-gram ``h' w`` (h' a suffix of h)
plus the ``logbow`` of every stored context longer than h'.  For add-k (``unseen == "uniform"``), an
unseen word after the longest *seen* context h' (one followed by some word in training) gets
bow(h') / |V| = k / (c(h'.) + k|V|) instead; a context never seen backs off to the next shorter one, at
every order alike (a one-word context that is a known word but was never followed by one included).

The tables live in a trie of bit-packed records (trie.py), the form a model folder stores and memory-maps:
an estimated model is packed as it is made, so the model in memory, the saved one and the loaded one
answer alike to the last bit.  Queries go through the compiled loop (fastquery.pyx) where it is built;
the Python reference below answers otherwise, and batched scoring there looks up, for every position of
the padded token stream and every order k, the k-gram ending there with one vectorized search per order:
no Python loop per token.  The history never reaches back past the sentence's ``<s>``, so stream and
sentence modes agree (see interface.py).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, write_config
from seqlm.io.memory import last_level_cache
from seqlm.io.runtime import scoring_threads
from seqlm.models.interface import MODES, LanguageModel, State, check_mode
from seqlm.models.ngram.counts import pad_stream
from seqlm.models.ngram.smoothing import Tables
from seqlm.models.ngram.trie import Trie, open_array, pack
from seqlm.text.tokenize import KENLM_BLANKS, PYTHON_ASCII_BLANKS
from seqlm.text.vocab import BOS_ID, EOS_ID, Vocab

log = logging.getLogger(__name__)

TOKEN_SEPARATOR = "\n"  # tokens joined for the compiled reader: no token holds one (text/tokenize.py)
FORMAT = "seqlm-ngram-2"  # -1: float64 columns and hash indexes (tables/ or model.npz), read and packed at load


def find_keys(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in sorted ``keys`` and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(query), np.int64), np.zeros(len(query), bool)
    idx = np.searchsorted(keys, query)
    np.minimum(idx, len(keys) - 1, out=idx)
    return idx, keys[idx] == query


class NGramLM(LanguageModel):
    kind = "ngram"

    def __init__(self, vocab: Vocab, tables: Tables | None, config: dict | None = None, trie: Trie | None = None,
                 unseen: str | None = None, info: dict | None = None):
        """A model from estimated ``tables`` (packed here: ``config["quantize"]`` bits, or float32) or from
        a packed ``trie`` (with its ``unseen`` rule and estimation ``info``)."""
        self.config = dict(config or {})
        if trie is None:
            if tables.vocab_size != len(vocab):
                raise SeqlmError(f"model tables are for {tables.vocab_size} tokens but the vocabulary has "
                                 f"{len(vocab)}: the model folder is inconsistent, retrain it")
            trie = pack(tables.vocab_size, tables.keys, tables.logprob, tables.logbow, self.config.get("quantize"))
            unseen, info = tables.unseen, tables.info
        elif trie.V != len(vocab):
            raise SeqlmError(f"model tables are for {trie.V} tokens but the vocabulary has {len(vocab)}: the model "
                             f"folder is inconsistent, retrain it")
        self.vocab = vocab
        self.trie = trie
        self.order = trie.order
        self.tables = TrieTables(trie, unseen or "backoff", info or {})
        self._log_n_pred = np.log(len(vocab) - 1)
        self._uniform = self.tables.unseen == "uniform"  # add-k: unseen words share bow(h) (module docstring)
        self._unigram = trie.prob(1, np.arange(trie.V))
        self._querier = None  # the compiled query loop (fastquery.pyx), built on use; False: not available
        self._readers: dict = {}  # compiled text readers (fastquery.Reader), by their arguments

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
        """The record of the n-gram ``words`` in its order's array, or None if not stored."""
        r = int(words[0])
        for j in range(1, len(words)):
            idx, found = self.trie.find(j + 1, [r], [int(words[j])])
            if not found[0]:
                return None
            r = int(idx[0])
        return r

    def next_logprobs(self, state: State) -> np.ndarray:
        trie = self.trie
        out = self._unigram.copy()
        state = tuple(state)
        for k in range(2, self.order + 1):
            if len(state) < k - 1:
                break
            r = self._rank(state[-(k - 1):])
            if r is None:
                break
            lo, hi = (int(x[0]) for x in trie.children(k - 1, [r]))
            if self._uniform and lo == hi:
                break  # add-k: a context never seen backs off to the shorter one (the rule of every order)
            bow = float(trie.bow(k - 1, [r])[0])
            if self._uniform:
                out[:] = bow - self._log_n_pred
            else:
                out += bow
            run = np.arange(lo, hi)
            out[trie.word(k, run)] = trie.prob(k, run)
        out[BOS_ID] = -np.inf
        return out

    # -- one word at a time, from the records of the context (a decoder's step) -----------------------
    def full_step(self, ranks: tuple, word: int) -> tuple[float, int, tuple]:
        """ln p(``word`` | the context ``ranks``), the length of the n-gram that matched, and the ranks
        after ``word``.

        ``ranks[j]`` is the record (index in its order's array) of the context's last j + 1 tokens: the
        state that needs no lookup of the context again.  The matched n-gram is the longest stored one
        ending in ``word``; the backoff weights of every longer stored context are added (ARPA's rule).
        The ranks after the word keep only what can still extend: n-grams with a stored continuation or
        a backoff weight (as KenLM's state does), so equal states predict equally."""
        if self._uniform:
            raise SeqlmError("add-k above order 1 has no backoff form: query it with seqlm.score, not step by step")
        trie = self.trie
        lp = float(self._unigram[word])
        new = [word]
        j, n = 0, min(len(ranks), self.order - 1)
        while j < n:
            idx, found = trie.find(j + 2, [ranks[j]], [word])
            if not found[0]:
                break
            lp = float(trie.prob(j + 2, idx)[0])
            new.append(int(idx[0]))
            j += 1
        matched = j + 1
        for k in range(j, n):  # the stored contexts longer than the match back off
            lp += float(trie.bow(k + 1, [ranks[k]])[0])
        del new[self.order - 1:]
        while new and not self.extends(len(new), new[-1]):
            new.pop()
        return lp, matched, tuple(new)

    def extends(self, k: int, i: int) -> bool:
        """Whether order k's record ``i`` can be context: a longer n-gram continues it, or it carries a
        backoff weight."""
        if k >= self.order:
            return False
        lo, hi = self.trie.children(k, [i])
        return bool(hi[0] > lo[0]) or float(self.trie.bow(k, [i])[0]) != 0

    def querier(self):
        """The compiled query loop over this model's trie (``fastquery.pyx``: :meth:`full_step` and whole
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
                # the words ahead are fetched while one is scored where the trie does not fit in cache: there
                # it pays (1.2x on a 267 MB model), in cache it only costs (0.9x on PTB's 23 MB)
                self._querier = Querier(self.trie, BOS_ID, EOS_ID, lookahead=self.trie.nbytes() > last_level_cache(),
                                        threads=scoring_threads())
        return self._querier or None

    # -- batched scoring ------------------------------------------------------------------------
    def _fast(self):
        """The compiled loop where it answers for this model (backoff models up to order 32), else None."""
        return self.querier() if not self._uniform and self.order <= 32 else None

    def score_lines(self, lines, mode="sentence", state=None):
        check_mode(mode)
        lengths = np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines))
        ids = np.concatenate([np.asarray(x, dtype=np.int64) for x in lines]) if lengths.sum() else \
            np.zeros(0, np.int64)
        return self.score_flat(ids, lengths, mode)

    def reader(self, blanks: bytes, scale: float = 1.0, stoi: dict | None = None):
        """The compiled reader of text for this model (``fastquery.Reader``: words split at the bytes of
        ``blanks``, looked up in ``stoi``, default the vocabulary's text words; ln p times ``scale``), made
        once per arguments; None where the compiled loop does not answer."""
        if self._fast() is None:
            return None
        key = (blanks, scale, stoi is None)
        if key not in self._readers:
            from seqlm.models.ngram.fastquery import Reader

            try:
                self._readers[key] = Reader(self.vocab.text_stoi if stoi is None else stoi, blanks, scale)
            except ValueError as e:  # two words of one 64-bit hash: the dictionary answers instead
                log.debug("no compiled text reader: %s", e)
                self._readers[key] = None
        return self._readers[key]

    def _text_reader(self):
        """(compiled loop, reader, ASCII text only, lowercased): the reader that splits text as the model's
        tokenizer does (word level; KenLM's whitespace, or every Unicode space in ASCII text), or None.  Chosen
        once: a call of one line then pays only the lookup of ``_readers["text"]``."""
        if "text" not in self._readers:
            tokenizer = self.vocab.tokenizer
            blanks = KENLM_BLANKS + "\n" if tokenizer.whitespace == "kenlm" else PYTHON_ASCII_BLANKS
            reader = self.reader(blanks.encode()) if tokenizer.level == "word" else None
            self._readers["text"] = self._fast(), reader, tokenizer.whitespace != "kenlm", tokenizer.lowercase
        return self._readers["text"]

    def _compiled_text(self, lines: list[str]):
        """(compiled loop, reader, ``lines`` as it reads them) where the reader reads them (_text_reader),
        else None."""
        try:
            fast, reader, ascii_only, lower = self._readers["text"]
        except KeyError:
            fast, reader, ascii_only, lower = self._text_reader()
        if reader is None:
            return None
        if lower:
            lines = [line.lower() for line in lines]
        if ascii_only and not all(map(str.isascii, lines)):
            return None
        return fast, reader, lines

    def score_text(self, lines, mode="sentence", state=None):
        check_mode(mode)
        compiled = self._compiled_text(lines)
        if compiled is not None:
            try:
                logp, oov = compiled[0].text_logp(compiled[1], compiled[2])
            except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for the compiled reader, Python reads it
                pass
            else:
                return logp, oov.view(bool), (self.start() if mode == "stream" else None)
        return super().score_text(lines, mode, state)

    def score_tokens(self, tokens, mode="sentence", state=None):
        reader = self.reader(TOKEN_SEPARATOR.encode())
        if reader is None:
            return super().score_tokens(tokens, mode, state)
        check_mode(mode)  # the compiled loop looks the tokens up itself: no ids made
        try:
            logp, oov = self._fast().text_logp(reader, [TOKEN_SEPARATOR.join(t) for t in tokens])
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for the compiled reader, ids in Python
            return super().score_tokens(tokens, mode, state)
        return logp, oov.view(bool), (self.start() if mode == "stream" else None)

    def line_totals(self, lines, mode="sentence"):
        check_mode(mode)
        compiled = self._compiled_text(lines)
        if compiled is not None:
            try:
                return compiled[0].text_totals(compiled[1], compiled[2])
            except UnicodeEncodeError:
                pass
        return super().line_totals(lines, mode)

    def block_sums(self, data):
        compiled = self._compiled_text([])
        if compiled is None:
            return None
        fast, reader, _ = compiled
        return fast.block_sums(reader, data.lower() if self.vocab.tokenizer.lowercase else data)

    def line_rows(self, lines, mode, keys):  # (the compiled reader reads words: the rows' unit is "word")
        if mode not in MODES:  # (a call here is a tenth of a one-line score: no function call for the check)
            check_mode(mode)
        if type(lines) is str:  # one line, the per-sentence call: no list, no copy, no threads
            try:
                fast, reader, ascii_only, lower = self._readers["text"]
            except KeyError:
                fast, reader, ascii_only, lower = self._text_reader()
            if reader is None or lower or (ascii_only and not lines.isascii()):
                return None
            try:
                return [fast.line_row(reader, lines, keys, "word")]
            except UnicodeEncodeError:
                return None
        compiled = self._compiled_text(lines)
        # the lines as given (a lowercasing tokenizer reads copies, and a row shows the line itself)
        if compiled is not None and compiled[2] is lines and isinstance(lines, list):
            try:
                return compiled[0].text_rows(compiled[1], lines, keys, "word")
            except UnicodeEncodeError:
                pass
        return None

    def token_listing(self, lines, mode="sentence"):
        check_mode(mode)
        compiled = self._compiled_text(lines)
        if compiled is not None:
            try:
                return compiled[0].token_listing(compiled[1], compiled[2], lines)
            except UnicodeEncodeError:
                pass
        return None

    def score_flat(self, ids, lengths, mode="sentence", state=None):
        check_mode(mode)
        fast = self._fast()
        if fast is None:  # the vectorized reference (the same numbers as the compiled loop: tested)
            return self.score_stream(np.asarray(ids, dtype=np.int64), np.asarray(lengths, dtype=np.int64)), \
                (self.start() if mode == "stream" else None)
        try:
            logp = fast.score_flat(np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(lengths, dtype=np.int64))
        except IndexError:
            raise SeqlmError("token ids outside the vocabulary: encode text with the model's vocabulary") from None
        return logp, (self.start() if mode == "stream" else None)

    def ngram_logprobs(self, words) -> np.ndarray:
        """ln p(last word | the words before it) of each row of ``words`` (N, k ids), by the ARPA backoff rule
        with the context cut to the model's last order - 1 words: all rows at once, one search per order
        and context length."""
        words = np.asarray(words, dtype=np.int64)
        if words.ndim != 2 or words.shape[1] < 1:
            raise ValueError("words: one n-gram per row")
        n, k = words.shape
        c = min(k - 1, self.order - 1)
        ctx, w = words[:, k - 1 - c:k - 1], words[:, -1]
        trie = self.trie
        lp = self._unigram[w].copy()
        if self._uniform:
            raise SeqlmError("an add-k model has no backoff form for n-gram queries")
        # rec[m], ok[m]: the record of the context's last m words (order m) and whether it is stored
        rec, ok = {0: None}, {0: np.ones(n, dtype=bool)}
        for m in range(1, c + 1):
            r, found = ctx[:, c - m].copy(), np.ones(n, dtype=bool)  # its first word (order 1: record = id)
            for j in range(1, m):
                idx, hit = trie.find(j + 1, r, ctx[:, c - m + j])
                found &= hit
                r = np.where(found, idx, 0)
            rec[m], ok[m] = r, found
        matched = np.zeros(n, dtype=np.int64)
        for m in range(1, c + 1):  # the longest stored (context suffix, word)
            idx, hit = trie.find(m + 1, rec[m], w)
            hit &= ok[m]
            lp = np.where(hit, trie.prob(m + 1, np.where(hit, idx, 0)), lp)
            matched = np.where(hit, m, matched)
        for m in range(1, c + 1):  # the backoff weights of the stored contexts longer than the match
            add = ok[m] & (m > matched)
            if add.any():
                lp = lp + np.where(add, trie.bow(m, np.where(add, rec[m], 0)), 0.0)
        return lp

    def score_stream(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """ln p of every token and every ``</s>`` of the lines given as flat ``ids`` + ``lengths``."""
        trie = self.trie
        V = trie.V
        toks, pos = pad_stream(ids, lengths)
        target = np.flatnonzero(pos > 0)  # every predicted position
        w = toks[target]
        if (w < 0).any() or (w >= V).any():
            raise SeqlmError("token ids outside the vocabulary: encode text with the model's vocabulary")
        lp = self._unigram[w]
        n = len(target)
        # live: the predicted positions i (indices into target) whose (k-1)-gram ending at i is stored, with
        # its record; the context of order k at i + 1 is that (k-1)-gram when i + 1 continues i's sentence.
        # Order 2's contexts are single tokens, <s> included (every unigram is stored): all positions.
        live = np.arange(n)
        ranks = toks[target - 1]
        shift = 0  # order 2 looks up (token before i, token at i); the orders above (record at i, token at i + 1)
        continues = np.zeros(n, dtype=bool)
        continues[:-1] = pos[target[1:]] > 1
        for k in range(2, self.order + 1):
            if shift:
                keep = continues[live]
                live, ranks = live[keep] + 1, ranks[keep]
            if self._uniform:  # add-k: only seen contexts, those with children (see the module docstring)
                lo, hi = trie.children(k - 1, ranks)
                keep = hi > lo
                live, ranks = live[keep], ranks[keep]
            idx, found = trie.find(k, ranks, w[live])
            bow = trie.bow(k - 1, ranks)
            p = trie.prob(k, idx)
            if self._uniform:
                lp[live] = np.where(found, p, bow - self._log_n_pred)
            else:
                lp[live] = np.where(found, p, lp[live] + bow)
            live, ranks, shift = live[found], idx[found], 1
            if not len(live):
                break
        return lp

    # -- persistence ----------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"kind": self.kind, "order": self.order, "smoothing": self.config.get("smoothing"),
                "vocab_size": len(self.vocab), "ngrams": self.trie.sizes(), "bytes": self.trie.nbytes(),
                "quantize": self.config.get("quantize")}

    def save(self, path: str | Path) -> None:
        """A model folder: config.json, vocab.json and ``trie/``, one ``.npy`` file per array, which
        :meth:`load` memory-maps (instant, and shared by every process that loads the same folder)."""
        with atomic_dir(path) as tmp:
            self.trie.save(tmp / TRIE)
            write_folder(tmp, self.vocab, self.config, self.trie.layout, self.tables.unseen, self.tables.info)

    @classmethod
    def load(cls, path: str | Path, config: dict, device: str = "cpu") -> "NGramLM":
        """The model in folder ``path`` (its parsed ``config``); ``device`` is ignored (the trie is
        memory-mapped).  Folders of the older format are read and packed in memory, with one warning."""
        path = Path(path)
        vocab = Vocab.load(path / "vocab.json")
        order = config.get("order")
        if not isinstance(order, int) or order < 1:
            raise SeqlmError(f"{path}/config.json has no valid order: retrain the model")
        unseen, info = config.get("unseen", "backoff"), config.get("estimation", {})
        if config.get("format") == FORMAT:
            trie = Trie.load(path / TRIE, len(vocab), config.get("trie"), config.get("table_bytes") or {})
            if trie.order != order:
                raise SeqlmError(f"{path}/config.json's trie has {trie.order} orders, not {order}: retrain the model")
            return cls(vocab, None, config, trie=trie, unseen=unseen, info=info)
        if (path / "tables").is_dir():
            keys, logprob, logbow = _map_tables(path, order, config.get("ngrams"), config.get("table_bytes") or {})
        else:
            keys, logprob, logbow = _read_npz(path, order)
        warnings.warn(f"{path} is a model folder of an older seqlm format: it was converted in memory at this load; "
                      f"convert it once (seqlm convert {path} NEW_FOLDER) to load it memory-mapped, at once",
                      UserWarning, stacklevel=2)
        return cls(vocab, Tables(len(vocab), keys, logprob, logbow, unseen, info), config)


TRIE = "trie"


class TrieTables:
    """The trie's tables as the columns the estimators make (``keys``, ``logprob``, ``logbow``: one array
    per order, index 0 for order 1), decoded on first use: for tests, inspection and conversions (the
    queries read the trie)."""

    def __init__(self, trie: Trie, unseen: str, info: dict):
        self.trie, self.unseen, self.info = trie, unseen, info
        self.vocab_size = trie.V
        self.keys = _Columns(trie, lambda k: trie.keys(k, 0, trie.sizes()[k - 1]))
        self.logprob = _Columns(trie, lambda k: trie.prob(k, np.arange(trie.sizes()[k - 1])))
        self.logbow = _Columns(trie, lambda k: trie.bow(k, np.arange(trie.sizes()[k - 1])))

    @property
    def order(self) -> int:
        return self.trie.order

    def sizes(self) -> list[int]:
        return self.trie.sizes()


class _Columns:
    def __init__(self, trie: Trie, decode):
        self._decode, self._cache, self._n = decode, {}, trie.order

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, j: int) -> np.ndarray:
        j = range(self._n)[j]
        if j not in self._cache:
            self._cache[j] = self._decode(j + 1)
        return self._cache[j]

    def __iter__(self):
        return (self[j] for j in range(self._n))


def write_folder(folder: Path, vocab: Vocab, config: dict, layout: list[dict], unseen: str, info: dict) -> dict:
    """vocab.json and config.json of a model folder whose ``trie/`` is written; returns the config."""
    config = dict(config)
    config.update(kind=NGramLM.kind, format=FORMAT, order=len(layout), unseen=unseen,
                  ngrams=[int(lay["n"]) for lay in layout], estimation=info, trie=layout)
    # sizes, checked at load without reading the data (a checksum would read every byte)
    config["table_bytes"] = {f.name: f.stat().st_size for f in sorted((folder / TRIE).iterdir())}
    vocab.save(folder / "vocab.json")
    write_config(folder, config, default=_jsonable)
    return config


def _map_tables(path: Path, order: int, sizes, file_bytes: dict) -> tuple[list, list, list]:
    """The columns of an older folder's ``tables/`` (keys, logprob, logbow of each order), memory-mapped
    read-only; checked against the sizes config.json records."""
    counts = sizes if isinstance(sizes, list) and len(sizes) == order else [None] * order
    return tuple([open_array(path / "tables" / f"{name}{k}.npy", dtype, counts[k - 1], file_bytes)
                  for k in range(1, order + 1)]
                 for name, dtype in (("keys", np.int64), ("logprob", np.float64), ("logbow", np.float64)))


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

