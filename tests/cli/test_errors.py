"""The one place every exception becomes one line (cli.main with errors.explain): a failure of the machine
names its fix (exit 2), anything else is a bug reported in one line with the file holding its traceback
(exit 1), and SIGTERM is handled as Ctrl-C is (clean up, one line, exit 143)."""

import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import seqlm.tasks.score as score_module
from seqlm.cli import main
from seqlm.errors import SeqlmError, explain


@pytest.fixture()
def kn(tmp_path, toy_files):
    assert main(["-q", "train", "--model", "kn", "--order", "2", "--train", str(toy_files["train"]),
                 "--out", str(tmp_path / "kn")]) == 0
    return str(tmp_path / "kn")


def run_failing(monkeypatch, capsys, kn, error, *flags):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(score_module, "score", fail)
    code = main([*flags, "score", kn, "--file", str(Path(kn).parent / "train.txt"), "--json"])  # (rows: score())
    return code, capsys.readouterr().err


def test_a_bug_is_one_line_naming_its_traceback_file(monkeypatch, capsys, kn):
    code, err = run_failing(monkeypatch, capsys, kn, RuntimeError("something odd"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "internal error (RuntimeError: something odd): this is a bug" in err
    path = Path(err.split("traceback is in ")[1].split(" (-v")[0])
    assert "RuntimeError: something odd" in path.read_text() and "Traceback" in path.read_text()
    path.unlink()
    code, err = run_failing(monkeypatch, capsys, kn, RuntimeError("again"), "-v")
    assert code == 1 and "Traceback (most recent call last)" in err  # -v prints it too
    Path(err.split("traceback is in ")[1].split(" (-v")[0]).unlink()


@pytest.mark.parametrize("error,message", [
    (MemoryError(), "out of memory: lower --memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.arpa"), "the disk is full writing /data/out.arpa"),
    (RuntimeError("write failed: No space left on device (os error 28)"), "the disk is full"),
    (OSError(errno.EFBIG, "File too large", "/data/m/trie"), "a file grew past this process's file-size limit "
     "writing /data/m/trie (ulimit -f)"),
    (RuntimeError("I/O error: File too large (os error 27)"), "a file grew past this process's file-size limit"),
    (ImportError("libtorch_cpu.so: failed to map segment from shared object"), "out of memory loading a library"),
    (OSError("5775 requested and 896 written"), "a write was cut short: the disk is full or the file-size limit"),
])
def test_a_failure_of_the_machine_names_its_fix(monkeypatch, capsys, kn, error, message):
    code, err = run_failing(monkeypatch, capsys, kn, error)
    assert code == 2 and err.startswith(f"seqlm: error: {message}") and len(err.strip().splitlines()) == 1


def test_explain_leaves_other_errors_to_the_bug_report():
    assert explain(ValueError("x")) is None and explain(OSError(errno.EACCES, "denied")) is None


@pytest.mark.parametrize("error", [TypeError("expected str, bytes or os.PathLike object, not BufferedReader"),
                                   SeqlmError("a half-written file"), BrokenPipeError()])
@pytest.mark.parametrize("sig,code,line", [(signal.SIGTERM, 143, "seqlm: terminated (SIGTERM)"),
                                           (signal.SIGINT, 130, "seqlm: interrupted")])
def test_what_replaces_a_signals_exception_ends_the_command_as_the_signal(monkeypatch, capsys, kn, error, sig, code,
                                                                         line):
    """C code that calls back into Python can replace the handler's exception on its way out (numpy's fromfile
    makes it a TypeError: what CI caught under SIGTERM); the command still ends as the signal, not as a bug."""
    def swallowed(*args, **kwargs):
        try:
            os.kill(os.getpid(), sig)  # cli.main's handler raises here
            time.sleep(5)
        except KeyboardInterrupt:
            raise error from None

    monkeypatch.setattr(score_module, "score", swallowed)
    before = set(Path(tempfile.gettempdir()).glob("seqlm-bug-*"))
    assert main(["score", kn, "--file", str(Path(kn).parent / "train.txt"), "--json"]) == code
    assert capsys.readouterr().err.strip().splitlines() == [line]
    assert set(Path(tempfile.gettempdir()).glob("seqlm-bug-*")) == before  # no bug report


@pytest.mark.slow
def test_sigterm_during_a_spilling_estimation_cleans_up(tmp_path):
    from seqlm.text import toydata

    text = tmp_path / "big.txt"
    text.write_text("\n".join(toydata.english(120_000, seed=2)) + "\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    cmd = [sys.executable, "-m", "seqlm.cli", "-q", "train", "--train", str(text), "--order", "5", "--memory", "8M",
           "--temp-dir", str(scratch), "--out", str(tmp_path / "m")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(scratch.iterdir()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the counting
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the estimation finished before the signal")
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "seqlm: terminated (SIGTERM)" and "Traceback" not in err
    assert not list(scratch.iterdir()) and not (tmp_path / "m").exists()


def test_scratch_left_by_a_killed_run_is_swept_by_the_next(tmp_path, toy_files):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    scratch = tmp_path / "scratch"
    left = scratch / f"seqlm-ngram-{dead_pid}-abcd"  # what a SIGKILL leaves
    alive = scratch / f"seqlm-ngram-{os.getpid()}-efgh"  # a run still going (this process)
    other = scratch / "seqlm-ngram-notapid"  # not seqlm's pattern: never touched
    for folder in (left, alive, other):
        (folder / "sub").mkdir(parents=True)
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--memory", "64K",
                 "--temp-dir", str(scratch), "--out", str(tmp_path / "m")]) == 0
    assert sorted(p.name for p in scratch.iterdir()) == sorted([alive.name, other.name])


def test_the_default_memory_budget_fits_an_address_space_limit(tmp_path):
    # ulimit -v: the default --memory (half what is available) is taken within the limit, so estimation spills
    # instead of failing to allocate
    import resource

    text = tmp_path / "big.txt"
    subprocess.run([sys.executable, str(Path(__file__).parents[2] / "bench" / "corpus.py"), "--tokens", "600K",
                    "--out", str(text)], check=True, capture_output=True)
    limit = 700 << 20

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    p = subprocess.run([sys.executable, "-m", "seqlm", "train", "--train", str(text), "--order", "5", "--out",
                        str(tmp_path / "kn5")], capture_output=True, text=True, preexec_fn=cap)
    assert p.returncode == 0, p.stderr
    number, unit = p.stderr.split("memory budget ")[1].split(")")[0].split()
    budget = float(number) * {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[unit]
    assert 0 < budget < limit / 2


def test_a_signal_raised_where_python_can_only_print_it_is_not_printed(capsys, monkeypatch):
    """A SIGTERM's exception raised inside a finalizer or a library's gc callback: the command line's hook keeps
    it off stderr (the signal is recorded, the command stops at its next check); other such errors still print."""
    import sys

    from seqlm.cli import _quiet_signal
    from seqlm.errors import Terminated

    class Dies:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    monkeypatch.setattr(sys, "unraisablehook", _quiet_signal)
    Dies(Terminated())
    assert capsys.readouterr().err == ""
    Dies(ValueError("a real bug"))
    assert "a real bug" in capsys.readouterr().err
