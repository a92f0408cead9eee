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

# Each name below is bound, on first use, from the module that defines it (PEP 562): ``import seqlm`` and a
# command that needs a few modules import only those.  None of them imports torch at import time (the neural
# ones import it on use), so the n-gram path stays light.
_HOMES = {
    "SeqlmError": "seqlm.errors", "LanguageModel": "seqlm.models.interface", "load": "seqlm.models.loader",
    "neighbours": "seqlm.models.neural.embeddings", "export": ("seqlm.models.ngram.arpa", "write_arpa"),
    "NGramLM": "seqlm.models.ngram.model", "report": "seqlm.reporting.report", "serve": "seqlm.server.app",
    "evaluate": "seqlm.tasks.evaluate", "beam_search": "seqlm.tasks.generate", "generate": "seqlm.tasks.generate",
    "predict": "seqlm.tasks.generate", "rescore": "seqlm.tasks.rescore", "score": "seqlm.tasks.score",
    "load_corpus": "seqlm.text.corpora", "Tokenizer": "seqlm.text.tokenize", "Vocab": "seqlm.text.vocab",
    "count": "seqlm.training.train", "train": "seqlm.training.train", "adapt": "seqlm.workflows.adapt",
    "diagnose": "seqlm.workflows.diagnose", "interpolate": "seqlm.workflows.interpolate", "mix": "seqlm.workflows.mix",
}

from seqlm.io.lazy import exports  # noqa: E402
from seqlm.version import __version__ as __version__  # noqa: E402

__getattr__, __dir__ = exports(__name__, _HOMES)

__all__ = ["train", "evaluate", "score", "predict", "generate", "beam_search", "export", "load", "neighbours", "report", "mix",
           "adapt", "diagnose", "rescore", "serve", "interpolate", "count", "load_corpus", "Vocab", "Tokenizer", "LanguageModel", "NGramLM",
           "SeqlmError"]
