"""seqlm models inside pyctcdecode's CTC beam search (asr.py), on synthetic emissions (PTB-like sentences as
characters, frames with confusions and noise): an n-gram model gives the best beams pyctcdecode + the kenlm
module give on the same ARPA file; the word-by-word fusion any model uses gives the same beams on that
n-gram model; an LM lowers the word error rate; a neural model and a mixture decode."""

import sys

import numpy as np
import pytest

import seqlm
from seqlm import asr
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.training.train import train_ngram

pyctcdecode = pytest.importorskip("pyctcdecode")


@pytest.fixture(scope="module")
def data(toy_lines):
    lm = train_ngram(toy_lines[0][:2000], order=4)
    rng = np.random.default_rng(0)
    texts = [asr.speakable(line) for line in toy_lines[2][:40]]
    return lm, texts, [asr.synthetic_emissions(t, rng, noise=0.1) for t in texts]


def wer(decoder, texts, emissions) -> float:
    errors = [asr.word_errors(t, decoder.decode(e, beam_width=20)) for t, e in zip(texts, emissions)]
    return sum(e for e, _ in errors) / sum(n for _, n in errors)


def test_the_best_beams_equal_pyctcdecode_with_kenlm(data, tmp_path):
    kenlm = pytest.importorskip("kenlm")  # noqa: F841 (pyctcdecode loads the ARPA file with it)
    lm, texts, emissions = data
    seqlm.export(lm, tmp_path / "lm.arpa")
    ours = asr.build_ctcdecoder(asr.LABELS, lm)
    theirs = pyctcdecode.build_ctcdecoder(asr.LABELS, str(tmp_path / "lm.arpa"),
                                          unigrams=[w for w in lm.vocab.itos if not w.startswith("<")])
    for e in emissions:
        assert ours.decode(e, beam_width=20) == theirs.decode(e, beam_width=20)


def test_word_by_word_fusion_equals_the_ngram_path(data):
    from pyctcdecode.alphabet import Alphabet

    lm, texts, emissions = data
    by_fusion = pyctcdecode.BeamSearchDecoderCTC(Alphabet.build_alphabet(asr.LABELS),
                                                 asr.language_model(lm, word_fusion=True))
    by_ngram = asr.build_ctcdecoder(asr.LABELS, lm)
    for e in emissions:
        assert by_fusion.decode(e, beam_width=20) == by_ngram.decode(e, beam_width=20)


def test_a_language_model_lowers_the_word_error_rate(data):
    lm, texts, emissions = data
    without, with_lm = wer(asr.build_ctcdecoder(asr.LABELS), texts, emissions), \
        wer(asr.build_ctcdecoder(asr.LABELS, lm), texts, emissions)
    assert with_lm < 0.5 * without and with_lm < 0.2


def test_a_neural_model_and_a_mixture_decode(data, kn_and_lstm, small_files):
    _, texts, emissions = data
    out = kn_and_lstm / "mix"
    assert main(["-q", "mix", str(kn_and_lstm / "kn"), str(kn_and_lstm / "lstm"), "--valid",
                 str(small_files["valid"]), "--out", str(out)]) == 0
    without = wer(asr.build_ctcdecoder(asr.LABELS), texts[:15], emissions[:15])
    for model in (kn_and_lstm / "lstm", out):
        assert wer(asr.build_ctcdecoder(asr.LABELS, model), texts[:15], emissions[:15]) < without


def test_emissions_and_word_errors():
    rng = np.random.default_rng(3)
    e = asr.synthetic_emissions("The cat, sat!", rng)
    assert e.shape[1] == len(asr.LABELS) and np.allclose(np.exp(e).sum(axis=1), 1, atol=1e-5)
    again = asr.synthetic_emissions("The cat, sat!", np.random.default_rng(3))
    assert np.array_equal(e, again) and asr.speakable("The cat, sat!") == "the cat sat"
    assert asr.word_errors("a b c d", "a x c") == (2, 4)
    assert asr.word_errors("a b", "a b") == (0, 2) and asr.word_errors("", "a") == (1, 0)


def test_misuse_is_one_line(data, monkeypatch):
    with pytest.raises(TypeError, match="seqlm model"):
        asr.language_model(3)
    monkeypatch.setitem(sys.modules, "pyctcdecode", None)
    with pytest.raises(SeqlmError, match="pip install --no-deps pyctcdecode"):
        asr.build_ctcdecoder(asr.LABELS, data[0])
