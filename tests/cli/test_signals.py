"""Every command that writes, under SIGTERM and SIGKILL at several moments (the class, not a case): afterwards
the output is the old one, absent, or complete (it loads); SIGTERM exits 143 with one line and leaves no
temporary file or lock; after SIGKILL the same command runs again and sweeps what the killed one left.

A SIGTERM before seqlm's handler is installed (Python still importing) or after its command returned (the
interpreter exiting) ends the process as the signal's default does (-15): then nothing was written yet, or
everything was."""

import signal
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
    return d


def commands(d: Path, out: Path) -> dict:
    return {
        "train (spilling)": ["train", "--train", str(d / "text.txt"), "--order", "4", "--memory", "4M", "--out", str(out)],
        "convert": ["convert", str(d / "kn4.arpa"), str(out)],
        "export": ["export", str(d / "kn4"), str(out) + ".arpa"],
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock", ".old")))


def run_and_signal(argv, sig, delay):
    proc = subprocess.Popen([sys.executable, "-m", "seqlm", "-q", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("name", ["train (spilling)", "convert", "export"])
@pytest.mark.parametrize("delay", [0.35, 0.7, 1.0])
def test_sigterm_leaves_the_old_output_or_a_complete_one(inputs, tmp_path, name, delay):
    out = tmp_path / "out"
    argv = commands(inputs, out)[name]
    code, err = run_and_signal(argv, signal.SIGTERM, delay)
    assert code in (0, 143, -signal.SIGTERM), err
    if code == 143:
        assert err.strip().splitlines()[-1] == "seqlm: terminated (SIGTERM)" and "Traceback" not in err
    target = Path(argv[-1])
    if target.exists():
        seqlm.load(target)  # complete: it loads
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["train (spilling)", "convert", "export"])
@pytest.mark.parametrize("delay", [0.35, 0.7, 1.0])
def test_after_sigkill_the_same_command_runs_and_sweeps(inputs, tmp_path, name, delay):
    out = tmp_path / "out"
    argv = commands(inputs, out)[name]
    code, _ = run_and_signal(argv, signal.SIGKILL, delay)
    assert code in (0, -signal.SIGKILL)
    target = Path(argv[-1])
    if target.exists():
        seqlm.load(target)  # never a partial output: a killed write leaves only temporary names
    again = argv + (["--overwrite"] if name != "export" and target.exists() else [])
    p = subprocess.run([sys.executable, "-m", "seqlm", "-q", *again], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    seqlm.load(target)
    assert leftovers(tmp_path) == []
