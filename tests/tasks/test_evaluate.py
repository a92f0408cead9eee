"""Evaluating a file (tasks/evaluate.evaluate_file: read a block at a time, an n-gram model reading the text
itself) gives evaluate's figures on the file's lines, for n-gram and neural models, and the score command's
corpus totals are the same."""

import numpy as np
import pytest

from seqlm.models.ngram.model import NGramLM
from seqlm.tasks.evaluate import evaluate, evaluate_file
from seqlm.tasks.score import score
from seqlm.text.corpora import read_lines
from seqlm.training.train import train_ngram


@pytest.fixture(scope="module")
def text_file(tmp_path_factory, toy_lines):
    path = tmp_path_factory.mktemp("eval") / "t.txt"
    path.write_text("\n".join(toy_lines[1][:200] + ["", "zzqx blorf the", "  the\tcat "] + toy_lines[2][:50]) + "\n")
    return path


@pytest.mark.parametrize("mode", ["sentence", "stream"])
def test_a_file_evaluates_as_its_lines(text_file, toy_lines, mode, lstm):
    ngram = train_ngram(toy_lines[0], order=4)
    for model in (ngram, lstm[0]):
        a, b = evaluate_file(model, text_file, mode=mode), evaluate(model, read_lines(text_file), mode=mode)
        for key in ("tokens", "oov", "lines", "mode", "unit"):
            assert a[key] == b[key], key
        assert a["log_prob"] == pytest.approx(b["log_prob"], rel=1e-9)
        assert a["perplexity_without_oov"] == pytest.approx(b["perplexity_without_oov"], rel=1e-9)


@pytest.mark.parametrize("content,message", [(b"", "is empty"), (b"\n \n", "is empty"), (b"a\n\xff\n", "not UTF-8"),
                                             (b"ok\x00\n", "NUL")])
def test_evaluating_bad_files(tmp_path, toy_lines, content, message):
    from seqlm.errors import SeqlmError

    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(SeqlmError, match=message):
        evaluate_file(train_ngram(toy_lines[0][:100], order=2), path)


def test_flat_scoring_equals_lines_and_the_reference(toy_lines):
    lm = train_ngram(toy_lines[0], order=4)
    enc = [lm.vocab.encode(line.split()) for line in toy_lines[1][:100]]
    ids, lengths = np.concatenate(enc), np.array([len(x) for x in enc])
    flat, _ = lm.score_flat(ids, lengths)
    assert np.array_equal(flat, lm.score_lines(enc)[0])
    assert np.array_equal(flat, lm.score_stream(ids, lengths))
    default, _ = super(NGramLM, lm).score_flat(ids, lengths)  # the interface's: line by line
    assert np.array_equal(flat, default)


def test_score_corpus_of_a_file_is_evaluate(text_file, toy_lines, capsys):
    from seqlm.cli import main

    lm = train_ngram(toy_lines[0], order=3)
    folder = text_file.parent / "kn3"
    lm.save(folder)
    assert main(["score", str(folder), "--file", str(text_file), "--per", "corpus", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)
    ref = score(lm, read_lines(text_file), per="corpus")[0]
    assert row["tokens"] == ref["tokens"] and row["oov"] == ref["oov"]
    assert row["log_prob"] == pytest.approx(ref["log_prob"], rel=1e-12)


def test_one_rule_for_newlines(toy_lines, text_file):
    # a text given as one string is cut into lines as a file is; a line in a list must not hold a newline
    from seqlm.errors import SeqlmError

    lm = train_ngram(toy_lines[0], order=3)
    text = text_file.read_text()
    assert evaluate(lm, text)["tokens"] == evaluate_file(lm, text_file)["tokens"] == evaluate(lm, read_lines(text_file))["tokens"]
    assert len(score(lm, "the cat\n\nhe said\n")) == 2
    for call in (evaluate, score):
        with pytest.raises(SeqlmError, match="line 2 holds a newline"):
            call(lm, ["the cat", "he\nsaid"])
        with pytest.raises(TypeError, match="lines of text \\(str\\), not int"):
            call(lm, ["the cat", 3])
    with pytest.raises(SeqlmError, match="line 6 holds a newline"):  # found in a later block, numbered in all
        evaluate(lm, ["the cat"] * 5 + ["he\nsaid"], batch_lines=2)
    rows = score(lm, lines := ["the cat", "he said"])
    assert [r["text"] for r in rows] == lines == ["the cat", "he said"]  # the caller's list is left as it was


def test_one_scale_whatever_the_unit(toy_lines):
    from seqlm.text.tokenize import Tokenizer

    text = toy_lines[1][:80] + ["naïve café\u00a0here", "tab\tseparated  words"]
    word = train_ngram(toy_lines[0], order=3)
    char = train_ngram(toy_lines[0], order=5, tokenizer=Tokenizer("char"))
    a, b = evaluate(word, text), evaluate(char, text)
    assert a["bytes"] == b["bytes"] == sum(len(line.encode()) + 1 for line in text)
    assert a["words"] == b["words"] == sum(len(line.split()) + 1 for line in text)
    for r in (a, b):
        import math

        assert r["bits_per_byte"] == pytest.approx(-r["log_prob"] / r["bytes"] / math.log(2))
        assert r["word_perplexity"] == pytest.approx(math.exp(-r["log_prob"] / r["words"]))
    assert a["word_perplexity"] == pytest.approx(a["perplexity"], rel=0.05)  # nearly its tokens (one \u00a0 line)
