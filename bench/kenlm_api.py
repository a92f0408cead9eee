"""What a kenlm user calls, next to the kenlm module, on the PTB 5-gram (the same ARPA file, one process).

    SEQLM_DATA=../shared/data python bench/kenlm_api.py [--rounds 3] [--results results/kenlm-api.json]

Measured in this run, each pair timed alternately (seqlm, kenlm, seqlm, ...), best of ``--rounds``:
* per call, over PTB's 3,761 test sentences: ``score(s)``, ``list(full_scores(s))``, and ``BaseScore``
  stepping (a decoder's inner call: one word, two states) -- ``seqlm.kenlm.Model`` on the model folder
  against ``kenlm.Model`` on its ARPA file;
* seqlm's own API: ``seqlm.score(lm, one_line)`` per call, and ``seqlm.score(lm, lines)`` /
  ``seqlm.evaluate(lm, lines, mode="sentence")`` over the list, against a loop of kenlm's ``score``;
* whole processes: ``seqlm score MODEL --file F`` against KenLM's ``query`` on its trie binary (and on
  the ARPA file), for PTB's test file and for a file of about 1M tokens (PTB's train + valid);
* model bytes: the seqlm folder against ``build_binary`` probing, trie, and trie with 8-bit quantization,
  built in this run from the same ARPA file.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import seqlm  # noqa: E402
import seqlm.kenlm as skenlm  # noqa: E402
from common import finish, ptb_kn5, ptb_test_lines, scratch  # noqa: E402
from seqlm.io.files import atomic_write  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text.corpora import locate  # noqa: E402

KENLM_BIN = REPO.parent / "shared" / "peers" / "kenlm" / "bin"


def best_of(rounds: int, pair: dict) -> dict:
    """Seconds of each callable (name -> fn), the best of ``rounds``, timed alternately."""
    best = {name: math.inf for name in pair}
    for _ in range(rounds):
        for name, fn in pair.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def stepping(model, state_cls, sentences):
    def run():
        a, b = state_cls(), state_cls()
        for words in sentences:
            model.BeginSentenceWrite(a)
            for w in words:
                model.BaseScore(a, w, b)
                a, b = b, a
    return run


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def process_seconds(cmd: list[str], stdin: Path, rounds: int) -> float:
    best = math.inf
    for _ in range(rounds):
        with open(stdin, "rb") as f:
            t0 = time.perf_counter()
            subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/kenlm-api.json)")
    args = ap.parse_args()
    import kenlm

    work = scratch(args.work, "seqlm-kenlm-api-")
    folder, arpa = ptb_kn5(work)
    ptb = locate("ptb")
    test_file = Path(ptb["test"])
    sentences = ptb_test_lines()
    tokens = sum(len(s.split()) + 1 for s in sentences)
    ken, ours = kenlm.Model(str(arpa)), skenlm.Model(str(folder))
    lm = seqlm.load(folder)
    worst = max(abs(ken.score(s) - ours.score(s)) for s in sentences)
    split = [s.split() for s in sentences]
    steps = sum(len(w) for w in split)
    out: dict = {"type": "kenlm-api", "benchmark": "kenlm-api", "model": "PTB modified-KN 5-gram (seqlm train)",
                 "sentences": len(sentences), "tokens": tokens, "max_abs_log10_difference": worst,
                 "hardware": hardware(), "commit": git_commit(REPO), "rounds": args.rounds, "calls": {}}

    def record(name: str, what: str, ours_s: float, theirs_s: float, calls: int, unit: str = "call") -> None:
        row = {"what": what, "unit": unit, "seqlm_us": ours_s / calls * 1e6, "kenlm_us": theirs_s / calls * 1e6,
               "speed_vs_kenlm": theirs_s / ours_s}
        out["calls"][name] = row
        print(f"{what}: seqlm {row['seqlm_us']:.2f} us/{unit}, kenlm {row['kenlm_us']:.2f} us/{unit} "
              f"({row['speed_vs_kenlm']:.2f}x kenlm's speed)", file=sys.stderr)

    t = best_of(args.rounds, {"seqlm": lambda: [ours.score(s) for s in sentences],
                              "kenlm": lambda: [ken.score(s) for s in sentences]})
    record("score", "kenlm API: score(sentence), one call per sentence", t["seqlm"], t["kenlm"], len(sentences))
    t = best_of(args.rounds, {"seqlm": lambda: [list(ours.full_scores(s)) for s in sentences],
                              "kenlm": lambda: [list(ken.full_scores(s)) for s in sentences]})
    record("full_scores", "kenlm API: list(full_scores(sentence))", t["seqlm"], t["kenlm"], len(sentences))
    t = best_of(args.rounds, {"seqlm": stepping(ours, skenlm.State, split), "kenlm": stepping(ken, kenlm.State, split)})
    record("base_score", "kenlm API: BaseScore(in, word, out), a decoder's step", t["seqlm"], t["kenlm"], steps,
           "word")
    kenlm_loop = lambda: [ken.score(s) for s in sentences]  # noqa: E731
    t = best_of(args.rounds, {"seqlm": lambda: [seqlm.score(lm, s) for s in sentences], "kenlm": kenlm_loop})
    record("seqlm_score_one", "seqlm.score(lm, one_line) per call vs kenlm score", t["seqlm"], t["kenlm"],
           len(sentences))
    t = best_of(args.rounds, {"seqlm": lambda: seqlm.score(lm, sentences), "kenlm": kenlm_loop})
    record("seqlm_score_list", "seqlm.score(lm, lines) over the list vs a loop of kenlm score", t["seqlm"],
           t["kenlm"], tokens, "token")
    t = best_of(args.rounds, {"seqlm": lambda: seqlm.evaluate(lm, sentences, mode="sentence"), "kenlm": kenlm_loop})
    record("seqlm_evaluate", "seqlm.evaluate(lm, lines, mode=sentence) vs a loop of kenlm score", t["seqlm"],
           t["kenlm"], tokens, "token")

    # model bytes, next to KenLM's binary formats built from the same ARPA file
    sizes = {"seqlm_folder": folder_bytes(folder), "arpa": arpa.stat().st_size}
    build = KENLM_BIN / "build_binary"
    if build.exists():
        for name, opts in (("kenlm_probing", ["probing"]), ("kenlm_trie", ["trie"]),
                           ("kenlm_trie_q8", ["-q", "8", "-b", "8", "trie"])):
            target = work / f"{name}.bin"
            if not target.exists():
                subprocess.run([str(build), "-T", str(work / "tmp"), "-S", "1G", *opts, str(arpa), str(target)],
                               check=True, capture_output=True)
            sizes[name] = target.stat().st_size
    ngrams = sum(lm.tables.sizes())
    out["bytes"] = sizes
    out["bytes_per_ngram"] = {k: v / ngrams for k, v in sizes.items()}
    out["ngrams"] = ngrams
    print("model bytes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()), file=sys.stderr)

    # whole processes over a file: seqlm score against KenLM's query (its trie binary, and the ARPA file)
    big = work / "ptb-train-valid.txt"
    if not big.exists():
        with atomic_write(big) as f:
            f.write(Path(ptb["train"]).read_text() + Path(ptb["valid"]).read_text())
    seqlm_bin = shutil.which("seqlm") or "seqlm"
    query = KENLM_BIN / "query"
    out["processes"] = []
    for text in (test_file, big):
        n_tokens = sum(len(line.split()) + 1 for line in text.read_text().splitlines() if line.strip())
        row = {"file": text.name, "tokens": n_tokens,
               "seqlm_score_s": process_seconds([seqlm_bin, "-q", "score", str(folder), "--file", str(text),
                                                 "--per", "corpus"], text, args.rounds)}
        if query.exists() and "kenlm_trie" in sizes:
            row["query_trie_s"] = process_seconds([str(query), "-v", "summary", str(work / "kenlm_trie.bin")], text,
                                                  args.rounds)
            row["query_arpa_s"] = process_seconds([str(query), "-v", "summary", str(arpa)], text, 1)
        out["processes"].append(row)
        print(f"{text.name} ({n_tokens:,} tokens): " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                               if k.endswith("_s")), file=sys.stderr)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import seqlm"], check=True)
    out["import_seqlm_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    out["python_start_s"] = time.perf_counter() - t0
    finish(out, args.results, work, keep=bool(args.work))


if __name__ == "__main__":
    main()
