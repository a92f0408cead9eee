"""n-gram estimation on a cluster: ``seqlm train --cluster local:N`` against the single process, on generated text,
and a scaling model of the cluster path built from this run's measured stages.

    python bench/cluster.py [--sizes 10M,100M] [--workers 2] [--memory 4G] [--work DIR] [--results results/ngram-cluster.json]

For each size (``bench/corpus.py``'s realistic generated text, cached in ``--work``), as whole processes from the
shell, one after the other, alone on the machine:

* ``seqlm train --train FILE --model kn --order 5 --memory M --out A`` (bounded memory, one process, 2 threads);
* the same with ``--cluster local:N`` (N worker processes; ``--memory`` is the machine's, shared by them).

Peak RSS counts the pages of mapped files a process touched: the packing of the trie maps the model's columns and
writes the model (several GB at 100M tokens) in one process, the single one or one worker.

Measured: wall seconds of each, the ratio (goal: the cluster path at most 1.5x the single process's: the engine's
overhead), each worker's peak RSS against its share of the budget, whether the two model folders hold the same
trie (byte for byte), and per stage of the cluster run (the model's config records it): tasks, summed task
seconds, the bytes tasks read and wrote on the scratch folder (the shuffle), the bytes returned to the client, and
the client's own seconds.

The scaling model projects a 10B-token 5-gram from the largest size's stages (see ``project``): its assumptions
are printed with it.  The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import corpus as gen  # noqa: E402
from common import finish, scratch, seqlm_command  # noqa: E402
from seqlm.io.memory import parse_memory  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402

# the stages of the cluster path (task functions, models/ngram/cluster.py) as the scaling model groups them
GROUPS = {"text": ("read_block", "ids_block"), "count": ("count_block", "merge_bucket", "block_ranks"),
          "adjust": ("unigram_continuations", "adjust"), "estimate": ("estimate_bucket",), "pack": ("pack",)}
# the machines of the projection: what is assumed, not measured
ASSUME = {"tokens": 10_000_000_000, "workers_per_machine": 16, "nic_gb_s": 1.25, "storage_gb_s": 20.0,
          "scheduler_ms_per_task": 1.0, "block_mb": 4}


def run(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB: the largest of the process and the children it waited for, as Linux's wait4
    reports it; mapped files it touched count), exit status."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    rc = os.waitstatus_to_exitcode(status)
    if rc:
        print(err, file=sys.stderr)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, rc


def same_trie(a: Path, b: Path) -> bool:
    return all(filecmp.cmp(f, b / "trie" / f.name, shallow=False) for f in sorted((a / "trie").iterdir())) and \
        sorted(p.name for p in (a / "trie").iterdir()) == sorted(p.name for p in (b / "trie").iterdir())


def project(row: dict, small: dict | None, workers: int) -> dict:
    """The wall time of a 10B-token 5-gram on 8, 32 and 128 machines, from the measured stages of ``row``.

    * Work in tasks (summed task seconds per group) grows with the tokens and spreads over every worker (the
      per-worker rates are this machine's);
    * packing the trie is one task: it grows with the model's n-grams, which grow as a power of the tokens fitted
      between the two sizes measured;
    * the client merges each block's types into the vocabulary, one block after another: its seconds grow with the
      number of blocks;
    * the shuffle (bytes tasks read and write on the scratch folder) crosses the network: per machine at most
      ``nic_gb_s``, in all at most ``storage_gb_s``;
    * the scheduler spends ``scheduler_ms_per_task`` per task, one after another.
    """
    cl = row["cluster"]
    st = cl["stages"]
    scale = ASSUME["tokens"] / row["tokens"]
    grow = 1.0
    if small:
        b = math.log(sum(row["ngrams"]) / sum(small["ngrams"])) / math.log(row["tokens"] / small["tokens"])
        grow = scale ** b
    group_s = {g: sum(st.get(f, {}).get("task_s", 0.0) for f in fs) for g, fs in GROUPS.items()}
    parallel_s = sum(v for g, v in group_s.items() if g != "pack") * scale
    pack_s = group_s["pack"] * grow
    shuffle = sum(s["read_bytes"] + s["written_bytes"] for s in st.values()) * scale
    blocks = row["bytes"] * scale / (ASSUME["block_mb"] << 20)
    # the client's own seconds per block of this run (the engine's start aside: it is paid once)
    client_s = cl["seconds"]["client"] * blocks / cl["blocks"]
    tasks = sum(s["tasks"] for s in st.values()) * blocks / cl["blocks"]
    out = {"assumptions": dict(ASSUME), "ngram_growth": grow, "measured_tokens": row["tokens"],
           "task_seconds_per_group": {g: round(v, 2) for g, v in group_s.items()},
           "shuffle_tb": shuffle / 1e12, "client_gb": sum(s["client_bytes"] for s in st.values()) * scale / 1e9,
           "machines": {}}
    for m in (8, 32, 128):
        w = m * ASSUME["workers_per_machine"]
        terms = {"tasks": parallel_s / w, "pack (one task)": pack_s,
                 "shuffle": shuffle / 1e9 / min(ASSUME["storage_gb_s"], m * ASSUME["nic_gb_s"]),
                 "client (vocabulary)": client_s, "scheduler": tasks * ASSUME["scheduler_ms_per_task"] / 1e3}
        # tasks and shuffle overlap at best; the rest is serial
        total = max(terms["tasks"], terms["shuffle"]) + terms["pack (one task)"] + terms["client (vocabulary)"] + \
            terms["scheduler"]
        out["machines"][str(m)] = {"hours": total / 3600, "terms_s": {k: round(v) for k, v in terms.items()},
                                   "limit": max(terms, key=terms.get)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10M,100M")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory", default="4G", help="the machine's budget, for both paths")
    ap.add_argument("--work", help="folder for the corpora (kept, reused) and the models")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/ngram-cluster.json)")
    args = ap.parse_args(argv)
    seqlm = seqlm_command()
    work = scratch(args.work, "seqlm-cluster-")
    out = {"type": "ngram-cluster", "benchmark": "ngram-cluster", "hardware": hardware(), "commit": git_commit(),
           "order": 5, "memory": args.memory, "workers": args.workers, "rows": []}
    for size in args.sizes.split(","):
        n = gen.size(size)
        text, info_file = work / f"corpus-{n}.txt", work / f"corpus-{n}.json"
        if not info_file.exists():
            proc = subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), "--tokens", str(n), "--out",
                                   str(text)], capture_output=True, text=True, check=True)
            info_file.write_text(proc.stdout.strip().splitlines()[-1])
        info = json.loads(info_file.read_text())
        base = [seqlm, "-q", "train", "--train", str(text), "--model", "kn", "--order", "5", "--memory", args.memory,
                "--temp-dir", str(work)]
        one, many = work / f"one-{n}", work / f"cluster-{n}"
        for m in (one, many):
            shutil.rmtree(m, ignore_errors=True)
        single = run(base + ["--out", str(one)])
        spread = run(base + ["--cluster", f"local:{args.workers}", "--out", str(many)])
        if single[2] or spread[2]:
            raise SystemExit(f"a run failed (exit {single[2]}, {spread[2]})")
        config = json.loads((many / "config.json").read_text())
        cl = config["cluster"]
        share = parse_memory(args.memory) / args.workers / 2**20
        row = {"tokens": info["tokens"], "bytes": info["bytes"], "ngrams": config["ngrams"],
               "single": {"seconds": single[0], "peak_mb": single[1]},
               "cluster": {**cl, "wall_s": spread[0], "process_tree_peak_mb": spread[1]},
               "ratio": spread[0] / single[0], "worker_budget_mb": share,
               "workers_within_budget": max(cl["worker_peak_rss_mb"]) <= share, "same_trie": same_trie(one, many)}
        for m in (one, many):
            shutil.rmtree(m, ignore_errors=True)
        out["rows"].append(row)
        print(f"{info['tokens']:,} tokens: single {single[0]:.1f} s, local:{args.workers} {spread[0]:.1f} s "
              f"({row['ratio']:.2f}x); workers' peaks {cl['worker_peak_rss_mb']} MB of {share:.0f}; same trie: "
              f"{row['same_trie']}", file=sys.stderr)
    rows = out["rows"]
    out["projection"] = project(rows[-1], rows[-2] if len(rows) > 1 else None, args.workers)
    for m, p in out["projection"]["machines"].items():
        print(f"10B tokens on {m} machines: {p['hours']:.2f} h, limited by {p['limit']} ({p['terms_s']})",
              file=sys.stderr)
    finish(out, args.results, work, keep=bool(args.work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
