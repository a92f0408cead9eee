"""Entropy pruning (models/ngram/prune.py): Stolcke's change of perplexity equals the exact relative entropy of
dropping one n-gram (worked out by brute force over whole distributions), the pruned model normalises and
keeps every kept n-gram's context and suffix, a size target is met, and the commands take the options."""

import json
import math

import numpy as np
import pytest

from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.ngram import prune as P
from seqlm.models.ngram.model import NGramLM
from seqlm.models.ngram.smoothing import Tables, reindex
from seqlm.tasks.evaluate import evaluate
from seqlm.text.vocab import BOS_ID, EOS_ID
from seqlm.training.train import train_ngram


def tables_of(lm) -> Tables:
    t = lm.tables
    return Tables(lm.trie.V, [np.asarray(k) for k in t.keys], [np.asarray(p, dtype=np.float64) for p in t.logprob],
                  [np.asarray(b, dtype=np.float64) for b in t.logbow], t.unseen, t.info)


def without(lm, order: int, i: int) -> NGramLM:
    """``lm`` without the n-gram ``i`` of ``order`` (one with no extension), its context's backoff weight
    worked out from whole distributions: (1 - sum of the kept p(w|h)) / (1 - sum of p(w|h') over them)."""
    t = tables_of(lm)
    V = t.vocab_size
    keep = [np.ones(len(k), dtype=bool) for k in t.keys]
    keep[order - 1][i] = False
    ctx = int(t.keys[order - 1][i] // V)
    words = t.keys[order - 1][keep[order - 1] & (t.keys[order - 1] // V == ctx)] % V
    history = context_words(lm, order - 1, ctx)
    p_h = np.exp(lm.next_logprobs(tuple(history)))
    p_short = np.exp(lm.next_logprobs(tuple(history[1:]))) if order > 2 else np.exp(lm._unigram)
    bows = [b.copy() for b in t.logbow]
    bows[order - 2][ctx] = math.log((1 - p_h[words].sum()) / (1 - p_short[words].sum()))
    keys = reindex(t.keys, keep, V)
    return NGramLM(lm.vocab, Tables(V, keys, [p[m] for p, m in zip(t.logprob, keep)],
                                    [b[m] for b, m in zip(bows, keep)], t.unseen, t.info), {})


def context_words(lm, order: int, rank: int) -> list[int]:
    """The words of record ``rank`` of ``order``."""
    words = []
    for k in range(order, 0, -1):
        key = int(np.asarray(lm.tables.keys[k - 1])[rank]) if k > 1 else rank
        words.insert(0, key % lm.trie.V if k > 1 else key)
        rank = key // lm.trie.V if k > 1 else rank
    return words


def test_the_change_is_the_exact_relative_entropy_of_dropping_one_bigram(toy_lines):
    lm = train_ngram(toy_lines[0][:400], order=2)
    t = tables_of(lm)
    V = t.vocab_size
    change = P._changes(t.keys, t.logprob, t.logbow, P.suffixes(t.keys, V), V)[1]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(t.keys[1]), 25, replace=False)
    for i in picks:
        h = int(t.keys[1][i] // V)
        pruned = without(lm, 2, i)
        p = np.exp(lm.next_logprobs((h,)))
        q = np.exp(pruned.next_logprobs((h,)))
        assert q.sum() == pytest.approx(1.0, abs=1e-6)  # float32 values
        live = p > 0
        kl = float((p[live] * np.log(p[live] / q[live])).sum())
        p_h = math.exp(lm._unigram[EOS_ID] if h == BOS_ID else lm._unigram[h])  # a leading <s> counts as </s>
        assert change[i] == pytest.approx(math.expm1(p_h * kl), rel=1e-4, abs=1e-12)  # the pruned model stores float32


def test_the_change_of_a_trigram_weighs_its_history_by_the_chain_rule(toy_lines):
    lm = train_ngram(toy_lines[0][:400], order=3)
    t = tables_of(lm)
    V = t.vocab_size
    change = P._changes(t.keys, t.logprob, t.logbow, P.suffixes(t.keys, V), V)[2]
    for i in np.random.default_rng(1).choice(len(t.keys[2]), 15, replace=False):
        h = context_words(lm, 2, int(t.keys[2][i] // V))
        pruned = without(lm, 3, i)
        p, q = np.exp(lm.next_logprobs(tuple(h))), np.exp(pruned.next_logprobs(tuple(h)))
        live = p > 0
        kl = float((p[live] * np.log(p[live] / q[live])).sum())
        first = EOS_ID if h[0] == BOS_ID else h[0]
        p_h = math.exp(lm._unigram[first] + lm.next_logprobs((h[0],))[h[1]])
        assert change[i] == pytest.approx(math.expm1(p_h * kl), rel=1e-4, abs=1e-12)  # the pruned model stores float32


@pytest.fixture(scope="module")
def kn4(toy_lines):
    return train_ngram(toy_lines[0], order=4)


def test_a_pruned_model_normalises_and_keeps_what_its_ngrams_need(kn4, toy_lines):
    small = P.prune_model(kn4, 1e-4)
    sizes, before = small.trie.sizes(), kn4.trie.sizes()
    assert sizes[0] == before[0] and all(a < b for a, b in zip(sizes[1:], before[1:]))
    V = small.trie.V
    keys = [np.asarray(k) for k in small.tables.keys]
    for k in range(2, small.order + 1):  # every kept n-gram's suffix is kept (its context is, by the trie)
        suffix = P.suffixes(keys, V)[k - 1]
        assert len(suffix) == len(keys[k - 1])
    rng = np.random.default_rng(2)
    for k in range(1, small.order):
        for r in rng.choice(len(keys[k - 1]), 20):
            history = context_words(small, k, int(r))
            assert np.exp(small.next_logprobs(tuple(history))).sum() == pytest.approx(1.0, abs=1e-5)
    # the kept n-grams keep their probabilities
    big = [np.asarray(k) for k in kn4.tables.keys]
    for k in range(2, 5):
        probe = context_words(small, k, len(keys[k - 1]) // 2)
        assert small._rank(probe) is not None and kn4._rank(probe) is not None
        assert float(small.trie.prob(k, [small._rank(probe)])[0]) == float(kn4.trie.prob(k, [kn4._rank(probe)])[0])
    assert len(big[1]) > len(keys[1])
    # higher thresholds keep fewer n-grams, and cost more perplexity on held-out text
    text = toy_lines[1][:300]
    ppl = [evaluate(m, text)["perplexity"] for m in (kn4, P.prune_model(kn4, 1e-5), small, P.prune_model(kn4, 1e-3))]
    assert ppl[0] < ppl[1] < ppl[2] < ppl[3]
    assert P.prune_model(kn4, 0.0).trie.sizes() == before


def test_pruning_to_a_size(kn4):
    total = sum(kn4.trie.sizes())
    for target in (total // 2, total // 5, kn4.trie.sizes()[0] + 10):
        small = P.prune_model(kn4, max_ngrams=target)
        n = sum(small.trie.sizes())
        assert n <= target
        threshold = small.config["prune_entropy"]
        assert sum(P.prune_model(kn4, threshold * (1 - 1e-6)).trie.sizes()) > target  # the smallest such threshold
    assert P.prune_model(kn4, max_ngrams=total).trie.sizes() == kn4.trie.sizes()
    with pytest.raises(SeqlmError, match="below the model's .* unigrams"):
        P.prune_model(kn4, max_ngrams=5)
    with pytest.raises(SeqlmError, match="not both"):
        P.prune_model(kn4, 1e-6, 1000)
    with pytest.raises(SeqlmError, match="prune-entropy"):
        P.prune_model(kn4, -1.0)


def test_the_commands_prune(tmp_path, toy_files, capsys):
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out", str(tmp_path / "full"),
                 "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out", str(tmp_path / "small"),
                 "--prune-entropy", "1e-5", "--arpa", str(tmp_path / "small.arpa"), "--json"]) == 0
    small = json.loads(capsys.readouterr().out)
    assert sum(small["model"]["ngrams"]) < sum(full["model"]["ngrams"])
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    assert config["prune_entropy"] == 1e-5 and config["prune_history"] == "counts"
    target = sum(full["model"]["ngrams"]) // 2
    assert main(["-q", "convert", str(tmp_path / "full"), str(tmp_path / "half"), "--max-ngrams", str(target)]) == 0
    capsys.readouterr()
    half = json.loads((tmp_path / "half" / "config.json").read_text())
    assert half["max_ngrams"] == target and sum(half["trie"][k]["n"] for k in range(3)) <= target
    assert half["prune_history"] == "model"  # a model without its counts: SRILM's chain rule
    # the pruned ARPA file reads back as the same model
    assert main(["-q", "convert", str(tmp_path / "small.arpa"), str(tmp_path / "again")]) == 0
    capsys.readouterr()
    for arg, message in ((["--prune-entropy", "-1"], "prune-entropy"), (["--max-ngrams", "3"], "unigrams"),
                         (["--prune-entropy", "1e-5", "--max-ngrams", "900"], "not both")):
        code = main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out",
                     str(tmp_path / "bad"), *arg])
        assert code == 2 and message in capsys.readouterr().err
    code = main(["-q", "train", "--train", str(toy_files["train"]), "--model", "add-k", "--order", "2",
                 "--out", str(tmp_path / "addk"), "--prune-entropy", "1e-5"])
    assert code == 2 and "no backoff form" in capsys.readouterr().err


def test_the_file_estimator_prunes_as_the_in_memory_one(tmp_path, toy_files, toy_lines):
    from seqlm.models.ngram.external import estimate_file

    for options in ({"prune_entropy": 3e-5}, {"max_ngrams": 2000}, {"prune_entropy": 3e-5, "prune": [0, 1, 1]}):
        memory = train_ngram(toy_lines[0], order=3, **options)
        out = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        config = estimate_file(toy_files["train"], out, order=3, memory="64M", **options)
        on_disk = NGramLM.load(out, config)
        assert on_disk.trie.sizes() == memory.trie.sizes() < train_ngram(toy_lines[0], order=3).trie.sizes()
        for k in range(3):
            assert np.array_equal(np.asarray(on_disk.tables.keys[k]), np.asarray(memory.tables.keys[k]))
            assert np.array_equal(np.asarray(on_disk.tables.logprob[k]), np.asarray(memory.tables.logprob[k]))
        assert config["prune_history"] == memory.config["prune_history"] == ("model" if "prune" in options else "counts")


def test_the_history_from_counts_is_their_relative_frequency(toy_lines):
    counts = [np.array([0, 3, 5, 2, 0]), np.array([1, 2, 2])]
    first, second = P.history_from_counts(counts)
    total = 5 + 2  # the tokens predicted: </s> (id 2) and word 3; <s> (id 1) counts as </s>
    assert np.allclose(np.exp(first[1:4]), [5 / total, 5 / total, 2 / total]) and first[4] == -np.inf
    assert np.allclose(np.exp(second), np.array([1, 2, 2]) / total)
