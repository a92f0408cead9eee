"""Where the bits go, by unit: the same test text's cost split over the words a word model knows, the words it
does not (each scored as ``<unk>``), and the line ends, for a word, a subword and a byte model of the same text.

    SEQLM_DATA=../shared/data python bench/unit_bits.py [--corpus brown-raw] [--results results/unit-bits.json]
        [--model LABEL=FOLDER ...]

A word model scores an unknown word as one ``<unk>``: the probability of the whole class of words it never saw,
not of the word itself. A subword or byte model spells every word. So on running text, where many test words
were never seen in training, the word model's bits per byte is lower than what it would pay to say the text;
this benchmark measures by how much. Each model is the command a user runs (``seqlm train --model kn --level L``,
as ``bench/units.py``), scored as every run's test figure is, in stream mode
(``seqlm.score(model, lines, per="token", mode="stream")``); a word's cost is the sum
of its tokens' (a piece that begins with ``▁``, or the line's first, begins a word: the space token of the
character and byte levels counts with the word after it); which words are unknown is the word model's verdict.
``--model`` adds saved model folders of the same text (an LSTM of each unit, say). The split is checked: its
three parts add up to the model's total, and every line has as many word groups as whitespace words.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import seqlm  # noqa: E402
from common import brown, finish, scratch, seqlm_command  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.text.subword import SPACE  # noqa: E402

UNITS = [("KN5", "word", "word", None, 5), ("KN6", "BPE 8k", "bpe", 8000, 6), ("KN8", "byte", "byte", None, 8)]


def word_costs(model, lines: list[str]) -> tuple[list[list[float]], list[float], list[list[bool]]]:
    """Per line: each whitespace word's cost (-ln p of its tokens), the line end's, and each word's OOV flag
    (a word token scored as ``<unk>``, or any of its pieces)."""
    costs, ends, oovs = [], [], []
    word_level = model.vocab.tokenizer.level == "word"
    for line, row in zip(lines, seqlm.score(model, lines, per="token", mode="stream")):
        toks = row["token_log_probs"]
        words, flags = [], []
        for i, t in enumerate(toks[:-1]):  # the last is </s>
            if word_level or i == 0 or t["token"].startswith(SPACE):
                words.append(0.0)
                flags.append(False)
            words[-1] -= t["log_prob"]
            flags[-1] |= t["oov"]
        if len(words) != len(line.split()):
            raise SystemExit(f"{len(words)} word groups against {len(line.split())} words in {line!r}")
        costs.append(words)
        ends.append(-toks[-1]["log_prob"])
        oovs.append(flags)
    return costs, ends, oovs


def split(costs, ends, unknown) -> dict:
    known = sum(c for line, u in zip(costs, unknown) for c, x in zip(line, u) if not x)
    unk = sum(c for line, u in zip(costs, unknown) for c, x in zip(line, u) if x)
    return {"known_words": known, "unknown_words": unk, "line_ends": sum(ends)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="brown-raw")
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER",
                    help="also a saved model of the same text (its units are its own)")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/unit-bits.json)")
    args = ap.parse_args(argv)
    f = brown(args.corpus)
    lines = [line for line in f["test"].read_text(encoding="utf-8").splitlines() if line.strip()]
    n_bytes = sum(len(line.encode("utf-8")) + 1 for line in lines)
    n_words = sum(len(line.split()) for line in lines)
    work = scratch(None, "seqlm-unit-bits-")
    seqlm_cli = seqlm_command()
    models = []
    for name, label, level, pieces, order in UNITS:
        folder = work / f"{level}-{pieces}"
        cmd = [seqlm_cli, "-q", "train", "--train", str(f["train"]), "--valid", str(f["valid"]), "--model", "kn",
               "--order", str(order), "--level", level, "--out", str(folder)] + (["--vocab-size", str(pieces)] if pieces else [])
        subprocess.run(cmd, check=True)
        models.append((f"{name} {label}", folder, None))
    models += [(m.split("=", 1)[0], Path(m.split("=", 1)[1]), m.split("=", 1)[1]) for m in args.model]
    scored = [(label, seqlm.load(folder), given) for label, folder, given in models]
    word_model = next(m for label, m, _ in scored if m.vocab.tokenizer.level == "word")
    _, _, unknown = word_costs(word_model, lines)
    out = {"type": "unit-bits", "benchmark": "unit-bits", "hardware": hardware(), "commit": git_commit(),
           "corpus": args.corpus, "lines": len(lines), "bytes": n_bytes, "words": n_words,
           "unknown_words": sum(map(sum, unknown)), "unknown_by": models[0][0], "rows": []}
    for label, model, given in scored:
        costs, ends, _ = word_costs(model, lines)
        parts = split(costs, ends, unknown)
        total = -seqlm.evaluate(model, lines)["log_prob"]  # stream mode, as every run's test figure
        if not math.isclose(sum(parts.values()), total, rel_tol=1e-9):
            raise SystemExit(f"{label}: the parts add up to {sum(parts.values())}, the total is {total}")
        row = {"model": label, "folder": given,
               "level": model.vocab.tokenizer.level, "bits_per_byte": total / n_bytes / math.log(2),
               **{f"{k}_bits_per_byte": v / n_bytes / math.log(2) for k, v in parts.items()},
               "bits_per_unknown_word": parts["unknown_words"] / math.log(2) / max(out["unknown_words"], 1),
               "bits_per_known_word": parts["known_words"] / math.log(2) / max(n_words - out["unknown_words"], 1)}
        out["rows"].append(row)
        print(f"{label}: {row['bits_per_byte']:.4f} bits/byte = {row['known_words_bits_per_byte']:.4f} known words + "
              f"{row['unknown_words_bits_per_byte']:.4f} unknown + {row['line_ends_bits_per_byte']:.4f} line ends; "
              f"{row['bits_per_unknown_word']:.1f} bits per unknown word", file=sys.stderr)
    finish(out, args.results, work, keep=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
