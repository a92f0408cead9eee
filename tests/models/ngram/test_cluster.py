"""Estimation on a cluster (ngram/cluster.py): on a Dask LocalCluster of worker processes, under memory caps that
cut the text into many blocks and every order into many buckets, the model is the in-memory one bit for bit;
a worker killed mid-run is replaced and the model is still the same; one that dies every time fails the run
with one line and no model."""

import logging
import os
import sys

import pytest

from models.ngram.test_external import EDGE, assert_same_model, external
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.ngram.cluster_engine import FAULT, Engine
from seqlm.text.corpora import read_lines
from seqlm.text.tokenize import Tokenizer
from seqlm.training.train import train_ngram

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler():
    """A running scheduler with two worker processes, reached as tcp://HOST:PORT (the path of a real cluster).
    Its nannies set OMP_NUM_THREADS=1 and the like in this process: put back for the tests after these."""
    environ = dict(os.environ)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                                       dashboard_address=None, silence_logs=logging.CRITICAL)
    yield cluster.scheduler_address
    cluster.close()
    os.environ.clear()
    os.environ.update(environ)


CASES = [(1, "mkn", None, {}), (2, "mkn", None, {}), (3, "ikn", None, {}), (4, "mkn", [0, 1, 1], {}),
         (5, "mkn", None, {}), (6, "wb", [0, 1], {}), (3, "mle", [0, 1], {}), (3, "add-k", None, {"k": 0.5}),
         (4, "mkn", None, {"prune_entropy": 1e-6}), (3, "wb", None, {"max_ngrams": 3000}),
         (3, "mkn", None, {"config": {"quantize": 8}})]


@pytest.mark.parametrize("order,smoothing,prune,extra", CASES)
def test_cluster_estimate_equals_in_memory(tmp_path, toy_files, scheduler, order, smoothing, prune, extra):
    path = toy_files["train"]
    ref_extra = {k: v for k, v in extra.items() if k != "config"}
    if "config" in extra:
        ref_extra["quantize"] = extra["config"]["quantize"]
    ref = train_ngram(read_lines(path), smoothing=smoothing, order=order, prune=prune, **ref_extra)
    lm, config = external(path, tmp_path, order=order, smoothing=smoothing, prune=prune, memory="400K",
                          cluster=scheduler, **extra)
    assert_same_model(ref, lm)
    record = config["cluster"]
    assert record["workers"] == 2 and record["blocks"] > 5
    assert len(record["buckets"]) == order - 1 and all(b > 5 for b in record["buckets"])
    assert "external" not in config and config["train_tokens"] == ref.config["train_tokens"]


@pytest.mark.parametrize("case", EDGE)
def test_cluster_edge_cases(tmp_path, scheduler, case):
    path = tmp_path / "t.txt"
    path.write_text(EDGE[case])
    for order, smoothing, prune in [(3, "mkn", None), (6, "wb", [0, 1])]:
        ref = train_ngram(read_lines(path), order=order, smoothing=smoothing, prune=prune)
        lm, _ = external(path, tmp_path, name=f"m{order}", order=order, smoothing=smoothing, prune=prune,
                         memory="64K", cluster=scheduler)
        assert_same_model(ref, lm)


def test_cluster_characters_and_blank_lines(tmp_path, toy_files, scheduler):
    path = tmp_path / "t.txt"
    path.write_text("\ufeff" + "\n\n".join(toy_files["train"].read_text().splitlines()[:300]) + "\n\n")
    tok = Tokenizer("char")
    ref = train_ngram(read_lines(path), order=5, tokenizer=tok)
    lm, _ = external(path, tmp_path, order=5, tokenizer=tok, memory="128K", cluster=scheduler)
    assert_same_model(ref, lm)


def test_cluster_from_the_command_line_with_local_workers(tmp_path, toy_files, capsys):
    """``--cluster local:2`` starts its own workers; the model folder is the single-process one file for file."""
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["train", "--train", str(toy_files["train"]), "--model", "kn", "--order", "4", "--memory", "800K"]
    assert main(common + ["--cluster", "local:2", "--out", str(a)]) == 0
    assert main(common + ["--out", str(b)]) == 0
    for f in sorted((b / "trie").iterdir()):
        assert f.read_bytes() == (a / "trie" / f.name).read_bytes(), f.name
    assert (a / "vocab.json").read_bytes() == (b / "vocab.json").read_bytes()


def test_a_worker_killed_once_is_replaced(tmp_path, toy_files, monkeypatch):
    monkeypatch.setenv(FAULT, "merge3:2")  # the worker merging bucket 2 of the trigrams dies, once
    ref = train_ngram(read_lines(toy_files["train"]), order=4)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    environ = dict(os.environ)
    lm, config = external(toy_files["train"], tmp_path, order=4, memory="800K", cluster="local:2", temp_dir=scratch)
    assert_same_model(ref, lm)
    assert [p.name for p in scratch.iterdir()] == ["seqlm-fault-merge3-2"]  # it did die, and was replaced
    # the workers' environment (OMP_NUM_THREADS=1, ...) was set here to start them, and to start the new one:
    # this process's is as it was
    assert dict(os.environ) == environ
    assert config["cluster"]["workers"] == 2


def test_a_worker_dying_every_time_fails_with_one_line_and_no_model(tmp_path, toy_files, monkeypatch, capsys):
    monkeypatch.setenv(FAULT, "pack:0:always")  # the worker packing the trie dies, every time
    out, scratch = tmp_path / "m", tmp_path / "scratch"
    scratch.mkdir()
    rc = main(["train", "--train", str(toy_files["train"]), "--model", "kn", "--order", "3", "--memory", "800K",
               "--cluster", "local:2", "--temp-dir", str(scratch), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not out.exists()
    assert err[-1].startswith("seqlm: error: --cluster local:2: a worker died running pack, 4 times on 4 workers; no model was written")
    assert "Traceback" not in "\n".join(err)
    assert [p.name for p in scratch.iterdir()] == ["seqlm-fault-pack-0"]  # the scratch folder is gone


@pytest.mark.parametrize("flags,message", [
    (["--cluster", "here"], "give local:N (N worker processes here) or tcp://HOST:PORT"),
    (["--cluster", "local:0"], "give between 1 and 256 local workers"),
    (["--cluster", "tcp://127.0.0.1:9"], "no dask scheduler answers there"),
    (["--cluster", "local:2", "--model", "lstm"], "model.cluster is for n-gram models"),
])
def test_cluster_bad_options(tmp_path, toy_files, capsys, flags, message):
    args = ["train", "--train", str(toy_files["train"]), "--out", str(tmp_path / "m")]
    if "--model" not in flags:
        args += ["--model", "kn"]
    assert main(args + flags) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqlm: error:") and message in err and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_cluster_needs_dask_and_shared_storage(tmp_path, toy_files, scheduler, monkeypatch):
    with Engine(scheduler, "1M") as engine:
        with pytest.raises(SeqlmError, match="no/such/folder: give --temp-dir and --out on storage"):
            engine.check_storage(tmp_path, tmp_path / "no" / "such" / "folder")
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SeqlmError, match=r"--cluster needs Dask distributed: pip install 'seqlm\[cluster\]'"):
        Engine("local:2", None).__enter__()


def test_cluster_errors_of_the_text_are_one_line(tmp_path, scheduler):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n" * 2000 + b"caf\xe9 au lait\n")
    with pytest.raises(SeqlmError, match="not UTF-8"):
        external(bad, tmp_path, order=3, memory="64K", cluster=scheduler)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(SeqlmError, match="is empty"):
        external(empty, tmp_path, name="m2", order=3, cluster=scheduler)
