"""Tokenizers: text line -> list of token strings, and back.

* ``word``: split on whitespace (PTB style: the text is already tokenized, ``<unk>`` is a word).  Which
  characters are whitespace is the ``whitespace`` rule: ``kenlm`` (the default), as KenLM's ``lmplz``
  splits (space, tab, carriage return and NUL: a no-break space or a vertical tab is part of a word), so
  counts, perplexities and ARPA files match lmplz's on any text; or ``unicode``, Python's ``str.split``
  (every Unicode space; models saved before the rule existed read text this way).
* ``char``: Unicode code points; a space becomes the visible symbol ``▁`` (U+2581) so that it is a token
  one can print, count and predict; runs of whitespace collapse to one space and the line is stripped.
* ``bpe``, ``unigram``: subword pieces learned from the training split; ``byte``: the UTF-8 bytes
  (``text/subword.py``).  The line is normalized as at character level.

All may lowercase.  A tokenizer is fully described by :meth:`Tokenizer.to_dict`, saved with every model,
so a model always reads text the way it was trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from seqlm.errors import SeqlmError
from seqlm.text import subword
from seqlm.text.subword import SPACE, SUBWORD

LEVELS = ("word", "char", "bpe", "unigram", "byte")
WHITESPACE = ("kenlm", "unicode")
KENLM_BLANKS = " \t\r\x00"  # what lmplz splits words at (its line ends at \n)
PYTHON_ASCII_BLANKS = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.split splits ASCII text at
_KENLM_SPLIT = re.compile("[ \t\r\x00]+")


def _same_split(line: str) -> bool:
    """ASCII without the characters where str.split and lmplz differ: NUL splits only for lmplz, the others
    only for str.split.  One search per character, written out (memchr: a text's megabyte in microseconds,
    where a regex character class takes milliseconds; a short line's in a third of the regex's time)."""
    return line.isascii() and not ("\x00" in line or "\x0b" in line or "\x0c" in line or "\x1c" in line
                                   or "\x1d" in line or "\x1e" in line or "\x1f" in line)


def splits_as_python(lines: list[str]) -> bool:
    """Whether the kenlm rule splits ``lines`` into the same words as ``str.split`` (ASCII text without the
    characters where the two differ): then a word model's tokens are the text's whitespace words."""
    return all(map(_same_split, lines))


@dataclass(frozen=True)
class Tokenizer:
    level: str = "word"
    lowercase: bool = False
    whitespace: str = "kenlm"  # word level: what separates words (see the module docstring)
    model: str | None = field(default=None, repr=False)  # bpe, unigram: the learned pieces (text/subword.py)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise SeqlmError(f"unknown tokenizer level {self.level!r}: use one of {', '.join(LEVELS)}")
        if self.whitespace not in WHITESPACE:
            raise SeqlmError(f"unknown whitespace rule {self.whitespace!r}: use kenlm (lmplz's: space, tab, CR) or "
                             f"unicode (every Unicode space)")

    def tokenize(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        if self.level == "word":
            if self.whitespace == "unicode" or _same_split(line):
                return line.split()  # the same words, fastest
            return [w for w in _KENLM_SPLIT.split(line) if w]
        if self.level == "char":
            return list(SPACE.join(line.split()))
        if self.level == "byte":
            return subword.byte_tokens(" ".join(line.split()))
        if self.model is None:
            raise SeqlmError(f"this {self.level} tokenizer has learned no pieces yet: train a model (seqlm train "
                             f"--level {self.level}) to learn them from its training text")
        return subword.pieces(self.model, " ".join(line.split()))

    def tokenize_many(self, lines: list[str]) -> list[list[str]]:
        """:meth:`tokenize` of each line (the same tokens, tested); subword pieces are cut in one batch by the
        library's threads."""
        if self.level not in SUBWORD or self.model is None:
            return [self.tokenize(line) for line in lines]
        if self.lowercase:
            lines = [line.lower() for line in lines]
        return subword.pieces_batch(self.model, [" ".join(line.split()) for line in lines])

    def detokenize(self, tokens: list[str]) -> str:
        if self.level == "word":
            return " ".join(tokens)
        if self.level == "char":
            return "".join(tokens).replace(SPACE, " ")
        return subword.byte_text(tokens) if self.level == "byte" else subword.pieces_text(tokens)

    def learned(self, lines, vocab_size: int) -> "Tokenizer":
        """This tokenizer with its subword pieces learned from the training ``lines`` (bpe, unigram without
        pieces), else itself."""
        if self.level not in ("bpe", "unigram") or self.model is not None:
            return self
        lower = str.lower if self.lowercase else str
        normalized = (" ".join(lower(line).split()) for line in lines)
        return replace(self, model=subword.learn(self.level, normalized, vocab_size))

    @property
    def unit(self) -> str:
        """What one token is, for labels: ``word``, ``character``, ``subword`` or ``byte``."""
        return {"word": "word", "char": "character", "byte": "byte"}.get(self.level, "subword")

    @property
    def text_level(self) -> str:
        """The corpus text the tokenizer reads: ``char`` (a character corpus) or ``word`` (running text)."""
        return text_level(self.level)

    def to_dict(self) -> dict:
        out = {"level": self.level, "lowercase": self.lowercase, "whitespace": self.whitespace}
        if self.model is not None:
            out["model"] = self.model
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Tokenizer":
        # a model saved before the whitespace rule split words at every Unicode space: it still does
        return cls(level=data.get("level", "word"), lowercase=bool(data.get("lowercase", False)),
                   whitespace=data.get("whitespace", "unicode"), model=data.get("model"))


def text_level(level: str | None) -> str | None:
    """The corpus text a tokenizer ``level`` reads: a character corpus at ``char``, running text otherwise."""
    return None if level is None else ("char" if level == "char" else "word")
