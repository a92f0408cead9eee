"""Subword and byte units: what a token is at levels ``bpe``, ``unigram`` and ``byte``.

* ``bpe`` / ``unigram``: pieces of words, learned from the training split only (``data.vocab_size`` pieces) by
  HF ``tokenizers`` (byte-pair merges, or a unigram LM as SentencePiece's), with SentencePiece's conventions:
  a piece that begins a word carries ``▁`` (U+2581), so pieces join back into the text and a word's pieces are
  known (``▁the`` ``▁cat`` ``s``), and a character never seen in training is spelled by its UTF-8 bytes
  (``<0xC3>`` ``<0xA9>``: 256 byte pieces are in every vocabulary), never ``<unk>``.  The learned model is a JSON string kept in the tokenizer's
  description, so it is saved, checksummed and loaded with every model's vocabulary.
* ``byte``: the bytes of the line's UTF-8, one token each: printable ASCII as itself, a space as ``▁``, any other
  byte as ``<0xNN>`` (so a token never holds whitespace and ARPA files can carry it); no library, no training.

As at character level, runs of whitespace collapse to one space and the line is stripped before it is cut.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Iterable

from seqlm.errors import SeqlmError

SPACE = "\u2581"
SUBWORD = ("bpe", "unigram")
INSTALL = "pip install 'seqlm[units]'"
UNK = "<unk>"
SPECIAL = [UNK] + [f"<0x{b:02X}>" for b in range(256)]  # bpe, unigram: byte fallback, as SentencePiece's
MIN_PIECES = 260
BYTE_PIECE = re.compile("<0x([0-9A-F]{2})>")

# byte value -> token, and back
_BYTE = [chr(b) if 0x21 <= b <= 0x7E else (SPACE if b == 0x20 else f"<0x{b:02X}>") for b in range(256)]
_FROM_BYTE = {t: b for b, t in enumerate(_BYTE)}


def byte_tokens(line: str) -> list[str]:
    """The tokens of a (normalized) line at byte level."""
    return [_BYTE[b] for b in line.encode("utf-8")]


def byte_text(tokens: Iterable[str]) -> str:
    """Tokens at byte level back to text (a token that is no byte, such as ``<unk>``, is left out; bytes that
    are no UTF-8 become U+FFFD)."""
    return bytes(_FROM_BYTE[t] for t in tokens if t in _FROM_BYTE).decode("utf-8", errors="replace").replace(
        SPACE, " ")


def _library():
    try:
        import tokenizers
    except ImportError:
        raise SeqlmError(f"subword units (bpe, unigram) need HF tokenizers: {INSTALL}") from None
    return tokenizers


def learn(level: str, lines: Iterable[str], vocab_size: int = 8000) -> str:
    """A subword model of ``level`` learned from the (normalized) ``lines``: its JSON."""
    tk = _library()
    if vocab_size < MIN_PIECES:
        raise SeqlmError(f"data.vocab_size must be at least {MIN_PIECES} for {level} (got {vocab_size}): the 256 "
                         f"byte pieces that spell any text, <unk>, and the pieces learned")
    if level == "bpe":
        tok = tk.Tokenizer(tk.models.BPE(unk_token=UNK, byte_fallback=True))
        trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False)
    elif level == "unigram":
        tok = tk.Tokenizer(tk.models.Unigram())
        trainer = tk.trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, unk_token=UNK,
                                             show_progress=False)
    else:
        raise SeqlmError(f"unknown subword unit {level!r}: use bpe or unigram")
    tok.pre_tokenizer = tk.pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always")
    tok.decoder = tk.decoders.Metaspace(replacement=SPACE, prepend_scheme="always")
    tok.train_from_iterator(lines, trainer)
    model = json.loads(tok.to_str())
    if level == "unigram":  # its scores differ from run to run in their last bits (sums in threads): the same
        # text must give the same model
        model["model"]["vocab"] = [[p, round(score, 6)] for p, score in model["model"]["vocab"]]
    model["model"]["byte_fallback"] = True  # a character never seen in training is spelled in bytes, not <unk>
    return json.dumps(model, ensure_ascii=False)


@functools.lru_cache(maxsize=8)
def _compiled(model: str):
    return _library().Tokenizer.from_str(model)


def pieces(model: str, line: str) -> list[str]:
    """A (normalized) line's pieces."""
    return _compiled(model).encode(line, add_special_tokens=False).tokens if line else []


def pieces_batch(model: str, lines: list[str]) -> list[list[str]]:
    """Many lines' pieces at once (the library's threads)."""
    return [e.tokens for e in _compiled(model).encode_batch(lines, add_special_tokens=False)]


def pieces_text(tokens: Iterable[str]) -> str:
    """Pieces back to text: ``▁`` begins a word, ``<0xNN>`` pieces are bytes."""
    out = bytearray()
    for t in tokens:
        m = BYTE_PIECE.fullmatch(t)
        out += bytes([int(m.group(1), 16)]) if m else t.encode("utf-8")
    return out.decode("utf-8", errors="replace").replace(SPACE, " ").strip()


def describe(model: str) -> dict:
    """What the learned model is, for the record: its kind and size."""
    m = json.loads(model)["model"]
    return {"type": m["type"], "pieces": len(m["vocab"])}
