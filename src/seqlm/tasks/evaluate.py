"""evaluate: perplexity (and bits per token / character) of a model on lines of text.

Counts follow interface.py: every line predicts its tokens and one ``</s>``.  OOV tokens (outside the
vocabulary) are scored as ``<unk>``; the result also gives the perplexity without them, as KenLM does.
The numbers do not depend on ``batch_lines``, the number of lines scored per call (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, check_mode, check_model, line_chunks
from seqlm.text.tokenize import splits_as_python

CHUNK_LINES = 10_000  # lines encoded and scored at a time: memory stays flat in the text's length


def evaluate(model: LanguageModel, lines: Iterable[str] | str, mode: str = "stream",
             batch_lines: int | None = None) -> dict:
    """Perplexity of ``model`` on ``lines`` (one line, or any iterable of lines: a list, a generator, an
    open file's lines); a dict with ``perplexity``, ``tokens``, ``oov``, ``mode``....

    The text is read, encoded and scored ``batch_lines`` lines at a time (default 10,000), carrying the
    model's state from block to block in stream mode, and only sums are kept: memory does not grow with
    the text's length.
    """
    check_model(model, "evaluate")
    check_mode(mode)
    if batch_lines is not None and batch_lines < 1:
        raise SeqlmError(f"batch_lines must be >= 1 (got {batch_lines})")
    totals = Totals()
    state = None
    for chunk in line_chunks(lines, batch_lines or CHUNK_LINES, "evaluate"):
        state = totals.score(model, chunk, mode, state)
    if not totals.lines:
        raise SeqlmError("nothing to evaluate: the text has no non-blank line")
    return totals.result(model, mode)


def read_source(model: LanguageModel, *, corpus: str | None = None, split: str = "test", file=None,
                data_dir: str | None = None) -> tuple[list[str], str]:
    """The lines of a registered corpus's split or of a text file, for ``model`` (levels must match), and
    a name for them."""
    from seqlm.text.corpora import load_corpus, read_lines

    if file and corpus:
        raise SeqlmError("give either a file or a corpus to evaluate on, not both")
    if file:
        lines, source = read_lines(file), str(file)
    elif corpus:
        data = load_corpus(corpus, data_dir=data_dir)
        if split not in data.splits:
            raise SeqlmError(f"corpus {corpus} has no {split} split: choose one of {', '.join(data.splits)}")
        lines, source = data.split(split), f"{corpus}:{split}"
        if data.level != model.vocab.tokenizer.text_level:
            raise SeqlmError(f"corpus {corpus} is {data.level}-level but the model reads "
                             f"{model.vocab.tokenizer.unit}s of {model.vocab.tokenizer.text_level}-level text: use "
                             f"the matching corpus")
    else:
        raise SeqlmError("nothing to evaluate on: give a corpus and split (--corpus NAME --split SPLIT) or a file")
    return lines, source


class SplitSource:
    """The lines of a registered corpus's splits for models of ``level`` (the corpus read once, its level
    checked), or of a file given instead of a split; ``hint`` ends the error when neither is there."""

    def __init__(self, corpus: str | None, data_dir: str | None, level: str, hint: str = ""):
        self.corpus, self.data_dir, self.level, self.hint = corpus, data_dir, level, hint
        self._data = None

    def lines(self, split: str, file=None) -> list[str]:
        from seqlm.text.corpora import load_corpus, read_lines

        if file:
            return read_lines(file)
        if not self.corpus:
            raise SeqlmError(f"no {split} text: give --corpus NAME or --{split} FILE{self.hint}")
        if self._data is None:
            self._data = load_corpus(self.corpus, data_dir=self.data_dir)
            if self._data.level != self.level:
                raise SeqlmError(f"corpus {self.corpus} is {self._data.level}-level but the model reads "
                                 f"{self.level}s: use the matching corpus")
        if split not in self._data.splits:
            raise SeqlmError(f"corpus {self.corpus} has no {split} split: give --{split} FILE")
        return self._data.split(split)


def evaluate_data(model: LanguageModel, *, corpus: str | None = None, split: str = "test", file=None,
                  data_dir: str | None = None, mode: str = "stream") -> dict:
    """:func:`evaluate` on a registered corpus's split or on a text file (read as it is scored); the
    result names the data."""
    if file and not corpus:
        result = evaluate_file(model, file, mode=mode)
        result["data"] = str(file)
        return result
    lines, source = read_source(model, corpus=corpus, split=split, file=file, data_dir=data_dir)
    result = evaluate(model, lines, mode=mode)
    result["data"] = source
    return result


def evaluate_file(model: LanguageModel, path, mode: str = "stream") -> dict:
    """:func:`evaluate` on a text file's non-blank lines, read a block (1 MB) at a time (memory stays flat): a
    model that reads text itself (an n-gram model's compiled reader) takes each block of ASCII text whole,
    with no Python object per line or token; other blocks are cut into lines here."""
    from seqlm.text.corpora import block_lines, line_blocks

    check_model(model, "evaluate")
    check_mode(mode)
    path = Path(path)
    totals, state = Totals(), None
    for offset, data in line_blocks(path):
        sums = model.block_sums(data) if data.isascii() and b"\x00" not in data else None
        if sums is not None:
            totals.add_sums(sums)
            continue
        lines = block_lines(data, str(path), offset)
        for a in range(0, len(lines), CHUNK_LINES):
            state = totals.score(model, lines[a:a + CHUNK_LINES], mode, state)
    if not totals.lines:
        raise SeqlmError(f"{path} is empty (no non-blank line): give a file with text")
    return totals.result(model, mode)


def summarize(logp: np.ndarray, oov: np.ndarray, model: LanguageModel, mode: str, lines: list[str]) -> dict:
    totals = Totals()
    totals.add(logp, oov, len(lines), lines, model)
    return totals.result(model, mode)


@dataclass
class Totals:
    """Running sums over scored positions: all an evaluation's figures are made of."""

    log_prob: float = 0.0
    tokens: int = 0
    oov: int = 0
    known_log_prob: float = 0.0
    lines: int = 0
    bytes: int = 0  # of the text's UTF-8, a newline counted after every line
    words: int = 0  # whitespace-separated words, plus one line end a line

    def score(self, model: LanguageModel, lines: list[str], mode: str, state):
        """Score ``lines`` (a list; no line holds a newline) from ``state`` and add them; the state after them."""
        logp, oov, state = model.score_text(lines, mode, state)
        self.add(logp, oov, len(lines), lines, model)
        return state

    def add(self, logp: np.ndarray, oov: np.ndarray, lines: int, text: list[str] | None = None,
            model: LanguageModel | None = None) -> None:
        self.log_prob += float(logp.sum())
        self.tokens += int(len(logp))
        self.oov += int(oov.sum())
        self.known_log_prob += float(logp[~oov].sum())
        self.lines += lines
        if text:
            joined = "\n".join(text)  # the chunk at once: a few C calls, not a few per line
            self.bytes += len(joined.encode("utf-8", "surrogatepass")) + 1
            tok = model.vocab.tokenizer if model is not None else None
            if tok is not None and tok.level == "word" and (tok.whitespace == "unicode" or splits_as_python([joined])):
                self.words += int(len(logp))  # the model's tokens are those words, and its </s> the line ends
            else:
                self.words += len(joined.split()) + len(text)

    def add_sums(self, sums: dict) -> None:
        """Add a model's own sums over a block of text (LanguageModel.block_sums)."""
        self.log_prob += sums["log_prob"]
        self.known_log_prob += sums["known_log_prob"]
        self.tokens += sums["tokens"]
        self.oov += sums["oov"]
        self.lines += sums["lines"]
        self.bytes += sums["bytes"]
        self.words += sums["words"]

    def result(self, model: LanguageModel, mode: str) -> dict:
        unit = model.vocab.tokenizer.unit
        total, tokens = self.log_prob, self.tokens
        return {
            "perplexity": _ppl(total, tokens),
            "tokens": tokens,
            "oov": self.oov,
            "mode": mode,
            "lines": self.lines,
            "log_prob": total,
            "log_base": "e",
            "unit": unit,
            f"bits_per_{unit}": (-total / tokens / math.log(2)) if tokens else float("nan"),
            "perplexity_without_oov": _ppl(self.known_log_prob, tokens - self.oov),
            # one scale whatever the unit (docs/conventions.md): the same text has the same bytes and words
            "bits_per_byte": (-total / self.bytes / math.log(2)) if self.bytes else float("nan"),
            "word_perplexity": _ppl(total, self.words),
            "bytes": self.bytes,
            "words": self.words,
            "model": model.describe(),
        }


def _ppl(total: float, n: int) -> float:
    if n == 0:
        return float("nan")
    if not math.isfinite(total) or -total / n > 700:  # exp overflows past ~709
        return float("inf")
    return math.exp(-total / n)
