"""seqlm.kenlm: the kenlm module's API over seqlm n-gram models, compared call by call with the kenlm module
on the same ARPA files (seqlm's own, lmplz's with and without <unk>): scores within 1e-5 log10 (KenLM
stores and sums in float32: 1e-5, or 5e-7 relative past log10 -20), the same matched n-gram lengths and OOV
flags, states equal exactly when KenLM's are."""

import copy
import math
import os
import pickle
import random
import re
import time

import numpy as np
import pytest

import seqlm
import seqlm.kenlm as skenlm
from conftest import drop_unk, lmplz_arpa
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.ngram.model import NGramLM
from seqlm.tasks.score import score
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import Vocab
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
    assert pickle.loads(pickle.dumps(b)) == b and a != "not a state" and not (a == None)  # noqa: E711
    # stepping a state into itself, as a decoder that keeps one state may
    d = copy.copy(a)
    assert ours.BaseScore(d, "the", d) == ours.BaseScore(a, "the", skenlm.State()) and d == b


def test_the_compiled_state_behaves_as_the_python_one():
    if skenlm.State is skenlm.PythonState:
        pytest.skip("the compiled query loop is not built here")
    rng = random.Random(3)
    rankings = [tuple(rng.randrange(4) for _ in range(rng.randrange(4))) for _ in range(60)]
    fast, slow = [], []
    for ranks in rankings:
        f, p = skenlm.State(), skenlm.PythonState()
        f.ranks = p.ranks = ranks
        assert f.ranks == p.ranks == ranks
        fast.append(f)
        slow.append(p)
    for i in range(len(rankings)):
        for j in range(len(rankings)):
            for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
                assert getattr(fast[i], op)(fast[j]) == getattr(slow[i], op)(slow[j]), (rankings[i], rankings[j], op)
            if fast[i] == fast[j]:
                assert hash(fast[i]) == hash(fast[j])
    assert sorted(fast) == sorted(fast, key=lambda x: (len(x.ranks), x.ranks))
    with pytest.raises(TypeError):
        fast[0].ranks = [1, 2]


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
        reader = lm.reader(b" ", 1.0, stoi)
        assert fast.score_text(reader, text, True, True) == pytest.approx(total, abs=1e-12)
        assert fast.score_text(reader, text.encode(), True, True) == pytest.approx(total, abs=1e-12)


def test_the_compiled_reader_splits_and_looks_up_as_python_does(toy_lines):
    from seqlm.models.ngram.fastquery import Reader

    words = ["the", "a", "ünïcødé", "日本語", "x" * 40, "longer-than-eight", "<unk>", "é"]
    stoi = {w: i + 5 for i, w in enumerate(words)}
    reader = Reader(stoi, b" \t\x00", 1.0, 3)
    rng = random.Random(7)
    pool = words + ["thé", "The", "x" * 39, "x" * 41, "日本", "\u00a0", "a\x0bb", ""]
    for _ in range(300):
        parts = [rng.choice(pool) for _ in range(rng.randrange(0, 12))]
        text = "".join(p + rng.choice([" ", "\t", "\x00", "  ", " \t "]) for p in parts)
        expected = [stoi.get(w, 3) for w in re.split("[ \t\x00]+", text) if w]
        assert reader.ids(text) == expected
        assert reader.ids(text.encode()) == expected
    with pytest.raises(TypeError, match="a sentence is a str"):
        reader.ids(5)
    assert Reader({}, b" ").ids("a b") == [0, 0]
    # a vocabulary of 200k words: every word found, none confused
    big = {f"w{i}": i for i in range(200_000)}
    reader = Reader(big, b" ")
    assert reader.ids(" ".join(big)) == list(range(200_000))
    assert reader.ids("w200000 w-1 W5") == [0, 0, 0]


def token_text(model, lines):
    """seqlm score --per token's text made in Python, from seqlm.score's rows."""
    from types import SimpleNamespace

    from seqlm.cli.evaluate import score_lines

    return "".join(line + "\n" for line in score_lines(score(model, lines, per="token"),
                                                        SimpleNamespace(json=False, per="token")))


def test_the_compiled_token_listing_spells_numbers_as_python():
    """-inf (a maximum-likelihood model's unseen word) and the other numbers as f"{x:.4f}" writes them."""
    lm = train_ngram(["the cat sat", "the dog ran", "a cat ran"] * 5, order=2, smoothing="mle")
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    lines = ["the sat dog zebra", "cat the", "the cat ran"]
    assert lm.token_listing(lines) == token_text(lm, lines) and "-inf\t" in token_text(lm, lines)


def test_text_through_the_compiled_reader_equals_the_tokenizer_path(toy_lines, texts, monkeypatch):
    lm = train_ngram(toy_lines[0][:1500], order=4)
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    odd = ["the\tcat  sat\r", "\x00the cat", "naïve café 日本", "THE CAT", "a\x0bb \u00a0 c", "x\x1cy"]
    surrogate = ["the \ud800 cat"]  # no UTF-8: the tokenizer in Python reads it
    def like(tokenizer):
        return NGramLM(Vocab(lm.vocab.itos, tokenizer), None, trie=lm.trie)

    lowered, unicode = like(Tokenizer(lowercase=True)), like(Tokenizer(whitespace="unicode"))
    ascii_lines = [line for line in texts[:50] + odd if line.isascii()]
    for model, plain in (lm, texts[:50] + odd), (lowered, texts[:50] + odd), (unicode, ascii_lines):
        got = {}
        for how in "compiled", "python":
            if how == "python":  # the tokenizer in Python
                monkeypatch.setattr(NGramLM, "_compiled_text", lambda self, lines: None)
                monkeypatch.setattr(NGramLM, "line_rows", lambda self, lines, mode, keys: None)
            for name, lines in ("plain", plain), ("surrogate", surrogate):
                logp, oov, _ = model.score_text(lines)
                ones = [row for line in lines if "\n" not in line and line.strip() for row in score(model, line)]
                listing = model.token_listing(lines) if how == "compiled" else token_text(model, lines)
                got[how, name] = logp, oov, model.line_totals(lines), score(model, lines), ones, listing
        monkeypatch.undo()
        for name in "plain", "surrogate":
            (fl, fo, ft, fr, f1, fs), (pl, po, pt, pr, p1, ps) = got["compiled", name], got["python", name]
            assert fs == ps or (fs is None and name == "surrogate")  # seqlm score --per token's text
            assert [row["text"] for row in f1] == [row["text"] for row in fr]  # one line per call: the same rows
            fr, pr = fr + f1, pr + p1
            np.testing.assert_allclose(fl, pl, rtol=0, atol=1e-12)
            assert np.array_equal(fo, po) and fo.dtype == po.dtype == bool
            np.testing.assert_allclose(ft[0], pt[0], rtol=0, atol=1e-12)
            assert ft[1:] == pt[1:]
            # seqlm.score's rows, made by the compiled reader (line_rows) or in Python: the same rows
            assert [list(r) for r in fr] == [list(r) for r in pr]
            for a, b in zip(fr, pr):
                assert {k: v for k, v in a.items() if k not in ("log_prob", "perplexity")} == \
                    {k: v for k, v in b.items() if k not in ("log_prob", "perplexity")}
                assert a["log_prob"] == pytest.approx(b["log_prob"], abs=1e-12)
                assert a["perplexity"] == pytest.approx(b["perplexity"], rel=1e-12)
    assert lowered.line_totals(["THE CAT"])[0] == lm.line_totals(["the cat"])[0]
    from seqlm.tasks.score import ROW_KEYS

    assert lm.line_rows(texts[:5], "sentence", ROW_KEYS) is not None  # the compiled rows were compared
    assert lm.line_rows(texts[0], "sentence", ROW_KEYS) is not None  # and the one-line rows
    for model in lowered, like(Tokenizer(lowercase=True)):  # its reader chosen before or by this call
        assert model.line_rows(["THE CAT"], "sentence", ROW_KEYS) is None  # a row shows the line as given
        assert model.line_rows("THE CAT", "sentence", ROW_KEYS) is None
    assert unicode.line_rows("naïve café", "sentence", ROW_KEYS) is None  # non-ASCII: read in Python
    # every Unicode space splits for the unicode rule: non-ASCII text is read by the tokenizer in Python
    assert unicode.line_totals(["the\u3000cat\x1csat"]) == unicode.line_totals(["the cat sat"])
    assert lm.line_totals(["the\u3000cat"]) != lm.line_totals(["the cat"])


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


@pytest.mark.parametrize("index_run", [0, 10**9], ids=["hash-indexed", "searched"])
def test_looking_ahead_changes_no_number(toy_lines, texts, monkeypatch, index_run):
    from seqlm.models.ngram import trie as trie_module
    from seqlm.text.vocab import BOS_ID, EOS_ID

    monkeypatch.setattr(trie_module, "INDEX_RUN", index_run)
    lm = train_ngram(toy_lines[0][:1500], order=4)
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    from seqlm.models.ngram.fastquery import Querier

    assert (lm.trie.index[1] is not None) == (index_run == 0)
    ahead, plain = (Querier(lm.trie, BOS_ID, EOS_ID, lookahead=look) for look in (True, False))
    reader = lm.reader(b" ")
    lines = texts[:80] + ["", "one", "the the the the"]
    for a, b in zip(ahead.text_logp(reader, lines), plain.text_logp(reader, lines)):
        assert np.array_equal(a, b)
    enc = [lm.vocab.encode(t.split()) for t in lines]
    ids, lengths = np.concatenate(enc), np.array([len(x) for x in enc])
    assert np.array_equal(ahead.score_flat(ids, lengths), plain.score_flat(ids, lengths))
    assert np.array_equal(plain.score_flat(ids, lengths), lm.score_stream(ids, lengths))


def test_scoring_in_threads_changes_no_number(toy_lines, texts):
    lm = train_ngram(toy_lines[0][:1500], order=4)
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    from seqlm.models.ngram import fastquery
    from seqlm.tasks.score import ROW_KEYS
    from seqlm.text.vocab import BOS_ID, EOS_ID

    one, three = (fastquery.Querier(lm.trie, BOS_ID, EOS_ID, threads=n) for n in (1, 3))
    reader = lm.reader(b" ")
    lines = [line for line in texts if line.strip()] * 3
    while sum(len(line) for line in lines) < 3 * fastquery.PART:
        lines += lines
    lines += ["zzqx naïve", "", "the"]  # unknown words, non-ASCII, an empty line: at the end, in the last part
    assert fastquery.Job(list(lines), 3, True, True).nparts == 3
    assert fastquery.Job(lines[:5], 3, True, True).nparts == 1  # short: not worth a thread
    for a, b in zip(one.text_logp(reader, lines), three.text_logp(reader, lines)):
        assert np.array_equal(a, b)
    assert one.text_totals(reader, lines) == three.text_totals(reader, lines)
    assert one.text_rows(reader, lines, ROW_KEYS, "word") == three.text_rows(reader, lines, ROW_KEYS, "word")
    assert len(one.text_rows(reader, lines, ROW_KEYS, "word")) == len(lines)
    # --per token's listing, each part written by its own thread: the parts joined in order
    listing = three.token_listing(reader, lines, lines)
    assert listing == one.token_listing(reader, lines, lines) and listing.count("\t</s>\n") == len(lines)
    shown = [f"line {i}" for i in range(len(lines))]  # what each line's header shows is the caller's
    assert [h.split("\t")[1] for h in three.token_listing(reader, lines, shown).splitlines()
            if not h.startswith("\t")] == shown
    assert fastquery._pool._max_workers >= 2
    # a process forked after the pool was made scores in threads of its own (the parent's are not in it)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os._exit(0 if three.text_totals(reader, lines) == one.text_totals(reader, lines) else 1)
    for _ in range(600):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("a forked child hung on its parent's thread pool")
    assert os.waitstatus_to_exitcode(status) == 0


def test_scoring_threads_come_from_the_environment(monkeypatch):
    from seqlm.io.runtime import cores, scoring_threads

    monkeypatch.setenv("SEQLM_THREADS", "1")
    assert scoring_threads() == 1
    monkeypatch.setenv("SEQLM_THREADS", "999")
    assert scoring_threads() == cores()
    monkeypatch.delenv("SEQLM_THREADS")
    assert scoring_threads() == cores()
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SEQLM_THREADS", bad)
        with pytest.raises(SeqlmError, match="SEQLM_THREADS"):
            scoring_threads()
