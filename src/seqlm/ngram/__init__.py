"""Count-based n-gram language models: counting, smoothing, backoff queries, ARPA files."""

from .arpa import read_arpa, write_arpa
from .counts import count_ngrams
from .model import NGramLM
from .smoothing import Tables, estimate

__all__ = ["NGramLM", "Tables", "count_ngrams", "estimate", "read_arpa", "write_arpa"]
