"""Vectorized numbers and lines for ARPA files: no Python loop per line or per n-gram.

Reading: the decimal numbers of a block (:func:`parse_numbers`: an exact vectorized parse of plain
decimals, Python's ``float`` for anything else, e.g. exponents); tokens and their hashes come from
``seqlm.text.bytes``.

Writing: :func:`format_numbers` prints floats in fixed point (7 decimals, ``-99`` for ``-inf``) into a
byte matrix, and :func:`assemble` lays rows of variable-length byte fields out one after the other.
"""

from __future__ import annotations

import numpy as np

from seqlm.text.bytes import gather, windows


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
    return windows(src, start, width)
