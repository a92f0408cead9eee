"""Text pipeline: tokenizers, vocabulary, corpora."""

from .corpora import REGISTRY, Corpus, load_corpus, read_lines
from .tokenize import Tokenizer
from .vocab import BOS, BOS_ID, EOS, EOS_ID, UNK, UNK_ID, Vocab

__all__ = ["REGISTRY", "Corpus", "load_corpus", "read_lines", "Tokenizer", "Vocab",
           "BOS", "BOS_ID", "EOS", "EOS_ID", "UNK", "UNK_ID"]
