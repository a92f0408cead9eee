"""load() (models/loader.py): a folder's kind is looked up in the table of kinds, an ARPA file is read by the
ARPA reader, and every way a path can be wrong is one line naming the fix."""

import json

import pytest

import seqlm
from seqlm import kinds
from seqlm.errors import SeqlmError
from seqlm.training.train import train_ngram


@pytest.fixture(scope="module")
def folder(tmp_path_factory, toy_lines):
    d = tmp_path_factory.mktemp("loader") / "kn"
    train_ngram(toy_lines[0][:300], order=2).save(d)
    return d


def test_a_folder_is_loaded_by_the_loader_its_kind_names(folder, monkeypatch):
    calls = []
    original = kinds.loader("ngram")

    def spy(path, config, device):
        calls.append((path, config["kind"], device))
        return original(path, config, device=device)

    monkeypatch.setattr(kinds, "loader", lambda kind: spy if kind == "ngram" else None)
    lm = seqlm.load(folder, device="cpu")
    assert calls == [(folder, "ngram", "cpu")] and lm.order == 2


def test_an_arpa_file_and_a_folder_score_alike(folder, tmp_path, toy_lines):
    seqlm.export(seqlm.load(folder), tmp_path / "kn.arpa")
    a = seqlm.score(seqlm.load(folder), toy_lines[2][:5])
    b = seqlm.score(seqlm.load(tmp_path / "kn.arpa"), toy_lines[2][:5])
    assert [r["log_prob"] for r in a] == pytest.approx([r["log_prob"] for r in b], abs=1e-5)


def test_a_run_folder_loads_its_best_model(folder, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model").symlink_to(folder, target_is_directory=True)
    assert seqlm.load(run).order == 2


@pytest.mark.parametrize("config,match", [
    ({"kind": "transformer-xl"}, "unknown model kind 'transformer-xl'"),
    ({"no": "kind"}, "unknown model kind None"),
    ([1, 2], "unknown model kind None"),
])
def test_a_folder_of_no_known_kind_is_one_line(tmp_path, config, match):
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(SeqlmError, match=match):
        seqlm.load(tmp_path)


def test_wrong_paths_are_one_line(tmp_path):
    with pytest.raises(SeqlmError, match="no such model folder or ARPA file"):
        seqlm.load(tmp_path / "nothing")
    with pytest.raises(SeqlmError, match="has no config.json"):
        seqlm.load(tmp_path)
    with pytest.raises(TypeError, match="takes a path"):
        seqlm.load(3)
