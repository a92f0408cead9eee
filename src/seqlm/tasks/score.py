"""score: log-probabilities of given texts, per token, per line or for the whole input (natural log)."""

from __future__ import annotations

from math import exp, inf, isfinite
from typing import Sequence

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, as_lines, check_mode, check_model, line_sums
from seqlm.text.vocab import EOS

LEVELS = ("line", "token", "corpus")
ROW_KEYS = ("text", "log_prob", "log_base", "tokens", "perplexity", "oov", "unit")  # a row's keys, in order


def score(model: LanguageModel, lines: Sequence[str] | str, per: str = "line", mode: str = "sentence") -> list[dict]:
    """One dict per line (``per="line"``, or ``"token"`` adding every token's log-prob), or one dict for
    all lines (``per="corpus"``).  ``lines``: a list of lines, or one line.  Log-probs are natural logs
    (``"log_base": "e"``)."""
    if LanguageModel not in type(model).__mro__:  # check_model's test, inline: a one-line call is a few microseconds
        check_model(model, "score")
    if type(lines) is str and per == "line" and "\n" not in lines and not lines.isspace() and lines:
        # one line, the call a per-sentence user makes: the checks below all hold; the model's own rows
        rows = model.line_rows(lines, mode, ROW_KEYS)
        if rows is not None:
            return rows
    lines = checked_lines(lines, per, mode)
    if per == "corpus":
        from seqlm.tasks.evaluate import summarize

        flat, scored_oov, _ = model.score_text(lines, mode)
        return [summarize(flat, scored_oov, model, mode, lines)]
    if per == "token":
        tokens = model.vocab.tokenizer.tokenize_many(lines)
        flat, scored_oov, _ = model.score_tokens(tokens, mode)
        logps, oovs = flat.tolist(), scored_oov.tolist()
        totals, counts = line_sums(logps, oovs, tokens)
        lengths = [len(t) + 1 for t in tokens]
    else:
        rows = model.line_rows(lines, mode, ROW_KEYS)
        if rows is not None:  # made by the model's compiled reader: the same rows as below (tested)
            return rows
        totals, counts, lengths = model.line_totals(lines, mode)
    unit = model.vocab.tokenizer.unit
    out = []  # a loop, not a comprehension (a function object each call before Python 3.12): a call of one
    # line takes a few microseconds, and this is part of them
    a = 0
    for i in range(len(lines)):
        total, n = totals[i], lengths[i]
        row = dict(zip(ROW_KEYS, (lines[i], total, "e", n, exp(-total / n) if isfinite(total) else inf, counts[i],
                                  unit)))
        if per == "token":
            row["token_log_probs"] = [{"token": t, "log_prob": v, "oov": o}
                                      for t, v, o in zip(tokens[i] + [EOS], logps[a:a + n], oovs[a:a + n])]
            a += n
        out.append(row)
    return out


def checked_lines(lines: Sequence[str] | str, per: str = "line", mode: str = "sentence") -> list[str]:
    """``lines`` as :func:`score` scores them (a list of non-blank lines), or one clear error."""
    lines = as_lines(lines, "score")
    check_mode(mode)
    if per not in LEVELS:
        raise SeqlmError(f"unknown --per {per!r}: use line, token or corpus")
    if not lines:
        raise SeqlmError("nothing to score: give one or more lines of text")
    if not all(map(str.strip, lines)):
        i = next(i for i, line in enumerate(lines, 1) if not line.strip())
        raise SeqlmError(f"line {i} is empty: there is nothing to score on it; remove blank lines")
    return lines
