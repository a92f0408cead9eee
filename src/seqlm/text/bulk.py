"""A training file of any size -> a vocabulary and a file of token ids, with no Python object per token.

The text is read in blocks of whole lines.  Word level: a block's tokens are found by a byte table
(:func:`seqlm.ngram.textbytes.tokens`), hashed (64-bit, :func:`seqlm.ngram.textbytes.token_hashes`) and counted
by hash; only a type's first occurrence is decoded to a string.  Character level goes through the
tokenizer line by line (the same hashes, from :func:`seqlm.ngram.textbytes.hash_words`).  Both give exactly
what :meth:`Tokenizer.tokenize` and :meth:`Vocab.build` give on :func:`read_lines`'s lines: lines end at
``\\n`` only, blank lines are dropped, tokens are split at the tokenizer's whitespace (``kenlm``: space, tab
and CR, as lmplz; ``unicode``: Python's ``str.split``, the ASCII blanks, ``\\x1c``-``\\x1f`` and the Unicode
spaces), a leading byte-order mark is dropped, and the same one-line errors for NUL bytes and bad UTF-8.

Pass 1 counts the types and writes each block's hashes to a scratch file; pass 2 maps hashes to ids
(one ``searchsorted`` against the vocabulary's sorted hashes) and writes the id stream, each line as
``<s> w1 ... wn </s>`` (int32), the layout the n-gram counter reads.  Two words with the same 64-bit hash
would be one type: the chance is about types^2 / 2^65 (1e-9 for 200,000 types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io import hashindex as ngram_index
from seqlm.text import bytes as textbytes
from seqlm.text.corpora import decode_block, line_blocks
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS_ID, EOS_ID, UNK_ID, Vocab

# what str.split() splits at among ASCII bytes: \t \n \v \f \r, \x1c-\x1f and the space
_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
# the kenlm rule (text/tokenize.py): lmplz's separators (NUL never reaches here: such a file is refused)
_KENLM_WS = np.zeros(256, dtype=bool)
_KENLM_WS[[9, 10, 13, 32]] = True
# the other characters str.split() splits at (str.isspace beyond ASCII)
_UNICODE_WS = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
BLOCK = 16 << 20


@dataclass
class TokenFile:
    """The id stream of a training file (``ids``: int32, every line as ``<s> ... </s>``)."""

    vocab: Vocab
    ids: Path
    positions: int  # length of the id stream
    line_ends: np.ndarray  # (lines,) int64: position after each line's </s>
    tokens: int  # words (or characters), no specials

    @property
    def lines(self) -> int:
        return len(self.line_ends)


def _word_block(data: bytes, text: str, tokenizer: Tokenizer):
    """Hashes of the block's tokens, the token count of each non-blank line, and a function giving a
    token's text."""
    if not text.isascii():
        if tokenizer.lowercase:
            text = text.lower()
        if tokenizer.whitespace == "unicode" and _UNICODE_WS.search(text):
            text = _UNICODE_WS.sub(" ", text)
        data = text.encode("utf-8")
    elif tokenizer.lowercase:
        data = data.lower()
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = textbytes.tokens(buf, _WS if tokenizer.whitespace == "unicode" else _KENLM_WS)
    line_of = np.searchsorted(np.flatnonzero(buf == 10), starts)
    per_line = np.bincount(line_of, minlength=int(line_of[-1]) + 1 if len(line_of) else 0)
    hashes = textbytes.token_hashes(buf, starts, ends)
    return hashes, per_line[per_line > 0], lambda i: data[starts[i]:ends[i]].decode("utf-8")


def tokenize_block(data: bytes, name: str, offset: int, tokenizer: Tokenizer):
    """A block of whole lines of the file ``name`` (at byte ``offset``) as token hashes, each non-blank line's
    token count and a function giving a token's text; a leading byte-order mark is dropped."""
    text = decode_block(data, name, offset)
    if offset == 0 and text.startswith("\ufeff"):
        text, data = text[1:], data[3:]
    if tokenizer.level == "word":
        return _word_block(data, text, tokenizer)
    return _char_block(text, tokenizer)


def _char_block(text: str, tokenizer: Tokenizer):
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    toks = [t for t in tokenizer.tokenize_many(raw) if t]
    flat = [c for t in toks for c in t]
    hashes = textbytes.hash_words(flat) if flat else np.zeros(0, np.uint64)
    return hashes, np.array([len(t) for t in toks], dtype=np.int64), lambda i: flat[i]


class TypeTable:
    """The types seen so far: hashes (in order of first sight), counts, texts, and a hash index."""

    def __init__(self):
        self.hashes = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self.table = ngram_index.build(self.hashes)

    def add(self, u: np.ndarray, c: np.ndarray, first: np.ndarray, text_of) -> None:
        """Count a block's distinct hashes ``u`` (seen ``c`` times, first at token ``first``)."""
        at, known = ngram_index.find(self.table, self.hashes, u)
        np.add.at(self.counts, at[known], c[known])
        new = ~known
        if new.any():
            self.words += [text_of(i) for i in first[new].tolist()]
            self.hashes = np.concatenate([self.hashes, u[new]])
            self.counts = np.concatenate([self.counts, c[new]])
            self.table = ngram_index.build(self.hashes)


def bounded_map(pool, fn, items, ahead: int = 2):
    """``map(fn, items)`` run in ``pool``'s threads (None: here), in order, with at most ``ahead`` results
    waiting (``pool.map`` would submit every item at once and hold all the results: unbounded memory)."""
    if pool is None:
        yield from map(fn, items)
        return
    pending = []
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.pop(0).result()
    for f in pending:
        yield f.result()


def tokenize_file(path: str | Path, work: Path, tokenizer: Tokenizer, min_count: int = 1,
                  max_size: int | None = None, vocab: Vocab | None = None, block: int = BLOCK,
                  pool=None) -> TokenFile:
    """The vocabulary (built from the file unless given) and the id stream of ``path``, in ``work``;
    blocks are tokenized in ``pool``'s threads when given."""
    path = Path(path)
    name = str(path)
    types = TypeTable()
    lengths = []

    def pass1(item):
        offset, data = item
        hashes, per_line, text_of = tokenize_block(data, name, offset, tokenizer)
        hashes = hashes.view(np.int64)
        u, first, c = np.unique(hashes, return_index=True, return_counts=True)
        return hashes, per_line, u, first, c, text_of, len(item[1])

    from seqlm.io.runtime import Progress

    hash_file = work / "hashes.i64"
    bar = None  # shown once the file is open and its first block read (an error before that is one line)
    try:
        with open(hash_file, "wb") as hf:
            for hashes, per_line, u, first, c, text_of, size in bounded_map(pool, pass1, line_blocks(path, block)):
                if len(hashes):
                    types.add(u, c, first, text_of)
                    hf.write(hashes.tobytes())
                    lengths.append(per_line)
                bar = bar or Progress(path.stat().st_size, f"read {path.name}", unit="B", delay=1.0)
                bar.update(size)
        if not lengths:
            raise SeqlmError(f"{name} is empty (no non-blank line): give a file with text")
    except BaseException:
        if bar is not None:
            bar.close(failed=True)
        raise
    if bar is not None:
        bar.close()
    lengths = np.concatenate(lengths)
    if vocab is None:
        vocab = Vocab.from_counts(dict(zip(types.words, types.counts.tolist())), tokenizer, min_count, max_size)
    # hash -> id: every type of the file; unknown ones (and a literal <s>, </s>) are <unk>
    word_ids = np.array([vocab.text_stoi.get(w, UNK_ID) for w in types.words], dtype=np.int32)
    line_ends = np.cumsum(lengths + 2)
    token_ends = np.cumsum(lengths)
    # pieces of whole lines, about BLOCK / 8 tokens each
    cuts = np.unique(np.searchsorted(token_ends, np.arange(BLOCK // 8, int(token_ends[-1]), BLOCK // 8), side="right"))
    cuts = [0] + [int(x) for x in cuts if 0 < x < len(lengths)] + [len(lengths)]

    def pass2(i):
        lo, hi = cuts[i], cuts[i + 1]
        t0 = int(token_ends[lo - 1]) if lo else 0
        h = read_raw(hash_file, np.int64, t0, int(token_ends[hi - 1]) - t0)
        at, _ = ngram_index.find(types.table, types.hashes, h)
        return pad_lines(word_ids[at], lengths[lo:hi])

    ids_file = work / "ids.i32"
    with open(ids_file, "wb") as out:
        for ids in bounded_map(pool, pass2, range(len(cuts) - 1)):
            out.write(ids.tobytes())
    hash_file.unlink()
    return TokenFile(vocab, ids_file, int(line_ends[-1]), line_ends, int(lengths.sum()))


def read_raw(path: Path, dtype, start: int = 0, count: int = -1) -> np.ndarray:
    """Elements ``start .. start + count`` of a raw array file (read, not mapped: the pages stay in the
    page cache, not in the process)."""
    with open(path, "rb") as f:
        f.seek(start * np.dtype(dtype).itemsize)
        return np.fromfile(f, dtype=dtype, count=count)


def pad_lines(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``<s> line </s>`` for every line (int32)."""
    ends = np.cumsum(lengths + 2)
    out = np.empty(int(ends[-1]), dtype=np.int32)
    word = np.ones(len(out), dtype=bool)
    word[ends - lengths - 2] = False
    word[ends - 1] = False
    out[ends - lengths - 2] = BOS_ID
    out[ends - 1] = EOS_ID
    out[word] = ids
    return out
