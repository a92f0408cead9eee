"""Lines of text -> token ids, in one pass, with the OOV bookkeeping evaluation needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .vocab import Vocab


@dataclass
class Encoded:
    """Text as ids. ``lines[i]`` holds the ids of line i (no specials); ``oov[i]`` marks its tokens that
    are outside the vocabulary (scored as ``<unk>``)."""

    lines: list[np.ndarray]
    oov: list[np.ndarray]
    tokens: list[list[str]]

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.lines), dtype=np.int64, count=len(self.lines))

    def flat(self) -> np.ndarray:
        return np.concatenate(self.lines) if self.lines else np.zeros(0, np.int64)


def encode_lines(vocab: Vocab, lines: Sequence[str]) -> Encoded:
    tok = vocab.tokenizer.tokenize
    tokens = [tok(line) for line in lines]
    lengths = [len(t) for t in tokens]
    flat_tokens = [w for t in tokens for w in t]
    ids = vocab.encode(flat_tokens)
    known = vocab.text_stoi
    oov = np.fromiter((w not in known for w in flat_tokens), dtype=bool, count=len(flat_tokens))
    bounds = np.cumsum(lengths)[:-1]
    return Encoded(np.split(ids, bounds), np.split(oov, bounds), tokens)
