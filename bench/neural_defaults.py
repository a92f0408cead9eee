"""A neural run on raw text without a recipe: the settings fitted to the data (training/defaults.py) against the
dataclass defaults such a run had before, under the same time budget, next to the modified-KN 5-gram, on two
corpora of different sizes: Brown's running text (916k words, 86.7k types) and its first 5,000 lines (96k words).

    SEQLM_DATA=../shared/data python bench/neural_defaults.py [--minutes 4] [--results results/neural-defaults.json]

Each row is the command a user runs, as a whole process:
* fitted: ``seqlm train --model lstm --train T --valid V --test X --out O --minutes M``;
* before: the same data in a recipe that names only the kind (the dataclass defaults: a 2x200 LSTM, full
  softmax, SGD lr 20 with the Zaremba decay over 13 epochs), stopped by the same ``--minutes``;
* kn5: ``seqlm train --order 5`` on the same files.
Figures: test and valid perplexity (one vocabulary, every training type, for all three), parameters, training
tokens per second, epochs, seconds. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from common import brown, finish, scratch, seqlm_command  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402

SMALL_LINES = 5000


def corpora(work: Path) -> dict[str, dict[str, Path]]:
    full = brown("brown-raw")
    small = dict(full, train=work / "brown-raw-5k.train.txt")
    with open(full["train"], encoding="utf-8") as f:
        small["train"].write_text("".join(line for _, line in zip(range(SMALL_LINES), f)), encoding="utf-8")
    return {"brown-raw (916k words)": full, f"brown-raw, first {SMALL_LINES:,} lines (96k words)": small}


def run(cmd: list[str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout), seconds


def neural_row(summary: dict, seconds: float) -> dict:
    t = summary["config"]["train"]
    return {"test_perplexity": summary["metrics"].get("test_perplexity"),
            "valid_perplexity": summary["metrics"].get("valid_perplexity"),
            "parameters": summary["model"]["parameters"], "vocab_size": summary["model"]["vocab_size"],
            "tokens_per_second": summary["steps"] * t["batch_size"] * t["bptt"] / summary["train_seconds"],
            "epochs": len(summary.get("epochs", [])), "stop": summary["stop"],
            "train_seconds": summary["train_seconds"], "seconds": seconds,
            "model": {k: summary["config"]["model"][k] for k in ("embedding_dim", "hidden_size", "num_layers",
                                                                  "tie_weights", "adaptive_cutoffs", "dropout")},
            "optimizer": summary["config"]["train"]["optimizer"], "schedule": summary["config"]["train"]["schedule"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="the time budget of every neural run")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/neural-defaults.json)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args(argv)
    seqlm = seqlm_command()
    work = scratch(None, "seqlm-neural-defaults-")
    rows = []
    for name, files in corpora(work).items():
        data = ["--train", str(files["train"]), "--valid", str(files["valid"]), "--test", str(files["test"])]
        tag = "small" if "5,000" in name else "full"
        kn, seconds = run([seqlm, "-q", "train", *data, "--order", "5", "--out", str(work / f"kn5-{tag}"), "--json"])
        rows.append({"corpus": name, "run": "kn5", "test_perplexity": kn["test"]["perplexity"],
                     "valid_perplexity": kn["valid"]["perplexity"], "seconds": seconds})
        print(json.dumps(rows[-1]), flush=True)
        recipe = work / f"before-{tag}.toml"
        recipe.write_text('[model]\nkind = "lstm"\n')
        for label, cmd in (("fitted", ["--model", "lstm"]), ("before", [str(recipe)])):
            summary, seconds = run([seqlm, "-q", "train", *cmd, *data, "--minutes", str(args.minutes),
                                    "--out", str(work / f"{label}-{tag}"), "--json"])
            rows.append({"corpus": name, "run": label, **neural_row(summary, seconds)})
            print(json.dumps(rows[-1]), flush=True)
    out = {"type": "neural-defaults", "benchmark": "neural-defaults", "hardware": hardware(), "commit": git_commit(),
           "minutes": args.minutes, "rows": rows}
    finish(out, args.results, work, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
