"""The trie of bit-packed records (models/ngram/trie.py): packing loses nothing but float64 -> float32, every
layout (word widths past 16 bits, hash-indexed orders, quantized values, batch edges) reads back what was
packed, and the compiled search equals the Python reference on each."""

import math

import numpy as np
import pytest

from seqlm.models.ngram import trie as trie_mod
from seqlm.models.ngram.model import NGramLM
from seqlm.models.ngram.trie import pack
from seqlm.training.train import train_ngram


def zipf_lines(n_lines: int, vocab: int, seed: int) -> list[str]:
    """Frequent words (long runs of children) and, every other token, one of ``vocab`` drawn uniformly (for
    14,000 lines, more than 65,536 types: words of 17 bits)."""
    rng = np.random.default_rng(seed)
    words = np.minimum(rng.zipf(1.3, size=n_lines * 12), 1000) - 1
    rare = rng.random(len(words)) < 0.5
    words[rare] = rng.integers(1000, vocab, int(rare.sum()))
    cuts = np.cumsum(rng.integers(3, 20, size=n_lines))
    return [" ".join(f"w{i}" for i in piece) for piece in np.split(words, cuts[cuts < len(words)])[:n_lines]]


@pytest.fixture(scope="module")
def wide():
    """A 4-gram over more than 65,536 word types (17-bit words), with long and short runs."""
    return train_ngram(zipf_lines(14000, 10**6, 0), order=4)


def columns(lm):
    t = lm.tables
    return [np.asarray(a) for a in t.keys], [np.asarray(a) for a in t.logprob], [np.asarray(a) for a in t.logbow]


@pytest.mark.parametrize("batch", [1000, 1 << 20])
def test_columns_round_trip_at_any_batch_size(wide, monkeypatch, batch, tmp_path):
    keys, lp, lb = columns(wide)
    monkeypatch.setattr(trie_mod, "BATCH", batch)
    for folder in (None, tmp_path / "t"):
        t = pack(wide.trie.V, keys, lp, lb, folder=folder)
        assert t.layout == wide.trie.layout and t.layout[1]["word_bits"] == 17
        for k in range(1, 5):
            n = len(keys[k - 1])
            assert np.array_equal(t.keys(k, 0, n), keys[k - 1])
            assert np.array_equal(t.keys(k, n // 3, n // 2), keys[k - 1][n // 3:n // 2])
            assert np.array_equal(t.prob(k, np.arange(n)), lp[k - 1])  # already float32 values: exact
            assert np.array_equal(t.bow(k, np.arange(n)), lb[k - 1])
            assert np.array_equal(t.data[k - 1], wide.trie.data[k - 1])


def test_values_are_the_float64_ones_rounded_to_float32(toy_lines):
    lm = train_ngram(toy_lines[0], order=3)
    raw = lm.tables.logprob[2]
    assert raw.dtype == np.float64 and np.array_equal(raw, raw.astype(np.float32).astype(np.float64))


def test_find_and_parents_agree_with_sorted_keys(wide):
    V = wide.trie.V
    rng = np.random.default_rng(1)
    for k in range(2, 5):
        keys = np.asarray(wide.tables.keys[k - 1])
        pick = rng.choice(len(keys), 500)
        ctx, w = keys[pick] // V, keys[pick] % V
        idx, found = wide.trie.find(k, ctx, w)
        assert found.all() and np.array_equal(idx, pick)
        assert np.array_equal(wide.trie.parents(k, pick), ctx)
        other = rng.integers(0, V, 500)
        idx, found = wide.trie.find(k, ctx, other)
        truth = np.isin(ctx * V + other, keys)
        assert np.array_equal(found, truth)


def test_long_runs_get_a_hash_index_and_short_ones_none(toy_lines, monkeypatch):
    monkeypatch.setattr(trie_mod, "INDEX_RUN", 6)
    trie = train_ngram(toy_lines[0], order=4).trie
    lay = trie.layout
    assert lay[0]["index_bits"] == 0  # order 1: word i is record i
    for k in range(1, 4):  # the records of the runs longer than INDEX_RUN, and only they
        lo, hi = trie.children(k, np.arange(lay[k - 1]["n"]))
        long = int((hi - lo)[hi - lo > 6].sum())
        assert (lay[k]["index_bits"] > 0) == (long > 0)
        if long:
            assert lay[k]["index_run"] == 6 and lay[k]["index_size"] == long + long // 2 + 1
    assert lay[1]["index_bits"] > 0  # the bigrams after frequent words: long runs


def compiled_equals_reference(lm, lines):
    fast = lm.querier()
    if fast is None:
        pytest.skip("the compiled query loop is not built here")
    rng = np.random.default_rng(2)
    for text in lines:
        ranks_f = ranks_p = (1,)
        words = [lm.vocab.stoi.get(w, 0) for w in text.split()] + [int(rng.integers(len(lm.vocab))), 2]
        for word in words:
            got, want = fast.step(ranks_f, word), lm.full_step(ranks_p, word)
            assert got == want
            ranks_f, ranks_p = got[2], want[2]
    enc = [lm.vocab.encode(t.split()) for t in lines]
    reference = lm.score_stream(np.concatenate(enc), np.array([len(x) for x in enc]))
    assert np.array_equal(lm.score_lines(enc)[0], reference)


@pytest.mark.parametrize("index_run", [0, 2, 10**9], ids=["every record hash-indexed", "long runs", "none"])
def test_compiled_search_equals_the_reference_on_wide_words(wide, monkeypatch, index_run):
    monkeypatch.setattr(trie_mod, "INDEX_RUN", index_run)
    lm = NGramLM(wide.vocab, wide.tables, {})
    assert [bool(lay["index_bits"]) for lay in lm.trie.layout] == [False] + [index_run < 10**9] * 3
    assert [lay["index_run"] for lay in lm.trie.layout[1:]] == [index_run if index_run < 10**9 else 0] * 3
    lines = zipf_lines(14000, 10**6, 0)
    compiled_equals_reference(lm, lines[:150] + zipf_lines(100, 10**6, 4))


@pytest.mark.parametrize("bits", [8, 4, 1])
def test_quantized_models_query_alike_and_keep_backoffs_of_1_exact(toy_lines, bits):
    exact = train_ngram(toy_lines[0], order=4)
    lm = NGramLM(exact.vocab, exact.tables, {"quantize": bits})
    t = lm.trie
    assert all(t.layout[k]["prob"] == "q" and t.layout[k]["prob_bits"] == bits for k in range(1, 4))
    assert t.layout[0]["prob"] == "neg31"  # unigrams are not quantized (as KenLM's)
    for k in range(2, 4):
        n = t.sizes()[k - 1]
        codes = t.centers[k - 1]
        assert len(np.unique(t.prob(k, np.arange(n)))) <= 1 << bits
        zero = np.asarray(exact.tables.logbow[k - 1]) == 0
        assert np.array_equal(t.bow(k, np.arange(n)) == 0, zero) and codes[1][0] == 0
    compiled_equals_reference(lm, toy_lines[1][:100])
    if bits == 8:
        a = lm.score_lines([lm.vocab.encode(x.split()) for x in toy_lines[1]])[0].sum()
        b = exact.score_lines([exact.vocab.encode(x.split()) for x in toy_lines[1]])[0].sum()
        assert abs(a / b - 1) < 0.02


def test_quantize_is_checked(toy_lines):
    exact = train_ngram(toy_lines[0][:200], order=2)
    from seqlm.errors import SeqlmError

    for bits in (0, 17):
        with pytest.raises(SeqlmError, match="--quantize"):
            NGramLM(exact.vocab, exact.tables, {"quantize": bits})


def test_the_model_is_smaller_than_float64_columns(wide):
    ngrams = sum(wide.trie.sizes())
    per_ngram = wide.trie.nbytes() / ngrams
    assert per_ngram < 14, per_ngram  # the old folder: 8 (key) + 8 (ln p) + 8 (ln bow) + 8-16 (index)
    assert math.isclose(sum(wide.trie.sizes()), sum(len(k) for k in wide.tables.keys))
