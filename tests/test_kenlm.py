"""seqlm.kenlm: the kenlm module's API over seqlm n-gram models, compared call by call with the kenlm module
on the same ARPA files (seqlm's own, lmplz's with and without <unk>): scores within 1e-5 log10 (KenLM
stores and sums in float32: 1e-5, or 5e-7 relative past log10 -20), the same matched n-gram lengths and OOV
flags, states equal exactly when KenLM's are."""

import copy
import math
import pickle
import random

import numpy as np
import pytest

import seqlm
import seqlm.kenlm as skenlm
from conftest import drop_unk, lmplz_arpa
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.training.train import train_ngram

kenlm = pytest.importorskip("kenlm")


def approx(x):
    """KenLM's float32: 1e-5 in log10, or 5e-7 relative for the large values an OOV gives (-100)."""
    return pytest.approx(x, abs=1e-5, rel=5e-7)


@pytest.fixture(scope="module")
def texts(toy_lines):
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(line.split(), len(line.split()))) for line in toy_lines[2][:100]]
    odd = ["zzqx blorf the", "the the the zzqx", "", "   the\tcat  ", "<unk> the <unk>", "the cat </s>"]
    return toy_lines[1][:100] + shuffled + [s + " qqq" for s in toy_lines[2][100:150]] + odd


@pytest.fixture(scope="module", params=["seqlm", "lmplz", "lmplz-no-unk"])
def arpa(request, tmp_path_factory, toy_lines):
    d = tmp_path_factory.mktemp(request.param)
    if request.param == "seqlm":
        path = d / "m.arpa"
        seqlm.export(train_ngram(toy_lines[0][:1500], order=4, prune=[0, 0, 1, 1]), path)
        return path
    path = lmplz_arpa(d, toy_lines[0][:1500], 4)
    return drop_unk(path, d / "nounk.arpa") if request.param == "lmplz-no-unk" else path


@pytest.fixture(scope="module")
def pair(arpa):
    return kenlm.Model(str(arpa)), skenlm.Model(str(arpa))


@pytest.mark.parametrize("bos,eos", [(True, True), (True, False), (False, True), (False, False)])
def test_score_and_full_scores_equal_kenlms(pair, texts, bos, eos):
    ken, ours = pair
    for text in texts:
        assert ours.score(text, bos=bos, eos=eos) == approx(ken.score(text, bos=bos, eos=eos))
        theirs = list(ken.full_scores(text, bos=bos, eos=eos))
        mine = list(ours.full_scores(text, bos=bos, eos=eos))
        assert [(n, oov) for _, n, oov in mine] == [(n, oov) for _, n, oov in theirs], text
        assert [p for p, _, _ in mine] == approx([p for p, _, _ in theirs])


def test_perplexity_order_and_vocabulary(pair, texts):
    ken, ours = pair
    for text in texts[:50]:
        assert ours.perplexity(text) == pytest.approx(ken.perplexity(text), rel=1e-4)
    assert ours.order == ken.order == 4
    for word in ("the", "zzqx", "<unk>", "</s>", "<s>", ""):
        assert (word in ours) == (word in ken), word


def test_stepping_equals_kenlms_and_states_match_when_kenlms_do(pair, texts):
    ken, ours = pair
    k_states, s_states = [], []
    for text in texts[:60] + texts[-6:]:
        ki, ko, si, so = kenlm.State(), kenlm.State(), skenlm.State(), skenlm.State()
        ken.BeginSentenceWrite(ki)
        ours.BeginSentenceWrite(si)
        for word in text.split() + ["</s>"]:
            kr, sr = ken.BaseFullScore(ki, word, ko), ours.BaseFullScore(si, word, so)
            assert sr.log_prob == approx(kr.log_prob)
            assert (sr.ngram_length, sr.oov) == (kr.ngram_length, kr.oov)
            assert ours.BaseScore(si, word, skenlm.State()) == pytest.approx(sr.log_prob, abs=1e-12)
            k_states.append(copy.copy(ko))
            s_states.append(copy.copy(so))
            ki, ko, si, so = ko, ki, so, si
    pairs = [(i, j) for i in range(0, len(k_states), 7) for j in range(0, len(k_states), 5)]
    assert [k_states[i] == k_states[j] for i, j in pairs] == [s_states[i] == s_states[j] for i, j in pairs]
    for i, j in pairs:
        if s_states[i] == s_states[j]:
            assert hash(s_states[i]) == hash(s_states[j])
    null_k, null_s = kenlm.State(), skenlm.State()
    ken.NullContextWrite(null_k)
    ours.NullContextWrite(null_s)
    assert ours.BaseScore(null_s, "the", skenlm.State()) == pytest.approx(ken.BaseScore(null_k, "the", kenlm.State()),
                                                                          abs=1e-5)


def test_states_are_copyable_and_ordered(pair):
    _, ours = pair
    a, b = skenlm.State(), skenlm.State()
    ours.BeginSentenceWrite(a)
    ours.BaseScore(a, "the", b)
    c = copy.deepcopy(b)
    assert c == b and c is not b and hash(c) == hash(b) and a != b
    assert sorted([b, a]) == sorted([a, b]) and (a < b) != (b < a)
    assert {a: 1, c: 2}[b] == 2


def test_a_model_folder_answers_as_its_arpa_file(tmp_path, toy_lines, texts):
    assert main(["-q", "train", "--model", "kn", "--order", "3", "--train", _write(tmp_path, toy_lines[0][:800]),
                 "--out", str(tmp_path / "m"), "--arpa", str(tmp_path / "m.arpa")]) == 0
    folder, arpa = skenlm.Model(str(tmp_path / "m")), skenlm.LanguageModel(tmp_path / "m.arpa")
    for text in texts[:40]:
        assert folder.score(text) == pytest.approx(arpa.score(text), abs=1e-6)
    natural = seqlm.score(seqlm.load(tmp_path / "m"), texts[:40])
    assert [folder.score(t) for t in texts[:40]] == pytest.approx([r["log_prob"] / math.log(10) for r in natural],
                                                                  abs=1e-9)
    assert folder.path == str(tmp_path / "m") and repr(folder) == "<Model from m>"
    assert pickle.loads(pickle.dumps(folder)).score("the cat") == folder.score("the cat")


def test_what_kenlm_cannot_query_is_one_line(tmp_path, toy_lines):
    assert main(["-q", "train", "--model", "add-k", "--order", "2", "--train", _write(tmp_path, toy_lines[0][:300]),
                 "--out", str(tmp_path / "addk")]) == 0
    with pytest.raises(SeqlmError, match="add-k"):
        skenlm.Model(str(tmp_path / "addk"))
    with pytest.raises(SeqlmError, match="no such model"):
        skenlm.Model(str(tmp_path / "missing"))
    with pytest.raises(TypeError):
        skenlm.Model(3)


def test_a_neural_model_is_refused(lstm):
    _, summary = lstm
    with pytest.raises(SeqlmError, match="n-gram models"):
        skenlm.Model(summary["out"])


def _write(tmp_path, lines) -> str:
    path = tmp_path / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_compiled_loop_equals_the_python_reference(toy_lines, texts):
    lm = train_ngram(toy_lines[0][:1500], order=5, prune=[0, 0, 1, 1, 1])
    fast = lm.querier()
    if fast is None:
        pytest.skip("the compiled query loop is not built here")
    rng = random.Random(1)
    ids = list(range(len(lm.vocab)))
    for text in texts[:80]:
        ranks_f = ranks_p = (1,)
        for word in [lm.vocab.stoi.get(w, 0) for w in text.split()] + [rng.choice(ids), 2]:
            lf, nf, ranks_f = fast.step(ranks_f, word)
            lp, np_, ranks_p = lm.full_step(ranks_p, word)
            assert (lf, nf, ranks_f) == (lp, np_, ranks_p)
    stoi = lm.vocab.stoi
    for text in texts[:40]:
        total, ranks = 0.0, (1,)
        for word in [stoi.get(w, 0) for w in text.split()] + [2]:
            lp, _, ranks = lm.full_step(ranks, word)
            total += lp
        assert fast.score_words(text.split(), stoi, True, True) == pytest.approx(total, abs=1e-12)


def test_without_the_compiled_loop_the_same_numbers_and_one_warning(arpa, texts, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "seqlm.models.ngram.fastquery", None)  # as if it was never built
    with pytest.warns(RuntimeWarning, match="compiled n-gram query loop is not built"):
        slow = skenlm.Model(str(arpa))
    fast = kenlm.Model(str(arpa))
    for text in texts[:30]:
        assert slow.score(text) == approx(fast.score(text))
        assert [n for _, n, _ in slow.full_scores(text)] == [n for _, n, _ in fast.full_scores(text)]


def test_batched_scoring_through_the_compiled_loop_equals_the_vectorized_reference(toy_lines, texts):
    lm = train_ngram(toy_lines[0][:1500], order=5, prune=[0, 0, 1, 1, 1])
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    enc = [lm.vocab.encode(t.split()) for t in texts]
    fast, _ = lm.score_lines(enc)
    lengths = np.array([len(x) for x in enc])
    reference = lm.score_stream(np.concatenate(enc), lengths)
    assert np.array_equal(fast, reference)
    with pytest.raises(SeqlmError, match="outside the vocabulary"):
        lm.score_lines([np.array([len(lm.vocab)])])
