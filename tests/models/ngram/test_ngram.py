import math

import numpy as np
import pytest

from seqlm import kinds
from seqlm.models.interface import LanguageModel
from seqlm.models.ngram.smoothing import counts_of_counts, mkn_discounts
from seqlm.tasks.evaluate import evaluate
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import BOS_ID, EOS_ID, UNK_ID
from seqlm.training.train import train_ngram

STORED = 1e-6  # sums of probabilities: each is stored as a float32 (trie.py), exact to ~6e-8 relative

# every n-gram kind of the table (aliases of another kind once)
SMOOTHERS = [(k, {"k": 0.5} if k == "add-k" else {}) for k in kinds.names("ngram") if kinds.get(k).alias_of is None
             or k == "laplace"]


def contexts(lm):
    """A seen context, an unseen one, one with <unk>, the sentence start, and one after </s>."""
    v = lm.vocab
    seen = [v.stoi[w] for w in "the students opened".split()]
    unseen = [v.stoi[w] for w in "their the students".split()]
    states = [lm.start()]
    for ctx in (seen, unseen, [v.stoi["the"], UNK_ID], [UNK_ID, UNK_ID, UNK_ID], seen + [EOS_ID]):
        s = lm.start()
        for t in ctx:
            s = lm.advance(s, t)
        states.append(s)
    return states


@pytest.mark.parametrize("name,kw", SMOOTHERS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distributions_sum_to_one(toy_lines, name, kw, order):
    lm = train_ngram(toy_lines[0], smoothing=name, order=order, **kw)
    for state in contexts(lm):
        p = np.exp(lm.next_logprobs(state))
        assert p[BOS_ID] == 0
        assert abs(p.sum() - 1) < STORED, (name, order, state, p.sum())


@pytest.mark.parametrize("name", ["ikn", "mkn"])
def test_pruned_distributions_sum_to_one(toy_lines, name):
    lm = train_ngram(toy_lines[0], smoothing=name, order=4, prune=[0, 1, 2, 2])
    full = train_ngram(toy_lines[0], smoothing=name, order=4)
    assert sum(lm.tables.sizes()) < sum(full.tables.sizes())
    for state in contexts(lm):
        assert abs(np.exp(lm.next_logprobs(state)).sum() - 1) < STORED


def test_hand_worked_interpolated_kneser_ney():
    # Corpus: "a b", "a b", "b"  ->  <s> a b </s> | <s> a b </s> | <s> b </s>
    # Bigram counts (highest order: raw): <s> a:2, a b:2, b </s>:3, <s> b:1
    #   counts of counts n1=1, n2=2  ->  D2 = n1/(n1+2 n2) = 1/5 = 0.2
    # Unigram adjusted counts = distinct left neighbours: a:{<s>}=1, b:{<s>,a}=2, </s>:{b}=1, <unk>:0
    #   n1=2, n2=1 -> D1 = 2/(2+2) = 0.5; sum a = 4; gamma0 = 0.5*3/4 = 0.375; |V| = 4 (<unk> </s> a b)
    #   p(a) = (1-.5)/4 + .375/4 = 0.21875, p(b) = (2-.5)/4 + .09375 = 0.46875,
    #   p(</s>) = 0.21875, p(<unk>) = 0.09375                                   (sum = 1)
    # Context <s>: a(2), b(1); denominator 3; gamma = 0.2*2/3
    #   p(a|<s>) = 1.8/3 + (0.4/3)*0.21875 = 0.6291666...
    # Context a: b(2); gamma = 0.2*1/2 = 0.1; p(b|a) = 1.8/2 + 0.1*0.46875 = 0.946875
    # Context b: </s>(3); gamma = 0.2/3; p(</s>|b) = 2.8/3 + (0.2/3)*0.21875 = 0.9479166...
    #   unseen after b: p(a|b) = (0.2/3) * 0.21875 = 0.0145833...
    lm = train_ngram(["a b", "a b", "b"], smoothing="ikn", order=2)
    v = lm.vocab.stoi
    uni = np.exp(lm.next_logprobs(()))  # empty context = unigram distribution
    assert uni[v["a"]] == pytest.approx(0.21875)
    assert uni[v["b"]] == pytest.approx(0.46875)
    assert uni[v["</s>"]] == pytest.approx(0.21875)
    assert uni[v["<unk>"]] == pytest.approx(0.09375)
    p_a = 1.8 / 3 + (0.4 / 3) * 0.21875
    p_b_a = 0.946875
    p_eos_b = 2.8 / 3 + (0.2 / 3) * 0.21875
    assert np.exp(lm.next_logprobs((v["<s>"],))[v["a"]]) == pytest.approx(p_a)
    assert np.exp(lm.next_logprobs((v["b"],))[v["a"]]) == pytest.approx(0.2 / 3 * 0.21875)
    lp, _ = lm.score_lines([lm.vocab.encode(["a", "b"])])
    assert lp == pytest.approx(np.log([p_a, p_b_a, p_eos_b]))
    assert lm.tables.info["discounts"] == [pytest.approx([0.5] * 3), pytest.approx([0.2] * 3)]


def test_modified_discounts_follow_chen_goodman():
    counts = np.array([1] * 50 + [2] * 20 + [3] * 10 + [4] * 6 + [9] * 3)
    d, fell_back = mkn_discounts(counts_of_counts(counts), modified=True)
    n1, n2, n3, n4 = 50, 20, 10, 6
    y = n1 / (n1 + 2 * n2)
    assert not fell_back
    assert d[1:] == pytest.approx([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])


def test_tiny_corpus_falls_back_without_crashing():
    lm = train_ngram(["a", "a a", "b"], smoothing="mkn", order=5)
    assert lm.tables.info["discount_fallback"]
    for state in contexts_simple(lm):
        assert abs(np.exp(lm.next_logprobs(state)).sum() - 1) < STORED
    assert math.isfinite(evaluate(lm, ["a b c"])["perplexity"])


def contexts_simple(lm):
    return [lm.start(), lm.advance(lm.start(), lm.vocab.stoi["a"]), (UNK_ID, UNK_ID, UNK_ID, UNK_ID)]


class Uniform(LanguageModel):
    kind = "uniform"

    def __init__(self, vocab):
        self.vocab = vocab

    def start(self):
        return None

    def advance(self, state, token):
        return None

    def next_logprobs(self, state):
        p = np.full(len(self.vocab), -np.log(len(self.vocab) - 1))
        p[BOS_ID] = -np.inf
        return p

    def save(self, path):
        raise NotImplementedError

    def describe(self):
        return {"kind": self.kind}


def test_uniform_model_has_perplexity_vocab_size(toy_lines):
    lm = train_ngram(toy_lines[0], order=1)
    u = Uniform(lm.vocab)
    for mode in ("stream", "sentence"):
        r = evaluate(u, toy_lines[2][:50], mode=mode)
        assert r["perplexity"] == pytest.approx(len(lm.vocab) - 1)
    # and add-k with a huge k is uniform too
    flat = train_ngram(toy_lines[0], smoothing="add-k", k=1e12, order=1)
    assert evaluate(flat, toy_lines[2])["perplexity"] == pytest.approx(len(lm.vocab) - 1, rel=1e-6)


@pytest.mark.parametrize("name,kw", SMOOTHERS)
def test_batched_equals_step_by_step(toy_lines, name, kw):
    lm = train_ngram(toy_lines[0], smoothing=name, order=3, **kw)
    lines = [lm.vocab.encode(lm.vocab.tokenizer.tokenize(x)) for x in toy_lines[2][:40] + ["zebra the quux"]]
    fast, _ = lm.score_lines(lines)
    slow, _ = LanguageModel.score_lines(lm, lines, "stream")
    assert len(fast) == sum(len(x) + 1 for x in lines)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["stream", "sentence"])
def test_evaluate_independent_of_batching(toy_lines, mode):
    lm = train_ngram(toy_lines[0], smoothing="mkn", order=4)
    ref = evaluate(lm, toy_lines[2], mode=mode)
    for b in (1, 7, 100):
        r = evaluate(lm, toy_lines[2], mode=mode, batch_lines=b)
        assert r["perplexity"] == pytest.approx(ref["perplexity"], rel=1e-12)
        assert r["tokens"] == ref["tokens"]


def test_stream_equals_sentence_for_ngrams(toy_lines):
    lm = train_ngram(toy_lines[0], smoothing="mkn", order=3)
    a = evaluate(lm, toy_lines[2], mode="stream")
    b = evaluate(lm, toy_lines[2], mode="sentence")
    assert a["perplexity"] == b["perplexity"]


def test_oov_counted_and_scored_as_unk(toy_lines):
    lm = train_ngram(toy_lines[0], smoothing="mkn", order=3)
    r = evaluate(lm, ["the zebra sleeps", "the cat qqq rrr"])
    assert r["oov"] == 3
    assert r["tokens"] == 3 + 4 + 2
    assert math.isfinite(r["perplexity"]) and r["perplexity_without_oov"] < r["perplexity"]


def test_char_level_prefers_english(toy_lines):
    lm = train_ngram(toy_lines[0], smoothing="mkn", order=7, tokenizer=Tokenizer("char", lowercase=True))
    from seqlm.tasks.score import score

    good, bad = score(lm, ["THERE IS A", "IHRA S EET"])
    assert good["log_prob"] > bad["log_prob"] + 10


def test_save_load_identical_scores(tmp_path, toy_lines):
    from seqlm.models.loader import load

    for name, kw in SMOOTHERS:
        lm = train_ngram(toy_lines[0], smoothing=name, order=3, **kw)
        lm.save(tmp_path / name)
        back = load(tmp_path / name)
        assert evaluate(back, toy_lines[2])["log_prob"] == evaluate(lm, toy_lines[2])["log_prob"]
