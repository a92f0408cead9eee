"""train: build a model from a corpus.  For n-grams "training" is estimation (counts -> smoothing).

One entry point for every kind, so the CLI and the Python API are the same call.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import SeqlmError
from .interface import LanguageModel
from .text.corpora import Corpus, load_corpus
from .text.tokenize import Tokenizer
from .text.vocab import Vocab
from .config import NEURAL_KINDS, RunConfig, apply_overrides, load_recipe

log = logging.getLogger(__name__)

NGRAM_MODELS = ("mle", "add-k", "laplace", "ikn", "mkn", "kn")


def build_vocab(lines: Sequence[str], tokenizer: Tokenizer, min_count: int = 1,
                max_size: int | None = None) -> tuple[Vocab, list[list[str]]]:
    tokenized = [tokenizer.tokenize(line) for line in lines]
    return Vocab.build(tokenized, tokenizer, min_count=min_count, max_size=max_size), tokenized


def train_ngram(lines: Sequence[str], *, smoothing: str = "mkn", order: int = 3, k: float = 1.0,
                prune: list[int] | None = None, tokenizer: Tokenizer | None = None, min_count: int = 1,
                max_size: int | None = None, vocab: Vocab | None = None) -> LanguageModel:
    """Estimate an n-gram model from training ``lines`` (vocabulary from these lines unless given)."""
    from .ngram import NGramLM, count_ngrams, estimate

    if not isinstance(order, int) or order < 1:
        raise SeqlmError(f"--order must be an integer >= 1 (got {order})")
    if smoothing == "laplace":
        k = 1.0
    tokenizer = tokenizer or (vocab.tokenizer if vocab else Tokenizer())
    t0 = time.perf_counter()
    if vocab is None:
        vocab, tokenized = build_vocab(lines, tokenizer, min_count, max_size)
    else:
        tokenized = [vocab.tokenizer.tokenize(line) for line in lines]
    lengths = np.fromiter((len(t) for t in tokenized), dtype=np.int64, count=len(tokenized))
    ids = vocab.encode([w for t in tokenized for w in t])
    t1 = time.perf_counter()
    counts = count_ngrams(ids, lengths, order, len(vocab))
    t2 = time.perf_counter()
    tables = estimate(counts, len(vocab), smoothing, k=k, prune=prune)
    t3 = time.perf_counter()
    log.info("%d-gram %s: %s n-grams (read %.2fs, count %.2fs, estimate %.2fs)", order, smoothing,
             "/".join(map(str, tables.sizes())), t1 - t0, t2 - t1, t3 - t2)
    config = {"smoothing": tables.info["smoothing"], "order": order, "prune": prune or [],
              "train_tokens": int(lengths.sum()), "train_lines": len(lengths)}
    if tables.info["smoothing"] == "add-k":
        config["k"] = k
    return NGramLM(vocab, tables, config)


def train(
    corpus: Corpus | str | None = None,
    *,
    model: str = "mkn",
    order: int = 3,
    k: float = 1.0,
    prune: list[int] | None = None,
    level: str | None = None,
    lowercase: bool = False,
    min_count: int = 1,
    max_size: int | None = None,
    out: str | Path | None = None,
    arpa: str | Path | None = None,
    data_dir: str | None = None,
    **files,
) -> tuple[LanguageModel, dict]:
    """Train ``model`` on ``corpus`` (a :class:`Corpus`, a registered name, or files via ``train=``,
    ``valid=``, ``test=``, ``text=``); save to ``out`` (and ``arpa``) if given.

    Returns the model and a summary (sizes, time, validation perplexity when there is a valid split).
    """
    t0 = time.perf_counter()
    if model not in NGRAM_MODELS:
        raise SeqlmError(f"unknown --model {model!r}: choose one of {', '.join(NGRAM_MODELS + NEURAL_KINDS)}")
    if not isinstance(corpus, Corpus):
        corpus = load_corpus(corpus, data_dir=data_dir, level=level, need=("train",), **files)
    if arpa is not None and model in ("add-k", "laplace") and order > 1:
        raise SeqlmError("add-k smoothing above order 1 cannot be written as ARPA: drop --arpa or use mkn")
    tokenizer = Tokenizer(level or corpus.level, lowercase)
    lm = train_ngram(corpus.split("train"), smoothing=model, order=order, k=k, prune=prune,
                     tokenizer=tokenizer, min_count=min_count, max_size=max_size)
    lm.config["corpus"] = corpus.describe()
    if out is not None:
        lm.save(out)
        log.info("saved %s", out)
    if arpa is not None:
        from .ngram.arpa import write_arpa

        write_arpa(lm, arpa)
        log.info("wrote %s", arpa)
    summary = {"model": lm.describe(), "out": str(out) if out else None, "arpa": str(arpa) if arpa else None,
               "train_tokens": lm.config["train_tokens"], "seconds": round(time.perf_counter() - t0, 3)}
    if "valid" in corpus.splits:
        from .evaluate import evaluate

        summary["valid"] = {k2: v for k2, v in evaluate(lm, corpus.splits["valid"]).items() if k2 != "model"}
    return lm, summary


def train_neural_run(
    recipe: str | Path | None = None,
    *,
    out: str | Path,
    overrides: list[str] | None = None,
    resume: bool = False,
    results: str | Path | None = None,
    argv: list[str] | None = None,
    **fields,
) -> tuple[LanguageModel, dict]:
    """Train a neural model from a recipe (TOML) and/or ``section.key=value`` overrides.

    ``fields`` may set data.corpus/train/valid/test/data_dir, model.kind and model.backend directly.
    """
    from .neural.training import train_neural

    cfg = load_recipe(recipe) if recipe else RunConfig()
    for key, value in fields.items():
        if value is None:
            continue
        section = "model" if key in ("kind", "backend") else "train" if key in ("device", "precision") else "data"
        apply_overrides(cfg, [f"{section}.{key}={value}"])
        if key in ("train", "valid", "test") and section == "data":
            cfg.data.corpus = None
    apply_overrides(cfg, overrides or [])
    return train_neural(cfg, out, resume=resume, results=results, argv=argv)
