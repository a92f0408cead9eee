"""Nearest neighbours in a neural model's input embedding (cosine similarity).

The seed paper: learned word vectors "reflect relations between similar words".  ``neighbours(model,
word)`` lists the tokens whose input embedding rows are closest to ``word``'s by cosine similarity,
leaving out the word itself and the special tokens.  n-gram models have no embedding: a clear error.
"""

from __future__ import annotations

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel, check_model
from seqlm.text.vocab import SPECIALS


def embedding_matrix(model: LanguageModel) -> np.ndarray:
    module = getattr(model, "module", None)
    emb = getattr(module, "embedding", None)
    if emb is None:
        raise SeqlmError(f"a {getattr(model, 'kind', '?')} model has no embedding: give a neural model's folder")
    return emb.weight.detach().float().cpu().numpy()


def neighbours(model: LanguageModel, word: str, k: int = 10) -> list[dict]:
    """The ``k`` tokens nearest to ``word`` in the input embedding, most similar first:
    ``[{"token": ..., "cosine": ...}, ...]``."""
    check_model(model, "neighbours")
    if not isinstance(word, str):
        raise TypeError(f"neighbours() takes one word (str), not {type(word).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SeqlmError(f"--top-k must be an integer >= 1 (got {k!r})")
    vocab = model.vocab
    if word not in vocab.text_stoi or word in SPECIALS:
        raise SeqlmError(f"{word!r} is not in the model's vocabulary ({len(vocab)} tokens): give a word it knows")
    emb = embedding_matrix(model)
    norms = np.linalg.norm(emb, axis=1)
    norms[norms == 0] = 1.0
    unit = emb / norms[:, None]
    i = vocab.text_stoi[word]
    sims = unit @ unit[i]
    for s in SPECIALS:
        sims[vocab.stoi[s]] = -np.inf
    sims[i] = -np.inf
    k = min(k, int(np.isfinite(sims).sum()))
    top = np.argsort(-sims, kind="stable")[:k]
    return [{"token": vocab.itos[j], "cosine": float(sims[j])} for j in top]


# the words a report shows the neighbours of (frequent PTB words of several kinds)
REPORT_WORDS = ("money", "president", "market", "year", "three", "buy")


def neighbour_table(model: LanguageModel, words=REPORT_WORDS, k: int = 6) -> dict:
    """``{word: [{"token", "cosine"}, ...]}`` for the ``words`` the model knows (empty for a model without
    an embedding or at the character level): what a results file records, so a report needs no model."""
    if getattr(model, "module", None) is None or getattr(model.module, "embedding", None) is None or \
            model.vocab.tokenizer.level != "word":
        return {}
    return {w: [{"token": n["token"], "cosine": round(float(n["cosine"]), 4)} for n in neighbours(model, w, k=k)]
            for w in words if w in model.vocab.text_stoi}
