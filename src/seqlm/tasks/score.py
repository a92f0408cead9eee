"""score: log-probabilities of given texts, per token, per line or for the whole input (natural log)."""

from __future__ import annotations

import math
from typing import Sequence

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, as_lines, check_mode, check_model
from seqlm.text.encode import encode_lines, split_lengths
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
    enc = encode_lines(model.vocab, lines)
    flat, _ = model.score_lines(enc.lines, mode)
    if per == "corpus":
        from seqlm.tasks.evaluate import summarize

        return [summarize(flat, enc.scored_oov(), model, mode, lines=len(lines))]
    logps = split_lengths(flat, [len(x) + 1 for x in enc.lines])
    out = []
    for text, toks, lp, oov in zip(lines, enc.tokens, logps, enc.oov):
        total = float(lp.sum())
        n = len(lp)
        row = {
            "text": text,
            "log_prob": total,
            "log_base": "e",
            "tokens": n,
            "perplexity": math.exp(-total / n) if math.isfinite(total) else float("inf"),
            "oov": int(oov.sum()),
            "unit": model.vocab.tokenizer.unit,
        }
        if per == "token":
            row["token_log_probs"] = [
                {"token": t, "log_prob": float(v), "oov": bool(o)}
                for t, v, o in zip(list(toks) + [EOS], lp.tolist(), list(oov) + [False])
            ]
        out.append(row)
    return out
