"""One interpolated n-gram model against the token-by-token mixture: a PTB 5-gram and a Brown 5-gram (modified
KN, different vocabularies), weights fitted by EM on PTB's validation text (``seqlm interpolate --fit``).

    SEQLM_DATA=../shared/data python bench/interpolate.py [--results results/interpolate.json]

Measured in this run, on PTB's validation and test text (sentence mode): the perplexity of each part, of the
token-by-token mixture with the fitted weights, and of the one model ``seqlm interpolate`` writes; its n-grams
and seconds.  The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import brown, finish, scratch  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text.corpora import locate, read_lines  # noqa: E402
from seqlm.training.train import train_ngram  # noqa: E402
from seqlm.workflows.interpolate import interpolate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/interpolate.json)")
    args = ap.parse_args(argv)
    work = scratch(None, "seqlm-interpolate-")
    ptb = locate("ptb")
    parts = {"ptb": read_lines(ptb["train"]), "brown": read_lines(brown()["train"])}
    for name, lines in parts.items():
        train_ngram(lines, order=args.order).save(work / name)
    t0 = time.perf_counter()
    result = interpolate([work / "ptb", work / "brown"], out=work / "one", fit=ptb["valid"])
    seconds = time.perf_counter() - t0
    from seqlm.models.loader import load

    one, models = load(work / "one"), [load(work / n) for n in parts]
    w = np.array(result["weights"])
    rows = {}
    for split in ("valid", "test"):
        lines = read_lines(ptb[split])
        L = np.stack([np.asarray(m.score_text(lines, "sentence")[0], dtype=np.float64) for m in models])
        mixed = np.logaddexp.reduce(L + np.log(w)[:, None], axis=0)
        rows[split] = {"parts": [math.exp(-x.mean()) for x in L], "token_mixture": math.exp(-mixed.mean()),
                       "one_model": math.exp(-float(one.score_text(lines, "sentence")[0].mean()))}
        print(f"PTB {split}: parts {', '.join(f'{p:.2f}' for p in rows[split]['parts'])}; token-by-token mixture "
              f"{rows[split]['token_mixture']:.2f}; one model {rows[split]['one_model']:.2f}", file=sys.stderr)
    out = {"type": "interpolate", "benchmark": "interpolate", "hardware": hardware(), "commit": git_commit(),
           "order": args.order, "parts": list(parts), "weights": result["weights"], "ngrams": result["ngrams"],
           "vocab_size": result["vocab_size"], "seconds": round(seconds, 2), "perplexity": rows}
    finish(out, args.results, work, keep=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
