"""Every command that writes, under SIGTERM and SIGKILL at several moments (the class, not a case): afterwards
the output is the old one, absent, or complete (it loads); SIGTERM exits 143 with one line and leaves no
temporary file or lock; after SIGKILL the same command runs again and sweeps what the killed one left.

A SIGTERM before seqlm's handler is installed (Python still importing) or after its command returned (the
interpreter exiting) ends the process as the signal's default does (-15): then nothing was written yet, or
everything was."""

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import seqlm

pytestmark = pytest.mark.slow  # a few dozen processes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("signals")
    subprocess.run([sys.executable, str(REPO / "bench" / "corpus.py"), "--tokens", "400K", "--out", str(d / "text.txt")],
                   check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "seqlm", "-q", "train", "--train", str(d / "text.txt"), "--order", "4",
                    "--out", str(d / "kn4"), "--arpa", str(d / "kn4.arpa")], check=True, capture_output=True)
    with open(d / "text.txt") as f:
        (d / "small.txt").write_text("".join(line for _, line in zip(range(3000), f)))
    with open(d / "text.txt") as f:
        (d / "valid.txt").write_text("".join(line for _, line in zip(range(300), f)))
    subprocess.run([sys.executable, "-m", "seqlm", "-q", "train", "--model", "lstm", "--train", str(d / "text.txt"),
                    "--out", str(d / "lstm"), "--set", "model.hidden_size=16", "--set", "train.max_steps=5"],
                   check=True, capture_output=True)  # the vocabulary of kn4, for mix
    return d


def commands(d: Path, out: Path) -> dict:
    return {
        "train (spilling)": ["train", "--train", str(d / "text.txt"), "--order", "4", "--memory", "4M", "--out", str(out)],
        "train (neural)": ["train", "--model", "lstm", "--train", str(d / "small.txt"), "--out", str(out),
                           "--set", "model.hidden_size=32", "--set", "train.max_steps=400", "--set",
                           "train.checkpoint_every=20", "--set", "train.threads=1"],
        "train (cluster)": ["train", "--train", str(d / "text.txt"), "--order", "4", "--memory", "8M", "--cluster",
                            "local:2", "--temp-dir", str(out.parent), "--out", str(out)],
        "count": ["count", str(d / "text.txt"), "--order", "4", "--memory", "4M", "--out", str(out)],
        "convert": ["convert", str(d / "kn4.arpa"), str(out)],
        "export": ["export", str(d / "kn4"), str(out) + ".arpa"],
        "interpolate": ["interpolate", str(d / "kn4"), str(d / "kn4.arpa"), "--weights", "0.5,0.5", "--out", str(out)],
        "mix": ["mix", str(d / "kn4"), str(d / "lstm"), "--valid", str(d / "valid.txt"), "--out", str(out)],
        "adapt": ["adapt", str(d / "lstm"), "--method", "cache", "--valid", str(d / "valid.txt"), "--out", str(out)],
    }


NAMES = ["train (spilling)", "train (neural)", "train (cluster)", "count", "convert", "export", "interpolate", "mix", "adapt"]


def complete_or_resumable(name: str, target: Path) -> None:
    """A finished output loads; a neural run stopped early holds a checkpoint to resume (or nothing yet)."""
    if name == "count":
        assert (target / "counts.json").is_file() or not any(target.iterdir())
    elif name == "train (neural)":
        assert (target / "last" / "resume.json").is_file() or (target / "model").is_dir(), sorted(target.iterdir())
    else:
        seqlm.load(target)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock", ".old")))


def run_and_signal(argv, sig, delay):
    proc = subprocess.Popen([sys.executable, "-m", "seqlm", "-q", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("delay", [0.35, 0.7, 1.0])
def test_sigterm_leaves_the_old_output_or_a_complete_one(inputs, tmp_path, name, delay):
    out = tmp_path / "out"
    argv = commands(inputs, out)[name]
    code, err = run_and_signal(argv, signal.SIGTERM, delay)
    assert code in (0, 143, -signal.SIGTERM), err
    if code == 143:
        assert err.strip().splitlines()[-1] == "seqlm: terminated (SIGTERM)" and "Traceback" not in err
    target = out if name != "export" else Path(argv[-1])
    if target.exists():
        complete_or_resumable(name, target)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("delay", [0.35, 0.7, 1.0])
def test_after_sigkill_the_same_command_runs_and_sweeps(inputs, tmp_path, name, delay):
    out = tmp_path / "out"
    argv = commands(inputs, out)[name]
    code, _ = run_and_signal(argv, signal.SIGKILL, delay)
    assert code in (0, -signal.SIGKILL)
    target = out if name != "export" else Path(argv[-1])
    if target.exists():  # never a partial output: a killed write leaves only temporary names
        complete_or_resumable(name, target)
    if name == "train (neural)":  # a run folder goes on from its checkpoint, or starts over without one
        again = argv + (["--resume"] if (target / "last").exists() else [])
    else:
        again = argv + (["--overwrite"] if name not in ("export", "count", "mix", "adapt") and target.exists() else [])
    if name == "count" and target.exists():
        shutil.rmtree(target)  # counts are not replaced: the user removes them
    p = subprocess.run([sys.executable, "-m", "seqlm", "-q", *again], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    complete_or_resumable(name, target)
    if name != "count":
        seqlm.load(target)
    assert leftovers(tmp_path) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_server_stops_cleanly_on_a_signal(inputs, sig):
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seqlm", "serve", str(inputs / "kn4"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1) as r:
                    assert r.status == 200
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
                time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130, 143), err
    assert "Traceback" not in err and "Exception" not in err, err
