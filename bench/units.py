"""The comparison on units: the same text modelled in words, characters, subword pieces (BPE 2k and 8k, unigram 8k)
and bytes, on one scale (bits per byte and word-level perplexity of the same test text, docs/reference/
conventions.md), for Kneser-Ney and, with ``--lstm-minutes``, for the CPU LSTM fitted to the data under one budget.

    SEQLM_DATA=../shared/data python bench/units.py [--corpora brown-raw,brown,ptb] [--lstm-minutes 15]
        [--lstm-corpora brown-raw,ptb] [--results results/units.json] [--work DIR --keep]

Each row is the command a user runs, as a whole process: ``seqlm train --train T --valid V --test X --model kn
--order N --level L [--vocab-size S] --out O --results R`` (the LSTM rows: ``--model lstm --minutes M``, no
recipe, so fitted to the data: training/defaults.py). Figures per row: test bits per byte, word-level perplexity,
per-token perplexity and unit, OOV tokens, vocabulary, n-grams or parameters, model folder size, seconds.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import brown, finish, scratch, seqlm_command  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text.corpora import locate  # noqa: E402

# (label, level, pieces, n-gram order): the orders usual for each unit's span (a BPE piece ~ 0.75 word)
NGRAM_UNITS = [("word", "word", None, 5), ("BPE 2k", "bpe", 2000, 6), ("BPE 8k", "bpe", 8000, 6),
               ("unigram 8k", "unigram", 8000, 6), ("char", "char", None, 8), ("byte", "byte", None, 8)]
LSTM_UNITS = [("word", "word", None), ("BPE 8k", "bpe", 8000), ("byte", "byte", None)]


def files(name: str) -> dict[str, Path]:
    if name.startswith("brown"):
        return brown(name)
    return {k: Path(v) for k, v in locate(name).items() if k in ("train", "valid", "test")}


def run(cmd: list[str], results: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads(results.read_text()), seconds


def row(res: dict, seconds: float, out: Path) -> dict:
    """An n-gram run's results hold its test evaluation whole; a neural run's, its metrics."""
    test, m = res.get("test") or {}, res.get("metrics") or {}
    model = res.get("model", {})
    return {"bits_per_byte": test.get("bits_per_byte", m.get("test_bits_per_byte")),
            "word_perplexity": test.get("word_perplexity", m.get("test_word_perplexity")),
            "perplexity": test.get("perplexity", m.get("test_perplexity")), "unit": test.get("unit"),
            "level": (res.get("config") or {}).get("data", {}).get("level"),
            "oov": test.get("oov", m.get("test_oov")), "vocab_size": model.get("vocab_size"),
            "ngrams": model.get("ngrams"), "parameters": model.get("parameters"),
            "model_mb": sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20, "seconds": seconds,
            **trained(res)}


def trained(res: dict) -> dict:
    """A neural run's epochs, tokens seen and tokens per second of training (from its results file)."""
    last = (res.get("epochs") or [{}])[-1]
    if not last.get("tokens"):
        return {}
    return {"epochs": res.get("epochs_completed"), "tokens_seen": last["tokens"],
            "tokens_per_second": last["tokens"] / last["seconds"] if last.get("seconds") else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", default="brown-raw,brown,ptb")
    ap.add_argument("--lstm-minutes", type=float, default=0, help="also the LSTM rows, each with this budget")
    ap.add_argument("--lstm-corpora", default="brown-raw", help="comma-separated: the corpora of the LSTM rows")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/units.json)")
    ap.add_argument("--work", help="the scratch folder (default: a new temporary one)")
    ap.add_argument("--keep", action="store_true",
                    help="keep every model folder and run's results file in the scratch folder (e.g. for "
                         "bench/unit_bits.py --model)")
    args = ap.parse_args(argv)
    seqlm = seqlm_command()
    work = scratch(args.work, "seqlm-units-")
    out = {"type": "units", "benchmark": "units", "hardware": hardware(), "commit": git_commit(), "rows": [],
           "lstm_minutes": args.lstm_minutes}
    jobs = [(c, "kn", u) for c in args.corpora.split(",") for u in NGRAM_UNITS]
    if args.lstm_minutes:
        jobs += [(c, "lstm", u) for c in args.lstm_corpora.split(",") for u in LSTM_UNITS]
    for corpus, kind, unit in jobs:
        label, level, pieces = unit[:3]
        f = files(corpus)
        folder, results = work / f"{corpus}-{kind}-{level}-{pieces}", work / f"{corpus}-{kind}-{level}-{pieces}.json"
        cmd = [seqlm, "-q", "train", "--train", str(f["train"]), "--valid", str(f["valid"]), "--test", str(f["test"]),
               "--model", kind, "--level", level, "--out", str(folder), "--results", str(results)]
        if pieces:
            cmd += ["--vocab-size", str(pieces)]
        cmd += ["--order", str(unit[3])] if kind == "kn" else ["--minutes", f"{args.lstm_minutes:g}"]
        res, seconds = run(cmd, results)
        r = {"corpus": corpus, "model": kind if kind == "lstm" else f"KN{unit[3]}", "units": label, **row(res, seconds,
                                                                                                        folder)}
        out["rows"].append(r)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"{corpus} {r['model']} {label}: {r['bits_per_byte']:.4f} bits/byte, word ppl {r['word_perplexity']:.1f}"
              f" ({r['perplexity']:.2f} per {r['unit'] or r['level']}, {r['oov']} OOV), {r['model_mb']:.1f} MB, {seconds:.0f} s",
              file=sys.stderr)
        if args.results:  # as it goes: a stop loses nothing
            from seqlm.io.files import atomic_write

            with atomic_write(args.results) as fh:
                json.dump(out, fh, indent=2)
    finish(out, args.results, work, keep=args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
