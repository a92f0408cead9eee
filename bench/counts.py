"""Counting shards and merging equals counting once: PTB's training text in N shards, each counted by
``seqlm count``, merged and estimated by ``seqlm train --counts``, against ``seqlm train --train`` on the whole
text (modified-KN 5-gram), as whole processes.

    SEQLM_DATA=../shared/data python bench/counts.py [--shards 4] [--results results/counts.json]

Measured in this run: the seconds of each ``seqlm count`` (one per shard, one after the other), of the merge and
estimate, and of training on the whole text; whether the two model folders hold the same trie (byte for byte).
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import finish, scratch, seqlm_command  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text.corpora import locate  # noqa: E402


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/counts.json)")
    args = ap.parse_args(argv)
    seqlm = seqlm_command()
    work = scratch(None, "seqlm-counts-")
    lines = Path(locate("ptb")["train"]).read_text().splitlines()
    whole = work / "train.txt"
    whole.write_text("\n".join(lines) + "\n")
    size = -(-len(lines) // args.shards)
    count_s, folders = [], []
    for i in range(args.shards):
        part = work / f"part{i}.txt"
        part.write_text("\n".join(lines[i * size:(i + 1) * size]) + "\n")
        folders.append(str(work / f"counts{i}"))
        count_s.append(timed([seqlm, "-q", "count", str(part), "--order", str(args.order), "--out", folders[-1]]))
    merge_s = timed([seqlm, "-q", "train", "--counts", *folders, "--order", str(args.order), "--out",
                     str(work / "merged")])
    whole_s = timed([seqlm, "-q", "train", "--train", str(whole), "--order", str(args.order), "--out",
                     str(work / "whole")])
    same = all(filecmp.cmp(a, work / "whole" / a.relative_to(work / "merged"), shallow=False)
               for a in sorted((work / "merged" / "trie").iterdir()))
    out = {"type": "counts", "benchmark": "counts", "hardware": hardware(), "commit": git_commit(), "corpus": "ptb",
           "order": args.order, "shards": args.shards, "lines": len(lines), "count_seconds": count_s,
           "merge_estimate_seconds": merge_s, "whole_text_seconds": whole_s, "same_trie": same}
    print(f"{args.shards} shards counted in {sum(count_s):.1f} s (largest {max(count_s):.1f} s), merged and estimated "
          f"in {merge_s:.1f} s; the whole text in {whole_s:.1f} s; same trie: {same}", file=sys.stderr)
    finish(out, args.results, work, keep=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
