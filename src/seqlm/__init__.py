"""seqlm: train, evaluate, score with and generate from language models.

The public API has the names of the CLI subcommands::

    import seqlm
    lm, summary = seqlm.train("ptb", model="kn", order=5, out="runs/kn5")
    seqlm.evaluate(lm, lines, mode="stream")      # {"perplexity": ..., "tokens": ..., "oov": ...}
    seqlm.score(lm, ["there is a"])               # natural-log probabilities per line
    seqlm.predict(lm, "the students opened their", top_k=5)
    seqlm.generate(lm, "the market", seed=1)
    seqlm.export(lm, "kn5.arpa.gz")
    lm = seqlm.load("runs/kn5")                   # a model folder or an ARPA file
"""

from __future__ import annotations

# The API functions share their names with the modules that define them (seqlm/train.py defines
# train, ...): binding them here, after the submodule import, makes ``seqlm.train`` the function.
# None of these modules imports torch at import time, so the n-gram path stays light.
from seqlm.analysis.embeddings import neighbours
from seqlm.errors import SeqlmError
from seqlm.tasks.evaluate import evaluate
from seqlm.tasks.generate import generate, predict
from seqlm.models.interface import LanguageModel
from seqlm.models.loader import load
from seqlm.models.ngram.arpa import write_arpa as export
from seqlm.models.ngram.model import NGramLM
from seqlm.report.build import report
from seqlm.tasks.score import score
from seqlm.text.corpora import load_corpus
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import Vocab
from seqlm.training.train import train

__version__ = "0.1.0"

__all__ = ["train", "evaluate", "score", "predict", "generate", "export", "load", "neighbours", "report", "load_corpus", "Vocab",
           "Tokenizer", "LanguageModel", "NGramLM", "SeqlmError"]
