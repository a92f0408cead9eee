"""One n-gram model from several (models/ngram/interpolate.py, seqlm interpolate): it normalises for every
context, equals the token-by-token mixture on every n-gram any model stores, handles vocabularies that differ,
and the command writes a model folder and an ARPA file with weights given or fitted."""

import json

import numpy as np
import pytest

from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.mixture import MixtureLM
from seqlm.models.ngram.interpolate import interpolate
from seqlm.models.ngram.model import NGramLM
from seqlm.tasks.evaluate import evaluate
from seqlm.text.tokenize import Tokenizer
from seqlm.training.train import build_vocab, train_ngram


def test_ngram_logprobs_are_the_backoff_rule(toy_lines):
    lm = train_ngram(toy_lines[0][:800], order=4)
    rng = np.random.default_rng(0)
    V = len(lm.vocab)
    rows = []
    for line in toy_lines[1][:60]:  # real n-grams of every length, and random ones
        ids = [1] + list(lm.vocab.encode(line.split())) + [2]
        for k in range(1, 7):
            if len(ids) > k:
                start = int(rng.integers(0, len(ids) - k))
                rows.append(ids[start:start + k])
    rows += [list(rng.integers(3, V, size=k)) for k in (2, 3, 4, 5) for _ in range(20)]
    for k in range(1, 7):
        group = [r for r in rows if len(r) == k]
        got = lm.ngram_logprobs(np.array(group))
        want = [lm.next_logprobs(tuple(r[:-1][-(lm.order - 1):]) if lm.order > 1 else ())[r[-1]] for r in group]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def pair(toy_lines):
    """Two models of one vocabulary: a KN 4-gram and a Witten-Bell trigram of different halves of the text."""
    vocab, _ = build_vocab(toy_lines[0], Tokenizer())
    half = len(toy_lines[0]) // 2
    return (train_ngram(toy_lines[0][:half], order=4, vocab=vocab),
            train_ngram(toy_lines[0][half:], order=3, smoothing="wb", vocab=vocab))


def test_the_interpolation_normalises_and_equals_the_mixture_on_stored_ngrams(pair, toy_lines):
    a, b = pair
    w = [0.7, 0.3]
    vocab, tables = interpolate([a, b], w)
    one = NGramLM(vocab, tables, {})
    assert vocab.itos == a.vocab.itos and one.order == 4
    rng = np.random.default_rng(1)
    V = len(vocab)
    for k in range(1, 4):  # every context's distribution sums to one
        keys = np.asarray(one.tables.keys[k - 1])
        for r in rng.choice(len(keys), 15):
            words = [int(keys[r] % V)] if k > 1 else [int(r)]
            rank = int(keys[r] // V)
            for j in range(k - 1, 0, -1):  # the context's words, from its records
                up = np.asarray(one.tables.keys[j - 1])[rank] if j > 1 else rank
                words.insert(0, int(up % V) if j > 1 else int(up))
                rank = int(up // V) if j > 1 else rank
            assert np.exp(one.next_logprobs(tuple(words))).sum() == pytest.approx(1.0, abs=1e-5)
    for k in range(2, 5):  # on every stored n-gram: the token-by-token mixture
        keys = np.asarray(one.tables.keys[k - 1])
        pick = rng.choice(len(keys), 50)
        rows = []
        for r in pick:
            words, rank = [int(keys[r] % V)], int(keys[r] // V)
            for j in range(k - 1, 0, -1):
                up = np.asarray(one.tables.keys[j - 1])[rank] if j > 1 else rank
                words.insert(0, int(up % V) if j > 1 else int(up))
                rank = int(up // V) if j > 1 else rank
            rows.append(words)
        rows = np.array(rows)
        mixed = np.log(w[0] * np.exp(a.ngram_logprobs(rows)) + w[1] * np.exp(b.ngram_logprobs(rows)))
        np.testing.assert_allclose(one.ngram_logprobs(rows), mixed, rtol=0, atol=2e-6)  # float32 values
    # on text, close to the token-by-token mixture (equal where the n-gram is stored; backoff differs)
    text = toy_lines[1][:300]
    static, dynamic = evaluate(one, text)["perplexity"], evaluate(MixtureLM([a, b], w), text)["perplexity"]
    assert static == pytest.approx(dynamic, rel=0.05) and static != dynamic


def test_vocabularies_that_differ_make_a_union(toy_lines):
    a = train_ngram(["the cat sat", "the dog ran"], order=2)
    b = train_ngram(["a bird flew", "the bird sat"], order=3)
    vocab, tables = interpolate([a, b], [0.5, 0.5])
    one = NGramLM(vocab, tables, {})
    assert set(vocab.itos) == set(a.vocab.itos) | set(b.vocab.itos) and vocab.itos[:len(a.vocab)] == a.vocab.itos
    for history in ((), (vocab.stoi["the"],), (vocab.stoi["bird"],), (1,)):
        assert np.exp(one.next_logprobs(history)).sum() == pytest.approx(1.0, abs=1e-5)
    # a word only b knows gets b's share only
    cat_b = b.ngram_logprobs(np.array([[b.vocab.stoi["flew"]]]))[0]
    assert one.ngram_logprobs(np.array([[vocab.stoi["flew"]]]))[0] == pytest.approx(np.log(0.5) + cat_b, abs=1e-6)
    with pytest.raises(SeqlmError, match="read text differently"):
        interpolate([a, train_ngram(["The Cat"], order=2, tokenizer=Tokenizer(lowercase=True))], [0.5, 0.5])
    with pytest.raises(SeqlmError, match="add-k"):
        interpolate([a, train_ngram(["the cat"], order=2, smoothing="add-k")], [0.5, 0.5])


def test_the_command(tmp_path, toy_files, pair, capsys):
    a, b = pair
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    args = ["-q", "interpolate", str(tmp_path / "a"), str(tmp_path / "b")]
    assert main(args + ["--fit", str(toy_files["valid"]), "--out", str(tmp_path / "ab"), "--arpa",
                        str(tmp_path / "ab.arpa"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    fit = result["fit"]
    assert sum(result["weights"]) == pytest.approx(1.0) and 0 < result["weights"][0] < 1
    assert fit["perplexity"] < min(fit["part_perplexity"])
    assert fit["perplexity"] == pytest.approx(fit["token_mixture_perplexity"], rel=0.05)
    assert main(["-q", "convert", str(tmp_path / "ab.arpa"), str(tmp_path / "again")]) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert [t["n"] for t in again["trie"]] == result["ngrams"]
    assert main(args + ["--weights", "1,1", "--out", str(tmp_path / "even")]) == 0
    for extra, message in ((["--out", str(tmp_path / "x")], "one of the two"),
                           (["--weights", "1,2", "--fit", str(toy_files["valid"]), "--out", str(tmp_path / "x")],
                            "one of the two"),
                           (["--weights", "1", "--out", str(tmp_path / "x")], "needs 2 weights"),
                           (["--weights", "1,1", "--out", str(tmp_path / "a")], "")):
        assert main(args + extra) == 2, extra
        assert message in capsys.readouterr().err
