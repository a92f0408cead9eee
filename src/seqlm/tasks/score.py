"""score: log-probabilities of given texts, per token, per line or for the whole input (natural log)."""

from __future__ import annotations

import math
from typing import Sequence

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, as_lines, check_mode, check_model, line_sums
from seqlm.text.vocab import EOS

LEVELS = ("line", "token", "corpus")


def score(model: LanguageModel, lines: Sequence[str] | str, per: str = "line", mode: str = "sentence") -> list[dict]:
    """One dict per line (``per="line"``, or ``"token"`` adding every token's log-prob), or one dict for
    all lines (``per="corpus"``).  ``lines``: a list of lines, or one line.  Log-probs are natural logs
    (``"log_base": "e"``)."""
    check_model(model, "score")
    lines = as_lines(lines, "score")
    check_mode(mode)
    if per not in LEVELS:
        raise SeqlmError(f"unknown --per {per!r}: use line, token or corpus")
    if not lines:
        raise SeqlmError("nothing to score: give one or more lines of text")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise SeqlmError(f"line {i} is empty: there is nothing to score on it; remove blank lines")
    tok = model.vocab.tokenizer.tokenize
    tokens = [tok(line) for line in lines]
    if per == "corpus":
        from seqlm.tasks.evaluate import summarize

        flat, scored_oov, _ = model.score_tokens(tokens, mode)
        return [summarize(flat, scored_oov, model, mode, lines=len(lines))]
    if per == "token":
        flat, scored_oov, _ = model.score_tokens(tokens, mode)
        logps, oovs = flat.tolist(), scored_oov.tolist()
        totals, counts = line_sums(logps, oovs, tokens)
    else:
        totals, counts = model.line_totals(tokens, mode)
    unit = model.vocab.tokenizer.unit
    out = []
    a = 0
    for text, toks, total, oov in zip(lines, tokens, totals, counts):
        n = len(toks) + 1
        row = {
            "text": text,
            "log_prob": total,
            "log_base": "e",
            "tokens": n,
            "perplexity": math.exp(-total / n) if math.isfinite(total) else float("inf"),
            "oov": oov,
            "unit": unit,
        }
        if per == "token":
            row["token_log_probs"] = [{"token": t, "log_prob": v, "oov": o}
                                      for t, v, o in zip(list(toks) + [EOS], logps[a:a + n], oovs[a:a + n])]
        out.append(row)
        a += n
    return out
