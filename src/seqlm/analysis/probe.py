"""A long-range dependency probe (the seed's "tickets" example): can a model recall a word it read d
tokens ago?

Each line of the generated corpus is ``KEY w_1 ... w_d = KEY``: a key word (one of 12), d distractor words
drawn at random from a filler list (never a key), the cue ``=``, and the same key again.  Every model is
trained on such lines and then, on new lines, asked which key follows ``... w_d =``: the recall accuracy is
the fraction of test lines where the right key gets the highest probability among the 12 keys (chance:
1/12).  An n-gram of order n (and a fixed window of n-1 words) sees the first key only while d + 2 <= n - 1,
so it must fall to chance beyond that; a recurrent model has to carry the key in its state across d steps.
Scoring is batched through the model interface (each test line with each candidate key), so every kind is
measured the same way.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from seqlm.io.files import PNG_METADATA

KEYS = ("tickets", "books", "keys", "letters", "photos", "notes", "shoes", "plans", "songs", "bags", "maps", "cards")
FILLER = ("the", "a", "she", "he", "went", "to", "store", "after", "work", "and", "then", "walked", "home", "with",
          "her", "his", "friend", "in", "rain", "late", "evening", "quickly", "slowly", "old", "new", "small",
          "big", "red", "blue", "city", "park", "road", "train", "bus", "morning", "night", "coffee", "tea", "bread",
          "river", "hill", "door", "window", "table", "chair", "garden", "street", "market", "school", "office")
CUE = "="


def recall_lines(distance: int, n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` lines ``KEY w_1 .. w_d = KEY`` and their keys."""
    rng = np.random.default_rng(seed)
    keys = [KEYS[i] for i in rng.integers(0, len(KEYS), n)]
    lines = [" ".join([k, *rng.choice(FILLER, distance), CUE, k]) for k in keys]
    return lines, keys


def recall_accuracy(model, lines: list[str], keys: list[str]) -> float:
    """Fraction of lines whose true key scores highest among all keys, in the last position."""
    from seqlm.text.encode import encode_lines

    prefixes = [line.rsplit(" ", 1)[0] for line in lines]
    variants = [f"{p} {k}" for p in prefixes for k in KEYS]
    enc = encode_lines(model.vocab, variants)
    flat, _ = model.score_lines(enc.lines, "sentence")
    ends = np.cumsum(enc.lengths + 1) - 2  # the last word of each line (before its </s>)
    scores = flat[ends].reshape(len(lines), len(KEYS))
    truth = np.array([KEYS.index(k) for k in keys])
    return float((scores.argmax(axis=1) == truth).mean())


FAMILIES = {
    "kn5": ("kn", ["model.order=5"]),
    "window": ("window", ["model.context=4", "model.embedding_dim=32", "model.hidden_size=64", "model.num_layers=1"]),
    "rnn_tanh": ("rnn_tanh", ["model.embedding_dim=32", "model.hidden_size=64", "model.num_layers=1"]),
    "lstm": ("lstm", ["model.embedding_dim=32", "model.hidden_size=64", "model.num_layers=1"]),
    "gru": ("gru", ["model.embedding_dim=32", "model.hidden_size=64", "model.num_layers=1"]),
    # one block, each token attending to the 128 before it: every distance of the probe is inside its context
    "transformer": ("transformer", ["model.embedding_dim=32", "model.hidden_size=64", "model.num_layers=2",
                                    "model.heads=4", "model.context=128", "train.lr=0.002"]),
}
NEURAL_TRAIN = ["train.optimizer=adam", "train.lr=0.01", "train.clip=1", "train.schedule=constant",
                "train.batch_size=16", "train.device=cpu", "train.eval_chunk=4096", "train.fit=false"]


def run_probe(distances=(1, 2, 5, 10, 20, 50, 100), families=tuple(FAMILIES), train_lines: int = 2000,
              test_lines: int = 200, steps: int = 3000, seed: int = 0, threads: int | None = None) -> dict:
    """Train every family on the recall corpus of every distance; recall accuracy per family and d."""
    import logging
    import time

    from seqlm.training.train import train

    logging.getLogger("seqlm").setLevel(logging.WARNING)
    out: dict = {"distances": list(distances), "chance": 1 / len(KEYS), "train_lines": train_lines,
                 "test_lines": test_lines, "steps": steps, "accuracy": {f: {} for f in families}, "seconds": {}}
    for d in distances:
        tr, _ = recall_lines(d, train_lines, seed + d)
        te, te_keys = recall_lines(d, test_lines, seed + 10_000 + d)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            path.write_text("\n".join(tr) + "\n", encoding="utf-8")
            for fam in families:
                kind, opts = FAMILIES[fam]
                t0 = time.perf_counter()
                extra = []
                if kind != "kn":
                    # a fixed number of updates, windows long enough to hold a whole line (key to recall)
                    extra = NEURAL_TRAIN + ["train.epochs=100000", f"train.max_steps={steps}", f"train.bptt={d + 8}"]
                    if threads:
                        extra.append(f"train.threads={threads}")
                lm, _ = train(model=kind, train=path, out=Path(tmp) / fam if kind != "kn" else None,
                              overrides=extra + opts)  # a family's own settings win
                out["accuracy"][fam][str(d)] = recall_accuracy(lm, te, te_keys)
                out["seconds"][f"{fam}/{d}"] = round(time.perf_counter() - t0, 1)
    return out


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fam, acc in result["accuracy"].items():
        ds = [d for d in result["distances"] if str(d) in acc]
        ax.plot(ds, [acc[str(d)] for d in ds], marker="o", label=fam)
    ax.axhline(result["chance"], color="grey", ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("distance d (tokens between the key and its recall)")
    ax.set_ylabel("recall accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Long-range recall: KEY w_1 ... w_d = KEY")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
