"""Every bad input: one line on stderr, exit status != 0, no traceback, no partial output."""

import shutil

import pytest

from seqlm.cli import main
from seqlm.io.files import sha256_file
from seqlm.text import corpora


def fails(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code != 0
    lines = [x for x in err.splitlines() if x.startswith("seqlm: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture()
def model(tmp_path, toy_files):
    out = tmp_path / "m"
    assert main(["-q", "train", "--train", str(toy_files["train"]), "--order", "3", "--out", str(out)]) == 0
    return out


def test_missing_file(capsys, tmp_path):
    msg = fails(capsys, "train", "--train", tmp_path / "nope.txt", "--out", tmp_path / "o")
    assert "no such file" in msg and not (tmp_path / "o").exists()


def test_empty_file(capsys, tmp_path):
    (tmp_path / "e.txt").write_text("\n  \n")
    assert "empty" in fails(capsys, "train", "--train", tmp_path / "e.txt", "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_binary_file(capsys, tmp_path):
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 4)
    assert "binary" in fails(capsys, "train", "--train", tmp_path / "b.bin", "--out", tmp_path / "o")


def test_non_utf8_file(capsys, tmp_path):
    (tmp_path / "l.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    assert "not UTF-8" in fails(capsys, "train", "--train", tmp_path / "l.txt", "--out", tmp_path / "o")


def test_order_below_one(capsys, tmp_path, toy_files):
    assert "--order" in fails(capsys, "train", "--train", toy_files["train"], "--order", "0", "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_unknown_model_and_bad_prune(capsys, tmp_path, toy_files):
    assert "--model" in fails(capsys, "train", "--train", toy_files["train"], "--model", "witten", "--out", tmp_path / "o")
    assert "prune" in fails(capsys, "train", "--train", toy_files["train"], "--prune", "0,3,1", "--out", tmp_path / "o")


def test_unseen_words_are_fine(capsys, tmp_path, model):
    (tmp_path / "t.txt").write_text("the zebra sleeps\n")
    assert main(["evaluate", str(model), "--file", str(tmp_path / "t.txt"), "--json"]) == 0
    assert '"oov": 1' in capsys.readouterr().out


def test_empty_line_in_score(capsys, tmp_path, model):
    (tmp_path / "s.txt").write_text("the cat\n\nthe dog\n")
    assert "line 2 is empty" in fails(capsys, "score", model, "--file", tmp_path / "s.txt")


def test_prompt_of_unknown_words(capsys, model):
    assert "outside the model's vocabulary" in fails(capsys, "generate", model, "--prompt", "qqq zzz")
    assert "outside the model's vocabulary" in fails(capsys, "predict", model, "--prompt", "qqq")


def test_model_folder_problems(capsys, tmp_path, model):
    assert "no such model" in fails(capsys, "evaluate", tmp_path / "none", "--file", model / "vocab.json")
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    data = (broken / "trie" / "order2.npy").read_bytes()
    (broken / "trie" / "order2.npy").write_bytes(data[: len(data) // 3])
    assert "truncated or modified" in fails(capsys, "predict", broken, "--prompt", "the")
    (broken / "config.json").write_text("{not json")
    assert "not valid JSON" in fails(capsys, "predict", broken, "--prompt", "the")


def test_malformed_and_truncated_arpa(capsys, tmp_path, model):
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n")
    assert "ARPA" in fails(capsys, "predict", tmp_path / "bad.arpa", "--prompt", "the")
    assert main(["-q", "export", str(model), str(tmp_path / "m.arpa")]) == 0
    capsys.readouterr()
    text = (tmp_path / "m.arpa").read_text()
    (tmp_path / "t.arpa").write_text(text[: len(text) // 2])
    assert "truncated" in fails(capsys, "predict", tmp_path / "t.arpa", "--prompt", "the")


def test_add_k_arpa_leaves_no_files(capsys, tmp_path, toy_files):
    fails(capsys, "train", "--train", toy_files["train"], "--model", "add-k", "--order", "2",
          "--out", tmp_path / "o", "--arpa", tmp_path / "o.arpa")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.arpa").exists()


def test_checksum_mismatch(capsys, tmp_path, ptb_dir, monkeypatch):
    fake = tmp_path / "data" / "ptb"
    fake.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        shutil.copy(ptb_dir / "ptb" / f"ptb.{split}.txt", fake)
    with open(fake / "ptb.valid.txt", "a") as f:
        f.write(" extra line\n")
    monkeypatch.delenv("SEQLM_DATA", raising=False)
    msg = fails(capsys, "train", "--corpus", "ptb", "--data-dir", tmp_path / "data", "--out", tmp_path / "o")
    assert "checksum mismatch" in msg and "ptb.valid.txt" in msg and "delete it" in msg


def test_unreachable_download(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = corpora.REGISTRY["ptb"]
    dead = corpora.CorpusSpec(spec.name, spec.level, spec.folder, spec.files, spec.sha256,
                              (corpora.Source("http://127.0.0.1:9/ptb.{split}.txt"),))
    monkeypatch.setitem(corpora.REGISTRY, "ptb", dead)
    msg = fails(capsys, "train", "--corpus", "ptb", "--out", tmp_path / "o")
    assert "could not download" in msg and "put ptb.train.txt" in msg
    assert not any((tmp_path / "cache").rglob("*.txt"))


def test_download_verifies_and_caches(tmp_path, ptb_dir, monkeypatch):
    """The download path itself, served from local files (no network)."""
    monkeypatch.delenv("SEQLM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = corpora.REGISTRY["ptb"]
    local = corpora.CorpusSpec(spec.name, spec.level, spec.folder, spec.files, spec.sha256,
                               (corpora.Source((ptb_dir / "ptb").as_uri() + "/ptb.{split}.txt"),))
    monkeypatch.setitem(corpora.REGISTRY, "ptb", local)
    paths = corpora.locate("ptb")
    assert paths["test"].parent == tmp_path / "cache" / "seqlm" / "ptb"
    assert sha256_file(paths["test"]) == spec.sha256["ptb.test.txt"]
