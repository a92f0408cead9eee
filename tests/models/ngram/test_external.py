"""Bounded-memory estimation (ngram/external.py, text/bulk.py): the model a file gives under a memory cap
small enough to spill at every stage is the in-memory model, bit for bit."""

import json
import os

import numpy as np
import pytest

from seqlm.cli import main
from seqlm.models.ngram.external import estimate_file
from seqlm.models.ngram.model import NGramLM
from seqlm.text.corpora import read_lines
from seqlm.training.train import train_ngram


def assert_same_model(ref: NGramLM, lm: NGramLM) -> None:
    assert ref.vocab.itos == lm.vocab.itos
    a, b = ref.tables, lm.tables
    assert a.sizes() == b.sizes() and a.unseen == b.unseen and a.info == b.info
    for name in ("keys", "logprob", "logbow"):
        for k, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name)), start=1):
            assert x.dtype == y.dtype and np.array_equal(x, y), f"{name}{k} differs"
    assert ref.trie.layout == lm.trie.layout
    for name in ("data", "base", "centers"):
        for k, (x, y) in enumerate(zip(getattr(ref.trie, name), getattr(lm.trie, name)), start=1):
            assert (x is None and y is None) or np.array_equal(x, y), f"trie {name}{k} differs"


def external(path, tmp_path, name="m", **kw) -> tuple[NGramLM, dict]:
    out = tmp_path / name
    out.mkdir()
    config = estimate_file(path, out, **kw)
    return NGramLM.load(out, config), config


@pytest.mark.parametrize("order,smoothing,prune", [
    (5, "mkn", None), (4, "mkn", [0, 1, 1]), (3, "ikn", None), (3, "wb", [0, 0, 2]), (3, "mle", [0, 1]),
    (3, "add-k", None), (1, "mkn", None), (2, "mkn", None)])
def test_spilling_estimate_equals_in_memory(tmp_path, toy_files, order, smoothing, prune):
    path = toy_files["train"]
    k = 0.5 if smoothing == "add-k" else 1.0
    ref = train_ngram(read_lines(path), smoothing=smoothing, order=order, prune=prune, k=k)
    lm, config = external(path, tmp_path, order=order, smoothing=smoothing, prune=prune, k=k, memory="48K")
    assert_same_model(ref, lm)
    assert config["train_tokens"] == ref.config["train_tokens"] and config["prune"] == (prune or [])
    spilled = config["external"]
    assert len(spilled["buckets"]) == order - 1 and all(b > 5 for b in spilled["buckets"])
    assert order == 1 or spilled["chunks"] > 5


def test_estimate_runs_cut_inside_long_contexts(tmp_path, monkeypatch):
    # one context followed by many words: runs of 1,024 n-grams must not split it

    words = [f"w{i}" for i in range(3000)]
    text = "\n".join(["the " + w for w in words] + ["a b c d"] * 50) + "\n"
    path = tmp_path / "t.txt"
    path.write_text(text)
    ref = train_ngram(read_lines(path), order=3)
    lm, _ = external(path, tmp_path, order=3, memory="16K")
    assert_same_model(ref, lm)


EDGE = {
    "one_long_line": " ".join(f"w{i % 300}" for i in range(6000)) + "\n",  # a line longer than a chunk
    "single_words": "\n".join(f"w{i % 50}" for i in range(2000)) + "\n",  # no n-gram above order 2
    "one_token": "hello\n",
}


@pytest.mark.parametrize("case", EDGE)
@pytest.mark.parametrize("order,smoothing,prune", [(3, "mkn", None), (6, "wb", [0, 1]), (2, "add-k", None)])
def test_spilling_edge_cases(tmp_path, case, order, smoothing, prune):
    path = tmp_path / "t.txt"
    path.write_text(EDGE[case])
    ref = train_ngram(read_lines(path), order=order, smoothing=smoothing, prune=prune)
    lm, _ = external(path, tmp_path, order=order, smoothing=smoothing, prune=prune, memory="8K")
    assert_same_model(ref, lm)


def test_ptb_5gram_spilling_equals_in_memory(tmp_path, ptb_dir):
    path = ptb_dir / "ptb" / "ptb.valid.txt"
    ref = train_ngram(read_lines(path), order=5)
    lm, _ = external(path, tmp_path, order=5, memory="1M")
    assert_same_model(ref, lm)












def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_memory_and_temp_dir(tmp_path, toy_files, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "kn"
    code, o, e = run(capsys, "train", "--train", toy_files["train"], "--valid", toy_files["valid"], "--order", 4,
                     "--memory", "64K", "--temp-dir", scratch, "--out", out, "--json")
    assert code == 0, e
    assert list(scratch.iterdir()) == []  # scratch files removed
    ref = train_ngram(read_lines(toy_files["train"]), order=4)
    lm = NGramLM.load(out, json.loads((out / "config.json").read_text()))
    assert_same_model(ref, lm)
    # without a model folder (the Python API): the model is used and nothing is left behind
    from seqlm.training.train import train

    lm2, summary = train(train=toy_files["train"], valid=toy_files["valid"], order=4, temp_dir=scratch,
                         arpa=tmp_path / "m.arpa")
    assert summary["valid"]["perplexity"] > 1 and list(scratch.iterdir()) == []
    assert_same_model(ref, lm2)


@pytest.mark.parametrize("flags,message", [
    (["--memory", "lots"], "--memory"), (["--temp-dir", "/nonexistent/x"], "--temp-dir")])
def test_cli_bad_memory_options(tmp_path, toy_files, capsys, flags, message):
    out = tmp_path / "kn"
    code, o, e = run(capsys, "train", "--train", toy_files["train"], "--out", out, *flags)
    assert code != 0 and message in e and len(e.strip().splitlines()) == 1 and not out.exists()


def test_failed_estimate_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n" * 1000 + b"\xff\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "kn"
    code, o, e = run(capsys, "train", "--train", bad, "--temp-dir", scratch, "--memory", "4K", "--out", out)
    assert code != 0 and "not UTF-8" in e
    assert not out.exists() and list(scratch.iterdir()) == [] and sorted(os.listdir(tmp_path)) == ["bad.txt", "scratch"]


