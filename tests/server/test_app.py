"""seqlm serve (serve.py): the JSON API on any model kind, the prefix-state cache, and bad requests (each a
4xx JSON error naming the fix; the server stays healthy)."""

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import seqlm  # noqa: E402
from conftest import tiny_run
from seqlm.cli import main  # noqa: E402
from seqlm.errors import SeqlmError  # noqa: E402
from seqlm.server.app import create_app  # noqa: E402
from seqlm.server.cache import PrefixCache  # noqa: E402
from seqlm.server.models import model_names  # noqa: E402
from seqlm.tasks.generate import predict  # noqa: E402


@pytest.fixture(scope="module")
def models(kn_and_lstm, small_files):
    d = kn_and_lstm
    chars = d / "chars.txt"
    chars.write_text("\n".join(small_files["train"].read_text().splitlines()[:200]) + "\n")
    assert main(["-q", "train", "--model", "kn", "--order", "4", "--level", "char", "--train", str(chars),
                 "--out", str(d / "chars")]) == 0
    return {"kn": seqlm.load(d / "kn"), "lstm": seqlm.load(d / "lstm", device="cpu"), "chars": seqlm.load(d / "chars")}


@pytest.fixture(scope="module")
def client(models):
    return TestClient(create_app(models, cache_size=64, max_body=4096))


def test_health_models_and_page(client):
    assert client.get("/v1/health").json()["status"] == "ok"
    m = client.get("/v1/models").json()
    assert m["default"] == "kn" and [x["name"] for x in m["models"]] == ["kn", "lstm", "chars"]
    assert [x["level"] for x in m["models"]] == ["word", "word", "char"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="suggestions"' in page.text
    assert client.get("/docs").status_code == 200 and "/v1/suggest" in client.get("/openapi.json").text


@pytest.mark.parametrize("name", ["kn", "lstm"])
def test_suggest_equals_predict_and_completes_words(client, models, name):
    r = client.post("/v1/suggest", json={"text": "the ", "model": name, "k": 4}).json()
    want = predict(models[name], "the", top_k=4)
    assert [s["token"] for s in r["suggestions"]] == [w["token"] for w in want]
    assert [s["log_prob"] for s in r["suggestions"]] == pytest.approx([w["log_prob"] for w in want])
    vocab = models[name].vocab
    word = next(w for w in vocab.itos[3:] if len(w) > 3 and w.isalpha())
    r = client.post("/v1/suggest", json={"text": "the " + word[:2], "model": name, "k": 50}).json()
    assert r["partial"] == word[:2] and r["context_tokens"] == 1
    tokens = [s["token"] for s in r["suggestions"]]
    assert word in tokens and all(t.startswith(word[:2]) for t in tokens)
    lps = [s["log_prob"] for s in r["suggestions"]]
    assert lps == sorted(lps, reverse=True)


def test_char_model_suggests_whole_words(client):
    r = client.post("/v1/suggest", json={"text": "the st", "model": "chars", "k": 3}).json()
    assert r["partial"] == "st" and len(r["suggestions"]) == 3
    assert all(s["token"].startswith("st") and " " not in s["token"] for s in r["suggestions"])
    assert all("".join(s["pieces"]) == s["token"] for s in r["suggestions"])


def test_prefix_cache_reads_only_the_new_tokens(models):
    lm = models["lstm"]
    counted = {"n": 0}

    class Counting:
        vocab = lm.vocab

        def start(self):
            return lm.start()

        def advance(self, state, token):
            counted["n"] += 1
            return lm.advance(state, token)

        def advance_tokens(self, state, tokens):  # the model reads several tokens in one pass
            counted["n"] += len(tokens)
            return lm.advance_tokens(state, tokens)

    cache = PrefixCache(Counting(), capacity=8)
    ids = list(lm.vocab.encode("the cat sat on the mat and the dog".split()))
    state, reused = cache.state(ids[:5])
    assert reused == 0 and counted["n"] == 5
    state2, reused = cache.state(ids[:7])  # typing on: only 2 more tokens read
    assert reused == 5 and counted["n"] == 7
    direct = lm.start()
    for t in ids[:7]:
        direct = lm.advance(direct, t)
    assert np.allclose(lm.next_logprobs(state2), lm.next_logprobs(direct))
    state3, reused = cache.state(ids[:7])
    assert reused == 7 and counted["n"] == 7  # the same text again: nothing read
    for k in range(20):  # the LRU stays bounded
        cache.state(ids[:1] + [k + 3])
    assert len(cache.entries) <= 8


def test_score_generate_evaluate(client, models):
    r = client.post("/v1/score", json={"lines": ["the cat", "a dog"], "per": "token", "model": "lstm"}).json()
    want = seqlm.score(models["lstm"], ["the cat", "a dog"], per="token")
    assert [x["log_prob"] for x in r["results"]] == pytest.approx([x["log_prob"] for x in want])
    assert r["results"][0]["token_log_probs"][0]["token"] == "the"
    g = client.post("/v1/generate", json={"prompt": "the", "seed": 3, "num": 2, "max_tokens": 5}).json()
    assert len(g["samples"]) == 2 and g["samples"][0] == seqlm.generate(models["kn"], "the", seed=3, max_tokens=5)
    e = client.post("/v1/evaluate", json={"text": "the cat\na dog", "model": "kn"}).json()
    assert e["perplexity"] == pytest.approx(seqlm.evaluate(models["kn"], ["the cat", "a dog"])["perplexity"])


@pytest.mark.parametrize("body,status,match", [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe{\"text\": 1}", 400, "not valid JSON"),
    (json.dumps({"text": 5}).encode(), 422, "text"),
    (json.dumps({"text": "the", "k": 0}).encode(), 422, "k"),
    (json.dumps({"text": "the", "k": 10 ** 6}).encode(), 422, "k"),
    (json.dumps({"text": "the", "model": "nope"}).encode(), 404, "unknown model 'nope'"),
    (json.dumps({"text": "the", "colour": "red"}).encode(), 422, "colour"),
    (json.dumps({"text": "x" * 5000}).encode(), 413, "over 4,096 bytes"),
    (json.dumps([1, 2]).encode(), 422, "body"),
])
def test_bad_suggest_requests(client, body, status, match):
    r = client.post("/v1/suggest", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and match in r.json()["error"], r.text


@pytest.mark.parametrize("path,body,status,match", [
    ("/v1/score", {"lines": []}, 422, "remove empty lines"),
    ("/v1/score", {"lines": ["the", " "]}, 422, "remove empty lines"),
    ("/v1/score", {}, 422, "either lines"),
    ("/v1/score", {"lines": ["the"], "per": "word"}, 422, "per"),
    ("/v1/score", {"lines": ["the cat\nhe said"]}, 422, "holds a newline"),
    ("/v1/evaluate", {"text": "\n \n"}, 422, "empty"),
    ("/v1/generate", {"max_tokens": 0}, 422, "max_tokens"),
    ("/v1/generate", {"prompt": "zzzunknownzzz"}, 422, "outside the model's vocabulary"),
    ("/v1/generate", {"seed": -5}, 422, "--seed must be >= 0"),
    ("/v1/generate", {"beam": 2, "num": 3}, 422, "more than --beam"),
    ("/v1/generate", {"ban": ["the"]}, 422, "constrain a beam search"),
    ("/v1/generate", {"seed": "a"}, 422, "seed"),
    ("/v1/generate", {"max_tokens": 2.5}, 422, "max_tokens"),
    ("/v1/nothing", {}, 404, "no such endpoint"),
])
def test_bad_other_requests(client, path, body, status, match):
    r = client.post(path, json=body)
    assert r.status_code == status and match in r.json()["error"], r.text
    assert client.get("/v1/health").status_code == 200


def test_chunked_body_over_the_limit(client):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/v1/suggest", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    ok = client.post("/v1/suggest", content=iter([b'{"text": ', b'"the "}']), headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json()["suggestions"]


def test_model_names():
    assert model_names(["runs/kn5", "lstm=runs/x/model", "a/b.arpa.gz"]) == [
        ("kn5", "runs/kn5"), ("lstm", "runs/x/model"), ("b", "a/b.arpa.gz")]
    with pytest.raises(SeqlmError, match="two served models"):
        model_names(["a/kn", "b/kn"])


@pytest.mark.parametrize("args,match", [
    (["--port", "70000"], "--port must be in"),
    (["--cache-size", "0"], "--cache-size must be >= 1"),
    (["--max-body", "10"], "--max-body must be >= 1024"),
])
def test_cli_serve_bad_options(args, match, capsys, tmp_path):
    assert main(["serve", str(tmp_path / "none")] + args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_cli_serve_missing_model(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "none")]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_concurrent_neural_suggestions_are_batched_and_equal_one_by_one(models):
    """Requests waiting together in the event loop share one batched model step (advance_many), and get the
    answers they would get alone."""
    import asyncio

    import httpx

    app = create_app(models, cache_size=256)
    texts = ["the ", "the cat ", "a dog sat ", "the students opened their ", "there is a ", "in the ",
             "the cat sat on the ", "some ", "the b", "many ca"]
    alone = TestClient(create_app(models, cache_size=256))
    want = [alone.post("/v1/suggest", json={"text": t, "model": "lstm", "k": 5}).json() for t in texts]

    async def together():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            rs = await asyncio.gather(*(c.post("/v1/suggest", json={"text": t, "model": "lstm", "k": 5})
                                        for t in texts))
        return [r.json() for r in rs]

    got = asyncio.run(together())
    for g, w in zip(got, want):
        assert [s["token"] for s in g["suggestions"]] == [s["token"] for s in w["suggestions"]]
        assert [s["log_prob"] for s in g["suggestions"]] == pytest.approx([s["log_prob"] for s in w["suggestions"]],
                                                                          abs=1e-5)
    served = app.state.served["lstm"]
    assert served.batching and served.batched >= len(texts) and served.batches < served.batched
    assert not app.state.served["kn"].batching  # n-gram suggestions need no model step worth batching


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "mogrifier", "window", "transformer"])
def test_advance_many_equals_advance(tmp_path, small_files, kind):  # noqa: F811
    tiny_run(tmp_path, small_files, kind, kind=kind, extra=["train.max_steps=2"])
    lm = seqlm.load(tmp_path / kind, device="cpu")
    ids = lm.vocab.encode("the cat sat on the mat".split())
    states = [lm.start()]
    for i in ids[:3]:
        states.append(lm.advance(states[-1], i))
    tokens = [int(t) for t in ids[1:5]]
    batched = lm.advance_many(states, tokens)
    for s, t, b in zip(states, tokens, batched):
        one = lm.advance(s, t)
        np.testing.assert_allclose(lm.next_logprobs(b), lm.next_logprobs(one), atol=1e-5)
        np.testing.assert_allclose(lm.next_logprobs(lm.advance(b, 7)), lm.next_logprobs(lm.advance(one, 7)), atol=1e-5)
    # a run of tokens read in one pass = read one by one
    at_once = lm.advance_tokens(lm.start(), [int(t) for t in ids])
    np.testing.assert_allclose(lm.next_logprobs(at_once), lm.next_logprobs(_one_by_one(lm, ids)), atol=1e-5)
    np.testing.assert_allclose(lm.next_logprobs(lm.advance(at_once, 9)), lm.next_logprobs(lm.advance(_one_by_one(lm, ids), 9)),
                               atol=1e-5)


def _one_by_one(lm, ids):
    state = lm.start()
    for t in ids:
        state = lm.advance(state, int(t))
    return state


def test_an_unexpected_failure_is_a_503_for_the_machine_and_a_logged_500_for_a_bug(models, monkeypatch, caplog):
    import logging

    import seqlm.tasks.score as score_module

    monkeypatch.setattr(logging.getLogger("seqlm"), "propagate", True)  # seqlm's own handler: not caplog's
    for error, status, match in ((MemoryError(), 503, "out of memory"),
                                 (OSError(28, "No space left on device"), 503, "the disk is full"),
                                 (RuntimeError("odd"), 500, "a bug of seqlm's server")):
        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(score_module, "score", fail)
        client = TestClient(create_app(models, cache_size=64, max_body=4096), raise_server_exceptions=False)
        r = client.post("/v1/score", json={"lines": ["the cat"]})
        assert r.status_code == status and match in r.json()["error"], r.text
        assert client.get("/v1/health").status_code == 200
    assert "RuntimeError: odd" in caplog.text


def test_a_busy_port_is_one_line_before_serving(tmp_path, capsys, small_files):
    import socket

    assert main(["-q", "train", "--train", str(small_files["train"]), "--order", "2", "--out", str(tmp_path / "kn")]) == 0
    capsys.readouterr()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(tmp_path / "kn"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "serving" not in err


def test_beam_search_over_http(client):
    r = client.post("/v1/generate", json={"prompt": "the", "beam": 4, "num": 2, "max_tokens": 6, "ban": ["cat"]})
    assert r.status_code == 200, r.text
    samples = r.json()["samples"]
    assert len(samples) == 2 and samples[0]["score"] >= samples[1]["score"]
    assert all("cat" not in s["generated"].split() for s in samples)


def test_a_body_that_is_not_a_json_object_is_named(client):
    r = client.post("/v1/suggest", content=b"the cat", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    r = client.post("/v1/suggest", json=["the"])
    assert r.status_code == 422 and "must be a JSON object" in r.json()["error"]



def test_a_subword_model_suggests_whole_words(tmp_path, small_files):
    """Suggestions of a BPE model are words, not pieces: each built from its pieces, its probability that of the
    pieces and of a word or line beginning after them; a partly typed word is completed."""
    pytest.importorskip("tokenizers")
    from seqlm.server.models import Served
    from seqlm.text.subword import SPACE
    from seqlm.text.vocab import EOS_ID

    assert main(["-q", "train", "--model", "kn", "--order", "5", "--level", "bpe", "--vocab-size", "400",
                 "--train", str(small_files["train"]), "--out", str(tmp_path / "bpe")]) == 0
    lm = seqlm.load(tmp_path / "bpe")
    served = Served("bpe", str(tmp_path / "bpe"), lm, 16)
    r = served.suggest("the ", 5, False)
    train_words = set(small_files["train"].read_text().split())
    words = [s["token"] for s in r["suggestions"]]
    assert len(words) == 5 and len(set(words)) == 5 and all(w in train_words for w in words), words
    assert [s["log_prob"] for s in r["suggestions"]] == sorted((s["log_prob"] for s in r["suggestions"]), reverse=True)
    vocab = lm.vocab
    begins = np.array([w.startswith(SPACE) for w in vocab.itos])
    begins[EOS_ID] = True
    for s in r["suggestions"]:
        assert "".join(s["pieces"]) == SPACE + s["token"]
        state = lm.advance_tokens(lm.start(), vocab.encode(vocab.tokenizer.tokenize("the ")))
        total = 0.0
        for p in s["pieces"]:
            lp = np.asarray(lm.next_logprobs(state), dtype=np.float64)
            total += lp[vocab.stoi[p]]
            state = lm.advance(state, vocab.stoi[p])
        total += np.logaddexp.reduce(np.asarray(lm.next_logprobs(state), dtype=np.float64)[begins])
        assert s["log_prob"] == pytest.approx(total)
    target = next(w for w in words if len(w) > 2)
    r = served.suggest("the " + target[:2], 5, False)
    assert r["partial"] == target[:2] and all(s["token"].startswith(target[:2]) for s in r["suggestions"])


@pytest.mark.parametrize("level", ["char", "byte"])
def test_char_and_byte_models_suggest_whole_words(tmp_path, small_files, level):
    """A character or byte model's suggestions are words: runs of its tokens up to a space, a byte model's
    bytes joined into whole UTF-8 characters; each word's log-probability is that of its tokens and of a
    space or the line's end after them; a partly typed word (non-ASCII too) is completed."""
    from seqlm.server.models import Served
    from seqlm.text.subword import BYTE_PIECE, SPACE
    from seqlm.text.vocab import EOS_ID

    text = tmp_path / "train.txt"
    lines = small_files["train"].read_text().splitlines()[:300] + ["the café is open", "a café au lait"] * 20
    text.write_text("\n".join(lines) + "\n")
    assert main(["-q", "train", "--model", "kn", "--order", "7", "--level", level, "--train", str(text),
                 "--out", str(tmp_path / "m")]) == 0
    lm = seqlm.load(tmp_path / "m")
    served = Served("m", str(tmp_path / "m"), lm, 16)
    r = served.suggest("the ", 5, False)
    train_words = set(text.read_text().split())
    words = [s["token"] for s in r["suggestions"]]
    assert len(words) == 5 and len(set(words)) == 5 and all(w in train_words for w in words), words
    assert [s["log_prob"] for s in r["suggestions"]] == sorted((s["log_prob"] for s in r["suggestions"]), reverse=True)
    vocab = lm.vocab
    ends = np.array([w == SPACE for w in vocab.itos])
    ends[EOS_ID] = True
    for s in r["suggestions"]:
        raw = b"".join(bytes([int(BYTE_PIECE.fullmatch(p).group(1), 16)]) if BYTE_PIECE.fullmatch(p)
                       else p.encode() for p in s["pieces"])
        assert raw.decode("utf-8") == s["token"]
        state = lm.advance_tokens(lm.start(), vocab.encode(vocab.tokenizer.tokenize("the") + [SPACE]))
        total = 0.0
        for p in s["pieces"]:
            total += np.asarray(lm.next_logprobs(state), dtype=np.float64)[vocab.stoi[p]]
            state = lm.advance(state, vocab.stoi[p])
        total += np.logaddexp.reduce(np.asarray(lm.next_logprobs(state), dtype=np.float64)[ends])
        assert s["log_prob"] == pytest.approx(total)
    r = served.suggest("the caf", 3, False)
    assert r["partial"] == "caf" and r["suggestions"][0]["token"] == "café"
