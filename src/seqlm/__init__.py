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
    seqlm.mix(["runs/kn5", "runs/lstm"], out="runs/mix")   # and adapt, diagnose, rescore, serve, report
"""

from __future__ import annotations

# Each name below is bound from the module that defines it.  None of these modules imports torch at import
# time (the neural ones import it on use), so the n-gram path stays light.
from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel
from seqlm.models.loader import load
from seqlm.models.neural.embeddings import neighbours
from seqlm.models.ngram.arpa import write_arpa as export
from seqlm.models.ngram.model import NGramLM
from seqlm.reporting.report import report
from seqlm.server.app import serve
from seqlm.tasks.evaluate import evaluate
from seqlm.tasks.generate import beam_search, generate, predict
from seqlm.tasks.rescore import rescore
from seqlm.tasks.score import score
from seqlm.text.corpora import load_corpus
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import Vocab
from seqlm.training.train import count, train
from seqlm.version import __version__ as __version__
from seqlm.workflows.adapt import adapt
from seqlm.workflows.diagnose import diagnose
from seqlm.workflows.interpolate import interpolate
from seqlm.workflows.mix import mix

__all__ = ["train", "evaluate", "score", "predict", "generate", "beam_search", "export", "load", "neighbours", "report", "mix",
           "adapt", "diagnose", "rescore", "serve", "interpolate", "count", "load_corpus", "Vocab", "Tokenizer", "LanguageModel", "NGramLM",
           "SeqlmError"]
