import math

import numpy as np
import pytest

from seqlm.errors import SeqlmError
from seqlm.models.ngram.arpa import write_arpa
from seqlm.models.ngram.arpa_reader import read_arpa
from seqlm.tasks.evaluate import evaluate
from seqlm.training.train import train_ngram


@pytest.mark.parametrize("suffix", [".arpa", ".arpa.gz"])
@pytest.mark.parametrize("smoothing", ["mkn", "ikn", "mle"])
def test_round_trip(tmp_path, toy_lines, suffix, smoothing):
    lm = train_ngram(toy_lines[0], smoothing=smoothing, order=4)
    path = tmp_path / f"m{suffix}"
    write_arpa(lm, path)
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = read_arpa(path)
    assert back.tables.sizes() == lm.tables.sizes()
    lines = toy_lines[1] if smoothing != "mle" else toy_lines[0][:200]
    a, b = evaluate(lm, lines), evaluate(back, lines)
    assert a["tokens"] == b["tokens"]
    assert b["log_prob"] == pytest.approx(a["log_prob"], rel=1e-6)
    for state in (lm.start(), lm.advance(lm.start(), lm.vocab.stoi["the"])):
        words = [lm.vocab.itos[i] for i in state]
        s2 = tuple(back.vocab.stoi[w] for w in words)
        p1 = np.exp(lm.next_logprobs(state))
        p2 = np.exp(back.next_logprobs(s2))
        order = [back.vocab.stoi[w] for w in lm.vocab.itos]
        np.testing.assert_allclose(p2[order], p1, rtol=1e-5, atol=1e-12)


def test_add_k_refuses_arpa(tmp_path, toy_lines):
    lm = train_ngram(toy_lines[0], smoothing="add-k", order=2, k=0.1)
    with pytest.raises(SeqlmError, match="cannot be written as ARPA"):
        write_arpa(lm, tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()
    write_arpa(train_ngram(toy_lines[0], smoothing="add-k", order=1), tmp_path / "u.arpa")


GOOD = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.3
-0.5\t</s>
-0.6\tx\t-0.2

\\2-grams:
-0.1\t<s> x
-0.2\tx </s>

\\end\\
"""


def test_reads_handwritten_file_and_backs_off(tmp_path):
    p = tmp_path / "g.arpa"
    p.write_text(GOOD)
    lm = read_arpa(p)
    lp, _ = lm.score_lines([lm.vocab.encode(["x", "x"])])
    ln10 = math.log(10)
    # p(x|<s>) stored; p(x|x) = bow(x) * p(x); p(</s>|x) stored
    assert lp == pytest.approx(np.array([-0.1, -0.2 - 0.6, -0.2]) * ln10)


BAD = {
    "no header": "hello\n",
    "truncated": GOOD[: GOOD.index("\\2-grams:") + 20],
    "count mismatch": GOOD.replace("ngram 2=2", "ngram 2=3"),
    "bad number": GOOD.replace("-0.1\t<s> x", "abc\t<s> x"),
    "wrong fields": GOOD.replace("-0.1\t<s> x", "-0.1\t<s> x y z w"),
    "unknown word": GOOD.replace("-0.1\t<s> x", "-0.1\t<s> zz"),
    "missing context": GOOD.replace("ngram 2=2", "ngram 2=2\nngram 3=1") .replace(
        "\\end\\", "\\3-grams:\n-0.1\tx x x\n\n\\end\\"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_arpa_is_one_clear_error(tmp_path, case):
    p = tmp_path / "bad.arpa"
    p.write_text(BAD[case])
    with pytest.raises(SeqlmError) as e:
        read_arpa(p)
    assert "\n" not in str(e.value)


def test_truncated_gzip(tmp_path, toy_lines):
    lm = train_ngram(toy_lines[0], order=2)
    p = tmp_path / "m.arpa.gz"
    write_arpa(lm, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SeqlmError, match="damaged gzip"):
        read_arpa(p)


def _kenlm_check(kenlm, lm, arpa, lines):
    ken = kenlm.Model(str(arpa))
    ours = read_arpa(arpa)
    enc = [ours.vocab.encode(line.split()) for line in lines]
    flat, _ = ours.score_lines(enc)
    logps = np.split(flat, np.cumsum([len(x) + 1 for x in enc])[:-1])
    for line, lp in zip(lines, logps):
        assert lp.sum() / math.log(10) == pytest.approx(ken.score(line, bos=True, eos=True), abs=1e-4)
    # the native model (not read back) agrees too, up to the rounding of the ARPA file
    nat, _ = lm.score_lines([lm.vocab.encode(line.split()) for line in lines])
    nat = np.split(nat, np.cumsum([len(x) + 1 for x in enc])[:-1])
    for a, b in zip(nat, logps):
        assert a.sum() == pytest.approx(b.sum(), abs=1e-4)


def test_kenlm_scores_our_arpa_like_we_do(tmp_path, toy_lines):
    kenlm = pytest.importorskip("kenlm")
    lm = train_ngram(toy_lines[0], smoothing="mkn", order=4)
    arpa = tmp_path / "toy.arpa"
    write_arpa(lm, arpa)
    _kenlm_check(kenlm, lm, arpa, toy_lines[2][:200] + ["the zebra sleeps", "cat cat cat"])


def test_kenlm_on_ptb_slice(tmp_path, ptb_dir):
    kenlm = pytest.importorskip("kenlm")
    from seqlm.text.corpora import read_lines

    train = read_lines(ptb_dir / "ptb" / "ptb.train.txt")[:8000]
    test = read_lines(ptb_dir / "ptb" / "ptb.test.txt")[:300]
    lm = train_ngram(train, smoothing="mkn", order=5)
    arpa = tmp_path / "ptb.arpa.gz"
    write_arpa(lm, arpa)
    _kenlm_check(kenlm, lm, arpa, test)


def test_large_models_are_written_from_the_keys_alone(tmp_path, toy_lines, monkeypatch):
    # past KEEP_NAMES the words of an order come from the keys (bounded memory): the same bytes
    import seqlm.models.ngram.arpa as arpa

    lm = train_ngram(toy_lines[0], order=5, prune=[0, 0, 1])
    write_arpa(lm, tmp_path / "kept.arpa")
    monkeypatch.setattr(arpa, "KEEP_NAMES", 0)
    write_arpa(lm, tmp_path / "keys.arpa")
    assert (tmp_path / "kept.arpa").read_bytes() == (tmp_path / "keys.arpa").read_bytes()
