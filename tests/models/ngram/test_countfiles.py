"""Counts as a unit of work (models/ngram/countfiles.py, seqlm count, seqlm train --counts): counts of shards
merged equal the counts of their concatenated text, to the last count, so the model is the same bit for bit."""

import json

import numpy as np
import pytest

from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.ngram.countfiles import merge
from seqlm.models.ngram.counts import count_ngrams
from seqlm.text.tokenize import Tokenizer
from seqlm.text.vocab import Vocab
from seqlm.training.train import count, estimate_counts, train_ngram


def shards(tmp_path, parts, order=4, memory=None):
    folders = []
    for i, lines in enumerate(parts):
        (tmp_path / f"s{i}.txt").write_text("\n".join(lines) + "\n")
        count(tmp_path / f"s{i}.txt", order=order, out=tmp_path / f"c{i}", memory=memory)
        folders.append(tmp_path / f"c{i}")
    return folders


@pytest.mark.parametrize("min_count,max_size,memory", [(1, None, None), (2, None, "2M"), (1, 40, None)])
def test_merged_counts_are_the_counts_of_the_whole_text(tmp_path, toy_lines, min_count, max_size, memory):
    lines = toy_lines[0][:900] + ["a <unk> b", "<unk>"]
    parts = [lines[:100], lines[100:550], lines[550:]]
    vocab, merged, meta = merge(shards(tmp_path, parts, memory=memory), 3, min_count, max_size)
    tokenized = [line.split() for line in lines]
    whole = Vocab.build(tokenized, Tokenizer(), min_count, max_size)
    assert vocab.itos == whole.itos
    lengths = np.array([len(t) for t in tokenized])
    direct = count_ngrams(whole.encode([w for t in tokenized for w in t]), lengths, 3, len(whole))
    for a, b in zip(merged, direct):
        for field in ("keys", "counts", "suffix", "starts_bos"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert meta["tokens"] == int(lengths.sum()) and meta["lines"] == len(lines)


def test_a_model_from_counts_is_the_model_of_the_text(tmp_path, toy_lines):
    lines = toy_lines[0][:800]
    vocab, counts, _ = merge(shards(tmp_path, [lines[:300], lines[300:]], order=5), 4)
    from_counts = estimate_counts(vocab, counts, smoothing="mkn", prune=[0, 0, 1, 1])
    from_text = train_ngram(lines, order=4, prune=[0, 0, 1, 1])
    for k in range(4):
        assert np.array_equal(np.asarray(from_counts.tables.keys[k]), np.asarray(from_text.tables.keys[k]))
        assert np.array_equal(np.asarray(from_counts.tables.logprob[k]), np.asarray(from_text.tables.logprob[k]))
        assert np.array_equal(np.asarray(from_counts.tables.logbow[k]), np.asarray(from_text.tables.logbow[k]))


def test_the_commands(tmp_path, toy_lines, capsys):
    lines = toy_lines[0][:700]
    for i, part in enumerate((lines[:250], lines[250:])):
        (tmp_path / f"t{i}.txt").write_text("\n".join(part) + "\n")
    (tmp_path / "all.txt").write_text("\n".join(lines) + "\n")
    for i in range(2):
        assert main(["-q", "count", str(tmp_path / f"t{i}.txt"), "--order", "3", "--out", str(tmp_path / f"c{i}"),
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["ngrams"][0] > 3
    assert main(["-q", "train", "--counts", str(tmp_path / "c0"), str(tmp_path / "c1"), "--order", "3", "--out",
                 str(tmp_path / "m"), "--prune-entropy", "1e-6", "--valid", str(tmp_path / "t0.txt"), "--json"]) == 0
    by_counts = json.loads(capsys.readouterr().out)
    assert main(["-q", "train", "--train", str(tmp_path / "all.txt"), "--order", "3", "--out", str(tmp_path / "n"),
                 "--prune-entropy", "1e-6", "--json"]) == 0
    by_text = json.loads(capsys.readouterr().out)
    assert by_counts["model"]["ngrams"] == by_text["model"]["ngrams"] and "valid_perplexity" in by_counts["metrics"]
    a = json.loads((tmp_path / "m" / "config.json").read_text())
    assert a["counts"] == [str(tmp_path / "c0"), str(tmp_path / "c1")] and a["prune_history"] == "counts"
    for argv, message in (
            (["train", "--counts", str(tmp_path / "c0"), "--order", "4", "--out", str(tmp_path / "x")], "up to order 3"),
            (["train", "--counts", str(tmp_path / "t0.txt"), "--out", str(tmp_path / "x")], "not a counts folder"),
            (["train", "--counts", str(tmp_path / "c0"), "--train", str(tmp_path / "t0.txt"), "--out",
              str(tmp_path / "x")], "not both"),
            (["train", "--counts", str(tmp_path / "c0"), "--model", "lstm", "--out", str(tmp_path / "x")],
             "neural model trains on text"),
            (["count", str(tmp_path / "t0.txt"), "--order", "3", "--out", str(tmp_path / "c0")], "already exists")):
        assert main(["-q", *argv]) == 2, argv
        assert message in capsys.readouterr().err
    assert main(["-q", "count", str(tmp_path / "t1.txt"), "--order", "3", "--lowercase", "--out",
                 str(tmp_path / "lower")]) == 0
    capsys.readouterr()
    with pytest.raises(SeqlmError, match="reading text another way"):
        merge([tmp_path / "c0", tmp_path / "lower"], 3)
