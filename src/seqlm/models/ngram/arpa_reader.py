"""Reading any ARPA back-off file (lmplz's, SRILM's, ours) into an :class:`NGramLM`, in bounded memory.

The file (or gzip stream) is read in blocks of whole lines; a block is cut at section headers and each
piece parsed with array operations in a worker thread (NumPy releases the GIL, so both cores parse) while
the main thread checks and places pieces in file order.  Errors name the section and line.  The format's
conventions (log10, the tokenizer mark, a missing ``<unk>``) are in ``arpa.py``.
"""

from __future__ import annotations

import gzip
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io import hashindex as ngram_index
from seqlm.models.ngram import fastio
from seqlm.models.ngram.arpa import LN10, MARK, MISSING_UNK_LOG10, parse_mark
from seqlm.models.ngram.model import NGramLM, find_keys
from seqlm.models.ngram.smoothing import Tables
from seqlm.text import bytes as textbytes
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS, EOS, SPECIALS, UNK, Vocab

log = logging.getLogger(__name__)
BLOCK = 1 << 18  # bytes of complete lines parsed at a time: memory stays bounded whatever the file's size


def _blocks(path: Path):
    """The file (gunzipped if it is gzip, by its magic bytes) as blocks of complete lines."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise SeqlmError(f"{path}: no such ARPA file: check the path") from None
    except IsADirectoryError:
        raise SeqlmError(f"{path} is a folder: give an ARPA file or a seqlm model folder") from None
    with raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        fh = gzip.GzipFile(fileobj=raw) if gz else raw
        carry = b""
        while True:
            try:
                chunk = fh.read(BLOCK)
            except (OSError, EOFError) as e:
                raise SeqlmError(f"{path} is a damaged gzip file ({e}): re-create or re-download it") from None
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield data[:cut]
                carry = data[cut:]
            else:
                carry = data
        if carry:
            yield carry + b"\n"


class _Section:
    """The entries of one order, filled block by block into arrays sized by the header."""

    def __init__(self, k: int, count: int):
        self.k, self.count, self.filled, self.lines = k, count, 0, 0
        self.probs = np.empty(count)
        self.bows = np.zeros(count)
        self.keys = np.empty(count, dtype=np.int64) if k > 1 else None
        self.has_bows = False
        self.words: list[str] = []
        self.hashes = np.empty(count, dtype=np.uint64) if k == 1 else None


def _section_of(line: str, section):
    """The section a header line opens (as read() tracks it; head() checks it)."""
    if line == "\\data\\":
        return "header"
    if line == "\\end\\":
        return "end"
    if line.startswith("\\") and line.endswith("-grams:") and line[1:-7].isdigit():
        return int(line[1:-7])
    return section


class _LineError(Exception):
    def __init__(self, line: int, why: str):
        super().__init__(why)
        self.line, self.why = line, why


@dataclass
class _Parsed:
    newlines: int
    probs: np.ndarray
    bows: np.ndarray
    hashes: np.ndarray  # of every word, line by line
    buf: np.ndarray  # the piece, and where each word sits in it (for messages and unigram strings)
    starts: np.ndarray
    ends: np.ndarray


def _parse_entries(buf: np.ndarray, k: int) -> _Parsed:
    """The lines of a piece of the ``k``-grams section: ``log10p w1 ... wk [log10bow]``, whitespace-separated,
    blank lines skipped.  Raises _LineError (line index in the piece) for a malformed line."""
    newlines = np.flatnonzero(buf == 10)
    s, e = textbytes.tokens(buf)
    if len(s) == 0:
        empty = np.zeros(0)
        return _Parsed(len(newlines), empty, empty, np.zeros(0, np.uint64), buf, s, e)
    line_of_byte = np.cumsum(buf == 10, dtype=np.int32)  # newlines before each byte: its line's index
    per_line = np.bincount(line_of_byte[s], minlength=len(newlines))
    line_no = np.flatnonzero(per_line)
    n_fields = per_line[line_no]

    def text(i):  # the i-th non-blank line of the piece, for messages
        j = line_no[i]
        a = newlines[j - 1] + 1 if j else 0
        return bytes(buf[a:newlines[j]]).decode("utf-8", "replace")[:80]

    wrong = np.flatnonzero((n_fields != k + 1) & (n_fields != k + 2))
    if len(wrong):
        i = wrong[0]
        raise _LineError(line_no[i], f" has {n_fields[i]} fields (expected {k + 1} or {k + 2}): {text(i)!r}")
    n = len(line_no)
    first = np.cumsum(n_fields) - n_fields
    probs, bad = fastio.parse_numbers(buf, s[first], e[first])
    has_bow = n_fields == k + 2
    bows = np.zeros(n)
    at = first[has_bow] + k + 1
    bows[has_bow], bad_bow = fastio.parse_numbers(buf, s[at], e[at])
    bad[np.flatnonzero(has_bow)[bad_bow]] = True
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _LineError(line_no[i], f" has a non-number: {text(i)!r}")
    invalid = ~(probs <= 0.0) | ~np.isfinite(bows)  # NaN fails the comparison
    if invalid.any():
        i = int(np.flatnonzero(invalid)[0])
        raise _LineError(line_no[i], f": a log10 probability must be <= 0 and a backoff weight finite: {text(i)!r}")
    word_tok = (first[:, None] + 1 + np.arange(k)).ravel()
    ws, we = s[word_tok], e[word_tok]
    return _Parsed(len(newlines), probs, bows, textbytes.token_hashes(buf, ws, we), buf, ws, we)


class _ArpaReader:
    def __init__(self, path: Path):
        self.path = path
        self.bad = f"{path} is not a valid ARPA file"
        self.state = "before"  # before \data\, "header", a section number, or "end"
        self.counts: dict[int, int] = {}
        self.sections: dict[int, _Section] = {}
        self.vocab_hashes = None  # sorted hashes of the unigram words, and the word id of each
        self.vocab_ids = None
        self.unigrams = None
        self.marked = None
        self.keys: list[np.ndarray] = []  # the tables, order by order as the sections close
        self.logprob: list[np.ndarray] = []
        self.logbow: list[np.ndarray] = []

    def fail(self, why: str):
        raise SeqlmError(f"{self.bad}: {why}")

    def read(self) -> None:
        """Blocks are cut at section headers; each piece of a section is parsed in a worker thread (NumPy
        releases the GIL: both cores work) while this thread checks and places the pieces in file order."""
        pending: deque = deque()
        section = None  # the section the file is in, as far as its headers say (checked in order below)
        after_end = b""
        with ThreadPoolExecutor(max_workers=2) as pool:
            blocks = _blocks(self.path)
            for block in blocks:
                buf = np.frombuffer(block, dtype=np.uint8)
                line_starts = np.concatenate([[0], np.flatnonzero(buf[:-1] == 10) + 1])
                heads = line_starts[buf[line_starts] == 92].tolist()  # lines starting with a backslash
                at = 0
                for h in heads + [len(buf)]:
                    if h > at:
                        piece = buf[at:h]
                        if isinstance(section, int):
                            pending.append(("entries", pool.submit(_parse_entries, piece, section)))
                        else:
                            pending.append(("lines", piece))
                    if h == len(buf):
                        break
                    end = block.index(b"\n", h)
                    line = block[h:end].decode("utf-8", "replace").strip()
                    pending.append(("head", line))
                    section = _section_of(line, section)
                    at = end + 1
                    if section == "end":
                        break
                while len(pending) > 4 or (pending and pending[0][0] != "entries"):
                    self.take(*pending.popleft())
                if section == "end":
                    after_end = block[at:].strip() or next(blocks, b"").strip()
                    break
            while pending:
                self.take(*pending.popleft())
        if self.state == "before":
            self.fail("no \\data\\ header: give an ARPA file")
        if self.state != "end":
            self.fail("no \\end\\ marker (truncated?): re-create the file")
        missing = sorted(set(self.counts) - set(self.sections))
        if missing:
            self.fail(f"missing section(s) {missing} (truncated?)")
        top = self.sections[max(self.sections)]
        if top.k > 1 and top.has_bows:
            log.warning("%s: the highest order (%d-grams) has backoff weights: ignored (no longer n-gram continues "
                        "them; KenLM ignores them too)", self.path, top.k)
        uni = np.asarray(self.logprob[0]) if self.logprob else np.zeros(0)
        mass = float(np.exp(uni[np.isfinite(uni)]).sum())
        if mass > 1.01:
            log.warning("%s: the unigram probabilities sum to %.3f, more than 1: the file is not a normalised model "
                        "and its scores are not log-probabilities", self.path, mass)
        if after_end:
            log.warning("%s: text after \\end\\ is ignored (two files joined?): %r", self.path,
                        after_end[:40].decode("utf-8", "replace"))

    def take(self, what: str, item) -> None:
        if self.state == "end":
            return
        if what == "head":
            self.head(item)
        elif what == "lines":
            self.lines(item)
        else:
            sec = self.sections[self.state]
            try:
                parsed = item.result()
            except _LineError as e:
                self.fail(f"in \\{sec.k}-grams:, line {sec.lines + e.line + 1}{e.why}")
            self.place(sec, parsed)

    def head(self, line: str) -> None:
        if line == "\\data\\":
            if self.state != "before":
                self.fail("a second \\data\\ header")
            self.state = "header"
            return
        if self.state == "before":
            return  # text before \data\ is ignored
        if self.state == "header":
            if not self.counts or sorted(self.counts) != list(range(1, max(self.counts) + 1)):
                self.fail("the header must list ngram 1=..., ngram 2=..., without gaps")
        else:
            self.close_section()
        if line == "\\end\\":
            self.state = "end"
            return
        if not (line.startswith("\\") and line.endswith("-grams:") and line[1:-7].isdigit()):
            self.fail(f"unexpected section {line!r}")
        k = int(line[1:-7])
        if k not in self.counts or k in self.sections:
            self.fail(f"section \\{k}-grams: not announced in the header or repeated")
        if k != len(self.sections) + 1:
            self.fail(f"section \\{k}-grams: out of order (sections must go 1, 2, 3, ...)")
        self.sections[k] = _Section(k, self.counts[k])
        self.state = k

    def lines(self, buf: np.ndarray) -> None:
        if self.state == "before":
            return
        if self.state != "header":  # a section's lines are parsed by read()
            raise AssertionError(self.state)
        for line in bytes(buf).decode("utf-8", "replace").splitlines():
            line = line.strip()
            if not line:
                continue
            if not line.startswith("ngram ") or "=" not in line:
                self.fail(f"unexpected header line {line!r}")
            try:
                k, n = (int(x) for x in line[6:].split("="))
            except ValueError:
                self.fail(f"unreadable header line {line!r}")
            if k < 1 or n < 0 or k in self.counts:
                self.fail(f"header line {line!r}: the order must be >= 1, given once, and the count >= 0")
            self.counts[k] = n

    def place(self, sec: _Section, p: "_Parsed") -> None:
        """Check a parsed piece against the header and the vocabulary, and store it."""
        k = sec.k
        base = sec.lines
        sec.lines += p.newlines
        n = len(p.probs)
        if sec.filled + n > sec.count:
            self.fail(f"the header announces {sec.count} {k}-grams but the file has more")
        rows = slice(sec.filled, sec.filled + n)
        sec.probs[rows] = p.probs
        if p.bows.any():  # the highest order has none: its zeros stay untouched pages, never in memory
            sec.bows[rows] = p.bows
            sec.has_bows = True
        if k == 1:
            sec.hashes[rows] = p.hashes
            try:
                sec.words += [bytes(p.buf[a:b]).decode("utf-8") for a, b in zip(p.starts.tolist(), p.ends.tolist())]
            except UnicodeDecodeError:
                self.fail(f"in \\1-grams: near line {base + 1}, a word is not UTF-8: give a UTF-8 ARPA file")
        elif n:
            pos, found = ngram_index.find(self.vocab_table, self.vocab_hashes, p.hashes.view(np.int64))
            if not found.all():
                j = int(np.flatnonzero(~found)[0])
                word = bytes(p.buf[p.starts[j]:p.ends[j]]).decode("utf-8", "replace")
                self.fail(f"the {k}-grams use the word {word!r}, which has no unigram")
            ids = self.vocab_ids[pos].reshape(n, k)
            # the key (see counts.py): the context's rank among the (k-1)-grams, which are all read by now
            V, keys = len(self.unigrams[0]), self.keys
            rank = ids[:, 0].astype(np.int64)
            for j in range(1, k - 1):
                idx, found = find_keys(keys[j], rank * V + ids[:, j])
                if not found.all():
                    i = int(np.flatnonzero(~found)[0])
                    gram = [self.unigrams[0][w] for w in ids[i]]
                    self.fail(f"the {k}-gram {' '.join(gram)!r} has no entry for its context "
                              f"{' '.join(gram[:j + 1])!r}")
                rank = idx
            sec.keys[rows] = rank * V + ids[:, -1]
        sec.filled += n

    def close_section(self) -> None:
        sec = self.sections[self.state]
        if sec.filled != sec.count:
            self.fail(f"the header announces {sec.count} {sec.k}-grams but the file has {sec.filled} (truncated?)")
        if sec.k == 1:
            self.close_unigrams(sec)
        else:
            self.close_order(sec)
        sec.words = sec.hashes = None  # done with: only the tables stay

    def close_order(self, sec: _Section) -> None:
        """The section's keys sorted (a file need not list n-grams in seqlm's order), with natural-log
        probabilities and backoff weights."""
        key, probs, bows, k = sec.keys, sec.probs, sec.bows, sec.k
        if len(key) > 1 and not (np.diff(key) > 0).all():
            order_idx = np.argsort(key, kind="stable")
            key, probs, bows = key[order_idx], probs[order_idx], bows[order_idx]
            if not (np.diff(key) > 0).all():
                self.fail(f"a {k}-gram is listed twice")
        probs *= LN10
        if sec.has_bows:
            bows *= LN10
        self.keys.append(key)
        self.logprob.append(probs)
        self.logbow.append(bows)
        sec.keys = sec.probs = sec.bows = None

    def close_unigrams(self, sec: _Section) -> None:
        words, probs, bows, hashes = sec.words, sec.probs, sec.bows, sec.hashes
        marks = [i for i, w in enumerate(words) if w.startswith(MARK)]
        if len(marks) > 1:
            self.fail("more than one tokenizer mark")
        self.marked = parse_mark(words[marks[0]], self.bad) if marks else None
        if marks:
            keep = np.ones(len(words), dtype=bool)
            keep[marks[0]] = False
            words = words[:marks[0]] + words[marks[0] + 1:]
            probs, bows, hashes = probs[keep], bows[keep], hashes[keep]
        if len(set(words)) != len(words):
            self.fail("repeated unigram")
        for special in (BOS, EOS):
            if special not in words:
                self.fail(f"no {special} unigram")
        itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        stoi = {w: i for i, w in enumerate(itos)}
        ids = np.array([stoi[w] for w in words], dtype=np.int64)
        order = np.argsort(hashes)
        self.vocab_hashes = hashes[order]
        if len(order) > 1 and not (np.diff(self.vocab_hashes) > 0).all():
            self.fail("two unigrams share a 64-bit hash (astronomically unlikely): please report this file")
        self.vocab_ids = ids[order].astype(np.int32)
        self.vocab_hashes = self.vocab_hashes.view(np.int64)
        self.vocab_table = ngram_index.build(self.vocab_hashes)
        self.unigrams = (itos, ids, probs, bows, words)
        V = len(itos)
        logprob1 = np.full(V, -np.inf)
        logbow1 = np.zeros(V)
        logprob1[ids] = probs * LN10
        logbow1[ids] = bows * LN10
        if UNK not in words:  # as KenLM does for a file without <unk>: log10 p(<unk>) = -100
            logprob1[stoi[UNK]] = MISSING_UNK_LOG10 * LN10
        self.keys.append(np.arange(V, dtype=np.int64))
        self.logprob.append(logprob1)
        self.logbow.append(logbow1)


def read_arpa(path: str | Path, tokenizer: Tokenizer | None = None) -> NGramLM:
    """Load an ARPA file as an :class:`NGramLM` (its vocabulary is the file's unigrams).

    The file is read in blocks of lines and parsed with array operations (see fastio.py): memory is the
    model's arrays plus one block, and there is no Python loop per n-gram.
    """
    path = Path(path)
    reader = _ArpaReader(path)
    reader.read()
    marked = reader.marked
    if marked and tokenizer and (marked.level, marked.lowercase) != (tokenizer.level, tokenizer.lowercase):
        raise SeqlmError(f"{path} was written for {marked.level}-level text (lowercase={marked.lowercase}): "
                         f"drop --level, or give a matching one")
    return _build(reader, marked or tokenizer or Tokenizer(), str(path))


def _build(reader: _ArpaReader, tokenizer: Tokenizer, source: str) -> NGramLM:
    vocab = Vocab(reader.unigrams[0], tokenizer)
    tables = Tables(len(vocab), reader.keys, reader.logprob, reader.logbow, "backoff", {"source": source})
    return NGramLM(vocab, tables, {"smoothing": "arpa", "arpa": source})
