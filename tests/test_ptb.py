"""The PTB figures the issue pins, on the real data (a few seconds each)."""

import pytest

from seqlm.evaluate import evaluate
from seqlm.text.corpora import load_corpus
from seqlm.train import train

# KenLM lmplz on the same files, <unk> kept as a word, every line ending in </s> (82,430 tokens).
KENLM_TEST = {3: 148.28, 5: 141.19}


@pytest.fixture(scope="module")
def ptb(ptb_dir):
    return load_corpus("ptb", data_dir=str(ptb_dir))


@pytest.mark.parametrize("order", [3, 5])
def test_modified_kn_matches_kenlm(ptb, order):
    lm, summary = train(ptb, model="kn", order=order)
    r = evaluate(lm, ptb.split("test"))
    assert r["tokens"] == 82430 and r["oov"] == 0
    assert abs(r["perplexity"] / KENLM_TEST[order] - 1) < 0.005
    assert summary["valid"]["tokens"] == 73760
