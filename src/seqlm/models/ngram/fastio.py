"""Vectorized byte-level text handling for ARPA files: no Python loop per line or per n-gram.

Reading: a block of complete lines (``uint8`` array) -> the offsets of its whitespace-separated tokens
(:func:`tokens`), a 64-bit hash of each token's bytes (:func:`token_hashes`, used to map words to ids
by one ``searchsorted`` against the hashes of the vocabulary), and the decimal numbers
(:func:`parse_numbers`: an exact vectorized parse of plain decimals, Python's ``float`` for anything
else, e.g. exponents).

Writing: :func:`format_numbers` prints floats in fixed point (7 decimals, ``-99`` for ``-inf``) into a
byte matrix, and :func:`assemble` lays rows of variable-length byte fields out one after the other.
"""

from __future__ import annotations

import numpy as np

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True
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


def _windows(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Rows ``buf[at[i] : at[i] + width]`` (zero bytes past either end of ``buf``), copied straight
    from a strided view: no index matrix."""
    pad = np.zeros(len(buf) + 2 * width, dtype=np.uint8)
    pad[width:width + len(buf)] = buf
    return np.lib.stride_tricks.sliding_window_view(pad, width)[at + width]


def gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 matrix of the tokens, left-aligned, zero-padded (tokens longer are cut)."""
    out = _windows(buf, starts, width)
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
    rows = _windows(buf, ends - width, width)
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


def parse_numbers(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numbers written in the tokens, and a mask of the tokens that are not numbers (value NaN).

    Plain decimals (an optional sign, digits, at most one point, at most 15 characters) are parsed
    exactly: their digits make an integer below 2^53 (two matrix-vector products with powers of ten,
    every partial sum an exact integer), divided once by a power of ten, so the result is the correctly
    rounded double that ``float()`` gives.  Any other token (exponents, ``inf``) goes through ``float()``.
    """
    n = len(starts)
    values = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return values, bad
    lengths = ends - starts
    width = int(min(lengths.max(), 15))
    m = gather(buf, starts, ends, width)
    digit = m - np.uint8(48)  # wraps: below 10 only for '0'..'9' (padding is 0, so never a digit)
    is_digit = digit < 10
    is_point = m == 46
    has_point = is_point.any(1)
    point_at = np.where(has_point, is_point.argmax(1), -1)  # no point: no digit sits before one
    signed = (m[:, 0] == 45) | (m[:, 0] == 43)
    simple = ((is_digit.sum(1, dtype=np.int64) + has_point + signed == lengths) & (is_point.sum(1) <= 1)
              & (lengths - has_point - signed >= 1) & (lengths <= width))
    places = 10.0 ** np.arange(width - 1, -1, -1)  # column j counts 10^(width-1-j)
    dz = np.where(is_digit, digit, 0).astype(np.float64)
    total = dz @ places
    left = dz
    left[np.arange(width) >= point_at[:, None]] = 0.0
    ahead = left @ places  # digits before the point sit one place too high
    integer = (total - ahead) + ahead / 10.0
    after = np.where(has_point, lengths - 1 - point_at, 0)
    values = integer / 10.0 ** (width - lengths + after)
    values[m[:, 0] == 45] *= -1.0
    values[~simple] = np.nan
    for i in np.flatnonzero(~simple):
        text = bytes(buf[starts[i]:ends[i]])
        try:
            values[i] = float(text)
        except ValueError:
            bad[i] = True
    return values, bad


def format_numbers(x: np.ndarray, decimals: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point text of each float (``-99`` for -inf): an (n, width) byte matrix and each row's length."""
    x = np.asarray(x, dtype=np.float64)
    ninf = x == -np.inf
    if not np.isfinite(x[~ninf]).all():
        raise ValueError("cannot write NaN or +inf")
    scaled = np.rint(np.abs(np.where(ninf, 0.0, x)) * 10 ** decimals).astype(np.int64)
    neg = (x < 0) & (scaled > 0)
    int_part = scaled // 10 ** decimals
    int_digits = np.ones(len(x), dtype=np.int64)
    for p in range(1, 19):
        int_digits += int_part >= 10 ** p
    length = neg + int_digits + 1 + decimals
    width = int(length.max()) if len(x) else 1
    width = max(width, 3)
    out = np.zeros((len(x), width), dtype=np.uint8)
    rows = np.arange(len(x))
    out[rows, 0] = np.where(neg, 45, 0)
    # digits, right to left: the fraction, the point, the integer part
    pos = length - 1
    v = scaled.copy()
    for j in range(decimals):
        out[rows, pos] = 48 + v % 10
        v //= 10
        pos -= 1
    out[rows, pos] = 46
    pos -= 1
    for j in range(int(int_digits.max()) if len(x) else 0):
        live = j < int_digits
        out[rows[live], pos[live]] = 48 + v[live] % 10
        v //= 10
        pos -= 1
    out[ninf] = 0
    out[ninf, :3] = np.frombuffer(b"-99", dtype=np.uint8)
    length[ninf] = 3
    return out, length


def assemble(fields: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]],
             separators: list[tuple[bytes, bool]]) -> np.ndarray:
    """Rows of byte fields laid out one after the other: row i = f0[i] sep0 f1[i] sep1 ... (as bytes).

    Each field is (source bytes, start of row i's bytes in it, length of row i's bytes; a length may be 0),
    or (an (n, width) byte matrix, None, lengths); ``separators[j] = (bytes, only_if_field_j_nonempty)``
    follows field j (the last one ends the row).  The fields are copied side by side into one matrix (rows
    from strided windows of the sources) and the bytes past each field's length dropped by one boolean
    compress, which keeps row order.
    """
    n = len(fields[0][2])
    blocks, masks = [], []
    for (src, start, length), (sep, optional) in zip(fields, separators):
        width = int(length.max()) if n else 0
        if width:
            blocks.append(src[:, :width] if start is None else _rows(src, start, width))
            masks.append(np.arange(width) < length[:, None])
        if sep:
            blocks.append(np.broadcast_to(np.frombuffer(sep, dtype=np.uint8), (n, len(sep))))
            keep = (length > 0) if optional else np.ones(n, dtype=bool)
            masks.append(np.broadcast_to(keep[:, None], (n, len(sep))))
    if not blocks:
        return np.zeros(0, dtype=np.uint8)
    return np.concatenate(blocks, axis=1)[np.concatenate(masks, axis=1)]


def _rows(src: np.ndarray, start: np.ndarray, width: int) -> np.ndarray:
    """Rows ``src[start[i] : start[i] + width]`` (bytes past the end of ``src`` are zero)."""
    if len(src) >= width and (len(start) == 0 or int(start.max()) + width <= len(src)):
        return np.lib.stride_tricks.sliding_window_view(src, width)[start]
    return _windows(src, start, width)
