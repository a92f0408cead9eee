"""Every command that writes, with too little room to work (the class, not a case): a full disk (a small tmpfs,
where the test may mount one), the file-size limit (``ulimit -f``) and the address-space limit (``ulimit -v``).
Each command either completes (its output loads) or stops with one ``seqlm: error:`` line that names the fix
(exit 2), and leaves nothing at its output paths: no partial output, no temporary file or folder, no lock."""

import contextlib
import os
import resource
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import seqlm
from seqlm.cli import main

pytestmark = pytest.mark.slow  # two dozen processes

TINY = ["--set", "model.embedding_dim=16", "--set", "model.hidden_size=16", "--set", "train.batch_size=4",
        "--set", "train.bptt=8", "--set", "train.max_steps=6", "--set", "train.threads=1"]
# outputs far larger than the room (a model of a few hundred KB at least): these must fail, not fit
LARGE = ("train kn", "train kn --arpa", "train lstm", "count", "convert", "export", "interpolate")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, small_files):
    d = tmp_path_factory.mktemp("disk-inputs")
    assert main(["-q", "train", "--train", str(small_files["train"]), "--order", "4", "--out", str(d / "kn"),
                 "--arpa", str(d / "kn.arpa")]) == 0
    assert main(["-q", "train", "--model", "lstm", "--train", str(small_files["train"]), "--valid",
                 str(small_files["valid"]), "--out", str(d / "lstm"), *TINY]) == 0
    return d


def commands(d: Path, files: dict, out: Path) -> dict[str, list[str]]:
    train = str(files["train"])
    return {
        "train kn": ["train", "--train", train, "--order", "4", "--out", str(out / "m")],
        "train kn --arpa": ["train", "--train", train, "--order", "4", "--out", str(d / f"m-{uuid.uuid4().hex}"),
                            "--arpa", str(out / "m.arpa")],
        "train lstm": ["train", "--model", "lstm", "--train", train, "--out", str(out / "run"), *TINY,
                       "--set", "model.hidden_size=256", "--set", "model.embedding_dim=256"],
        "count": ["count", train, "--order", "4", "--out", str(out / "c")],
        "convert": ["convert", str(d / "kn.arpa"), str(out / "m")],
        "export": ["export", str(d / "kn"), str(out / "m.arpa")],
        "interpolate": ["interpolate", str(d / "kn"), str(d / "kn.arpa"), "--weights", "0.5,0.5", "--out",
                        str(out / "i")],
        "mix": ["mix", str(d / "kn"), str(d / "lstm"), "--weights", "0.5,0.5", "--valid", str(files["valid"]),
                "--out", str(out / "x"), "--results", str(out / "x.json")],
        "adapt": ["adapt", str(d / "lstm"), "--method", "cache", "--no-tune", "--valid", str(files["valid"]),
                  "--out", str(out / "a"), "--results", str(out / "a.json")],
        "diagnose": ["diagnose", "gradients", str(d / "lstm"), "--file", str(files["valid"]), "--K", "5",
                     "--positions", "4", "--out", str(out / "g.json")],
    }


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "16k"):
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.decode().strip() or p.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))  # per file


def limit_address_space(megabytes: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    return limit


def run(argv, limit=None):
    env = dict(os.environ, SEQLM_DATA=os.environ.get("SEQLM_DATA", ""))
    return subprocess.run([sys.executable, "-m", "seqlm", "-q", *argv], capture_output=True, text=True, env=env,
                          preexec_fn=limit, timeout=300)


def check(name, p, out: Path, argv, large=LARGE, fix=("the disk is full", "file-size limit")):
    outputs = [Path(a) for a in argv if a.startswith(str(out))]
    if p.returncode == 0:
        assert name not in large, f"{name} completed in a room too small for it"
        for path in outputs:
            if name == "count":
                assert (path / "counts.json").is_file()
            elif path.suffix != ".json":
                seqlm.load(path)  # complete
        return
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqlm: error: "), p.stderr
    assert any(f in lines[0] for f in fix), lines[0]
    assert sorted(x.name for x in out.iterdir() if x.name != "lost+found") == []  # nothing partial, no scratch


@pytest.mark.parametrize("name", ["train kn", "train kn --arpa", "train lstm", "count", "convert", "export",
                                  "interpolate", "mix", "adapt", "diagnose"])
def test_the_file_size_limit(inputs, small_files, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    argv = commands(inputs, small_files, out)[name]
    check(name, run(argv, limit_file_size), out, argv)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("name", ["train kn", "train lstm", "count", "convert", "export", "mix"])
def test_a_full_disk(inputs, small_files, tmp_path, name):
    with small_tmpfs(tmp_path / "disk") as out:
        argv = commands(inputs, small_files, out)[name]
        check(name, run(argv), out, argv)


NEURAL = ("train lstm", "mix", "adapt", "diagnose")  # the commands that load PyTorch


@pytest.mark.parametrize("megabytes", [400, 700])
@pytest.mark.parametrize("name", ["train kn", "train lstm", "count", "convert", "export", "interpolate", "mix",
                                  "adapt", "diagnose"])
def test_the_address_space_limit(inputs, small_files, tmp_path, name, megabytes):
    # 400 MB: the n-gram commands run (their default --memory fits the limit), PyTorch cannot load; 700 MB:
    # PyTorch loads and may run out later
    out = tmp_path / "out"
    out.mkdir()
    argv = commands(inputs, small_files, out)[name]
    large = NEURAL if megabytes == 400 else ()
    check(name, run(argv, limit_address_space(megabytes)), out, argv, large, fix=("out of memory",))
    if name not in NEURAL:
        assert any(out.iterdir()), "an n-gram command failed under a limit it fits in"
