"""seqlm demo: n-gram models on the generated corpora (toydata.py), offline, in seconds.

Shows a perplexity table (smoothers x orders), next-word suggestions, generated sentences, a
character-level fluency check ("THERE IS A" vs "IHRA S EET") and, on DNA from a known Markov source,
how close each model order gets to the source's true entropy.
"""

from __future__ import annotations

import json
import logging
import math
import time

from . import toydata
from .evaluate import evaluate
from .generate import generate, predict
from .score import score
from .text.tokenize import Tokenizer
from .train import train_ngram

SMOOTHERS = [("mle", {}), ("add-k", {"k": 0.1}), ("ikn", {}), ("mkn", {})]


def _split(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    n = len(lines)
    return lines[: n * 8 // 10], lines[n * 8 // 10: n * 9 // 10], lines[n * 9 // 10:]


def run() -> dict:
    t0 = time.perf_counter()
    logging.getLogger("seqlm").setLevel(logging.WARNING)  # the demo prints its own story
    train, valid, test = _split(toydata.english(20000, seed=1))
    table = []
    for name, kw in SMOOTHERS:
        for order in (1, 2, 3, 4):
            lm = train_ngram(train, smoothing=name, order=order, **kw)
            table.append({"smoothing": name + (f" k={kw['k']}" if kw else ""), "order": order,
                          "valid": evaluate(lm, valid)["perplexity"], "test": evaluate(lm, test)["perplexity"]})
    lm = train_ngram(train, smoothing="mkn", order=3)
    prompt = "the students opened their"
    suggestions = predict(lm, prompt, top_k=5)
    samples = [generate(lm, "", seed=s)["text"] for s in range(5)]
    continued = generate(lm, "the students", seed=0)["text"]

    char_lm = train_ngram(train, smoothing="mkn", order=7, tokenizer=Tokenizer("char", lowercase=True))
    fluency = score(char_lm, ["THERE IS A", "IHRA S EET"])

    lstm = _small_lstm(train, valid, test)

    dna_train, dna_valid, dna_test = _split(toydata.dna(250, 400, order=3, seed=2))
    floor = math.exp(toydata.dna_entropy(order=3))
    dna_rows = []
    for order in (1, 2, 3, 4, 5, 6):
        dlm = train_ngram(dna_train, smoothing="mkn", order=order, tokenizer=Tokenizer("char"))
        r = evaluate(dlm, dna_test)
        dna_rows.append({"order": order, "test": r["perplexity"], "bits_per_character": r["bits_per_character"]})
    return {"english": {"train_lines": len(train), "table": table, "prompt": prompt, "suggestions": suggestions,
                        "samples": samples, "continued": continued, "lstm": lstm},
            "char": {"scores": fluency},
            "dna": {"source_order": 3, "source_perplexity": floor, "table": dna_rows},
            "seconds": time.perf_counter() - t0}


def _small_lstm(train: list[str], valid: list[str], test: list[str]) -> dict:
    """A small LSTM (1x64) for two epochs on the same text, through the same training loop as any recipe."""
    import tempfile
    from pathlib import Path

    from .train import train as train_model

    with tempfile.TemporaryDirectory() as d:
        files = {}
        for name, lines in (("train", train), ("valid", valid), ("test", test)):
            files[name] = str(Path(d) / f"{name}.txt")
            Path(files[name]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        overrides = ["model.embedding_dim=64", "model.hidden_size=64", "model.num_layers=1", "train.epochs=2",
                     "train.optimizer=adam", "train.lr=0.005", "train.clip=1", "train.schedule=constant",
                     "train.batch_size=16", "train.bptt=20", "train.device=cpu"]
        lm, summary = train_model(out=Path(d) / "lstm", overrides=overrides, model="lstm", **files)
        return {"valid": summary["metrics"]["valid_perplexity"], "test": summary["metrics"]["test_perplexity"],
                "seconds": summary["wall_seconds"], "suggestions": predict(lm, "the students opened their", top_k=3)}


def demo(as_json: bool = False) -> dict:
    res = run()
    if as_json:
        print(json.dumps(res, default=float))
        return res
    e = res["english"]
    print(f"== Word-level n-grams on {e['train_lines']} generated English sentences (perplexity, valid / test)")
    orders = sorted({r["order"] for r in e["table"]})
    print(f"{'smoothing':<14}" + "".join(f"{f'order {o}':>20}" for o in orders))
    for name in dict.fromkeys(r["smoothing"] for r in e["table"]):
        cells = [r for r in e["table"] if r["smoothing"] == name]
        print(f"{name:<14}" + "".join(f"{_f(r['valid']) + ' / ' + _f(r['test']):>20}" for r in cells))
    print("(mle is infinite where the test text has an n-gram the training text never had)")
    lstm = e["lstm"]
    print(f"{'LSTM 1x64':<14}{_f(lstm['valid']) + ' / ' + _f(lstm['test']):>20}   (2 epochs, {lstm['seconds']:.0f}s; "
          f"next after 'the students opened their': "
          + ", ".join(f"{s['token']} {s['prob']:.2f}" for s in lstm["suggestions"]) + ")")
    print(f"\n== Next word after {e['prompt']!r} (modified Kneser-Ney 3-gram)")
    for s in e["suggestions"]:
        print(f"  {s['token']:<12} {s['prob']:.3f}")
    print("\n== Generated sentences (3-gram, seeds 0-4)")
    for s in e["samples"]:
        print("  " + s)
    print(f"  {e['continued']}   <- continuing 'the students'")
    print("\n== Character-level 7-gram: which string looks like English?")
    for row in res["char"]["scores"]:
        print(f"  {row['text']!r:<14} log p = {row['log_prob']:8.2f} nats   perplexity per character "
              f"{row['perplexity']:.2f}")
    a, b = res["char"]["scores"]
    print(f"  'THERE IS A' is e^{a['log_prob'] - b['log_prob']:.1f} times more probable than 'IHRA S EET'")
    d = res["dna"]
    print(f"\n== DNA from a Markov source over the previous {d['source_order']} bases: test perplexity per base "
          f"by n-gram order\n   (the source's own perplexity, the floor: {d['source_perplexity']:.3f}; an order-"
          f"{d['source_order'] + 1} n-gram sees as far back as the source)")
    for row in d["table"]:
        print(f"  order {row['order']}: {row['test']:.3f}  ({row['bits_per_character']:.3f} bits/base)")
    print(f"\ndone in {res['seconds']:.1f}s")
    return res


def _f(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "inf"
