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


def test_a_block_read_whole_equals_its_lines_read_in_python(tmp_path, toy_lines, monkeypatch):
    # the compiled reader takes each ASCII block of a file whole (NGramLM.block_sums): the same figures as
    # the file's lines cut in Python, for every tokenizer rule it reads, a block that is not ASCII among them
    from seqlm.models.ngram import fastquery
    from seqlm.text import corpora
    from seqlm.text.tokenize import Tokenizer
    from seqlm.text.vocab import BOS_ID, EOS_ID, Vocab

    lm = train_ngram(toy_lines[0], order=4)
    if lm.querier() is None:
        pytest.skip("the compiled query loop is not built here")
    odd = ["the cat\r", "", "   ", "\x1c\x1d", " a\x1cb  c\t d \r", "zzqx the", "\x0b\x0c", "THE Cat sat"]
    path = tmp_path / "odd.txt"
    path.write_bytes(("\n".join(toy_lines[1][:300] + odd + ["naïve café"] + toy_lines[2][:300] + odd)
                      + "\nno newline at the end").encode())
    blocks = corpora.line_blocks
    monkeypatch.setattr(corpora, "line_blocks", lambda p, block=1 << 20: blocks(p, 2048))  # many blocks, one not ASCII

    def like(tokenizer):
        return NGramLM(Vocab(lm.vocab.itos, tokenizer), None, trie=lm.trie)

    for model in (lm, like(Tokenizer(lowercase=True)), like(Tokenizer(whitespace="unicode"))):
        assert model.block_sums(b"the cat\n") is not None  # the block path is taken
        a, b = evaluate_file(model, path), evaluate(model, read_lines(path))
        for key in ("tokens", "oov", "lines", "bytes", "words"):
            assert a[key] == b[key], key
        for key in ("log_prob", "perplexity_without_oov", "perplexity"):
            assert a[key] == pytest.approx(b[key], rel=1e-12), key
    # parts of about equal bytes, each ending at a line's end; the same sums in one thread or three
    data = path.read_bytes().replace("naïve café".encode(), b"naive cafe") * 40
    job = fastquery.block_job(data, 3)
    assert job.nparts == 3 and len(data) > 3 * fastquery.PART
    one, three = (fastquery.Querier(lm.trie, BOS_ID, EOS_ID, threads=n) for n in (1, 3))
    reader = lm._compiled_text([])[1]
    x, y = one.block_sums(reader, data), three.block_sums(reader, data)
    assert {k: v for k, v in x.items() if "log_prob" not in k} == {k: v for k, v in y.items() if "log_prob" not in k}
    assert x["log_prob"] == pytest.approx(y["log_prob"], rel=1e-12)
    assert x["lines"] == len([line for line in data.decode().split("\n") if line.strip()])
