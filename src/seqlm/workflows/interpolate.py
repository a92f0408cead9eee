"""``seqlm interpolate``: one n-gram model (folder and ARPA file) that is the linear interpolation of n-gram
models at the n-gram level (models/ngram/interpolate.py), its weights given or fitted by EM on a text."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import check_output_folder, check_target
from seqlm.io.locks import locks_output
from seqlm.models.loader import load
from seqlm.models.mixture import fit_weights, parse_weights


@locks_output
def interpolate(models: list[str | Path], *, out: str | Path, weights=None, fit=None, arpa=None,
                quantize: int | None = None, overwrite: bool = False) -> dict:
    """Load the n-gram ``models``, take ``weights`` (a list or comma-separated text) or fit them by EM on the
    text file ``fit``, write the interpolated model in ``out`` (and ``arpa``), and return the weights, sizes
    and, with ``fit``, the perplexity there of every part, of the token-by-token mixture and of the one model."""
    from seqlm.models.ngram.interpolate import interpolate as interpolate_tables
    from seqlm.models.ngram.model import NGramLM
    from seqlm.text.corpora import read_lines

    t0 = time.perf_counter()
    out = Path(out)
    if len(models) < 2:
        raise SeqlmError("seqlm interpolate needs at least two models")
    if (weights is None) == (fit is None):
        raise SeqlmError("give the weights (--weights 0.5,0.5) or a text to fit them on (--fit valid.txt), one of the two")
    check_output_folder(out, "ngram", overwrite=overwrite)
    if arpa is not None:
        check_target(arpa, "the ARPA file", inputs=list(models), overwrite=overwrite)
    given = parse_weights(weights, len(models))
    parts = [load(m, device="cpu") for m in models]
    result: dict = {"type": "interpolate", "parts": [{"model": str(m), **p.describe()} for m, p in zip(models, parts)]}
    if fit is not None:  # each part's ln p of every token of the text, then EM (as seqlm mix)
        lines = read_lines(fit)
        L = np.stack([np.asarray(p.score_text(lines, "sentence")[0], dtype=np.float64) for p in parts])
        w, history = fit_weights(L)
        with np.errstate(divide="ignore"):
            mixed = math.exp(-np.logaddexp.reduce(L + np.log(np.maximum(w, 1e-300))[:, None], axis=0).mean())
        result["fit"] = {"file": str(fit), "lines": len(lines), "tokens": int(L.shape[1]), "em_steps": len(history),
                         "part_perplexity": [math.exp(-row.mean()) for row in L],
                         "token_mixture_perplexity": mixed}
    else:
        w = given
    vocab, tables = interpolate_tables(parts, w)
    config = {"smoothing": "interpolated", "order": tables.order,
              "interpolated": {"models": [str(m) for m in models], "weights": [float(x) for x in w]}}
    if quantize is not None:
        config["quantize"] = quantize
    lm = NGramLM(vocab, tables, config)
    lm.save(out)
    if arpa is not None:
        from seqlm.models.ngram.arpa import write_arpa

        write_arpa(lm, arpa)
    result.update(weights=[float(x) for x in w], out=str(out), arpa=str(arpa) if arpa else None,
                  ngrams=lm.trie.sizes(), vocab_size=len(vocab), seconds=round(time.perf_counter() - t0, 3))
    if fit is not None:
        result["fit"]["perplexity"] = math.exp(-float(lm.score_text(lines, "sentence")[0].mean()))
    return result
