"""The named corpora's download path, on loopback only: a server on 127.0.0.1 serves small archives of the real
layouts (WikiText's zip of three members; text8's and enwik8's one member cut 90/5/5), built here.  Download,
checksum mismatch, interrupted transfer, no network, an archive placed by hand, a file damaged or in the way."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.text import corpora, fetch

WIKI = {
    "train": " = Valkyria Chronicles = \n\n Senjō no Valkyria is a game .\n The game began in 2010 .\n\n"
             " = = Gameplay = = \n It is played by <unk> parties .\n" * 20,
    "valid": " = Tower Building = \n\n The building is tall .\n",
    "test": " = Robert Boulter = \n\n Robert Boulter is an actor .\n",
}


def zip_of(members: dict[str, bytes], folder: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if folder:
            zf.writestr(folder + "/", b"")
        for name, data in members.items():
            zf.writestr(f"{folder}/{name}" if folder else name, data)
    return buf.getvalue()


WIKI_ZIP = zip_of({f"wiki.{s}.tokens": t.encode() for s, t in WIKI.items()}, "wikitext-2")
# enwik8's layout: one member of bytes, a two-byte character across the train/valid cut and a three-byte
# character cut short at the very end
HUTTER = (b"<page>\n  <title>Anarchism</title>\n" * 30)[:997] + "é".encode() + b"\n  <text>Caf" * 10 \
    + "€".encode()[:2]
HUTTER_ZIP = zip_of({"enwik8": HUTTER})


class Server:
    """Serves ``files`` (path -> bytes); a path under /broken/ promises more bytes than it sends, then hangs up."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                path = self.path.removeprefix("/broken")
                if path not in files_:
                    self.send_error(404)
                    return
                body = files_[path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (1000 if self.path.startswith("/broken") else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Server({"/wikitext-2-v1.zip": WIKI_ZIP, "/enwik8.zip": HUTTER_ZIP, "/text8.zip": zip_of({"text8": HUTTER})})
    yield s
    s.close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "seqlm"


def serve(monkeypatch, name: str, urls: tuple[str, ...], **changes) -> corpora.CorpusSpec:
    """The registry's spec of ``name``, its archive fetched from ``urls`` and pinned to the fixture's digest."""
    spec = corpora.REGISTRY[name]
    blob = WIKI_ZIP if spec.archive.members else HUTTER_ZIP
    pins = {"sha256": hashlib.sha256(blob).hexdigest()} if spec.archive.sha256 else \
        {"member_sha256": hashlib.sha256(HUTTER).hexdigest(), "cut": (998, 40)}
    archive = dataclasses.replace(spec.archive, urls=urls, **{**pins, **changes})
    local = dataclasses.replace(spec, archive=archive)
    monkeypatch.setitem(corpora.REGISTRY, name, local)
    return local


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def fails(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("seqlm: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_registry_pins_every_corpus():
    for name, spec in corpora.REGISTRY.items():
        assert set(spec.files) == {"train", "valid", "test"}, name
        if spec.archive is None:
            assert set(spec.sha256) == set(spec.files.values()) and spec.sources, name
        else:
            a = spec.archive
            assert a.urls and (a.sha256 or a.member_sha256), name
            assert all(len(x) == 64 for x in (a.sha256, a.member_sha256) if x), name
            assert (a.members == spec.files) if a.member is None else a.cut == (90_000_000, 5_000_000), name


def test_download_extract_verify_then_offline(server, cache, monkeypatch):
    serve(monkeypatch, "wikitext-2", (server.url + "/wikitext-2-v1.zip",))
    corpus = corpora.load_corpus("wikitext-2")
    assert corpus.level == "word"
    assert corpus.split("test") == [" = Robert Boulter = ", " Robert Boulter is an actor ."]  # blank lines skipped
    assert corpus.split("train")[1] == " Senjō no Valkyria is a game ."
    folder = cache / "wikitext-2"
    assert leftovers(folder) == sorted(["wikitext-2-v1.zip", fetch.MANIFEST, "wiki.train.tokens",
                                        "wiki.valid.tokens", "wiki.test.tokens"])
    record = json.loads((folder / fetch.MANIFEST).read_text())
    assert record["files"]["wiki.test.tokens"] == hashlib.sha256(WIKI["test"].encode()).hexdigest()
    assert corpus.describe()["sha256"]["test"] == record["files"]["wiki.test.tokens"]
    server.close()  # from now on, no network: the cache answers
    assert corpora.load_corpus("wikitext-2").split("valid") == [" = Tower Building = ", " The building is tall ."]
    # a damaged file is caught on the next load, and named
    with open(folder / "wiki.valid.tokens", "a") as f:
        f.write(" more\n")
    with pytest.raises(SeqlmError, match="checksum mismatch.*wiki.valid.tokens"):
        corpora.load_corpus("wikitext-2")


def test_wrong_archive_leaves_nothing(server, cache, monkeypatch):
    serve(monkeypatch, "wikitext-2", (server.url + "/wikitext-2-v1.zip",), sha256="0" * 64)
    with pytest.raises(SeqlmError, match=r"could not download corpus 'wikitext-2' .*has sha256.*expected 000000"):
        corpora.locate("wikitext-2")
    assert leftovers(cache) == []


def test_interrupted_transfer_leaves_nothing_and_the_next_source_answers(server, cache, monkeypatch):
    serve(monkeypatch, "wikitext-2", (server.url + "/broken/wikitext-2-v1.zip",))
    with pytest.raises(SeqlmError, match="could not download.*(ended after|broke off)"):
        corpora.locate("wikitext-2")
    assert leftovers(cache) == []
    serve(monkeypatch, "wikitext-2", (server.url + "/broken/wikitext-2-v1.zip", server.url + "/wikitext-2-v1.zip"))
    assert corpora.locate("wikitext-2")["train"].read_text() == WIKI["train"]


def test_no_network_names_the_file_to_place_then_a_placed_archive_works(server, cache, monkeypatch, capsys, tmp_path):
    server.close()
    serve(monkeypatch, "wikitext-2", (server.url + "/wikitext-2-v1.zip",))  # nothing listens there now
    msg = fails(capsys, "train", "--corpus", "wikitext-2", "--out", tmp_path / "o")
    assert "could not download corpus 'wikitext-2'" in msg
    assert f"put wikitext-2-v1.zip (from {server.url}/wikitext-2-v1.zip) in {cache / 'wikitext-2'}" in msg
    assert leftovers(cache) == [] and not (tmp_path / "o").exists()
    # the user places the archive by hand, in a data folder: it is verified and extracted, with no network
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    (data / "wikitext-2-v1.zip").write_bytes(WIKI_ZIP)
    assert main(["-q", "train", "--corpus", "wikitext-2", "--data-dir", str(tmp_path / "data"), "--order", "3",
                 "--out", str(tmp_path / "o")]) == 0
    assert leftovers(data) == ["wikitext-2-v1.zip"]  # the user's folder is only read: splits go to the cache
    assert (cache / "wikitext-2" / fetch.MANIFEST).is_file()
    # a placed archive that is another file: one line, nothing replaced
    (data / "wikitext-2-v1.zip").write_bytes(WIKI_ZIP[:-10])
    (cache / "wikitext-2" / fetch.MANIFEST).unlink()
    msg = fails(capsys, "train", "--corpus", "wikitext-2", "--data-dir", tmp_path / "data", "--out", tmp_path / "o2")
    assert "checksum mismatch" in msg and "wikitext-2-v1.zip" in msg


def test_a_file_seqlm_did_not_write_is_never_replaced(server, cache, monkeypatch):
    serve(monkeypatch, "wikitext-2", (server.url + "/wikitext-2-v1.zip",))
    (cache / "wikitext-2").mkdir(parents=True)
    (cache / "wikitext-2" / "wiki.test.tokens").write_text("my own file\n")
    with pytest.raises(SeqlmError, match="wiki.test.tokens is in the way"):
        corpora.locate("wikitext-2")
    assert (cache / "wikitext-2" / "wiki.test.tokens").read_text() == "my own file\n"
    assert leftovers(cache / "wikitext-2") == ["wiki.test.tokens", "wikitext-2-v1.zip"]  # the archive is kept


def test_one_member_cut_at_character_starts(server, cache, monkeypatch):
    """enwik8's layout: the member verified, cut into train/valid/test by bytes, no split starting or ending
    inside a UTF-8 character; the cut is recorded."""
    serve(monkeypatch, "enwik8", (server.url + "/enwik8.zip",))
    paths = corpora.locate("enwik8")
    parts = {s: p.read_bytes() for s, p in paths.items()}
    assert parts["train"] + parts["valid"] + parts["test"] == HUTTER[:-2]  # the cut-short last character left out
    assert len(parts["train"]) == 997 and parts["valid"].startswith("é".encode())  # 998 fell inside "é"
    for data in parts.values():
        data.decode("utf-8")  # every split is whole text
    record = json.loads((cache / "enwik8" / fetch.MANIFEST).read_text())
    assert record["bytes"] == {"train": [0, 997], "valid": [997, 1038], "test": [1038, len(HUTTER) - 2]}
    corpus = corpora.load_corpus("enwik8")
    assert corpus.level == "byte" and corpus.split("train")[0] == "<page>"


def test_a_wrong_member_is_refused(server, cache, monkeypatch):
    serve(monkeypatch, "enwik8", (server.url + "/enwik8.zip",), member_sha256="f" * 64)
    with pytest.raises(SeqlmError, match="enwik8 in enwik8.zip has sha256"):
        corpora.locate("enwik8")
    assert leftovers(cache) == []


@pytest.mark.parametrize("data,lengths,bounds", [
    (b"abcdef", (2, 2), [0, 2, 4, 6]),
    ("aé".encode() + b"bc", (2, 1), [0, 1, 3, 5]),  # 2 falls inside "é": back to its first byte
    (b"ab" + "€".encode()[:2], (1, 1), [0, 1, 2, 2]),  # the last character is cut short: left out
    (b"ab", (5, 5), [0, 2, 2, 2]),
])
def test_cut_points(data, lengths, bounds):
    assert fetch.cut_points(data, lengths) == bounds


def test_train_on_a_downloaded_byte_corpus(server, cache, monkeypatch, tmp_path):
    serve(monkeypatch, "enwik8", (server.url + "/enwik8.zip",))
    assert main(["-q", "train", "--corpus", "enwik8", "--order", "4", "--out", str(tmp_path / "m"),
                 "--results", str(tmp_path / "r.json")]) == 0
    metrics = json.loads((tmp_path / "r.json").read_text())["metrics"]
    assert metrics["test_bits_per_byte"] > 0


@pytest.mark.parametrize("recipe", ["wikitext-2/awd-lstm", "wikitext-103/lstm-adaptive", "text8/char-lstm",
                                    "enwik8/byte-lstm"])
def test_the_corpora_recipes_run(recipe, server, cache, monkeypatch, tmp_path):
    """Each corpus's recipe, shrunk to a few steps, on the loopback archive of its corpus's layout."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "recipes" / f"{recipe}.toml"
    name = recipe.split("/")[0]
    blob = "/wikitext-2-v1.zip" if name.startswith("wikitext") else f"/{name}.zip"
    serve(monkeypatch, name, (server.url + blob,))
    shrink = ["model.embedding_dim=16", "model.hidden_size=16", "model.num_layers=1", "train.batch_size=2",
              "train.bptt=8", "train.max_steps=2", "train.precision=fp32", "train.device=cpu"]
    if "adaptive" in recipe:
        shrink.append("model.adaptive_cutoffs=10,20")
    if "awd" in recipe:
        shrink.append("model.last_layer_size=16")
    argv = ["-q", "train", str(path), "--out", str(tmp_path / "m"), "--results", str(tmp_path / "r.json")]
    assert main(argv + [x for s in shrink for x in ("--set", s)]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    metric = res["config"]["meta"]["target"]["metric"]
    assert metric in res["metrics"] and res["config"]["meta"]["status"].startswith("not yet run here")


def test_one_process_writes_the_cache_at_a_time(server, cache, monkeypatch):
    """While another seqlm process writes a corpus's cache folder (a torchrun's other rank, another run), a
    second waits for it, then finds its files instead of writing them again."""
    import time

    from seqlm.io.locks import output_lock

    serve(monkeypatch, "wikitext-2", (server.url + "/wikitext-2-v1.zip",))
    got, waited = {}, {}

    def second():
        t = time.perf_counter()
        got["paths"] = corpora.locate("wikitext-2")
        waited["s"] = time.perf_counter() - t

    with output_lock(cache / "wikitext-2"):
        worker = threading.Thread(target=second)
        worker.start()
        time.sleep(0.6)
        assert worker.is_alive()  # waiting for the lock
        fetch.extract(corpora.REGISTRY["wikitext-2"], write_zip(cache), cache / "wikitext-2")  # "the first"
    worker.join(10)
    assert waited["s"] >= 0.5 and got["paths"]["test"].read_text() == WIKI["test"]
    assert leftovers(cache / "wikitext-2") == sorted([fetch.MANIFEST, "wiki.train.tokens", "wiki.valid.tokens",
                                                      "wiki.test.tokens"])  # nothing downloaded a second time


def write_zip(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "placed.zip"
    path.write_bytes(WIKI_ZIP)
    return path
