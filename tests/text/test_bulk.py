"""The bulk tokenizer (text/bulk.py): a file tokenized in blocks of bytes gives exactly the Python tokenizer's
tokens and vocabulary, on a text full of edge cases, at every block size; bad files are one-line errors."""


import numpy as np
import pytest

from seqlm.errors import SeqlmError
from seqlm.models.ngram.counts import pad_stream
from seqlm.text.bulk import tokenize_file
from seqlm.text.corpora import read_lines
from seqlm.text.tokenize import Tokenizer
from seqlm.training.train import build_vocab

TRICKY = ("\ufeffHello  World\r\nfoo\x1cbar\u00a0baz\u3000Qux\n\n   \n\tÉcole école ÉCOLE\x0b x\n"
          "İstanbul <unk> z\x85y\u2028w\nlast line without newline")


@pytest.mark.parametrize("tokenizer", [Tokenizer(), Tokenizer(lowercase=True), Tokenizer(whitespace="unicode"),
                                       Tokenizer("char"), Tokenizer("char", True)], ids=str)
@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_bulk_tokenization_is_the_tokenizer(tmp_path, tokenizer, block):
    path = tmp_path / "t.txt"
    path.write_text(TRICKY, encoding="utf-8")
    tf = tokenize_file(path, tmp_path, tokenizer, block=block)
    vocab, tokenized = build_vocab(read_lines(path), tokenizer)
    lengths = np.array([len(t) for t in tokenized])
    toks, _ = pad_stream(vocab.encode([w for t in tokenized for w in t]), lengths)
    assert tf.vocab.itos == vocab.itos and tf.tokens == lengths.sum() and tf.lines == len(lengths)
    assert np.array_equal(np.fromfile(tf.ids, dtype=np.int32), toks)


def test_bulk_vocabulary_options(tmp_path, toy_files):
    lines = read_lines(toy_files["train"])
    for min_count, max_size in ((3, None), (1, 50), (2, 40)):
        tf = tokenize_file(toy_files["train"], tmp_path, Tokenizer(), min_count, max_size, block=4096)
        vocab, _ = build_vocab(lines, Tokenizer(), min_count, max_size)
        assert tf.vocab.itos == vocab.itos
    given, _ = build_vocab(lines[:100], Tokenizer())
    tf = tokenize_file(toy_files["train"], tmp_path, Tokenizer(), vocab=given)
    assert tf.vocab is given and (np.fromfile(tf.ids, dtype=np.int32) == 0).any()  # unknown words -> <unk>


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"), (b"\n  \n", "is empty"), (b"ok\nbad \xff here\n", "not UTF-8"),
    (b"ok\x00\n", "NUL"), (b"a <s> b\n", "reserved token <s>")])
def test_bulk_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(SeqlmError, match=message):
        tokenize_file(path, tmp_path, Tokenizer())




def test_the_whitespace_rules():
    line = "a b\tc\rd\u00a0e\x0bf\u3000g\x1ch"
    assert Tokenizer().tokenize(line) == ["a", "b", "c", "d\u00a0e\x0bf\u3000g\x1ch"]  # lmplz's
    assert Tokenizer(whitespace="unicode").tokenize(line) == list("abcdefgh")  # str.split's
    assert Tokenizer().tokenize("plain ascii  words") == ["plain", "ascii", "words"]
    assert Tokenizer().tokenize("nul\x00splits  ascii") == ["nul", "splits", "ascii"]  # lmplz's, not str.split's
    # a model saved before the rule existed reads text as it was trained: every Unicode space splits
    assert Tokenizer.from_dict({"level": "word", "lowercase": False}).whitespace == "unicode"
    assert Tokenizer.from_dict(Tokenizer().to_dict()) == Tokenizer()
    with pytest.raises(SeqlmError, match="whitespace rule"):
        Tokenizer(whitespace="ascii")


def test_a_line_far_longer_than_a_block_is_read_whole_and_named(tmp_path, monkeypatch, caplog):
    import logging

    from seqlm.text import corpora

    monkeypatch.setattr(corpora, "LONG_LINE", 1000)
    monkeypatch.setattr(logging.getLogger("seqlm"), "propagate", True)  # seqlm's own handler: not caplog's
    path = tmp_path / "long.txt"
    long_line = " ".join(f"w{i}" for i in range(2000))
    path.write_text("a b\n" + long_line + "\nc d\n" + long_line)
    with caplog.at_level(logging.WARNING, logger="seqlm"):
        blocks = list(corpora.line_blocks(path, block=64))
    assert b"".join(b for _, b in blocks) == path.read_bytes()
    assert all(b.endswith(b"\n") for _, b in blocks[:-1]) and [o for o, _ in blocks][1] > 0
    assert caplog.text.count("is read whole") == 1 and "at byte 4 " in caplog.text
    assert read_lines(path) == ["a b", long_line, "c d", long_line]
