"""seqlm demo: n-gram models on the generated corpora (toydata.py), offline, in seconds.

Shows a perplexity table (smoothers x orders), next-word suggestions, generated sentences, a
character-level fluency check ("THERE IS A" vs "IHRA S EET") and, on DNA from a known Markov source,
how close each model order gets to the source's true entropy.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time

from seqlm.tasks.evaluate import evaluate
from seqlm.tasks.generate import generate, predict
from seqlm.tasks.score import score
from seqlm.text import toydata
from seqlm.text.tokenize import Tokenizer
from seqlm.training.train import train_ngram

SMOOTHERS = [("mle", {}), ("add-k", {"k": 0.1}), ("ikn", {}), ("mkn", {})]


def _split(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    n = len(lines)
    return lines[: n * 8 // 10], lines[n * 8 // 10: n * 9 // 10], lines[n * 9 // 10:]


def run(show=None) -> dict:
    """Every section of the demo; ``show(section, result)`` is called as each one finishes."""
    t0 = time.perf_counter()
    logging.getLogger("seqlm").setLevel(logging.WARNING)  # the demo prints its own story
    res: dict = {}

    def done(key: str, value: dict) -> None:
        res[key] = {**res.get(key, {}), **value}
        if show:
            show(key, value)

    train, valid, test = _split(toydata.english(20000, seed=1))
    table = []
    for name, kw in SMOOTHERS:
        for order in (1, 2, 3, 4):
            lm = train_ngram(train, smoothing=name, order=order, **kw)
            table.append({"smoothing": name + (f" k={kw['k']}" if kw else ""), "order": order,
                          "valid": evaluate(lm, valid)["perplexity"], "test": evaluate(lm, test)["perplexity"]})
    done("english", {"train_lines": len(train), "table": table})
    done("english", {"lstm": _small_lstm(train, valid, test)})
    lm = train_ngram(train, smoothing="mkn", order=3)
    prompt = "the students opened their"
    done("english", {"prompt": prompt, "suggestions": predict(lm, prompt, top_k=5),
                     "samples": [generate(lm, "", seed=s)["text"] for s in range(5)],
                     "continued": generate(lm, "the students", seed=0)["text"]})

    char_lm = train_ngram(train, smoothing="mkn", order=7, tokenizer=Tokenizer("char", lowercase=True))
    done("char", {"scores": score(char_lm, ["THERE IS A", "IHRA S EET"])})

    dna_train, dna_valid, dna_test = _split(toydata.dna(250, 400, order=3, seed=2))
    floor = math.exp(toydata.dna_entropy(order=3))
    dna_rows = []
    for order in (1, 2, 3, 4, 5, 6):
        dlm = train_ngram(dna_train, smoothing="mkn", order=order, tokenizer=Tokenizer("char"))
        r = evaluate(dlm, dna_test)
        dna_rows.append({"order": order, "test": r["perplexity"], "bits_per_character": r["bits_per_character"]})
    done("dna", {"source_order": 3, "source_perplexity": floor, "table": dna_rows})
    res["seconds"] = time.perf_counter() - t0
    return res


def _small_lstm(train: list[str], valid: list[str], test: list[str]) -> dict:
    """A small LSTM (1x64) for two epochs on the same text, through the same training loop as any recipe."""
    import tempfile
    from pathlib import Path

    from seqlm.training.train import train as train_model

    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, lines in (("train", train), ("valid", valid), ("test", test)):
            files[name] = str(Path(d) / f"{name}.txt")
            Path(files[name]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        overrides = ["model.embedding_dim=64", "model.hidden_size=64", "model.num_layers=1", "train.epochs=2",
                     "train.optimizer=adam", "train.lr=0.005", "train.clip=1", "train.schedule=constant",
                     "train.batch_size=16", "train.bptt=20", "train.device=cpu", "train.fit=false"]
        lm, summary = train_model(out=Path(d) / "lstm", overrides=overrides, model="lstm", **files)
        return {"valid": summary["metrics"]["valid_perplexity"], "test": summary["metrics"]["test_perplexity"],
                "seconds": summary["wall_seconds"], "suggestions": predict(lm, "the students opened their", top_k=3)}


def demo(as_json: bool = False) -> dict:
    if as_json:
        res = run()
        print(json.dumps(res, default=float))
        return res
    res = run(show=_show)
    print(f"\ndone in {res['seconds']:.1f}s. Next, with the Penn Treebank (downloaded and checked, or from "
          f"$SEQLM_DATA):\n"
          f"  seqlm train recipes/ptb/kn5.toml --out runs/kn5          # KenLM's 5-gram, in seconds\n"
          f"  seqlm evaluate runs/kn5 --corpus ptb --split test\n"
          f"  echo 'the market' | seqlm predict runs/kn5 --top-k 5\n"
          f"  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm    # an LSTM that beats it, ~15 min on a CPU\n"
          f"  seqlm train --help                                        # every kind, every option", flush=True)
    return res


def _show(section: str, e: dict) -> None:
    if "table" in e and section == "english":
        print(f"== Word-level n-grams on {e['train_lines']} generated English sentences (perplexity, valid / test)")
        orders = sorted({r["order"] for r in e["table"]})
        print(f"{'smoothing':<14}" + "".join(f"{f'order {o}':>20}" for o in orders))
        for name in dict.fromkeys(r["smoothing"] for r in e["table"]):
            cells = [r for r in e["table"] if r["smoothing"] == name]
            print(f"{name:<14}" + "".join(f"{_f(r['valid']) + ' / ' + _f(r['test']):>20}" for r in cells))
        print("(mle is infinite where the test text has an n-gram the training text never had)")
    elif "lstm" in e:
        lstm = e["lstm"]
        print(f"{'LSTM 1x64':<14}{_f(lstm['valid']) + ' / ' + _f(lstm['test']):>20}   (2 epochs, "
              f"{lstm['seconds']:.0f}s; next after 'the students opened their': "
              + ", ".join(f"{s['token']} {s['prob']:.2f}" for s in lstm["suggestions"]) + ")")
    elif "suggestions" in e:
        print(f"\n== Next word after {e['prompt']!r} (modified Kneser-Ney 3-gram)")
        for s in e["suggestions"]:
            print(f"  {s['token']:<12} {s['prob']:.3f}")
        print("\n== Generated sentences (3-gram, seeds 0-4)")
        for s in e["samples"]:
            print("  " + s)
        print(f"  {e['continued']}   <- continuing 'the students'")
    elif section == "char":
        print("\n== Character-level 7-gram: which string looks like English?")
        for row in e["scores"]:
            print(f"  {row['text']!r:<14} log p = {row['log_prob']:8.2f} nats   perplexity per character "
                  f"{row['perplexity']:.2f}")
        a, b = e["scores"]
        print(f"  'THERE IS A' is e^{a['log_prob'] - b['log_prob']:.1f} times more probable than 'IHRA S EET'")
    elif section == "dna":
        print(f"\n== DNA from a Markov source over the previous {e['source_order']} bases: test perplexity per "
              f"base by n-gram order\n   (the source's own perplexity, the floor: {e['source_perplexity']:.3f}; "
              f"an order-{e['source_order'] + 1} n-gram sees as far back as the source)")
        for row in e["table"]:
            print(f"  order {row['order']}: {row['test']:.3f}  ({row['bits_per_character']:.3f} bits/base)")
    sys.stdout.flush()


def _f(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "inf"
