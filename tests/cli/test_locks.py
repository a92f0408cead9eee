"""Two writers of one output (io/locks.output_lock): every command that writes a folder holds an advisory lock
on it for the whole run, so a second process stops at once with one line naming the first, and nothing of
the first is replaced; the lock leaves no file behind."""

import os
import subprocess
import sys
import threading

import pytest

from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.io.locks import output_lock


def commands(parts, small_files, out):
    kn, lstm = str(parts / "kn"), str(parts / "lstm")
    t = str(small_files["train"])
    return {
        "train n-gram": ["train", "--train", t, "--order", "2", "--out", out],
        "train n-gram --overwrite": ["train", "--train", t, "--order", "2", "--overwrite", "--out", out],
        "train neural": ["train", "--train", t, "--model", "lstm", "--set", "train.max_steps=1", "--out", out],
        "train --resume": ["train", "--train", t, "--model", "lstm", "--resume", "--out", out],
        "convert": ["convert", kn, out],
        "mix": ["mix", kn, lstm, "--weights", "0.5,0.5", "--out", out],
        "adapt": ["adapt", lstm, "--method", "cache", "--no-tune", "--param", "theta=0.3", "--param", "lam=0.1",
                  "--out", out],
    }


def test_every_writer_of_a_locked_folder_stops_in_one_line(tmp_path, kn_and_lstm, small_files, capsys):
    out = tmp_path / "o"
    with output_lock(out):
        for name, argv in commands(kn_and_lstm, small_files, str(out)).items():
            assert main(argv) == 2, name
            err = capsys.readouterr().err.strip()
            assert err == (f"seqlm: error: {out} is being written by another seqlm process (pid {os.getpid()}): "
                           f"wait for it to finish, or choose another --out"), (name, err)
            assert not out.exists(), name
    assert not (tmp_path / ".o.lock").exists()
    assert main(["-q", "convert", str(kn_and_lstm / "kn"), str(out)]) == 0  # free again


def test_the_lock_holds_across_processes_and_threads(tmp_path, kn_and_lstm):
    out = tmp_path / "m"
    with output_lock(out):
        p = subprocess.run([sys.executable, "-m", "seqlm", "convert", str(kn_and_lstm / "kn"), str(out)],
                           capture_output=True, text=True)
        assert p.returncode == 2 and f"(pid {os.getpid()})" in p.stderr and not out.exists()
        failed = []
        t = threading.Thread(target=lambda: failed.append(pytest.raises(SeqlmError, output_lock(out).__enter__)))
        t.start()
        t.join()
        assert failed
    with output_lock(out):  # released: taken again at once
        pass


def test_a_lock_file_left_by_a_dead_process_is_no_lock(tmp_path):
    out = tmp_path / "m"
    (tmp_path / ".m.lock").write_text("999999")  # a SIGKILL leaves the file, not the lock
    with output_lock(out):
        assert (tmp_path / ".m.lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".m.lock").exists()
