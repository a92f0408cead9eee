"""Vocabulary: token string <-> integer id, built from the training split only.

Ids 0, 1, 2 are always ``<unk>``, ``<s>``, ``</s>``; the other tokens follow by descending training
frequency (ties alphabetical), so ids are deterministic.  ``<s>`` is context only: no model ever predicts
it.  A literal ``<unk>`` in the text (as in Mikolov's PTB) is the unknown token itself and is counted and
modelled like any word.  Tokens outside the vocabulary map to ``<unk>`` and are reported as OOV.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_write
from seqlm.text.tokenize import Tokenizer

log = logging.getLogger(__name__)

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = (UNK, BOS, EOS)


class Vocab:
    def __init__(self, tokens: Sequence[str], tokenizer: Tokenizer | None = None):
        tokens = list(tokens)
        if tuple(tokens[:3]) != SPECIALS:
            raise SeqlmError("vocabulary must start with <unk>, <s>, </s>: rebuild it with seqlm")
        if len(set(tokens)) != len(tokens):
            raise SeqlmError("vocabulary has duplicate tokens: rebuild it with seqlm")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        # what text maps to: a literal <s> or </s> in input text is an ordinary unknown word
        self.text_stoi = {t: i for t, i in self.stoi.items() if i not in (BOS_ID, EOS_ID)}
        self.tokenizer = tokenizer or Tokenizer()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        lines: Iterable[Sequence[str]],
        tokenizer: Tokenizer | None = None,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> "Vocab":
        """Vocabulary of tokenized training ``lines``: tokens seen ``min_count`` times or more, the
        ``max_size`` most frequent at most (specials not counted)."""
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(line)
        return cls.from_counts(counts, tokenizer, min_count, max_size)

    @classmethod
    def from_counts(cls, counts: dict[str, int], tokenizer: Tokenizer | None = None, min_count: int = 1,
                    max_size: int | None = None) -> "Vocab":
        """:meth:`build` from the training text's type counts."""
        if min_count < 1:
            raise SeqlmError(f"min_count must be >= 1 (got {min_count})")
        if max_size is not None and max_size < 1:
            raise SeqlmError(f"max_size must be >= 1 (got {max_size})")
        counts = dict(counts)
        for special in (BOS, EOS):
            if special in counts:
                raise SeqlmError(f"the training text contains the reserved token {special}: remove it")
        counts.pop(UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if not kept and counts:
            top = max(counts.values())
            raise SeqlmError(f"--min-count {min_count} keeps no token of the training text (the most frequent is seen "
                             f"{top} times): lower it")
        if max_size is not None:
            if max_size < len(kept) and max_size < 2:
                log.warning("--max-size %d keeps %d token of %d: every other token is <unk>", max_size, max_size,
                            len(kept))
            kept = kept[:max_size]
        return cls(list(SPECIALS) + kept, tokenizer)

    # -- lookup ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.text_stoi

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids of text tokens; unknown ones (and literal ``<s>``/``</s>``) become ``<unk>``."""
        get = self.text_stoi.get
        return np.fromiter((get(t, UNK_ID) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_dict(), "tokens": self.itos}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocab":
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise SeqlmError("vocab.json is malformed (no token list): retrain or re-export the model")
        return cls(data["tokens"], Tokenizer.from_dict(data.get("tokenizer", {})))

    def save(self, path: str | Path) -> None:
        with atomic_write(path) as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SeqlmError(f"{path} is missing: the model folder is incomplete, retrain it") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SeqlmError(f"{path} is not valid JSON ({e}): retrain the model") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.tokenizer == other.tokenizer
