"""Which library learns and applies seqlm's subword units: HF ``tokenizers`` against ``sentencepiece``, on the same
text with the same settings, in the same run.

    SEQLM_DATA=../shared/data python bench/subword_libs.py [--corpus brown-raw] [--pieces 8000] [--results FILE]

For BPE and unigram (``--pieces`` pieces, byte fallback, ``▁`` marking a word's start, one thread for learning
where the library allows it): seconds to learn from the training split, lines per second to cut the test split
one line at a time (as a scorer of single sentences does) and as one batch, and how many pieces each cuts the
test split into. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import brown, finish, scratch  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text import subword  # noqa: E402


def normalized(path: Path) -> list[str]:
    return [" ".join(line.split()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def hf(kind: str, train: list[str], test: list[str], pieces: int) -> dict:
    t0 = time.perf_counter()
    model = subword.learn(kind, train, pieces)
    learn_s = time.perf_counter() - t0
    cut = [subword.pieces(model, line) for line in test]
    return {"learn_seconds": learn_s,
            "lines_per_second_one_by_one": len(test) / best(lambda: [subword.pieces(model, x) for x in test]),
            "lines_per_second_batch": len(test) / best(lambda: subword.pieces_batch(model, test)),
            "test_pieces": sum(map(len, cut))}


def sp(kind: str, train: list[str], test: list[str], pieces: int, work: Path) -> dict:
    import sentencepiece as spm

    text = work / "train.txt"
    text.write_text("\n".join(train) + "\n", encoding="utf-8")
    prefix = work / f"sp-{kind}"
    t0 = time.perf_counter()
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(prefix), vocab_size=pieces, model_type=kind,
                                   byte_fallback=True, character_coverage=1.0, num_threads=1,
                                   input_sentence_size=0, max_sentence_length=1 << 16, minloglevel=2)
    learn_s = time.perf_counter() - t0
    proc = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    cut = [proc.encode(line, out_type=str) for line in test]
    return {"learn_seconds": learn_s,
            "lines_per_second_one_by_one": len(test) / best(lambda: [proc.encode(x, out_type=str) for x in test]),
            "lines_per_second_batch": len(test) / best(lambda: proc.encode(test, out_type=str)),
            "test_pieces": sum(map(len, cut))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="brown-raw")
    ap.add_argument("--pieces", type=int, default=8000)
    ap.add_argument("--results", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    files = brown(args.corpus)
    train, test = normalized(files["train"]), normalized(files["test"])
    work = scratch(None, "seqlm-subword-")
    out = {"type": "subword-libs", "benchmark": "subword-libs", "hardware": hardware(), "commit": git_commit(),
           "corpus": args.corpus, "pieces": args.pieces, "train_lines": len(train), "test_lines": len(test),
           "rows": []}
    with tempfile.TemporaryDirectory(dir=work) as d:
        for kind in ("bpe", "unigram"):
            for lib, fn in (("tokenizers", lambda: hf(kind, train, test, args.pieces)),
                            ("sentencepiece", lambda: sp(kind, train, test, args.pieces, Path(d)))):
                r = {"library": lib, "units": kind, **fn()}
                out["rows"].append(r)
                print(f"{lib} {kind}: learn {r['learn_seconds']:.1f} s, {r['lines_per_second_one_by_one']:,.0f} "
                      f"lines/s one by one, {r['lines_per_second_batch']:,.0f} in a batch, {r['test_pieces']:,} "
                      f"test pieces", file=sys.stderr)
    finish(out, args.results, work, keep=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
