"""One n-gram model from several: their linear interpolation at the n-gram level, written as one backoff model
(SRILM's static ``ngram -mix-lm ... -write-lm``; lmplz's ``interpolate``).

The models read text alike (one tokenizer); their vocabularies may differ: the new one is their union.  For
every n-gram stored in any of the models (the union of their n-grams, each order up to the highest model's),
p(w | h) = sum_i lambda_i p_i(w | h), each p_i by model i's own backoff rule (its context cut to its order;
a context word it does not know is its ``<unk>``; a predicted word it does not know gets p_i = 0 there, the
mass model i gives its ``<unk>`` going to the union's ``<unk>``, so each distribution still sums to one).
Then the backoff weight of every context h is recomputed:

    bow(h) = (1 - sum_{w in S(h)} p(w | h)) / (1 - sum_{w in S(h)} p(w | h'))

over the words S(h) stored after h, h' the history without its first word: (h', w) is stored too, since every
model's n-grams are closed under suffixes and so is their union.  As SRILM's, the result normalises for every
context and equals the token-by-token mixture (``seqlm mix``, the same weights) on every n-gram of the union;
where the query backs off (an n-gram stored in no model), it backs off once with one weight where the
token-by-token mixture backs off in each model with its own weights, and the two differ (tested; the docs give
the measured gap).
"""

from __future__ import annotations

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.ngram.prune import suffixes
from seqlm.models.ngram.smoothing import Tables
from seqlm.text.vocab import BOS_ID, UNK_ID, Vocab


def union_vocab(models) -> Vocab:
    """The vocabularies of ``models`` in one: the first model's, then every other word in the order met."""
    first = models[0].vocab
    itos, seen = list(first.itos), set(first.itos)
    for m in models[1:]:
        if m.vocab.tokenizer != first.tokenizer:
            raise SeqlmError(f"the models read text differently ({m.vocab.tokenizer} vs {first.tokenizer}): "
                             f"interpolate models trained with the same tokenizer options")
        for w in m.vocab.itos:
            if w not in seen:
                seen.add(w)
                itos.append(w)
    return Vocab(itos, first.tokenizer)


def interpolate(models, weights) -> tuple[Vocab, Tables]:
    """The vocabulary and tables of the interpolation of the n-gram ``models`` with ``weights`` (normalised)."""
    weights = np.asarray(weights, dtype=np.float64)
    for i, m in enumerate(models):
        if getattr(m, "kind", None) != "ngram":
            raise SeqlmError(f"model {i + 1} is not an n-gram model: interpolate n-gram models (mix others with "
                             f"seqlm mix)")
        if m.tables.unseen != "backoff":
            raise SeqlmError(f"model {i + 1} is an add-k model, which has no backoff form: it cannot be interpolated "
                             f"into one (use kn, wb or mle)")
    vocab = union_vocab(models)
    V, order = len(vocab), max(m.order for m in models)
    # each model's ids in the union (to_union) and the union's in each model (-1: unknown there)
    to_union = [np.array([vocab.stoi[w] for w in m.vocab.itos], dtype=np.int64) for m in models]
    from_union = []
    for m, t in zip(models, to_union):
        back = np.full(V, -1, dtype=np.int64)
        back[t] = np.arange(len(t))
        from_union.append(back)
    # the union's keys per order, and each model's records' ranks among them
    keys = [np.arange(V, dtype=np.int64)]
    ranks = [[t] for t in to_union]  # ranks[i][k - 1]: union rank of each order-k record of model i
    for k in range(2, order + 1):
        own = []
        for i, m in enumerate(models):
            if k > m.order:
                own.append(None)
                continue
            mk = np.asarray(m.tables.keys[k - 1], dtype=np.int64)
            own.append(ranks[i][k - 2][mk // len(m.vocab)] * V + to_union[i][mk % len(m.vocab)])
        keys.append(np.unique(np.concatenate([o for o in own if o is not None])))
        for i, o in enumerate(own):
            if o is not None:
                ranks[i].append(np.searchsorted(keys[k - 1], o))
    # the words of every union record (union ids), order by order
    words = [keys[0][:, None]]
    for k in range(2, order + 1):
        words.append(np.column_stack([words[k - 2][keys[k - 1] // V], keys[k - 1] % V]))
    logprob = []
    for k in range(1, order + 1):
        p = np.zeros(len(keys[k - 1]))
        for m, lam, back in zip(models, weights, from_union):
            w = words[k - 1]
            known = back[w[:, -1]] >= 0
            ids = np.where(back[w] >= 0, back[w], UNK_ID)
            p[known] += lam * np.exp(m.ngram_logprobs(ids[known]))
        with np.errstate(divide="ignore"):
            lp = np.log(p)
        if k == 1:
            lp[BOS_ID] = -np.inf
        logprob.append(lp)
    logbow = [np.zeros(len(k)) for k in keys]
    suffix = suffixes(keys, V) if order > 1 else []
    for k in range(2, order + 1):
        ctx = keys[k - 1] // V
        n_ctx = len(keys[k - 2])
        num = 1.0 - np.bincount(ctx, weights=np.exp(logprob[k - 1]), minlength=n_ctx)
        den = 1.0 - np.bincount(ctx, weights=np.exp(logprob[k - 2][suffix[k - 1]]), minlength=n_ctx)
        has = np.bincount(ctx, minlength=n_ctx) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            bow = np.log(np.maximum(num, 0.0)) - np.log(np.maximum(den, 1e-300))
        logbow[k - 2] = np.where(has & (den > 1e-12), bow, 0.0)
    info = {"smoothing": "interpolated", "weights": [float(x) for x in weights],
            "parts": [m.describe() for m in models]}
    return vocab, Tables(V, keys, logprob, logbow, "backoff", info)
