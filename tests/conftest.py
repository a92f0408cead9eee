import os
import subprocess
from pathlib import Path

import pytest

from seqlm.cli import main
from seqlm.text import toydata
from seqlm.training.train import train

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    env = os.environ.get("SEQLM_DATA")
    for cand in ([Path(env).resolve()] if env else []) + [REPO.parent / "shared" / "data"]:
        if (cand / "ptb" / "ptb.train.txt").is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    d = shared_data()
    if d is None:
        pytest.skip("PTB not found: set SEQLM_DATA to the folder holding ptb/")
    return d


@pytest.fixture(scope="session")
def toy_lines():
    lines = toydata.english(3000, seed=5)
    return lines[:2400], lines[2400:2700], lines[2700:]


@pytest.fixture()
def toy_files(tmp_path, toy_lines):
    paths = {}
    for name, lines in zip(("train", "valid", "test"), toy_lines):
        p = tmp_path / f"{name}.txt"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths[name] = p
    return paths


def step_by_step(lm, encoded) -> list[float]:
    """ln p of every token and each line's </s>, one query at a time (start, next_logprobs, advance)."""
    out = []
    for ids in encoded:
        state = lm.start()
        for t in list(ids) + [lm.vocab.stoi["</s>"]]:
            out.append(lm.next_logprobs(state)[t])
            state = lm.advance(state, t)
    return out


# a tiny neural run: a few seconds on one thread
TINY = ["model.embedding_dim=16", "model.hidden_size=16", "train.batch_size=4", "train.bptt=8",
        "train.optimizer=adam", "train.lr=0.01", "train.clip=1", "train.schedule=constant", "train.threads=1",
        "train.fit=false"]


def tiny_run(tmp_path, files, name="m", kind="lstm", extra=(), **kw):
    return train(out=tmp_path / name, overrides=TINY + list(extra), model=kind, train=files["train"],
                 valid=files["valid"], test=files["test"], **kw)


@pytest.fixture(scope="module")
def small_files(tmp_path_factory, toy_lines):
    d = tmp_path_factory.mktemp("data")
    paths = {}
    for name, lines in zip(("train", "valid", "test"), (toy_lines[0][:600], toy_lines[1][:100], toy_lines[2][:100])):
        paths[name] = d / f"{name}.txt"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


@pytest.fixture(scope="module")
def lstm(tmp_path_factory, small_files):
    lm, summary = tiny_run(tmp_path_factory.mktemp("run"), small_files, extra=["train.epochs=2", "model.dropout=0.1"])
    return lm, summary


@pytest.fixture(scope="module")
def kn_and_lstm(tmp_path_factory, small_files):
    """A folder holding a tiny LSTM run (``lstm/``) and a KN 3-gram (``kn/``) of the same small files."""
    d = tmp_path_factory.mktemp("parts")
    tiny_run(d, small_files, "lstm", extra=["train.epochs=2"])
    assert main(["-q", "train", "--model", "kn", "--order", "3", "--train", str(small_files["train"]),
                 "--out", str(d / "kn")]) == 0
    return d


LMPLZ = REPO.parent / "shared" / "peers" / "kenlm" / "bin" / "lmplz"


def lmplz_arpa(tmp_path, lines, order):
    """An ARPA file written by KenLM's lmplz from ``lines`` (the test is skipped without lmplz)."""
    if not LMPLZ.exists():
        pytest.skip("KenLM's lmplz is not in ../shared/peers/kenlm/bin")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(lines) + "\n")
    arpa = tmp_path / "lmplz.arpa"
    with open(text) as fin:
        subprocess.run([str(LMPLZ), "-o", str(order), "-S", "100M", "-T", str(tmp_path), "--discount_fallback",
                        "--arpa", str(arpa)], stdin=fin, check=True, capture_output=True)
    return arpa


def drop_unk(arpa: Path, out: Path) -> Path:
    """The file without its <unk> unigram (the shape of KenLM's own test_nounk.arpa)."""
    lines = arpa.read_text().split("\n")
    lines = [line for line in lines if line.split("\t")[1:2] != ["<unk>"]]
    head = [i for i, line in enumerate(lines) if line.startswith("ngram 1=")][0]
    count = int(lines[head].split("=")[1]) - 1
    lines[head] = f"ngram 1={count}"
    out.write_text("\n".join(lines))
    return out


