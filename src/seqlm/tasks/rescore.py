"""Rescoring n-best lists with a language model (speech and handwriting recognition, spelling correction).

An n-best file holds, one per line, a hypothesis for an utterance: ``ID [SCORE] HYPOTHESIS``.  Two shapes
are read (``--format auto`` tells them apart):

* ``id-score-text`` / ``id-text``: the id names the utterance and repeats on each of its hypotheses
  (``1 -1234.5 the cat sat``; Mikolov's RNNLM toolkit reads ``ID HYPOTHESIS`` lines this way);
* ``kaldi``: ids ``UTT-N`` name the N-th hypothesis of ``UTT`` (Kaldi's ``nbest-to-text`` output).

The new score of a hypothesis is its existing score (0 when the file has none) plus ``lm_weight`` times the
model's log-probability of the hypothesis as a sentence (with its ``</s>``; natural log, or base 10 with
``log_base=10`` to match scores from tools that use it) plus ``word_penalty`` per word.  Every hypothesis is
scored in one batched call (a neural model rescoring at its batched speed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel

FORMATS = ("auto", "id-score-text", "id-text", "kaldi")
_KALDI = re.compile(r"^(.+)-(\d+)$")


@dataclass
class Hypothesis:
    line: int  # in the file, from 1
    id: str  # as written
    utterance: str  # what it is a hypothesis of
    score: float | None
    text: str


def _float(x: str) -> float | None:
    try:
        v = float(x)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_nbest(lines: list[str], fmt: str = "auto", name: str = "the n-best list") -> list[Hypothesis]:
    """The hypotheses of an n-best list (blank lines skipped); see the module docstring for the shapes."""
    if fmt not in FORMATS:
        raise SeqlmError(f"unknown n-best --format {fmt!r}: choose {', '.join(FORMATS)}")
    rows = [(i, line.split(None, 2)) for i, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise SeqlmError(f"{name} has no hypotheses: give lines of ID [SCORE] HYPOTHESIS")
    if fmt == "auto":
        scored = all(len(f) == 3 and _float(f[1]) is not None for _, f in rows)
        ids = [f[0] for _, f in rows]
        kaldi = len(set(ids)) == len(ids) and all(_KALDI.match(x) for x in ids)
        fmt = "id-score-text" if scored else ("kaldi" if kaldi else "id-text")
    out = []
    for i, fields in rows:
        if fmt == "id-score-text":
            if len(fields) < 3 or _float(fields[1]) is None:
                raise SeqlmError(f"{name} line {i}: expected ID SCORE HYPOTHESIS (a finite number as SCORE, then "
                                 f"the text): fix the line, or choose --format id-text")
            out.append(Hypothesis(i, fields[0], fields[0], _float(fields[1]), fields[2].strip()))
            continue
        if len(fields) < 2:
            raise SeqlmError(f"{name} line {i}: expected ID HYPOTHESIS (an id, then the text): fix the line")
        text = " ".join(fields[1:]).strip()
        utterance = fields[0]
        if fmt == "kaldi":
            m = _KALDI.match(fields[0])
            if not m:
                raise SeqlmError(f"{name} line {i}: a Kaldi n-best id is UTTERANCE-N (got {fields[0]!r}): fix the "
                                 f"line, or choose --format id-text")
            utterance = m.group(1)
        out.append(Hypothesis(i, fields[0], utterance, None, text))
    return out


def rescore(model: LanguageModel, hyps: list[Hypothesis], lm_weight: float = 1.0, word_penalty: float = 0.0,
            log_base: str = "e") -> tuple[list[dict], list[dict]]:
    """(every hypothesis with its new score, in file order; the best hypothesis of each utterance, in order of
    first appearance)."""
    from seqlm.tasks.score import score

    if log_base not in ("e", "10"):
        raise SeqlmError(f"--log-base must be e or 10 (got {log_base!r})")
    if not math.isfinite(lm_weight) or not math.isfinite(word_penalty):
        raise SeqlmError("--lm-weight and --word-penalty must be finite numbers")
    scale = 1.0 if log_base == "e" else 1.0 / math.log(10)
    lm = score(model, [h.text for h in hyps], per="line", mode="sentence")
    tok = model.vocab.tokenizer
    rows = []
    for h, r in zip(hyps, lm):
        # the penalty is per word whatever the model's unit (a decoder's word insertion penalty): the words as
        # the model splits them at word level, the text's whitespace words for characters, pieces or bytes
        words = len(tok.tokenize(h.text)) if tok.level == "word" else len(h.text.split())
        lm_score = r["log_prob"] * scale
        total = (h.score or 0.0) + lm_weight * lm_score + word_penalty * words
        rows.append({"id": h.id, "utterance": h.utterance, "text": h.text, "score": h.score, "lm_log_prob": lm_score,
                     "log_base": log_base, "words": words, "total": total, "line": h.line})
    best: dict[str, dict] = {}
    for row in rows:
        if row["utterance"] not in best or row["total"] > best[row["utterance"]]["total"]:
            best[row["utterance"]] = row
    return rows, list(best.values())
