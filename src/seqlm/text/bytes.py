"""Text as bytes, vectorized: the tokens of a block of UTF-8 text and a 64-bit hash of each, with no
Python object per token.

Input: a block of complete lines as a ``uint8`` array.  Output: the start and end offsets of its tokens
(:func:`tokens`, split at the bytes a 256-entry table marks) and a hash of each token's bytes
(:func:`token_hashes`) that does not depend on where the token sits, so a word hashed alone
(:func:`hash_words`) matches it in any file.  Used by the bulk tokenizer (``text/bulk.py``) and the
ARPA reader (``models/ngram/arpa.py``).
"""

from __future__ import annotations

import numpy as np

_WS = np.zeros(256, dtype=bool)  # ARPA lines: words are separated by spaces, fields by tabs (as lmplz writes
_WS[[9, 10, 13, 32]] = True       # them; a word may hold any other byte, a vertical tab or a no-break space too)
_MASK64 = (1 << 64) - 1
_P = 0x100000001B3
_P64 = np.uint64(_P)
_LEN_MIX = np.uint64(0x9E3779B97F4A7C15)
_HASH_WIDTH = 32


def tokens(buf: np.ndarray, blank: np.ndarray = _WS) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and (exclusive) end offsets of the tokens of ``buf`` separated by the bytes ``blank``
    marks (a table of 256 bools; default ARPA's whitespace)."""
    ws = np.empty(len(buf) + 2, dtype=np.int8)
    ws[0] = ws[-1] = 1
    ws[1:-1] = blank[buf]
    d = np.diff(ws)
    return np.flatnonzero(d == -1), np.flatnonzero(d == 1)


def windows(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Rows ``buf[at[i] : at[i] + width]`` (zero bytes past either end of ``buf``), copied straight
    from a strided view: no index matrix."""
    pad = np.zeros(len(buf) + 2 * width, dtype=np.uint8)
    pad[width:width + len(buf)] = buf
    return np.lib.stride_tricks.sliding_window_view(pad, width)[at + width]


def gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of the tokens, left-aligned, zero-padded (tokens longer are cut)."""
    out = windows(buf, starts, width)
    out[np.arange(width) >= (ends - starts)[:, None]] = 0
    return out


def token_hashes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of the bytes of each token ``buf[starts[i]:ends[i]]``, independent of where it sits.

    The token is read right-aligned in a row of 8-byte words (zeros before it), and the words are
    combined as h = h * P + word: a few vector operations for the whole block.  Tokens longer than
    ``_HASH_WIDTH`` bytes (rare) are hashed the same way in Python.
    """
    lengths = ends - starts
    n = len(starts)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    width = min(int(-(-lengths.max() // 8) * 8), _HASH_WIDTH)
    rows = windows(buf, ends - width, width)
    rows[np.arange(width) < (width - lengths)[:, None]] = 0
    words = rows.view(np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in range(words.shape[1]):
            h = h * _P64 + words[:, c]
        h = h * _LEN_MIX + lengths.astype(np.uint64)
    for i in np.flatnonzero(lengths > width):
        h[i] = _hash_bytes(bytes(buf[starts[i]:ends[i]]))
    return h


def _hash_bytes(data: bytes) -> np.uint64:
    """:func:`token_hashes` of one token of any length."""
    pad = (-len(data)) % 8
    padded = b"\x00" * pad + data
    h = 0
    for c in range(0, len(padded), 8):
        h = (h * _P + int.from_bytes(padded[c:c + 8], "little")) & _MASK64
    return np.uint64((h * int(_LEN_MIX) + len(data)) & _MASK64)


def hash_words(words: list[str]) -> np.ndarray:
    """:func:`token_hashes` of each word (UTF-8), as the reader computes it for a token in a file."""
    data = np.frombuffer(" ".join(words).encode("utf-8"), dtype=np.uint8)
    lengths = np.fromiter((len(w.encode("utf-8")) for w in words), dtype=np.int64, count=len(words))
    starts = np.zeros(len(words), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    return token_hashes(data, starts, starts + lengths)
