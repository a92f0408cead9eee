"""Training under torchrun (DistributedDataParallel, gloo on CPU): 2 processes on loopback.

Two processes with a global batch of 2B take the same steps as one process with batch 2B; only rank 0
writes; a rank killed mid-run stops the run with ``last/`` intact, and ``--resume`` under torchrun then
reaches the weights of an uninterrupted run.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO  # noqa: E402
from seqlm.models.loader import load
from seqlm.text import toydata

WORKER = REPO / "tests" / "helpers" / "dist_worker.py"
TORCHRUN = shutil.which("torchrun")
COMMON = ["--model", "lstm", "--set", "model.embedding_dim=16", "--set", "model.hidden_size=16",
          "--set", "model.num_layers=2", "--set", "train.batch_size=4", "--set", "train.bptt=8",
          "--set", "train.optimizer=adam", "--set", "train.lr=0.01", "--set", "train.clip=0.5",
          "--set", "train.schedule=constant", "--set", "train.threads=1", "--set", "train.log_every=3",
          "--set", "train.checkpoint_every=5", "--precision", "fp32", "--device", "cpu"]
DROPOUT = ["--set", "model.dropout=0.3", "--set", "model.embedding_dropout=0.2", "--set", "model.word_dropout=0.1",
           "--set", "model.weight_drop=0.2", "--set", "model.variational=true"]

pytestmark = [pytest.mark.slow,  # processes started by torchrun
              pytest.mark.skipif(TORCHRUN is None or not torch.distributed.is_available(),
                                 reason="needs torchrun and torch.distributed")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist-data")
    lines = toydata.english(500, seed=11)
    out = {}
    for name, part in (("train", lines[:400]), ("valid", lines[400:450]), ("test", lines[450:])):
        out[name] = d / f"{name}.txt"
        out[name].write_text("\n".join(part) + "\n")
    return out


def launch(files, out, extra, nproc: int, audit: Path, env_extra=None, check=True):
    """``seqlm train`` in ``nproc`` processes under torchrun (1: a plain process), through the test worker."""
    args = ["train", "--train", str(files["train"]), "--valid", str(files["valid"]), "--test", str(files["test"]),
            "--out", str(out), *COMMON, *extra]
    env = {**os.environ, "SEQLM_TEST_AUDIT": str(audit), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("WORLD_SIZE", None)
    if nproc == 1:
        cmd = [sys.executable, str(WORKER), *args]
    else:
        cmd = [TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "--monitor_interval=0.1", str(WORKER), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def weights(run: Path, which: str = "last") -> dict:
    return load(run / which / "model").module.state_dict()


def assert_close(a: dict, b: dict, tol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=tol, rtol=0), (k, (a[k] - b[k]).abs().max().item())


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
def test_two_processes_take_the_steps_of_one(tmp_path, files, dropout):
    extra = ["--set", "train.max_steps=12"] + (DROPOUT if dropout else [])
    launch(files, tmp_path / "one", extra, 1, tmp_path / "audit1")
    launch(files, tmp_path / "two", extra, 2, tmp_path / "audit2")
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    # evaluation on rank 0 reads the whole stream: the one-process number
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, rel=1e-5), k
    # the logged training loss is the global batch's
    for a, b in zip(one["log"], two["log"]):
        assert (a["step"], a["tokens"]) == (b["step"], b["tokens"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert two["world_size"] == 2 and two["backend"] == "gloo" and one["world_size"] == 1
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    # only rank 0 wrote: rank 1 created, wrote, renamed and removed nothing of the run (PyTorch's own
    # scratch files in the system temp folder aside)
    mine = lambda rank: [x for x in (tmp_path / "audit2" / f"rank{rank}.log").read_text().splitlines()  # noqa: E731
                         if str(tmp_path) in x or str(REPO) in x]
    assert any(str(tmp_path / "two") in x for x in mine(0))
    assert mine(1) == []


def test_a_transformer_under_torchrun_takes_the_steps_of_one(tmp_path, files):
    """The Transformer (its state a window of layer inputs, not a recurrent state; dropout on) trains in two
    processes to the weights one process reaches, and evaluates to the same numbers."""
    extra = ["--model", "transformer", "--set", "model.heads=2", "--set", "model.context=8", "--set",
             "model.dropout=0.2", "--set", "model.embedding_dropout=0.1", "--set", "train.max_steps=10"]
    launch(files, tmp_path / "one", extra, 1, tmp_path / "audit1")
    launch(files, tmp_path / "two", extra, 2, tmp_path / "audit2")
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2 and load(tmp_path / "two" / "last" / "model").module.kind == "transformer"
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, rel=1e-5), k


def test_a_killed_rank_stops_the_run_and_resume_continues(tmp_path, files):
    extra = ["--set", "train.max_steps=20", *DROPOUT]
    launch(files, tmp_path / "whole", extra, 2, tmp_path / "audit-whole")
    audit = tmp_path / "audit-killed"
    r = launch(files, tmp_path / "run", extra, 2, audit, env_extra={"SEQLM_TEST_KILL": "1:13"}, check=False)
    assert r.returncode != 0
    for rank in (0, 1):  # every rank stopped
        pid = int((audit / f"rank{rank}.pid").read_text())
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    # last/ is the checkpoint of step 10, whole and loadable; no model of a later step was written
    progress = json.loads((tmp_path / "run" / "last" / "resume.json").read_text())["progress"]
    assert progress["step"] == 10
    load(tmp_path / "run" / "last" / "model")
    launch(files, tmp_path / "run", extra + ["--resume"], 2, tmp_path / "audit-resume")
    assert_close(weights(tmp_path / "whole"), weights(tmp_path / "run"), tol=1e-6)


def test_a_batch_that_does_not_split_is_one_line(tmp_path, files):
    r = launch(files, tmp_path / "odd", ["--set", "train.batch_size=3", "--set", "train.max_steps=2"], 2,
               tmp_path / "audit", check=False)
    assert r.returncode != 0
    assert "train.batch_size=3 does not split over 2 processes" in r.stderr
    assert "seqlm/" not in r.stderr  # no traceback through seqlm's code (torchrun prints its own summary)
    assert not (tmp_path / "odd").exists()


def test_an_ngram_under_torchrun_is_refused(tmp_path, files):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "seqlm", "train", "--train",
                        str(files["train"]), "--model", "kn", "--order", "3", "--out", str(tmp_path / "kn")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0
    assert "n-gram models are counted in one process: run seqlm train without torchrun" in r.stderr
    assert not (tmp_path / "kn").exists()
