"""Count-based n-gram language models: counting, smoothing, backoff queries, ARPA files."""

from seqlm.models.ngram.arpa import write_arpa
from seqlm.models.ngram.arpa_reader import read_arpa
from seqlm.models.ngram.counts import count_ngrams
from seqlm.models.ngram.model import NGramLM
from seqlm.models.ngram.smoothing import Tables, estimate

__all__ = ["NGramLM", "Tables", "count_ngrams", "estimate", "read_arpa", "write_arpa"]
