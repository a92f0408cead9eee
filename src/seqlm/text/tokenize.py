"""Tokenizers: text line -> list of token strings, and back.

* ``word``: split on whitespace (PTB style: the text is already tokenized, ``<unk>`` is a word).
* ``char``: Unicode code points; a space becomes the visible symbol ``▁`` (U+2581) so that it is a token
  one can print, count and predict; runs of whitespace collapse to one space and the line is stripped.

Both may lowercase.  A tokenizer is fully described by :meth:`Tokenizer.to_dict`, saved with every model,
so a model always reads text the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlm.errors import SeqlmError

SPACE = "\u2581"
LEVELS = ("word", "char")


@dataclass(frozen=True)
class Tokenizer:
    level: str = "word"
    lowercase: bool = False

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise SeqlmError(f"unknown tokenizer level {self.level!r}: use one of {', '.join(LEVELS)}")

    def tokenize(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        if self.level == "word":
            return line.split()
        return list(SPACE.join(line.split()))

    def detokenize(self, tokens: list[str]) -> str:
        if self.level == "word":
            return " ".join(tokens)
        return "".join(tokens).replace(SPACE, " ")

    @property
    def unit(self) -> str:
        """What one token is, for labels: ``word`` or ``character``."""
        return "word" if self.level == "word" else "character"

    def to_dict(self) -> dict:
        return {"level": self.level, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, data: dict) -> "Tokenizer":
        return cls(level=data.get("level", "word"), lowercase=bool(data.get("lowercase", False)))
