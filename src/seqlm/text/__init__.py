"""Text pipeline: tokenizers, vocabulary, corpora."""

from seqlm.text.corpora import REGISTRY, Corpus, load_corpus, read_lines
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS, BOS_ID, EOS, EOS_ID, UNK, UNK_ID, Vocab

__all__ = ["REGISTRY", "Corpus", "load_corpus", "read_lines", "Tokenizer", "Vocab",
           "BOS", "BOS_ID", "EOS", "EOS_ID", "UNK", "UNK_ID"]
