"""n-gram benchmark on PTB: perplexity, estimation time and memory, scoring speed, next to KenLM.

    SEQLM_DATA=../shared/data python bench/ngram.py [--quick] [--results results/ngram-ptb.json]
    python bench/ngram.py --scale [--sizes 1M,10M,30M,100M] [--work DIR]   (see SCALE_DOC below; writes
        results/ngram-scale.json and regenerates the docs' table and docs/results/figures/ngram-scale.png)

Measures, in this run:
* estimation of the interpolated modified-KN 5-gram as a whole process from the shell
  (``seqlm train --corpus ptb --model kn --order 5``): wall seconds and peak RSS, median of 3 runs;
  the same for KenLM's ``lmplz -o 5 -S 1G`` when it is on PATH;
* valid/test perplexity for orders 2-5, stream and sentence modes;
* scoring speed (tokens/s): seqlm's batched scorer, seqlm's whole ``evaluate`` (tokenizing included),
  and, as the peer, the ``kenlm`` Python module scoring the same sentences from seqlm's ARPA file
  (and KenLM's ``query`` binary when on PATH); seqlm's scorer and kenlm are timed alternately, 30 runs
  each, best of each;
* agreement: the largest difference between kenlm's and seqlm's sentence log10-probabilities;
* model files: loading the 5-gram's ARPA file in a fresh process (seqlm's ``read_arpa`` vs
  ``kenlm.Model``: seconds and the memory the load adds over the process's imports, peak RSS), writing it
  (``write_arpa``), loading the seqlm model folder (memory-mapped), and evaluation's peak memory on the
  test text and on ten copies of it (read from a file as it is scored).

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import seqlm  # noqa: E402
from common import seqlm_command  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.models.ngram.arpa import write_arpa  # noqa: E402
from seqlm.tasks.evaluate import evaluate_data  # noqa: E402
from seqlm.text.corpora import locate  # noqa: E402
from seqlm.text.encode import encode_lines  # noqa: E402

# KenLM lmplz on these files (<unk> kept as a word, every line ending in </s>), as given in the issue
# that pinned them; printed as the anchor when lmplz itself is not on PATH to measure.
KENLM_REFERENCE = {"test_perplexity": {"3": 148.28, "5": 141.19}, "estimate_seconds": 1.3, "estimate_peak_mb": 232}


def run_process(cmd: list[str], env=None) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def time_estimation(tmp: Path, repeats: int) -> dict:
    cmd = [seqlm_command(), "-q", "train", "--corpus", "ptb", "--model", "kn", "--order", "5", "--out", str(tmp / "kn5")]
    runs = [run_process(cmd[:-1] + [f"{cmd[-1]}-{i}"]) for i in range(repeats)]
    if any(r[2] for r in runs):
        raise SystemExit(f"seqlm train failed: {' '.join(cmd)}")
    return {"seconds": statistics.median(r[0] for r in runs), "peak_mb": max(r[1] for r in runs),
            "runs": repeats, "command": " ".join(cmd[1:])}


def time_lmplz(tmp: Path, train: Path, repeats: int) -> dict | None:
    lmplz = shutil.which("lmplz")
    if not lmplz:
        return None
    # <unk> kept as an ordinary word: lmplz would otherwise treat it as its own unknown token
    renamed = tmp / "train.txt"
    renamed.write_text(train.read_text().replace("<unk>", "UNK_WORD"))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with open(renamed) as fin:
            proc = subprocess.Popen([lmplz, "-o", "5", "-S", "1G", "-T", str(tmp), "--arpa", str(tmp / "lmplz.arpa")],
                                    stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
        runs.append((time.perf_counter() - t0, usage.ru_maxrss / 1024))
    return {"seconds": statistics.median(r[0] for r in runs), "peak_mb": max(r[1] for r in runs), "runs": repeats}


LOAD_SNIPPET = """
import sys, time, json
{imports}

def hwm():  # this process's peak RSS in MB (VmHWM: unlike ru_maxrss, not inherited from the parent)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

base = hwm()
t0 = time.perf_counter()
m = {call}
seconds = time.perf_counter() - t0
{touch}
peak = hwm()
print(json.dumps({{"seconds": seconds, "peak_mb": peak, "added_mb": peak - base}}))
"""

LOADERS = {
    "seqlm_arpa": ("import numpy, seqlm\nfrom seqlm.models.ngram.arpa_reader import read_arpa", "read_arpa(sys.argv[1])", ""),
    "kenlm_arpa": ("import kenlm", "kenlm.Model(sys.argv[1])", ""),
    # a query on the mapped model touches only the pages it reads
    "seqlm_folder": ("import numpy, seqlm", "seqlm.load(sys.argv[1])",
                     "m.score_lines([m.vocab.encode('the cat sat'.split())])"),
}


def time_load(kind: str, path: Path, repeats: int) -> dict:
    imports, call, touch = LOADERS[kind]
    code = LOAD_SNIPPET.format(imports=imports, call=call, touch=touch)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{kind} load failed: {proc.stderr[-500:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "added_mb": max(r["added_mb"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs), "runs": repeats}


def evaluation_memory(lm, test_lines: list[str], tmp: Path) -> dict:
    """Peak traced memory of evaluate_data on files of 10 and of 100 copies of the test text (both longer
    than one 10,000-line block: flat memory means the same peak)."""
    import tracemalloc

    out = {}
    for copies in (10, 100):
        f = tmp / f"test-x{copies}.txt"
        f.write_text("\n".join(test_lines * copies) + "\n")
        tracemalloc.start()
        r = evaluate_data(lm, file=f)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[f"x{copies}"] = {"tokens": r["tokens"], "peak_mb": peak / 2**20}
    out["growth"] = out["x100"]["peak_mb"] / out["x10"]["peak_mb"]
    return out


def best_rate(fn, tokens: int, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return tokens / best


SCALE_DOC = """5-gram (modified Kneser-Ney) estimation from the shell on generated text of growing size
(``bench/corpus.py``: Zipfian vocabulary of 200,000 types, class-chain syntax, idioms): wall seconds and peak
RSS of ``seqlm train --train FILE --model kn --order 5 --memory 4G --out DIR`` (bounded-memory estimation,
ngram/external.py: reads, counts, estimates and saves the model folder with its hash indexes) and of
``lmplz -o 5 -S 4G`` (writes its ARPA to /dev/null), both with their scratch files in the work folder, one
after the other, alone on the machine."""


def meminfo(field: str) -> float:
    for line in open("/proc/meminfo"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return float("nan")


def scale_agreement(work: Path, text: Path, lmplz: str, seqlm_bin: str, sentences: int = 2000) -> dict:
    """The bounded-memory model (spilling: ``--memory 1G``) against lmplz's ARPA file of the same text,
    scored by the kenlm module: n-gram counts per order and the largest difference of sentence log10 p
    on ``sentences`` lines of the training text, half of them with their words shuffled (backoff paths)."""
    try:
        import kenlm
    except ImportError:
        return {"skipped": "the kenlm module is not installed (pip install kenlm)"}
    model, arpa = work / "agree-seqlm", work / "agree-lmplz.arpa"
    subprocess.run([seqlm_bin, "-q", "train", "--train", str(text), "--model", "kn", "--order", "5", "--memory", "1G",
                    "--temp-dir", str(work), "--out", str(model), "--overwrite"], check=True)
    with open(text) as fin, open(arpa, "w") as fout:
        subprocess.run([lmplz, "-o", "5", "-S", "2G", "-T", str(work)], stdin=fin, stdout=fout,
                       stderr=subprocess.DEVNULL, check=True)
    try:
        lm = seqlm.load(model)
        ken = kenlm.Model(str(arpa))
        with open(arpa) as f:
            theirs_sizes = [int(line.split("=")[1]) for line in (next(f) for _ in range(7)) if line.startswith("ngram ")]
        lines = []
        with open(text) as f:
            for line in f:
                lines.append(line.strip())
                if len(lines) == sentences:
                    break
        rng = np.random.default_rng(0)
        half = len(lines) // 2
        lines = lines[:half] + [" ".join(rng.permutation(x.split())) for x in lines[half:]]
        enc = [lm.vocab.encode(x.split()) for x in lines]
        lp, _ = lm.score_lines(enc)
        starts = np.cumsum([0] + [len(e) + 1 for e in enc[:-1]])
        ours = np.add.reduceat(lp, starts) / math.log(10)
        theirs = np.array([ken.score(x, bos=True, eos=True) for x in lines])
        diff = np.abs(ours - theirs)
        return {"tokens_file": text.name, "memory": "1G", "sentences": len(lines), "seqlm_ngrams": lm.tables.sizes(),
                "lmplz_ngrams": theirs_sizes, "max_abs_log10": float(diff.max()), "mean_abs_log10": float(diff.mean())}
    finally:
        shutil.rmtree(model, ignore_errors=True)
        arpa.unlink()


def scale(args) -> None:
    import corpus as gen
    from seqlm.io.files import atomic_write

    sizes = [gen.size(x) for x in args.sizes.split(",")]
    work = Path(args.work or tempfile.mkdtemp(prefix="seqlm-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = Path(args.results or REPO / "results" / "ngram-scale.json")
    lmplz = shutil.which("lmplz")
    seqlm_bin = seqlm_command()
    out: dict = {"type": "ngram-scale", "benchmark": "ngram-scale", "doc": SCALE_DOC, "hardware": hardware(), "commit": git_commit(REPO),
                 "order": 5, "lmplz_memory": "4G", "seqlm_memory": "4G", "memory_available_gb": meminfo("MemAvailable") / 1e9, "rows": []}
    for n in sizes:
        text = work / f"corpus-{n}.txt"
        info_file = work / f"corpus-{n}.json"
        if not info_file.exists():
            proc = subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), "--tokens", str(n), "--out", str(text)],
                                  capture_output=True, text=True, check=True)
            info_file.write_text(proc.stdout.strip().splitlines()[-1])
        info = json.loads(info_file.read_text())
        row = {"tokens": info["tokens"], "lines": info["lines"], "types": info["types_used"], "bytes": info["bytes"]}
        model = work / f"seqlm-{n}"
        cmd = [seqlm_bin, "-q", "train", "--train", str(text), "--model", "kn", "--order", "5", "--memory", "4G",
               "--temp-dir", str(work), "--out", str(model)]
        wall, peak, rc = run_process(cmd)
        if rc == 0:
            config = json.loads((model / "config.json").read_text())
            row["ngrams"] = config["ngrams"]
            row["model_mb"] = sum(config["table_bytes"].values()) / 2**20
        shutil.rmtree(model, ignore_errors=True)
        row["seqlm"] = {"seconds": wall, "peak_mb": peak, "exit": rc, "memory": "4G"}
        if lmplz:
            t0 = time.perf_counter()
            with open(text) as fin:
                proc = subprocess.Popen([lmplz, "-o", "5", "-S", "4G", "-T", str(work)], stdin=fin,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
            row["lmplz"] = {"seconds": time.perf_counter() - t0, "peak_mb": usage.ru_maxrss / 1024,
                            "exit": os.waitstatus_to_exitcode(status)}
        out["rows"].append(row)
        print(f"{info['tokens']:,} tokens: seqlm {row['seqlm']}, lmplz {row.get('lmplz')}", file=sys.stderr)
        with atomic_write(results) as f:  # as it goes: a stop loses nothing
            json.dump(out, f, indent=2)
    agree = [i for i, row in enumerate(out["rows"]) if row["tokens"] >= gen.size(args.agree)] if args.agree else []
    if lmplz and agree:
        out["agreement"] = scale_agreement(work, work / f"corpus-{sizes[agree[0]]}.txt", lmplz, seqlm_bin)
        out["agreement"]["tokens"] = out["rows"][agree[0]]["tokens"]
        print(f"agreement with lmplz: {out['agreement']}", file=sys.stderr)
        with atomic_write(results) as f:
            json.dump(out, f, indent=2)
    if results.resolve() == (REPO / "results" / "ngram-scale.json").resolve():
        # the docs' tables and the figure follow the results file (python -m seqlm.manual)
        from seqlm import manual as docs

        docs.main(["--docs", str(REPO / "docs"), "--readme", str(REPO / "README.md"), "--results", str(REPO / "results")])
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/ngram-ptb.json)")
    ap.add_argument("--scale", action="store_true",
                    help="instead: 5-gram estimation time and peak memory vs corpus size on generated text "
                         "(bench/corpus.py), seqlm next to lmplz -S 4G (results/ngram-scale.json by default)")
    ap.add_argument("--sizes", default="1M,10M,30M,100M", help="--scale: corpus sizes in tokens")
    ap.add_argument("--agree", default="10M", help="--scale: also check the model of the first size at least this "
                    "large (estimated spilling, --memory 1G) against lmplz's ARPA scored by kenlm ('' to skip)")
    ap.add_argument("--work", help="--scale: folder for the corpora (kept, reused) and temporary models")
    args = ap.parse_args()
    if args.scale:
        return scale(args)
    repeats = 1 if args.quick else 3
    paths = locate("ptb")
    corpus = seqlm.load_corpus("ptb")
    out: dict = {"type": "ngram-ptb", "benchmark": "ngram-ptb", "hardware": hardware(), "commit": git_commit(REPO),
                 "kenlm_reference": KENLM_REFERENCE}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        est = time_estimation(tmp, repeats)
        ken = time_lmplz(tmp, paths["train"], repeats)
        out["estimate_5gram"] = est
        out["lmplz_5gram"] = ken if ken else {"measured": False, "why": "lmplz not on PATH",
                                              "reference": KENLM_REFERENCE}
        base = ken or {"seconds": KENLM_REFERENCE["estimate_seconds"]}
        out["estimate_vs_lmplz"] = est["seconds"] / base["seconds"]
        print(f"estimation, 5-gram, whole process: {est['seconds']:.2f}s, peak {est['peak_mb']:.0f} MB "
              f"(lmplz: {'%.2fs' % ken['seconds'] if ken else 'not on PATH; reference 1.3s'})", file=sys.stderr)

        table = []
        models = {}
        for order in (2, 3, 4, 5):
            lm, _ = seqlm.train(corpus, model="kn", order=order)
            models[order] = lm
            row = {"order": order, "ngrams": lm.tables.sizes()}
            for split in ("valid", "test"):
                for mode in ("stream", "sentence"):
                    r = seqlm.evaluate(lm, corpus.split(split), mode=mode)
                    row[f"{split}_{mode}"] = r["perplexity"]
                    row[f"{split}_tokens"] = r["tokens"]
            table.append(row)
            print(f"order {order}: valid {row['valid_stream']:.2f}, test {row['test_stream']:.2f} "
                  f"(sentence mode: {row['valid_sentence']:.2f} / {row['test_sentence']:.2f})", file=sys.stderr)
        out["perplexity"] = table
        ref = KENLM_REFERENCE["test_perplexity"]
        out["test_vs_kenlm"] = {o: next(r["test_stream"] for r in table if r["order"] == int(o)) / v - 1
                                for o, v in ref.items()}

        lm = models[5]
        test = corpus.split("test")
        enc = encode_lines(lm.vocab, test)
        ids, lengths = enc.flat(), enc.lengths
        n_tok = int(lengths.sum() + len(lengths))
        speed = {"tokens": n_tok,
                 "seqlm_scorer_tokens_per_s": best_rate(lambda: lm.score_stream(ids, lengths), n_tok, 5 * repeats),
                 "seqlm_evaluate_tokens_per_s": best_rate(lambda: seqlm.evaluate(lm, test), n_tok, 2 * repeats)}
        t0 = time.perf_counter()
        arpa = tmp / "kn5.arpa"
        write_arpa(lm, arpa)
        out["arpa"] = {"write_seconds": time.perf_counter() - t0, "bytes": arpa.stat().st_size}
        try:
            import kenlm
        except ImportError:
            kenlm = None
        if kenlm is not None:
            km = kenlm.Model(str(arpa))
            # interleaved, best of each: drift in the machine's speed during the run hits both alike
            ours_best = theirs_best = math.inf
            for _ in range(10 * repeats):
                ours_best = min(ours_best, n_tok / best_rate(lambda: lm.score_stream(ids, lengths), n_tok, 1))
                theirs_best = min(theirs_best, n_tok / best_rate(lambda: [km.score(s) for s in test], n_tok, 1))
            speed["seqlm_scorer_tokens_per_s"] = n_tok / ours_best
            speed["kenlm_python_tokens_per_s"] = n_tok / theirs_best
            ours = np.split(lm.score_stream(ids, lengths), np.cumsum(lengths + 1)[:-1])
            diff = max(abs(km.score(s) - o.sum() / math.log(10)) for s, o in zip(test, ours))
            out["kenlm_agreement_max_abs_log10"] = diff
        query = shutil.which("query")
        if query and shutil.which("lmplz"):
            t0 = time.perf_counter()
            subprocess.run([query, "-v", "summary", str(arpa)], input="\n".join(test), text=True,
                           capture_output=True, check=True)
            speed["kenlm_query_process_tokens_per_s"] = n_tok / (time.perf_counter() - t0)
        out["scoring"] = speed
        if "kenlm_python_tokens_per_s" in speed:
            speed["seqlm_scorer_vs_kenlm"] = speed["seqlm_scorer_tokens_per_s"] / speed["kenlm_python_tokens_per_s"]
        files = {"arpa_bytes": arpa.stat().st_size, "write_arpa_seconds": out["arpa"]["write_seconds"],
                 "seqlm_read_arpa": time_load("seqlm_arpa", arpa, repeats)}
        if kenlm is not None:
            files["kenlm_read_arpa"] = time_load("kenlm_arpa", arpa, repeats)
            files["read_vs_kenlm_seconds"] = files["seqlm_read_arpa"]["seconds"] / files["kenlm_read_arpa"]["seconds"]
            files["read_vs_kenlm_memory"] = files["seqlm_read_arpa"]["added_mb"] / files["kenlm_read_arpa"]["added_mb"]
        lm.save(tmp / "kn5-folder")
        files["seqlm_load_folder"] = time_load("seqlm_folder", tmp / "kn5-folder", repeats)
        out["files"] = files
        out["evaluate_memory"] = evaluation_memory(lm, test, tmp)
        print(f"files: write ARPA {files['write_arpa_seconds']:.2f}s; read ARPA {files['seqlm_read_arpa']['seconds']:.2f}s "
              f"+{files['seqlm_read_arpa']['added_mb']:.0f} MB (kenlm: "
              + (f"{files['kenlm_read_arpa']['seconds']:.2f}s +{files['kenlm_read_arpa']['added_mb']:.0f} MB"
                 if kenlm is not None else "module not installed")
              + f"); model folder load {files['seqlm_load_folder']['seconds'] * 1000:.1f} ms; evaluation peak memory "
              f"x100 text / x10 text = {out['evaluate_memory']['growth']:.2f}", file=sys.stderr)
        print(f"scoring: {speed['seqlm_scorer_tokens_per_s']:,.0f} tokens/s (seqlm scorer), "
              f"{speed['seqlm_evaluate_tokens_per_s']:,.0f} (seqlm evaluate, tokenizing included), "
              f"{speed.get('kenlm_python_tokens_per_s', float('nan')):,.0f} (kenlm module, per sentence)",
              file=sys.stderr)
    if args.results:
        from seqlm.io.files import atomic_write

        with atomic_write(args.results) as f:
            json.dump(out, f, indent=2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
