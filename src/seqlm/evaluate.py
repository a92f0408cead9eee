"""evaluate: perplexity (and bits per token / character) of a model on lines of text.

Counts follow interface.py: every line predicts its tokens and one ``</s>``.  OOV tokens (outside the
vocabulary) are scored as ``<unk>``; the result also gives the perplexity without them, as KenLM does.
The numbers do not depend on ``batch_lines``, the number of lines scored per call (tested).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .errors import SeqlmError
from .interface import LanguageModel, as_lines, check_mode, check_model
from .text.encode import encode_lines


def evaluate(model: LanguageModel, lines: Sequence[str] | str, mode: str = "stream",
             batch_lines: int | None = None) -> dict:
    """Perplexity of ``model`` on ``lines`` (a list of lines, or one line); a dict with ``perplexity``,
    ``tokens``, ``oov``, ``mode``...."""
    check_model(model, "evaluate")
    lines = as_lines(lines, "evaluate")
    check_mode(mode)
    if not lines:
        raise SeqlmError("nothing to evaluate: the text has no non-blank line")
    if batch_lines is not None and batch_lines < 1:
        raise SeqlmError(f"batch_lines must be >= 1 (got {batch_lines})")
    enc = encode_lines(model.vocab, lines)
    step = batch_lines or len(enc.lines)
    logps: list[np.ndarray] = []
    state = None
    for i in range(0, len(enc.lines), step):
        chunk, state = model.score_lines(enc.lines[i:i + step], mode, state)
        logps.append(chunk)
    return summarize(np.concatenate(logps), enc.scored_oov(), model, mode, lines=len(lines))


def read_source(model: LanguageModel, *, corpus: str | None = None, split: str = "test", file=None,
                data_dir: str | None = None) -> tuple[list[str], str]:
    """The lines of a registered corpus's split or of a text file, for ``model`` (levels must match), and
    a name for them."""
    from .text.corpora import load_corpus, read_lines

    if file and corpus:
        raise SeqlmError("give either a file or a corpus to evaluate on, not both")
    if file:
        lines, source = read_lines(file), str(file)
    elif corpus:
        data = load_corpus(corpus, data_dir=data_dir)
        if split not in data.splits:
            raise SeqlmError(f"corpus {corpus} has no {split} split: choose one of {', '.join(data.splits)}")
        lines, source = data.split(split), f"{corpus}:{split}"
        if data.level != model.vocab.tokenizer.level:
            raise SeqlmError(f"corpus {corpus} is {data.level}-level but the model reads "
                             f"{model.vocab.tokenizer.level}s: use the matching corpus")
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
        from .text.corpora import load_corpus, read_lines

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
    """:func:`evaluate` on a registered corpus's split or on a text file; the result names the data."""
    lines, source = read_source(model, corpus=corpus, split=split, file=file, data_dir=data_dir)
    result = evaluate(model, lines, mode=mode)
    result["data"] = source
    return result


def summarize(logp: np.ndarray, oov: np.ndarray, model: LanguageModel, mode: str, lines: int) -> dict:
    tokens = int(len(logp))
    total = float(logp.sum())
    n_oov = int(oov.sum())
    known = logp[~oov]
    unit = model.vocab.tokenizer.unit
    result = {
        "perplexity": _ppl(total, tokens),
        "tokens": tokens,
        "oov": n_oov,
        "mode": mode,
        "lines": lines,
        "log_prob": total,
        "log_base": "e",
        "unit": unit,
        f"bits_per_{unit}": (-total / tokens / math.log(2)) if tokens else float("nan"),
        "perplexity_without_oov": _ppl(float(known.sum()), int(len(known))),
        "model": model.describe(),
    }
    return result


def _ppl(total: float, n: int) -> float:
    if n == 0:
        return float("nan")
    if not math.isfinite(total) or -total / n > 700:  # exp overflows past ~709
        return float("inf")
    return math.exp(-total / n)
