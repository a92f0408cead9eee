"""``seqlm mix``: a mixture of saved models, its weights fitted by EM on validation text.

Input: two or more model folders or ARPA files sharing a vocabulary and tokenizer.  Output: a mixture
folder (``models/mixture.py``, usable wherever a model is) and a result with each part's weight and the
validation (and test) perplexity of the mixture and of every part.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.io.files import check_new_outputs, write_json
from seqlm.io.locks import locks_output
from seqlm.io.records import record
from seqlm.models.loader import load
from seqlm.models.mixture import MixtureLM, check_weights, fit_weights, parse_weights
from seqlm.tasks.evaluate import SplitSource, evaluate
from seqlm.text.encode import encode_lines


@locks_output
def mix(models: list[str | Path], *, out: str | Path, weights=None, corpus: str | None = None, data_dir=None,
        valid=None, valid_lines: int | None = None, test: bool = False, results=None) -> dict:
    """Load the ``models``, fit their weights by EM on validation text (or take ``weights``: a list or
    comma-separated text), save the mixture in ``out``, and return the validation (and, with ``test``,
    test) perplexity of it and of each part; ``results``: also write that result as JSON there.

    The validation text is ``valid`` (a file), else the valid split of ``corpus``, else of the corpus
    the models were trained on; ``valid_lines`` fits on its first lines only."""
    t0 = time.perf_counter()
    out = Path(out)
    check_new_outputs(out, results)
    if len(models) < 2:
        raise SeqlmError("seqlm mix needs at least two models")
    if valid_lines is not None and valid_lines < 1:
        raise SeqlmError(f"--valid-lines must be >= 1 (got {valid_lines})")
    given = parse_weights(weights, len(models))
    parts = [load(m) for m in models]
    MixtureLM(parts, [1.0] * len(parts))  # vocabularies and tokenizers checked before any long pass

    corpus_name = corpus
    if not corpus_name:
        for p in parts:
            cfg = getattr(p, "config", None) or getattr(getattr(p, "source", None), "config", None) or {}
            corpus_name = corpus_name or (cfg.get("data") or {}).get("corpus")
    split = SplitSource(corpus_name, data_dir, parts[0].vocab.tokenizer.text_level).lines

    valid_text = split("valid", valid)[:valid_lines]
    lps = []
    part_valid = []
    enc = encode_lines(parts[0].vocab, valid_text)
    for p in parts:  # each part's ln p of every validation token, one stream
        lp, _ = p.score_lines(enc.lines, "stream", None)
        lps.append(np.asarray(lp, dtype=np.float64))
        part_valid.append(math.exp(-lps[-1].mean()))
    L = np.stack(lps)
    if given is None:
        w, history = fit_weights(L)
        how = {"fitted_on": "validation", "valid_lines": len(valid_text), "em_steps": len(history),
               "mean_log_likelihood": history}
    else:
        w, how = check_weights(given, len(parts)), {"given": True}
    mixture = MixtureLM(parts, w, how)
    with np.errstate(divide="ignore"):
        mixed_valid = math.exp(-np.logaddexp.reduce(L + np.log(np.maximum(w, 1e-300))[:, None], axis=0).mean())
    metrics = {"valid_perplexity": mixed_valid}
    per_part = [{"model": str(m), "kind": p.describe().get("kind"), "weight": float(x), "valid_perplexity": v,
                 **({"adaptation": p.describe()["adaptation"]} if "adaptation" in p.describe() else {})}
                for m, p, x, v in zip(models, parts, w, part_valid)]
    seconds = {"fit": round(time.perf_counter() - t0, 1)}
    if test:
        test_text = split("test")
        t = time.perf_counter()
        metrics["test_perplexity"] = evaluate(mixture, test_text, mode="stream")["perplexity"]
        seconds["test"] = round(time.perf_counter() - t, 1)
        for row, p in zip(per_part, parts):
            row["test_perplexity"] = evaluate(p, test_text, mode="stream")["perplexity"]
    mixture.save(out)
    result = {"type": "mix", "mixture": str(out), "weights": [float(x) for x in w], "metrics": metrics, "parts": per_part,
              "fit": {k: v for k, v in how.items() if k != "mean_log_likelihood"}, "seconds": seconds,
              **record(t0)}
    if results:
        write_json(Path(results), result)
    return result
