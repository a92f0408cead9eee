"""What every training run reads and reports, whatever the kind: the corpus its config names, and the
perplexity of the trained model on the held-out splits."""

from __future__ import annotations

from seqlm.config import DataConfig
from seqlm.tasks.evaluate import evaluate
from seqlm.text.corpora import Corpus, load_corpus
from seqlm.text.tokenize import Tokenizer, text_level


def run_corpus(d: DataConfig, lazy: tuple[str, ...] = ()) -> Corpus:
    """The corpus of ``d``: a registered one (``d.corpus``) or the given files (``--train``/``--valid``/
    ``--test``, or ``--text`` split by ``d.split_ratio``); ``lazy`` splits are read on first use."""
    files = {k: getattr(d, k) for k in ("train", "valid", "test", "text") if getattr(d, k)}
    if d.text:
        files["split_ratio"] = tuple(d.split_ratio)
    return load_corpus(d.corpus if not files else None, data_dir=d.data_dir, level=text_level(d.level),
                       need=("train",), lazy=lazy, **files)


def run_tokenizer(d: DataConfig, corpus: Corpus) -> Tokenizer:
    """How the run reads text: ``d``'s level (default the corpus's) and rules; subword pieces (bpe, unigram) are
    learned here from the training split only, ``d.vocab_size`` of them."""
    tokenizer = Tokenizer(d.level or corpus.level, d.lowercase, d.whitespace)
    if tokenizer.level not in ("bpe", "unigram"):
        return tokenizer
    if "train" in corpus.lazy:  # a file: its lines streamed
        from seqlm.text.corpora import iter_lines

        return tokenizer.learned(iter_lines(corpus.lazy["train"]), d.vocab_size)
    return tokenizer.learned(corpus.split("train"), d.vocab_size)


def split_metrics(lm, corpus: Corpus, splits=("valid", "test")) -> tuple[dict, dict]:
    """(``{split}_perplexity``, ``_bits_per_byte``, ``_word_perplexity``, ``_oov`` and, at character level,
    ``_bits_per_character`` for each of ``splits`` the corpus has; each split's whole evaluation), stream mode."""
    metrics, results = {}, {}
    for split in splits:
        if split in corpus.splits:
            r = evaluate(lm, corpus.splits[split], mode="stream")
            results[split] = {k: v for k, v in r.items() if k != "model"}
            metrics[f"{split}_perplexity"] = r["perplexity"]
            if "bits_per_character" in r:
                metrics[f"{split}_bits_per_character"] = r["bits_per_character"]
            # one scale whatever the unit (docs/reference/conventions.md), and what a word model's <unk> hides
            metrics[f"{split}_bits_per_byte"] = r["bits_per_byte"]
            metrics[f"{split}_word_perplexity"] = r["word_perplexity"]
            metrics[f"{split}_oov"] = r["oov"]
    return metrics, results
