"""What a kenlm user calls, next to the kenlm module, on the PTB 5-gram and on the 5-gram of a generated 10M-word
corpus (bench/corpus.py): the same ARPA file, one process.

    SEQLM_DATA=../shared/data python bench/kenlm_api.py [--rounds 3] [--generated 10M] [--results results/kenlm-api.json]

Measured in this run for each model, each pair timed alternately, best of ``--rounds``; each callable runs twice
in a row, so every figure comes twice: its first run, after the other's (its memory partly evicted from the
caches: the figure the goals are judged on), and its second, right after its own (in cache, as in a loop that
only scores):
* per call, over the test sentences (PTB's 3,761; 3,000 held-out generated ones): ``score(s)``, ``list(full_scores(s))``, and ``BaseScore``
  stepping (a decoder's inner call: one word, two states) -- ``seqlm.kenlm.Model`` on the model folder
  against ``kenlm.Model`` on its ARPA file;
* seqlm's own API: ``seqlm.score(lm, one_line)`` per call, and ``seqlm.score(lm, lines)`` /
  ``seqlm.evaluate(lm, lines, mode="sentence")`` over the list, against a loop of kenlm's ``score``: as users
  call them (a long list is scored in parts, one thread per core) and in one thread (``SEQLM_THREADS=1``);
* whole processes: ``seqlm score MODEL --file F`` against KenLM's ``query`` on its trie binary (and on
  the ARPA file), run alternately, for PTB's test file, a file of 1M tokens (PTB's train + valid) and one of
  10M (that ten times); seqlm's also in one thread;
* model bytes and test perplexity: the seqlm folder (float32) and its ``seqlm convert --quantize 8`` copy
  against ``build_binary`` probing, trie, and trie with 8-bit quantization, built in this run from the same
  ARPA file; each perplexity next to the float64 tables the estimator makes before packing them.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import seqlm  # noqa: E402
import seqlm.kenlm as skenlm  # noqa: E402
from common import finish, ptb_kn5, ptb_test_lines, seqlm_command, source_scratch  # noqa: E402
from seqlm.io.files import atomic_write  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.io.runtime import scoring_threads  # noqa: E402
from seqlm.text.corpora import locate  # noqa: E402

KENLM_BIN = REPO.parent / "shared" / "peers" / "kenlm" / "bin"


def best_of(rounds: int, pair: dict) -> dict:
    """Seconds of each callable (name -> fn), timed alternately, each twice in a row: (best first run, after
    the other's: its memory partly evicted; best second run, right after its own: in cache, as in a loop that
    only scores) over ``rounds``."""
    best = {name: [math.inf, math.inf] for name in pair}
    for _ in range(rounds):
        for name, fn in pair.items():
            for i in range(2):
                t0 = time.perf_counter()
                fn()
                best[name][i] = min(best[name][i], time.perf_counter() - t0)
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


def process_seconds(cmds: dict, stdin: Path, rounds: int) -> dict:
    """Best wall seconds of each whole process (name -> (argv, extra environment or None)), the commands run
    alternately, ``stdin`` fed to each."""
    best = {name: math.inf for name in cmds}
    for _ in range(rounds):
        for name, (cmd, env) in cmds.items():
            with open(stdin, "rb") as f:
                t0 = time.perf_counter()
                subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                               env=None if env is None else {**os.environ, **env})
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def float64_reference(lm, train_lines: list[str], sentences: list[str]) -> float:
    """Test perplexity of the float64 tables seqlm's estimator makes before packing them, queried by a plain
    reference of ARPA's backoff rule (sorted keys, one lookup at a time): what the float32 folder is
    compared with."""
    from seqlm.models.ngram import count_ngrams, estimate
    from seqlm.text.vocab import BOS_ID, EOS_ID

    vocab, V = lm.vocab, len(lm.vocab)
    tok = vocab.tokenizer.tokenize
    tokenized = [tok(line) for line in train_lines]
    lengths = np.array([len(t) for t in tokenized])
    tables = estimate(count_ngrams(vocab.encode([w for t in tokenized for w in t]), lengths, lm.order, V), V,
                      lm.config["smoothing"])
    assert tables.sizes() == lm.trie.sizes(), "the reference estimate differs from the model"
    keys = tables.keys

    def rank(words):
        r = words[0]
        for j in range(1, len(words)):
            key = r * V + words[j]
            i = int(np.searchsorted(keys[j], key))
            if i >= len(keys[j]) or keys[j][i] != key:
                return None
            r = i
        return r

    total, n = 0.0, 0
    for line in sentences:
        h = (BOS_ID,)
        for w in [int(x) for x in vocab.encode(tok(line))] + [EOS_ID]:
            h = h[-(lm.order - 1):]
            for length in range(len(h), -1, -1):
                r = rank(h[len(h) - length:] + (w,))
                if r is not None:
                    break
            lp = tables.logprob[length][r]
            for longer in range(length + 1, len(h) + 1):  # every stored longer context backs off
                c = rank(h[len(h) - longer:])
                if c is not None:
                    lp += tables.logbow[longer - 1][c]
            total += lp
            n += 1
            h = (BOS_ID,) if w == EOS_ID else h + (w,)
    return math.exp(-total / n)


def measure_model(name: str, folder: Path, arpa: Path, sentences: list[str], train_lines: list[str],
                  work: Path, rounds: int) -> dict:
    """Every call, the bytes of each format and the test perplexity of each, for one model."""
    import kenlm

    ken, ours = kenlm.Model(str(arpa)), skenlm.Model(str(folder))
    lm = seqlm.load(folder)
    worst = max(abs(ken.score(s) - ours.score(s)) for s in sentences)
    split = [s.split() for s in sentences]
    steps = sum(len(w) for w in split)
    tokens = sum(len(w) + 1 for w in split)
    out: dict = {"model": name, "sentences": len(sentences), "tokens": tokens, "ngrams": sum(lm.trie.sizes()),
                 "max_abs_log10_difference": worst, "calls": {}}

    def record(key: str, what: str, ours: list, theirs: list, calls: int, unit: str = "call") -> None:
        row = {"what": what, "unit": unit, "seqlm_us": ours[0] / calls * 1e6, "kenlm_us": theirs[0] / calls * 1e6,
               "speed_vs_kenlm": theirs[0] / ours[0], "seqlm_us_warm": ours[1] / calls * 1e6,
               "kenlm_us_warm": theirs[1] / calls * 1e6, "speed_vs_kenlm_warm": theirs[1] / ours[1]}
        out["calls"][key] = row
        print(f"{name}: {what}: seqlm {row['seqlm_us']:.2f} us/{unit}, kenlm {row['kenlm_us']:.2f} us/{unit} "
              f"({row['speed_vs_kenlm']:.2f}x kenlm's speed; {row['speed_vs_kenlm_warm']:.2f}x each right after "
              f"its own run)", file=sys.stderr)

    kenlm_loop = lambda: [ken.score(s) for s in sentences]  # noqa: E731
    t = best_of(rounds, {"seqlm": lambda: [ours.score(s) for s in sentences], "kenlm": kenlm_loop})
    record("score", "kenlm API: score(sentence), one call per sentence", t["seqlm"], t["kenlm"], len(sentences))
    t = best_of(rounds, {"seqlm": lambda: [list(ours.full_scores(s)) for s in sentences],
                         "kenlm": lambda: [list(ken.full_scores(s)) for s in sentences]})
    record("full_scores", "kenlm API: list(full_scores(sentence))", t["seqlm"], t["kenlm"], len(sentences))
    t = best_of(rounds, {"seqlm": stepping(ours, skenlm.State, split), "kenlm": stepping(ken, kenlm.State, split)})
    record("base_score", "kenlm API: BaseScore(in, word, out), a decoder's step", t["seqlm"], t["kenlm"], steps,
           "word")
    t = best_of(rounds, {"seqlm": lambda: [seqlm.score(lm, s) for s in sentences], "kenlm": kenlm_loop})
    record("seqlm_score_one", "seqlm.score(lm, one_line) per call vs kenlm score", t["seqlm"], t["kenlm"],
           len(sentences))
    t = best_of(rounds, {"seqlm": lambda: seqlm.score(lm, sentences), "kenlm": kenlm_loop})
    record("seqlm_score_list", "seqlm.score(lm, lines) over the list vs a loop of kenlm score", t["seqlm"],
           t["kenlm"], tokens, "token")
    t = best_of(rounds, {"seqlm": lambda: seqlm.evaluate(lm, sentences, mode="sentence"), "kenlm": kenlm_loop})
    record("seqlm_evaluate", "seqlm.evaluate(lm, lines, mode=sentence) vs a loop of kenlm score", t["seqlm"],
           t["kenlm"], tokens, "token")
    # the same two calls in one thread (the lines are scored in parts, one per core, where there are several)
    os.environ["SEQLM_THREADS"] = "1"
    try:
        one = seqlm.load(folder)
        one.querier()  # the compiled loop, made (and its threads read) on first use: here
    finally:
        os.environ.pop("SEQLM_THREADS")
    t = best_of(rounds, {"seqlm": lambda: seqlm.score(one, sentences), "kenlm": kenlm_loop})
    record("seqlm_score_list_1t", "seqlm.score(lm, lines), one thread (SEQLM_THREADS=1)", t["seqlm"], t["kenlm"],
           tokens, "token")
    t = best_of(rounds, {"seqlm": lambda: seqlm.evaluate(one, sentences, mode="sentence"), "kenlm": kenlm_loop})
    record("seqlm_evaluate_1t", "seqlm.evaluate(lm, lines, mode=sentence), one thread (SEQLM_THREADS=1)", t["seqlm"],
           t["kenlm"], tokens, "token")

    # bytes and test perplexity of each format: seqlm's folders (float32; 8-bit codes) and KenLM's binaries
    # built from the same ARPA file by build_binary
    q8 = work / f"{folder.name}-q8"
    if not q8.exists():
        subprocess.run([seqlm_command(), "-q", "convert", str(folder), str(q8), "--quantize", "8"],
                       check=True)
    formats = {"seqlm folder (float32)": (folder, lambda: seqlm.evaluate(lm, sentences, mode="sentence")),
               "seqlm folder, --quantize 8": (q8, lambda: seqlm.evaluate(seqlm.load(q8), sentences, mode="sentence")),
               "ARPA file": (arpa, None)}
    build = KENLM_BIN / "build_binary"
    if build.exists():
        for label, opts in (("KenLM probing", ["probing"]), ("KenLM trie", ["trie"]),
                            ("KenLM trie, -q 8 -b 8", ["-q", "8", "-b", "8", "trie"])):
            target = work / f"{folder.name}-{'-'.join(opts)}.bin"
            if not target.exists():
                subprocess.run([str(build), "-T", str(work / "tmp"), "-S", "1G", *opts, str(arpa), str(target)],
                               check=True, capture_output=True)
            formats[label] = (target, lambda target=target: kenlm_perplexity(kenlm.Model(str(target)), sentences))
    reference = float64_reference(lm, train_lines, sentences)
    out["float64_perplexity"] = reference
    out["formats"] = []
    for label, (path, perplexity) in formats.items():
        size = folder_bytes(path) if path.is_dir() else path.stat().st_size
        ppl = perplexity()["perplexity"] if perplexity else None
        out["formats"].append({"format": label, "bytes": size, "bytes_per_ngram": size / out["ngrams"],
                               "perplexity": ppl, "vs_float64": None if ppl is None else ppl / reference - 1})
        print(f"{name}: {label}: {size / 1e6:.1f} MB" + (f", perplexity {ppl:.4f} ({ppl / reference - 1:+.2e} vs "
                                                          f"float64 {reference:.4f})" if ppl else ""), file=sys.stderr)
    return out


def kenlm_perplexity(model, sentences: list[str]) -> dict:
    """Test perplexity through the kenlm module: 10^(-sum log10 p / tokens), every sentence with </s>."""
    total = sum(model.score(s) for s in sentences)
    return {"perplexity": 10 ** (-total / sum(len(s.split()) + 1 for s in sentences))}


def generated_kn5(work: Path, tokens: str) -> tuple[Path, Path, list[str], list[str]]:
    """A 5-gram of a generated corpus (bench/corpus.py, ``tokens`` words, seed 0) with its ARPA file, its
    training lines and its test sentences: the corpus's last 3,000 lines, held out of training."""
    corpus, train = work / f"generated-{tokens}.txt", work / f"generated-{tokens}-train.txt"
    if not corpus.exists():
        subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), "--tokens", tokens, "--seed", "0",
                        "--out", str(corpus)], check=True, stdout=subprocess.DEVNULL)
    lines = corpus.read_text().splitlines()
    train_lines, test = lines[:-3000], lines[-3000:]
    if not train.exists():
        with atomic_write(train) as f:
            f.write("\n".join(train_lines) + "\n")
    folder, arpa = work / f"generated-{tokens}-kn5", work / f"generated-{tokens}-kn5.arpa"
    if not folder.exists():
        seqlm.train(train=str(train), model="kn", order=5, out=folder, arpa=arpa)
    return folder, arpa, train_lines, test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--generated", default="10M", help="words of the generated corpus of the second model (0: none)")
    ap.add_argument("--work", help="scratch folder, kept: its models are reused while seqlm's source is unchanged (default: a temporary one, removed)")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/kenlm-api.json)")
    args = ap.parse_args()

    work = source_scratch(args.work, "seqlm-kenlm-api-")
    folder, arpa = ptb_kn5(work)
    ptb = locate("ptb")
    test_file = Path(ptb["test"])
    out: dict = {"type": "kenlm-api", "benchmark": "kenlm-api", "hardware": hardware(), "commit": git_commit(REPO),
                 "rounds": args.rounds, "scoring_threads": scoring_threads(), "models": []}
    out["models"].append(measure_model("PTB modified-KN 5-gram", folder, arpa, ptb_test_lines(),
                                       Path(ptb["train"]).read_text().splitlines(), work, args.rounds))
    if args.generated != "0":
        g_folder, g_arpa, g_train, g_test = generated_kn5(work, args.generated)
        out["models"].append(measure_model(f"generated {args.generated}-word corpus, modified-KN 5-gram", g_folder,
                                           g_arpa, g_test, g_train, work, args.rounds))

    # whole processes over a file: seqlm score against KenLM's query (its trie binary, and the ARPA file), on
    # PTB's test file, PTB's train + valid (1M tokens) and those ten times over (10M): the file's totals
    # (--per corpus against -v summary), a line printed for each line (seqlm score's default against
    # -v sentence), and one for each word (--per token against query's default)
    big, bigger = work / "ptb-train-valid.txt", work / "ptb-train-valid-x10.txt"
    if not big.exists():
        with atomic_write(big) as f:
            f.write(Path(ptb["train"]).read_text() + Path(ptb["valid"]).read_text())
    if not bigger.exists():
        with atomic_write(bigger) as f:
            f.write(big.read_text() * 10)
    seqlm_bin = seqlm_command()
    # as a user's install has them (pip compiles a package's modules; this checkout may run without): the
    # modules' bytecode, so start-up does not compile seqlm's sources on every run
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "seqlm")], check=True)
    query = KENLM_BIN / "query"
    trie = work / f"{folder.name}-trie.bin"
    out["processes"] = []
    for text, rounds in ((test_file, args.rounds), (big, args.rounds), (bigger, min(args.rounds, 5))):
        n_tokens = sum(len(line.split()) + 1 for line in text.read_text().splitlines() if line.strip())
        ours = [seqlm_bin, "-q", "score", str(folder), "--file", str(text), "--per", "corpus"]
        cmds = {"seqlm_score_s": (ours, None), "seqlm_score_1t_s": (ours, {"SEQLM_THREADS": "1"}),
                "seqlm_lines_s": (ours[:-2], None), "seqlm_tokens_s": (ours[:-1] + ["token"], None)}
        if query.exists() and trie.exists():
            cmds["query_trie_s"] = ([str(query), "-v", "summary", str(trie)], None)
            cmds["query_sentence_s"] = ([str(query), "-v", "sentence", str(trie)], None)
            cmds["query_words_s"] = ([str(query), str(trie)], None)
        row = {"file": text.name, "tokens": n_tokens, **process_seconds(cmds, text, rounds)}
        if query.exists():
            row.update(query_arpa_s=process_seconds({"arpa": ([str(query), "-v", "summary", str(arpa)], None)}, text,
                                                    1)["arpa"])
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
