"""Perplexity against model size: count pruning (``--prune``) and entropy pruning (``--max-ngrams``, Stolcke) of
the modified-KN 5-gram, on PTB and on the Brown corpus, at equal sizes.

    SEQLM_DATA=../shared/data python bench/prune.py [--order 5] [--results results/prune.json]

Measured in this run, for each corpus: the unpruned model; count pruning at each setting of ``COUNT_SETTINGS``
(n-grams of order >= 2 seen that often or less dropped, as ``lmplz --prune``), each estimated from the counts;
and, for each count-pruned model's size, the model entropy-pruned to that many n-grams (the same size, so the
two compare directly) in two ways: as ``seqlm train --max-ngrams`` does (histories weighed by their training
counts) and as SRILM's ``ngram -prune`` does (by the model's own chain rule: ``seqlm convert --max-ngrams``);
plus a sweep of entropy thresholds.  Each row: n-grams, the model
folder's bytes, test perplexity (sentence mode, OOVs as ``<unk>``), seconds.  The last line of output is one
JSON object with every figure; ``python -m seqlm.manual`` redraws the table and figure from it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import brown, finish, scratch  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.models.ngram.prune import prune_model  # noqa: E402
from seqlm.tasks.evaluate import evaluate  # noqa: E402
from seqlm.text.corpora import locate, read_lines  # noqa: E402
from seqlm.training.train import train_ngram  # noqa: E402

COUNT_SETTINGS = ([0, 0, 1], [0, 1, 1], [0, 1, 2], [0, 2, 3], [0, 3, 5], [0, 5, 10])
THRESHOLDS = (1e-9, 1e-8, 3e-8, 1e-7, 3e-7, 1e-6)


def splits(name: str) -> dict[str, list[str]]:
    """The train and test lines of PTB (the registered corpus) or of the Brown corpus (tokenised form)."""
    if name == "ptb":
        files = locate("ptb")
    else:
        files = brown()
    return {s: read_lines(files[s]) for s in ("train", "test")}


def row(corpus: str, method: str, setting, lm, test: list[str], seconds: float) -> dict:
    out = {"corpus": corpus, "method": method, "setting": setting, "ngrams": sum(lm.trie.sizes()),
           "per_order": lm.trie.sizes(), "bytes": lm.trie.nbytes(),
           "test_perplexity": evaluate(lm, test, mode="sentence")["perplexity"], "seconds": round(seconds, 3)}
    print(f"{corpus} {method} {setting}: {out['ngrams']:,} n-grams, {out['bytes'] / 1e6:.1f} MB, "
          f"test perplexity {out['test_perplexity']:.2f} ({seconds:.1f} s)", file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--corpora", default="ptb,brown")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/prune.json)")
    args = ap.parse_args(argv)
    out = {"type": "prune", "benchmark": "prune", "hardware": hardware(), "commit": git_commit(), "order": args.order,
           "smoothing": "mkn", "rows": []}
    for corpus in args.corpora.split(","):
        data = splits(corpus)
        t0 = time.perf_counter()
        full = train_ngram(data["train"], order=args.order)
        out["rows"].append(row(corpus, "none", None, full, data["test"], time.perf_counter() - t0))
        for setting in COUNT_SETTINGS:
            prune = setting + [setting[-1]] * (args.order - len(setting))
            t0 = time.perf_counter()
            lm = train_ngram(data["train"], order=args.order, prune=prune)
            counted = row(corpus, "count", prune, lm, data["test"], time.perf_counter() - t0)
            out["rows"].append(counted)
            for method in ("entropy", "entropy-srilm"):
                t0 = time.perf_counter()
                if method == "entropy":
                    lm = train_ngram(data["train"], order=args.order, max_ngrams=counted["ngrams"])
                else:
                    lm = prune_model(full, max_ngrams=counted["ngrams"])
                out["rows"].append(row(corpus, method, {"max_ngrams": counted["ngrams"],
                                                        "threshold": lm.config["prune_entropy"]},
                                       lm, data["test"], time.perf_counter() - t0))
        for threshold in THRESHOLDS:
            t0 = time.perf_counter()
            lm = train_ngram(data["train"], order=args.order, prune_entropy=threshold)
            out["rows"].append(row(corpus, "entropy-threshold", threshold, lm, data["test"],
                                   time.perf_counter() - t0))
    work = scratch(None, "seqlm-prune-")
    finish(out, args.results, work, keep=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
