"""train: build a model from a corpus.  For n-grams "training" is estimation (counts -> smoothing).

One entry point for every kind, so the CLI and the Python API are the same call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from seqlm import kinds
from seqlm.config import RunConfig, apply_overrides, load_recipe
from seqlm.errors import SeqlmError
from seqlm.io.records import hardware
from seqlm.models.interface import LanguageModel
from seqlm.text.corpora import Corpus
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import Vocab
from seqlm.training.data import run_corpus, run_tokenizer, split_metrics

log = logging.getLogger(__name__)


def build_vocab(lines: Sequence[str], tokenizer: Tokenizer, min_count: int = 1,
                max_size: int | None = None) -> tuple[Vocab, list[list[str]]]:
    tokenized = tokenizer.tokenize_many(list(lines))
    return Vocab.build(tokenized, tokenizer, min_count=min_count, max_size=max_size), tokenized


def train_ngram(lines: Sequence[str], *, smoothing: str = "mkn", order: int = 3, k: float = 1.0,
                prune: list[int] | None = None, tokenizer: Tokenizer | None = None, min_count: int = 1,
                max_size: int | None = None, vocab: Vocab | None = None, quantize: int | None = None,
                prune_entropy: float | None = None, max_ngrams: int | None = None) -> LanguageModel:
    """Estimate an n-gram model from training ``lines`` (vocabulary from these lines unless given);
    ``quantize``: bits of its stored values above order 1 (default float32, see models/ngram/trie.py);
    ``prune_entropy`` / ``max_ngrams``: entropy pruning of the estimate (models/ngram/prune.py)."""
    from seqlm.models.ngram import count_ngrams

    if not isinstance(order, int) or order < 1:
        raise SeqlmError(f"the order must be an integer >= 1 (got {order})")
    tokenizer = tokenizer or (vocab.tokenizer if vocab else Tokenizer())
    t0 = time.perf_counter()
    if vocab is None:
        vocab, tokenized = build_vocab(lines, tokenizer, min_count, max_size)
    else:
        tokenized = vocab.tokenizer.tokenize_many(list(lines))
    lengths = np.fromiter((len(t) for t in tokenized), dtype=np.int64, count=len(tokenized))
    ids = vocab.encode([w for t in tokenized for w in t])
    t1 = time.perf_counter()
    counts = count_ngrams(ids, lengths, order, len(vocab))
    log.info("%d-gram counts: read %.2fs, count %.2fs", order, t1 - t0, time.perf_counter() - t1)
    return estimate_counts(vocab, counts, smoothing=smoothing, k=k, prune=prune, quantize=quantize,
                           prune_entropy=prune_entropy, max_ngrams=max_ngrams,
                           train={"train_tokens": int(lengths.sum()), "train_lines": len(lengths)})


def estimate_counts(vocab: Vocab, counts, *, smoothing: str = "mkn", k: float = 1.0, prune: list[int] | None = None,
                    quantize: int | None = None, prune_entropy: float | None = None, max_ngrams: int | None = None,
                    train: dict | None = None) -> LanguageModel:
    """The n-gram model of ``counts`` (counts.py's, of every order) over ``vocab``: estimated, entropy-pruned
    where asked (histories weighed by these counts), with its config (``train``: tokens and lines counted)."""
    from seqlm.models.ngram import NGramLM, estimate

    t0 = time.perf_counter()
    order = len(counts)
    if smoothing == "laplace":
        k = 1.0
    tables = estimate(counts, len(vocab), smoothing, k=k, prune=prune)
    pruned = {}
    if prune_entropy is not None or max_ngrams is not None:
        from seqlm.models.ngram.prune import entropy_prune, pruned_config

        tables = entropy_prune(tables, prune_entropy, max_ngrams, [c.counts for c in counts[:-1]], prune)
        pruned = pruned_config(tables.info, max_ngrams)
    log.info("%d-gram %s: %s n-grams (estimate %.2fs)", order, smoothing, "/".join(map(str, tables.sizes())),
             time.perf_counter() - t0)
    config = {"smoothing": tables.info["smoothing"], "order": order, "prune": prune or [], **(train or {})}
    if tables.info["smoothing"] == "add-k":
        config["k"] = k
    if quantize is not None:
        config["quantize"] = quantize
    config.update(pruned)
    return NGramLM(vocab, tables, config)


def count(text: str | Path, *, order: int, out: str | Path, level: str | None = None, lowercase: bool = False,
          whitespace: str = "kenlm", memory: str | None = None, temp_dir: str | None = None) -> dict:
    """``seqlm count``: the n-gram counts of orders 1..``order`` of the text file ``text``, written as a counts
    folder ``out`` (models/ngram/countfiles.py) for ``seqlm train --counts``, counted within ``memory`` as
    estimation from a file counts; returns its description."""
    from seqlm.io.files import check_new_outputs
    from seqlm.io.memory import parse_memory
    from seqlm.models.ngram.external import count_text_file

    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise SeqlmError(f"the order must be an integer >= 1 (got {order})")
    parse_memory(memory)
    check_new_outputs(Path(out))
    result = count_text_file(text, out, order=order, tokenizer=Tokenizer(level or "word", lowercase, whitespace),
                             memory=memory, temp_dir=temp_dir)
    return {"out": str(out), "order": order, **result}


def train_from_counts(folders, m, d) -> LanguageModel:
    """The n-gram model of the merged counts ``folders`` (``seqlm train --counts``), for model config ``m`` and
    data config ``d`` (the vocabulary rules)."""
    from seqlm.models.ngram.countfiles import merge

    vocab, counts, meta = merge(folders, m.order, d.min_count, d.max_size)
    lm = estimate_counts(vocab, counts, smoothing=m.kind, k=m.k, prune=m.prune or None, quantize=m.quantize,
                         prune_entropy=m.prune_entropy, max_ngrams=m.max_ngrams,
                         train={"train_tokens": meta["tokens"], "train_lines": meta["lines"]})
    lm.config["counts"] = meta["counts"]
    return lm


# CLI flags and train() keywords: sugar for ``--set section.key=value``
SUGAR = {"model": "model.kind", "order": "model.order", "k": "model.k", "prune": "model.prune", "memory": "model.memory", "temp_dir": "model.temp_dir", "cluster": "model.cluster",
         "quantize": "model.quantize", "prune_entropy": "model.prune_entropy", "max_ngrams": "model.max_ngrams",
         "counts": "data.counts",
         "backend": "model.backend", "level": "data.level", "vocab_size": "data.vocab_size", "lowercase": "data.lowercase", "whitespace": "data.whitespace",
         "min_count": "data.min_count", "max_size": "data.max_size", "corpus": "data.corpus",
         "data_dir": "data.data_dir", "train": "data.train", "valid": "data.valid", "test": "data.test",
         "text": "data.text", "split_ratio": "data.split_ratio", "device": "train.device",
         "precision": "train.precision", "minutes": "train.max_minutes"}


def make_config(recipe: str | Path | None = None, overrides: Sequence[str] = (), **options) -> RunConfig:
    """The validated config of a run: the recipe (or the defaults), then ``options`` (the keywords of
    :data:`SUGAR`), then ``overrides`` (``section.key=value``)."""
    from seqlm.config import apply

    cfg = load_recipe(recipe) if recipe else RunConfig()
    files = [k for k in ("train", "valid", "test", "text") if options.get(k) is not None]
    if options.get("split_ratio") is not None and options.get("text") is None:
        raise SeqlmError("--split-ratio splits a --text file: give --text FILE, or drop --split-ratio")
    if options.get("corpus") is not None and files:
        raise SeqlmError("give either --corpus NAME or text files (--train/--valid/--test or --text), not both")
    for key, value in options.items():
        if value is None:
            continue
        if key not in SUGAR:
            raise TypeError(f"train() got an unexpected keyword argument {key!r}")
        section, name = SUGAR[key].split(".")
        apply(cfg, section, name, str(value) if isinstance(value, Path) else value)
        if key in ("train", "valid", "test", "text"):
            cfg.data.corpus = None
    if isinstance(overrides, str):
        overrides = [overrides]
    apply_overrides(cfg, list(overrides))
    return cfg.validate()


def train(
    source: Corpus | str | Path | None = None,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    arpa: str | Path | None = None,
    results: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    argv: list[str] | None = None,
    **options,
) -> tuple[LanguageModel, dict]:
    """Train any kind of model, n-gram or neural, from one config.

    ``source``: a recipe (``.toml``), a registered corpus name (``"ptb"``) or a :class:`Corpus`.
    ``options``: the CLI's flags as keywords (``model="lstm"``, ``order=5``, ``train="my.txt"``, ...: see
    :data:`SUGAR`); ``overrides``: ``section.key=value`` strings.  ``out``: the model folder (n-gram) or
    run folder (neural; required); ``arpa``: also write an n-gram model as ARPA; ``results``: also write
    the summary JSON there; ``resume``: continue a neural run; ``overwrite``: replace an n-gram model folder.

    Returns the model and a summary.  Nothing is written, and no file is touched, when the config or an
    output path is wrong.
    """
    corpus_obj = None
    recipe = None
    if isinstance(source, Corpus):
        corpus_obj = source
    elif isinstance(source, (str, Path)):
        if str(source).endswith(".toml") or Path(source).is_dir():
            recipe = source
        else:
            options.setdefault("corpus", str(source))
    elif source is not None:
        raise TypeError(f"train() takes a recipe path, a corpus name or a Corpus, not {type(source).__name__}")
    cfg = make_config(recipe, overrides, **options)
    if corpus_obj is not None:
        cfg.data.corpus = corpus_obj.name
    from seqlm.io.distributed import world_from_env
    from seqlm.io.locks import output_lock

    # --out is locked for the whole run (by the main process of a torchrun job), and checked under the lock
    locked = out is not None and world_from_env().is_main
    with output_lock(out) if locked else contextlib.nullcontext():
        return _train(cfg, corpus_obj, out, arpa, results, resume, overwrite, argv)


def _train(cfg, corpus_obj, out, arpa, results, resume, overwrite, argv) -> tuple[LanguageModel, dict]:
    family = cfg.family
    d = cfg.data
    _check_outputs(family, out, arpa, results, resume, overwrite, (d.train, d.valid, d.test, d.text))
    if family == "neural":
        if arpa is not None:
            raise SeqlmError("--arpa writes n-gram models: a neural model is saved as a folder (--out)")
        if out is None:
            raise SeqlmError("neural training needs --out: the run folder for checkpoints and the model")
        if corpus_obj is not None:
            raise SeqlmError("neural training reads its data through the config: give corpus= or train=/valid=/test=")
        from seqlm.training.neural import train_neural

        return train_neural(cfg, out, resume=resume, results=results, argv=argv)
    from seqlm.io.distributed import world_from_env

    if world_from_env().active:
        raise SeqlmError("n-gram models are counted in one process: run seqlm train without torchrun")
    lm, summary = _train_ngram_run(cfg, corpus_obj, out, arpa)
    if results is not None:
        from seqlm.io.files import write_json

        write_json(results, summary)
    return lm, summary


def _check_outputs(family, out, arpa, results, resume, overwrite, inputs=()) -> None:
    """Every output path, checked before any work (a wrong one fails in one line, not after training)."""
    from seqlm.io.files import check_output_folder, check_parent, check_target

    paths = {"--out": out, "--arpa": arpa, "--results": results}
    given = {k: Path(v).resolve() for k, v in paths.items() if v is not None}
    seen: dict[Path, str] = {}
    for flag, path in given.items():
        if path in seen:
            raise SeqlmError(f"{seen[path]} and {flag} are the same path ({path}): give each its own")
        seen[path] = flag
    for flag in ("--arpa", "--results"):
        if flag in given:
            check_target(Path(paths[flag]), flag, inputs, overwrite if family == "ngram" else None)
        if flag in given and "--out" in given and given["--out"] in given[flag].parents:
            raise SeqlmError(f"{flag} {paths[flag]} is inside --out: write it elsewhere")
    if out is not None:
        check_parent(Path(out), "--out")
        if resume and family == "ngram":
            raise SeqlmError("--resume continues neural training runs: an n-gram model is estimated in one go")
        if overwrite and family == "neural":
            raise SeqlmError("--overwrite replaces n-gram model folders; a neural run folder is resumed "
                             "(--resume) or left alone: choose another --out")
        check_output_folder(Path(out), family, overwrite=overwrite, resume=resume)


def _estimate_file(corpus: Corpus, m, d, tokenizer: Tokenizer, out) -> LanguageModel:
    """The n-gram model of the corpus's training file, estimated by ngram/external.py (bounded memory)
    into the folder ``out`` (or a scratch folder, removed once the model is loaded: its files stay
    mapped)."""
    from seqlm.io.files import atomic_dir
    from seqlm.models.ngram.external import Work, estimate_file
    from seqlm.models.ngram.model import NGramLM

    options = dict(order=m.order, smoothing=m.kind, k=m.k, prune=m.prune or None, tokenizer=tokenizer,
                   min_count=d.min_count, max_size=d.max_size, memory=m.memory, temp_dir=m.temp_dir,
                   prune_entropy=m.prune_entropy, max_ngrams=m.max_ngrams, cluster=m.cluster,
                   config={"corpus": corpus.describe(), **({"quantize": m.quantize} if m.quantize else {})})
    path = corpus.lazy["train"]
    if out is not None:
        with atomic_dir(out) as tmp:
            config = estimate_file(path, tmp, **options)
        return NGramLM.load(out, config)
    with Work(m.temp_dir) as scratch:
        config = estimate_file(path, scratch, **options)
        return NGramLM.load(scratch, config)


def _train_ngram_run(cfg: RunConfig, corpus: Corpus | None, out, arpa) -> tuple[LanguageModel, dict]:
    t0 = time.perf_counter()
    d, m = cfg.data, cfg.model
    kind = kinds.get(m.kind)
    if arpa is not None and kind.arpa == "order-1" and m.order > 1:
        raise SeqlmError(f"{m.kind} smoothing above order 1 cannot be written as ARPA: drop --arpa or use mkn")
    if d.counts:  # merged counts folders (seqlm count), no text
        if m.cluster:
            raise SeqlmError("--cluster estimates from a training text file; merged --counts are estimated here: "
                             "drop one of them")
        if d.train or d.text or corpus is not None:
            raise SeqlmError("give the training text (--train, --text, a corpus) or --counts, not both")
        lm = train_from_counts(d.counts, m, d)
        if out is not None:
            lm.save(out)
        corpus = None
        if d.valid or d.test:  # the files to report perplexity on
            from seqlm.text.corpora import load_corpus

            corpus = load_corpus(None, data_dir=d.data_dir, level=lm.vocab.tokenizer.text_level, need=(),
                                 **{k: getattr(d, k) for k in ("valid", "test") if getattr(d, k)})
    else:
        if corpus is None:
            corpus = run_corpus(d, lazy=("train",))
        tokenizer = run_tokenizer(d, corpus)
        if "train" in corpus.lazy:  # a file: estimated as it is read, within the memory budget
            lm = _estimate_file(corpus, m, d, tokenizer, out)
        elif m.cluster:
            raise SeqlmError("--cluster estimates from a training file (--train FILE or a corpus), not from --text "
                             "split in memory: give --train")
        else:
            lm = train_ngram(corpus.split("train"), smoothing=m.kind, order=m.order, k=m.k, prune=m.prune or None,
                             tokenizer=tokenizer, min_count=d.min_count, max_size=d.max_size, quantize=m.quantize,
                             prune_entropy=m.prune_entropy, max_ngrams=m.max_ngrams)
            lm.config["corpus"] = corpus.describe()
            if out is not None:
                lm.save(out)
    if out is not None:
        log.info("saved %s", out)
    if arpa is not None:
        from seqlm.models.ngram.arpa import write_arpa

        write_arpa(lm, arpa)
        log.info("wrote %s", arpa)
    summary = {"type": "train", "recipe": cfg.name or None, "model": lm.describe(), "out": str(out) if out else None,
               "arpa": str(arpa) if arpa else None, "train_tokens": lm.config["train_tokens"],
               "seconds": round(time.perf_counter() - t0, 3)}
    if corpus is not None and ("valid" in corpus.splits or "test" in corpus.splits):
        summary["metrics"], results = split_metrics(lm, corpus)
        summary.update(results)
    if cfg.name:
        summary.update(target=cfg.meta.target, hardware=hardware(), wall_seconds=summary["seconds"])
    return lm, summary
