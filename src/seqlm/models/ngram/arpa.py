"""ARPA back-off files: the format's conventions, and writing an :class:`NGramLM` (``arpa_reader.py`` reads
any ARPA file: lmplz's, SRILM's, ours).

The only place in seqlm where log10 appears: ARPA stores log10 probabilities and backoff weights,
seqlm stores natural logs.  ``-inf`` is written as -99 (the ARPA convention, as lmplz does for
``<s>``); -99 read back is kept as the number it is, 1e-99.  Files ending in ``.gz`` (or starting with the
gzip magic bytes) are compressed/decompressed transparently.
"""

from __future__ import annotations

import base64
import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_write
from seqlm.models.ngram import fastio
from seqlm.models.ngram.model import NGramLM
from seqlm.text.tokenize import Tokenizer

LN10 = math.log(10.0)
# The tokenizer travels inside the file as one extra unigram that no text contains, with probability
# 10^-99 (the ARPA convention for "never"): KenLM reads such a file unchanged (it refuses any line before
# \data\ or after \end\), and seqlm reads the level back instead of guessing "word".
MARK = "<seqlm:tokenizer:"


def _mark(tokenizer: Tokenizer) -> str:
    """The tokenizer as one unigram no text contains; a subword model's pieces ride in it (zlib, base64: no
    whitespace, so the file stays one KenLM reads, and the ARPA file alone reads text as the model did)."""
    pieces = ""
    if tokenizer.model is not None:
        pieces = ":pieces=" + base64.urlsafe_b64encode(zlib.compress(tokenizer.model.encode("utf-8"), 9)).decode()
    return (f"{MARK}level={tokenizer.level}:lowercase={int(tokenizer.lowercase)}:whitespace={tokenizer.whitespace}"
            f"{pieces}>")


def parse_mark(word: str, bad: str) -> Tokenizer:
    try:
        fields = dict(f.split("=", 1) for f in word[len(MARK):-1].split(":"))
        # files written before the whitespace rule: their text was split at every Unicode space
        pieces = fields.get("pieces")
        model = zlib.decompress(base64.urlsafe_b64decode(pieces)).decode("utf-8") if pieces else None
        return Tokenizer(fields["level"], bool(int(fields["lowercase"])), fields.get("whitespace", "unicode"), model)
    except (ValueError, KeyError, SeqlmError, zlib.error):
        raise SeqlmError(f"{bad}: unreadable tokenizer mark {word!r}: re-export the model") from None


MISSING_UNK_LOG10 = -100.0  # KenLM's unknown_missing_logprob
ROWS = 1 << 18  # n-grams formatted at a time when writing
KEEP_NAMES = 128 << 20  # bytes of one order's n-gram text kept to build the next order's; beyond, from the keys
PAD = 256  # zero bytes after the word and name buffers, so most rows are read as strided windows


def write_arpa(model: NGramLM, path: str | Path) -> None:
    """Write ``model`` as an ARPA file (gzip'd if ``path`` ends in .gz), atomically.

    Lines are laid out with array operations (see fastio.py), a block of n-grams at a time; the words of a
    block's n-grams come from their keys, walking down the orders (key -> context rank -> the context's
    key ...), so memory is one block whatever the model's size.  Numbers are written in fixed point with 7
    decimals (-99 for log10 0); a zero backoff is omitted.
    """
    if not isinstance(model, NGramLM):
        raise SeqlmError(f"a {getattr(model, 'kind', type(model).__name__)} model cannot be written as ARPA: "
                         f"only n-gram models can")
    t = model.tables
    if t.unseen != "backoff" and model.order > 1:
        raise SeqlmError("add-k smoothing above order 1 cannot be written as ARPA (backoff cannot spread "
                         "the added mass uniformly): export an mle, ikn or mkn model")
    path = Path(path)
    V = t.vocab_size
    encoded = [w.encode("utf-8") for w in model.vocab.itos]
    word_bytes = np.frombuffer(b"".join(encoded) + bytes(PAD), dtype=np.uint8)  # padded: rows read past the end
    word_len = np.array([len(w) for w in encoded], dtype=np.int64)
    word_start = np.cumsum(word_len) - word_len
    with atomic_write(path, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) if path.suffix == ".gz" else raw
        head = ["\\data\\"] + [f"ngram {k}={len(t.keys[k - 1]) + (k == 1)}" for k in range(1, model.order + 1)]
        out.write(("\n".join(head) + "\n").encode())
        names = (word_bytes, word_start, word_len)  # the words of each n-gram of the previous order, if kept
        for k in range(1, model.order + 1):
            out.write(f"\n\\{k}-grams:\n".encode())
            if k == 1:
                out.write(f"-99\t{_mark(model.vocab.tokenizer)}\n".encode("utf-8"))
            keys = t.keys[k - 1]
            parts, kept_bytes = [], 0
            for a in range(0, len(keys), ROWS):
                rows = slice(a, a + ROWS)
                if k == 1:
                    name = (word_bytes, word_start[rows], word_len[rows])
                elif names is not None:  # context text (kept from the order below) + one word
                    ctx, w = keys[rows] // V, keys[rows] % V
                    fields = [(names[0], names[1][ctx], names[2][ctx]), (word_bytes, word_start[w], word_len[w])]
                    name = _join(fields, names[2][ctx] + 1 + word_len[w])
                else:  # every word from the keys (the order below was too large to keep)
                    words = _words(t, k, np.asarray(keys[rows]))
                    name = _join([(word_bytes, word_start[w], word_len[w]) for w in words],
                                 sum(word_len[w] for w in words) + (k - 1))
                if k > 1 and kept_bytes <= KEEP_NAMES:
                    parts.append(name)
                    kept_bytes += len(name[0]) + 16 * len(name[2])  # text, starts and lengths
                out.write(_lines(t.logprob[k - 1][rows], name, t.logbow[k - 1][rows] if k < model.order else None).tobytes())
            if k > 1:
                if parts and kept_bytes <= KEEP_NAMES:
                    lengths = np.concatenate([p[2] for p in parts])
                    names = (np.concatenate([p[0] for p in parts] + [np.zeros(PAD, np.uint8)]),
                             np.cumsum(lengths) - lengths, lengths)
                else:
                    names = None
        out.write(b"\n\\end\\\n")
        if out is not raw:
            out.close()


def _join(fields, length: np.ndarray) -> tuple:
    """The words of a block's n-grams, separated by spaces: (bytes, start of each, length of each)."""
    text = fastio.assemble(fields, [(b" ", False)] * (len(fields) - 1) + [(b"", False)])
    return text, np.cumsum(length) - length, length


def _words(t, k: int, keys: np.ndarray) -> list[np.ndarray]:
    """Word ids w1..wk of order-k n-grams from their keys: the last word is ``key % V``, the context's key is
    ``keys[k-2][key // V]``, and so on down to order 1, whose rank is the word id."""
    V = t.vocab_size
    words = [keys % V]
    rank = keys // V
    for j in range(k - 1, 1, -1):
        ctx_keys = t.keys[j - 1][rank]
        words.append(ctx_keys % V)
        rank = ctx_keys // V
    words.append(rank)
    return words[::-1]


def _lines(logprob: np.ndarray, name, logbow: np.ndarray | None) -> np.ndarray:
    """ARPA lines ``log10p TAB words [TAB log10bow] NEWLINE`` of a block of n-grams, as bytes."""
    n = len(logprob)
    probs, plen = fastio.format_numbers(logprob / LN10)
    fields = [(probs, None, plen), name]
    if logbow is not None:
        bows, blen = fastio.format_numbers(logbow / LN10)
        bows = np.concatenate([np.full((n, 1), 9, np.uint8), bows], axis=1)  # a tab before the number
        fields.append((bows, None, np.where(logbow != 0, blen + 1, 0)))
        seps = [(b"\t", False), (b"", False), (b"\n", False)]
    else:
        seps = [(b"\t", False), (b"\n", False)]
    return fastio.assemble(fields, seps)
