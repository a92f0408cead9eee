"""Lines of text -> token ids, in one pass, with the OOV bookkeeping evaluation needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.text.vocab import EOS_ID, UNK_ID, Vocab


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

    def scored_oov(self) -> np.ndarray:
        """OOV flag of every scored position: each line's tokens, then its ``</s>`` (never OOV)."""
        lengths = self.lengths
        flat = np.concatenate(self.oov) if self.oov else np.zeros(0, bool)
        out = np.zeros(int(lengths.sum()) + len(lengths), dtype=bool)
        line_of_token = np.repeat(np.arange(len(lengths)), lengths)
        out[np.arange(len(flat)) + line_of_token] = flat
        return out


def join_with_eos(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Every line's ids followed by ``</s>``, as one flat array (the stream neural models read)."""
    lengths = np.fromiter((len(x) for x in lines), dtype=np.int64, count=len(lines))
    out = np.full(int(lengths.sum()) + len(lines), EOS_ID, dtype=np.int64)
    if lengths.sum():
        line_of_token = np.repeat(np.arange(len(lines)), lengths)
        out[np.arange(int(lengths.sum())) + line_of_token] = np.concatenate([np.asarray(x) for x in lines])
    return out


def split_lengths(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """``flat`` cut into consecutive pieces of ``lengths`` (views; ``np.split`` costs several times more per
    piece, which a call of one line pays in full)."""
    out, start = [], 0
    for n in lengths:
        out.append(flat[start:start + n])
        start += n
    return out


def encode_lines(vocab: Vocab, lines: Sequence[str]) -> Encoded:
    return encode_tokens(vocab, vocab.tokenizer.tokenize_many(list(lines)))


def encode_tokens(vocab: Vocab, tokens: list[list[str]]) -> Encoded:
    """Lines of text tokens as ids: unknown tokens (and literal ``<s>``, ``</s>``) become ``<unk>``, flagged OOV."""
    lengths = [len(t) for t in tokens]
    get = vocab.text_stoi.get
    ids = np.fromiter((get(w, -1) for t in tokens for w in t), dtype=np.int64, count=sum(lengths))
    # OOV = every token scored as <unk>: unknown words and a literal <unk> in the text alike, as KenLM's
    # query counts them (PTB's own <unk> tokens are OOVs for both)
    oov = (ids < 0) | (ids == UNK_ID)
    ids[ids < 0] = UNK_ID
    return Encoded(split_lengths(ids, lengths), split_lengths(oov, lengths), tokens)


def stream_ids(vocab: Vocab, lines: list[str]) -> np.ndarray:
    """The token stream that training and stream evaluation read: ``</s>`` + every line followed by
    ``</s>``, as ids (element 0 is context only; the targets are ``stream_ids(...)[1:]``)."""
    return np.concatenate([[EOS_ID], join_with_eos(encode_lines(vocab, lines).lines)])


def batchify(ids: np.ndarray, batch_size: int):
    """Inputs and targets as (batch_size, n) contiguous rows of the stream (torch tensors)."""
    import torch

    n = (len(ids) - 1) // batch_size
    if n < 2:
        raise SeqlmError(f"the training text has {len(ids) - 1} tokens, too few for one batch of {batch_size} rows: "
                         f"give more text or lower train.batch_size")
    x = torch.from_numpy(ids[: n * batch_size].reshape(batch_size, n).copy())
    y = torch.from_numpy(ids[1: n * batch_size + 1].reshape(batch_size, n).copy())
    return x, y
