"""generate_many (tasks/generate.py): num samples, each from seed + i, and --num checked in the API."""

import numpy as np
import pytest

from seqlm.errors import SeqlmError
from seqlm.tasks.generate import beam_search, generate, generate_many
from seqlm.training.train import train_ngram


@pytest.fixture(scope="module")
def lm(toy_lines):
    return train_ngram(toy_lines[0][:500], order=3)


def test_sample_i_is_generate_with_seed_plus_i(lm):
    many = generate_many(lm, "the", num=3, seed=10, max_tokens=8)
    assert [s["text"] for s in many] == [generate(lm, "the", seed=10 + i, max_tokens=8)["text"] for i in range(3)]
    assert len({s["text"] for s in generate_many(lm, "", num=5, seed=1)}) > 1


@pytest.mark.parametrize("num,error", [(0, SeqlmError), (-2, SeqlmError), (1.5, TypeError)])
def test_num_must_be_a_positive_integer(lm, num, error):
    with pytest.raises(error, match="num must be"):
        generate_many(lm, "the", num=num)


@pytest.mark.parametrize("options,error,match", [
    ({"seed": "a"}, TypeError, "seed must be an int"), ({"seed": -5}, SeqlmError, "--seed must be >= 0"),
    ({"max_tokens": 2.5}, TypeError, "max_tokens must be an int"), ({"top_k": 1.0}, TypeError, "top_k"),
    ({"temperature": "hot"}, TypeError, "temperature must be a number"), ({"num": 0}, SeqlmError, "--num")])
def test_generate_options_are_checked_before_numpy_sees_them(toy_lines, options, error, match):
    from seqlm.tasks.generate import generate_many

    lm = train_ngram(toy_lines[0][:300], order=2)
    with pytest.raises(error, match=match):
        generate_many(lm, "the", **options)


# -- beam search ----------------------------------------------------------------------------------------
def tiny_models():
    """An n-gram and an (untrained) LSTM over six tokens: small enough to search exhaustively."""
    import torch

    from seqlm.config import ModelConfig
    from seqlm.models.neural.lm import NeuralLM, build_module
    from seqlm.text.vocab import Vocab

    ngram = train_ngram(["a b c", "a c", "b a c c", "c b", "a a b"] * 3, order=2)
    torch.manual_seed(0)
    vocab = Vocab(["<unk>", "<s>", "</s>", "a", "b", "c"])
    cfg = ModelConfig(kind="lstm", embedding_dim=8, hidden_size=8, num_layers=1, backend="fused")
    lstm = NeuralLM(vocab, build_module(cfg, len(vocab)).eval(), {"model": {"kind": "lstm"}})
    return [ngram, lstm]


def exhaustive(model, max_tokens):
    """The best (log-prob, words) over every text of at most ``max_tokens`` tokens (ending at </s> or the limit)."""
    import itertools

    from seqlm.text.vocab import EOS_ID

    words = [i for i in range(len(model.vocab)) if i not in (0, 1, EOS_ID)]
    best = (-np.inf, None)
    for n in range(max_tokens + 1):
        for seq in itertools.product(words, repeat=n):
            st, lp = model.start(), 0.0
            for t in seq:
                lp += float(model.next_logprobs(st)[t])
                st = model.advance(st, t)
            if n < max_tokens:
                lp += float(model.next_logprobs(st)[EOS_ID])
            elif n == 0:
                continue
            best = max(best, (lp, model.vocab.decode(list(seq))))
    return best


@pytest.mark.parametrize("which", [0, 1], ids=["ngram", "lstm"])
def test_a_wide_enough_beam_is_an_exhaustive_search(which):
    model = tiny_models()[which]
    lp, words = exhaustive(model, 3)
    got = beam_search(model, "", beam=200, max_tokens=3, length_penalty=0)[0]
    assert got["log_prob"] == pytest.approx(lp) and got["generated"] == " ".join(words)


@pytest.mark.parametrize("which", [0, 1], ids=["ngram", "lstm"])
def test_beam_one_is_greedy_and_a_beam_never_scores_below_it(which):
    model = tiny_models()[which]
    greedy = generate(model, "a", greedy=True, max_tokens=6)
    one = beam_search(model, "a", beam=1, max_tokens=6, length_penalty=0)[0]
    assert (one["text"], one["log_prob"]) == (greedy["text"], pytest.approx(greedy["log_prob"]))
    for width in (2, 4, 8):
        assert beam_search(model, "a", beam=width, max_tokens=6, length_penalty=0)[0]["log_prob"] >= greedy["log_prob"] - 1e-9


def test_beam_constraints_and_nbest(lm):
    out = beam_search(lm, "the", beam=6, num=3, max_tokens=8, banned_words=["cat", "dog"], prefix="old")
    assert len(out) == 3 and [o["score"] for o in out] == sorted((o["score"] for o in out), reverse=True)
    for o in out:
        assert o["generated"].split()[0] == "old" and not {"cat", "dog"} & set(o["generated"].split())
    with pytest.raises(SeqlmError, match="more than --beam"):
        beam_search(lm, "the", beam=2, num=3)
    with pytest.raises(SeqlmError, match="banned"):
        beam_search(lm, "the", beam=2, banned_words=["old"], prefix="old")


def test_the_cli_beam(tmp_path, toy_lines, capsys):
    from seqlm.cli import main

    train_ngram(toy_lines[0][:300], order=3).save(tmp_path / "kn")
    assert main(["generate", str(tmp_path / "kn"), "--prompt", "the", "--beam", "4", "--num", "2", "--json"]) == 0
    rows = [__import__("json").loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and rows[0]["score"] >= rows[1]["score"] and rows[0]["beam"] == 4
    assert main(["generate", str(tmp_path / "kn"), "--beam", "4", "--seed", "1"]) == 2
    assert "sampling option" in capsys.readouterr().err


def tiny_transformer():
    import torch

    from seqlm.config import ModelConfig
    from seqlm.models.neural.lm import NeuralLM, build_module
    from seqlm.text.vocab import Vocab

    torch.manual_seed(0)
    vocab = Vocab(["<unk>", "<s>", "</s>", "a", "b", "c"])
    cfg = ModelConfig(kind="transformer", embedding_dim=8, hidden_size=16, num_layers=1, heads=2, context=4)
    return NeuralLM(vocab, build_module(cfg, len(vocab)).eval(), {"model": {"kind": "transformer"}})


@pytest.mark.parametrize("which", [0, 1, 2], ids=["ngram", "lstm", "transformer"])
@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_batched_prompts_each_get_what_they_get_alone(which, penalty, monkeypatch):
    """Several prompts searched together (every step of every beam one batched step of the model) give each
    prompt the n-best it gets alone, and a neural model steps them in one batch per step."""
    model = (tiny_models() + [tiny_transformer()])[which]
    prompts = ["a", "", "b c", "c c a b"]
    alone = [beam_search(model, p, beam=3, num=2, max_tokens=5, length_penalty=penalty) for p in prompts]
    calls = []
    real = type(model).advance_many
    monkeypatch.setattr(type(model), "advance_many", lambda self, s, t: calls.append(len(s)) or real(self, s, t))
    together = beam_search(model, prompts, beam=3, num=2, max_tokens=5, length_penalty=penalty)
    assert len(together) == len(prompts)
    for a, b in zip(alone, together):
        assert [(x["prompt"], x["text"], x["stopped"]) for x in a] == [(x["prompt"], x["text"], x["stopped"]) for x in b]
        assert [x["log_prob"] for x in a] == pytest.approx([x["log_prob"] for x in b], abs=1e-5)
    assert calls and max(calls) > 3  # the beams of several prompts stepped at once
    with pytest.raises(SeqlmError, match="no prompts"):
        beam_search(model, [], beam=2)


def test_the_cli_takes_a_file_of_prompts(tmp_path, toy_lines, capsys):
    import json

    from seqlm.cli import main

    train_ngram(toy_lines[0][:300], order=3).save(tmp_path / "kn")
    (tmp_path / "p.txt").write_text("the\nthe old\n")
    assert main(["generate", str(tmp_path / "kn"), "--prompts", str(tmp_path / "p.txt"), "--beam", "3", "--num", "2",
                 "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["the", "the", "the old", "the old"]
    assert main(["generate", str(tmp_path / "kn"), "--prompts", str(tmp_path / "p.txt"), "--seed", "3", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["the", "the old"]
    assert main(["generate", str(tmp_path / "kn"), "--prompts", str(tmp_path / "p.txt"), "--prompt", "x"]) == 2
    assert "either --prompt or --prompts" in capsys.readouterr().err
