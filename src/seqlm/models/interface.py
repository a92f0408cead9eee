"""The one interface every language model meets, and the counting conventions, stated once.

Counting conventions (the same for every model family, and in the README):

* A line is a sentence.  It predicts its tokens plus one end-of-sentence token ``</s>``; the start
  token ``<s>`` is context only and never predicted.
* Log-probabilities are natural logs.  Perplexity = exp(mean negative log-prob) over exactly those
  tokens; bits per token (per character for character models) = mean negative log-prob / ln 2.
  ARPA files are log10; the conversion happens in ngram/arpa.py and nowhere else.
* Two evaluation modes.  **sentence**: the state is reset at every line (as KenLM does).  **stream**:
  the state is carried across lines (as PTB papers do for recurrent models).  An n-gram model is
  estimated from sentences padded with ``<s>``, so its history restarts after ``</s>`` and both modes
  give the same number for it by construction.
* Tokens outside the vocabulary are scored as ``<unk>`` and counted as OOV next to the perplexity.

A model provides: ``vocab``; ``start()`` (state at a sentence start, after ``<s>``); ``advance(state,
token)``; ``next_logprobs(state)`` (ln-probabilities over the whole vocabulary, ``-inf`` for ``<s>``);
and ``score_lines`` (the per-token log-probs of many lines at once, as one flat array).  ``score_lines`` has a correct
step-by-step default; models override it with a batched version that must give the same numbers.
evaluate, score, predict and generate are written once against this interface.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.text.vocab import EOS_ID, Vocab

MODES = ("stream", "sentence")
State = Any


class LanguageModel(ABC):
    vocab: Vocab
    kind: str = "model"

    @abstractmethod
    def start(self) -> State:
        """State at the start of a sentence (the context is ``<s>``)."""

    @abstractmethod
    def advance(self, state: State, token: int) -> State:
        """State after reading ``token``."""

    @abstractmethod
    def next_logprobs(self, state: State) -> np.ndarray:
        """(|V|,) natural-log probabilities of the next token; ``-inf`` for ``<s>``."""

    def advance_tokens(self, state: State, tokens: Sequence[int]) -> State:
        """The state after reading ``tokens`` one after the other; a model that reads a sequence faster at
        once overrides it."""
        for t in tokens:
            state = self.advance(state, t)
        return state

    def advance_many(self, states: Sequence[State], tokens: Sequence[int]) -> list[State]:
        """:meth:`advance` of each state by its token; a model that can step a batch at once overrides it
        (a server batches the steps of concurrent requests through it)."""
        return [self.advance(s, t) for s, t in zip(states, tokens)]

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the model folder (atomically)."""

    @abstractmethod
    def describe(self) -> dict:
        """Kind and hyper-parameters, for logs and results."""

    def score_tokens(self, tokens: list[list[str]], mode: str = "sentence",
                     state: State = None) -> tuple[np.ndarray, np.ndarray, State]:
        """:meth:`score_lines` of lines of text tokens: their ln-probs (each line's tokens and ``</s>``),
        whether each scored position was out of the vocabulary (scored as ``<unk>``; ``</s>`` never is), and
        the state after.  What ``score`` and ``evaluate`` call; a model may answer without making ids."""
        from seqlm.text.encode import encode_tokens

        enc = encode_tokens(self.vocab, tokens)
        logp, state = self.score_lines(enc.lines, mode, state)
        return logp, enc.scored_oov(), state

    def score_flat(self, ids: np.ndarray, lengths: np.ndarray, mode: str = "sentence",
                   state: State = None) -> tuple[np.ndarray, State]:
        """:meth:`score_lines` of lines given as flat ``ids`` and each line's ``lengths`` (what a file read in
        blocks gives; a model may score them without a Python object per line)."""
        from seqlm.text.encode import split_lengths

        return self.score_lines(split_lengths(np.asarray(ids, dtype=np.int64), lengths), mode, state)

    def score_text(self, lines: list[str], mode: str = "sentence",
                   state: State = None) -> tuple[np.ndarray, np.ndarray, State]:
        """:meth:`score_tokens` of lines of text, read by the model's tokenizer: what ``evaluate`` and
        ``score`` call (a model may read the text itself, without a Python object per token)."""
        return self.score_tokens(self.vocab.tokenizer.tokenize_many(list(lines)), mode, state)

    def line_totals(self, lines: list[str], mode: str = "sentence") -> tuple[list[float], list[int], list[int]]:
        """Each line of text's total ln p (its tokens and ``</s>``), how many of its tokens are out of the
        vocabulary, and how many positions it scored (its tokens + 1), as Python numbers: what ``score``
        reports per line (a model may sum without arrays)."""
        tokens = self.vocab.tokenizer.tokenize_many(list(lines))
        logp, oov, _ = self.score_tokens(tokens, mode)
        totals, counts = line_sums(logp.tolist(), oov.tolist(), tokens)
        return totals, counts, [len(t) + 1 for t in tokens]

    def block_sums(self, data: bytes) -> dict | None:
        """What evaluate.Totals sums over the non-blank lines of ``data`` (a block of whole lines of a file,
        ASCII text without NUL bytes), where the model reads such a block itself, with no Python object per
        line (the compiled n-gram reader); else None."""
        return None

    def line_rows(self, lines: list[str] | str, mode: str, keys: tuple) -> list[dict] | None:
        """``score``'s row per line (``keys``: tasks/score.py's ``ROW_KEYS``), where the model makes them faster
        than :meth:`line_totals` and a Python loop (the compiled n-gram reader); else None. ``lines`` may be one
        line (a str without a newline, not blank: the per-sentence call)."""
        return None

    def token_listing(self, lines: list[str], mode: str = "sentence") -> str | None:
        """``seqlm score --per token``'s text for ``lines`` (cli/evaluate.score_lines' format), where the model
        writes it faster than a Python line per token (the compiled n-gram reader); else None."""
        return None

    def score_lines(
        self, lines: Sequence[np.ndarray], mode: str = "sentence", state: State = None
    ) -> tuple[np.ndarray, State]:
        """Per-token ln-probs of each line's tokens and its ``</s>``, all lines concatenated
        (len(line) + 1 values per line, in order).

        In stream mode ``state`` carries the context in from a previous call and the returned state
        carries it out; in sentence mode both are ignored (None).
        """
        check_mode(mode)
        out = []
        if mode == "sentence" or state is None:
            state = self.start()
        for line in lines:
            if mode == "sentence":
                state = self.start()
            values = np.empty(len(line) + 1)
            for i, tok in enumerate(list(line) + [EOS_ID]):
                values[i] = self.next_logprobs(state)[tok]
                state = self.advance(state, int(tok))
            out.append(values)
        flat = np.concatenate(out) if out else np.zeros(0)
        return flat, (state if mode == "stream" else None)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SeqlmError(f"unknown mode {mode!r}: use stream or sentence")


def check_model(model, caller: str) -> None:
    # the class's ancestry, not isinstance: on an ABC that costs a tenth of scoring one line (no model registers
    # as a virtual subclass)
    if LanguageModel not in type(model).__mro__:
        raise TypeError(f"{caller}() takes a model (from seqlm.load or seqlm.train), not {type(model).__name__}")


def line_chunks(lines, size: int, caller: str):
    """Lists of at most ``size`` lines from one text (str) or any iterable of lines, checked as they come.

    One rule for newlines everywhere (the API, the CLI's files, the server): a text given as one string is
    cut into lines at ``\n`` as a file is (its blank lines dropped), and a line given in a list must not
    hold a ``\n``."""
    if isinstance(lines, str):
        lines = [x for x in lines.split("\n") if x.strip()] if "\n" in lines else [lines]
    elif isinstance(lines, (bytes, bytearray)) or not hasattr(lines, "__iter__"):
        raise TypeError(f"{caller}() takes a line (str) or a list of lines, not {type(lines).__name__}")
    if type(lines) is list:  # as most callers give them: each chunk checked in one join, not line by line
        for a in range(0, len(lines), size):
            chunk = lines[a:a + size]
            if not _clean(chunk):
                break  # an item that is not text, or holds a newline: the loop below names it
            yield chunk
        else:
            return
        lines = lines[a:]
        start = a + 1
    else:
        start = 1
    chunk: list[str] = []
    for i, line in enumerate(lines, start):
        if not isinstance(line, str):
            raise TypeError(f"{caller}() takes lines of text (str), not {type(line).__name__}")
        if "\n" in line:
            raise SeqlmError(f"line {i} holds a newline: give one line per item, or the whole text as one "
                             f"string (cut into lines at newlines, as a file is)")
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _clean(lines: list) -> bool:
    """Whether every item of ``lines`` is text without a newline (one join: a few C calls for them all)."""
    try:
        return "\n" not in "".join(lines)
    except TypeError:
        return False


def as_lines(lines, caller: str) -> list[str]:
    """The lines of one text (str, cut at newlines) or of a sequence of lines (see :func:`line_chunks`)."""
    if isinstance(lines, str) and "\n" not in lines:  # one line: the call a per-sentence user makes
        return [lines]
    if type(lines) is list and _clean(lines):  # as most callers give them: taken as they are
        return lines
    return [line for chunk in line_chunks(lines, 1 << 62, caller) for line in chunk]


def line_sums(logps: list[float], oovs: list[bool], tokens: list[list[str]]) -> tuple[list[float], list[int]]:
    """Each line's total of ``logps`` and count of ``oovs`` (len(line) + 1 positions a line, as Python numbers:
    NumPy calls per line would cost a call of one line several microseconds)."""
    totals, counts, a = [], [], 0
    for line in tokens:
        n = len(line) + 1
        totals.append(math.fsum(logps[a:a + n]))
        counts.append(sum(oovs[a:a + n]))
        a += n
    return totals, counts
