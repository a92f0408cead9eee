"""Single-file outputs (io/files.check_target, written_by_seqlm): seqlm replaces the files it wrote, refuses
one it did not (unless --overwrite, where the command has it) and an output that is one of its inputs."""

import json

import pytest

from seqlm.cli import main
from seqlm.io.files import written_by_seqlm


@pytest.fixture()
def work(tmp_path, small_files):
    assert main(["-q", "train", "--train", str(small_files["train"]), "--order", "2", "--out", str(tmp_path / "kn"),
                 "--arpa", str(tmp_path / "kn.arpa.gz"), "--results", str(tmp_path / "kn.json")]) == 0
    return tmp_path


def test_seqlms_own_outputs_are_replaced(work, small_files):
    for name in ("kn.arpa.gz", "kn.json"):
        assert written_by_seqlm(work / name), name
    assert main(["-q", "train", "--train", str(small_files["train"]), "--order", "3", "--out", str(work / "kn3"),
                 "--arpa", str(work / "kn.arpa.gz"), "--results", str(work / "kn.json")]) == 0
    assert json.loads((work / "kn.json").read_text())["model"]["order"] == 3
    assert main(["-q", "export", str(work / "kn3"), str(work / "kn.arpa.gz")]) == 0


def test_user_files_are_refused_unless_overwrite(work, capsys):
    notes = work / "notes.txt"
    notes.write_text("my notes\n")
    assert main(["export", str(work / "kn"), str(notes)]) == 2
    assert "seqlm did not write it: add --overwrite" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"
    assert main(["-q", "export", str(work / "kn"), str(notes), "--overwrite"]) == 0
    assert notes.read_text().startswith("\\data\\")


@pytest.mark.parametrize("content", [b"{\"type\": \"mine\"}", b"\\data\\\nngram 1=1\n", b"\x89PNG\r\n\x1a\n....",
                                     b"", b"\x1f\x8bnot gzip"])
def test_files_seqlm_did_not_write_are_told_apart(tmp_path, content):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert not written_by_seqlm(path)


def test_figures_carry_seqlms_mark(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seqlm.io.files import PNG_METADATA

    fig = plt.figure()
    fig.savefig(tmp_path / "a.png", metadata=PNG_METADATA)
    fig.savefig(tmp_path / "b.png")
    assert written_by_seqlm(tmp_path / "a.png") and not written_by_seqlm(tmp_path / "b.png")


def test_every_file_of_a_run_folder_has_the_umasks_mode(lstm):
    # safetensors writes 0600; atomic_dir gives every file the umask's mode (io/files._umask_modes)
    import os

    mask = os.umask(0)
    os.umask(mask)
    from pathlib import Path

    files = [p for p in Path(lstm[1]["out"]).rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o666 & ~mask)}


def test_a_run_stopped_before_its_first_checkpoint_is_started_over(tmp_path, small_files, capsys):
    # the state a kill before the first checkpoint leaves: run.json and the logs, no last/ nor model/
    from seqlm.io.files import write_json

    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "run.json", {"config": {}})
    (run / "steps.jsonl").write_text("")
    argv = ["train", "--train", str(small_files["train"]), "--model", "lstm", "--set", "train.max_steps=2",
            "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8", "--out", str(run)]
    assert main(argv + ["--resume"]) == 2
    assert "stopped before its first checkpoint: run the same command without --resume" in capsys.readouterr().err
    assert main(["-q"] + argv) == 0 and (run / "last").is_dir()
    assert main(argv) == 2 and "add --resume to continue it" in capsys.readouterr().err


def test_resume_names_changed_settings_and_refuses_a_damaged_checkpoint(tmp_path, small_files, capsys):
    run = tmp_path / "run"
    base = ["train", "--train", str(small_files["train"]), "--model", "lstm", "--set", "model.hidden_size=8",
            "--set", "model.embedding_dim=8", "--out", str(run)]
    assert main(base + ["--set", "train.max_steps=2"]) == 0
    capsys.readouterr()
    assert main(base + ["--resume", "--set", "train.max_steps=3", "--set", "train.lr=0.5"]) == 0
    err = capsys.readouterr().err
    assert "resuming with settings changed from the run's" in err and "train.lr" in err and "train.max_steps 2 -> 3" in err
    data = bytearray((run / "last" / "resume.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (run / "last" / "resume.safetensors").write_bytes(bytes(data))
    assert main(base + ["--resume", "--set", "train.max_steps=4", "--set", "train.lr=0.5"]) == 2
    assert "does not match the checksum" in capsys.readouterr().err


def test_the_ngram_summary_line_shows_valid_and_test_perplexity(tmp_path, small_files, capsys):
    assert main(["-q", "train", "--train", str(small_files["train"]), "--valid", str(small_files["valid"]), "--test",
                 str(small_files["test"]), "--order", "2", "--out", str(tmp_path / "kn")]) == 0
    out = capsys.readouterr().out
    assert "valid perplexity" in out and "test perplexity" in out
