"""Count-based n-gram language models: counting, smoothing, backoff queries, ARPA files.

The names below are bound on first use (io/lazy.py): a query of a model folder imports neither the ARPA
reader nor the estimator."""

from seqlm.io.lazy import exports

__all__ = ["NGramLM", "Tables", "count_ngrams", "estimate", "read_arpa", "write_arpa"]
__getattr__, __dir__ = exports(__name__, {
    "write_arpa": "seqlm.models.ngram.arpa", "read_arpa": "seqlm.models.ngram.arpa_reader",
    "count_ngrams": "seqlm.models.ngram.counts", "NGramLM": "seqlm.models.ngram.model",
    "Tables": "seqlm.models.ngram.smoothing", "estimate": "seqlm.models.ngram.smoothing"})
