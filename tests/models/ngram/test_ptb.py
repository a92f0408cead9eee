"""The PTB figures the issue pins, on the real data (a few seconds each)."""

import pytest

from seqlm.tasks.evaluate import evaluate
from seqlm.text.corpora import load_corpus
from seqlm.training.train import train

pytestmark = pytest.mark.slow  # the whole PTB

# KenLM lmplz on the same files, <unk> kept as a word, every line ending in </s> (82,430 tokens).
KENLM_TEST = {3: 148.28, 5: 141.19}


@pytest.fixture(scope="module")
def ptb(ptb_dir):
    return load_corpus("ptb", data_dir=str(ptb_dir))


@pytest.mark.parametrize("order", [3, 5])
def test_modified_kn_matches_kenlm(ptb, order):
    lm, summary = train(ptb, model="kn", order=order)
    r = evaluate(lm, ptb.split("test"))
    # PTB's own <unk> tokens count as OOV, as KenLM's query counts them
    assert r["tokens"] == 82430 and r["oov"] == sum(x.split().count("<unk>") for x in ptb.split("test"))
    assert abs(r["perplexity"] / KENLM_TEST[order] - 1) < 0.005
    assert summary["valid"]["tokens"] == 73760


def test_ptb_char_is_the_same_text_as_characters(ptb_dir):
    chars = load_corpus("ptb-char", data_dir=str(ptb_dir))
    lm, _ = train(chars, model="kn", order=3)
    r = evaluate(lm, chars.split("test"))
    words = load_corpus("ptb", data_dir=str(ptb_dir)).split("test")
    # every character of every line (single spaces kept as a symbol) plus one </s> per line
    assert r["tokens"] == sum(len(" ".join(x.split())) + 1 for x in words)
    assert r["unit"] == "character" and 2.0 < r["bits_per_character"] < 3.0  # 7-grams reach 1.48
