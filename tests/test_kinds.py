"""The interface every kind of the table of kinds meets, written once and run for each row (the
composites included: a mixture built by seqlm mix, dynamic evaluation and the cache built by seqlm
adapt): the distribution sums to 1, batched scoring equals step-by-step, save -> load gives identical
scores, evaluation does not depend on its batching, and the CLI trains (or builds), evaluates, scores,
predicts and generates with it end to end."""

import json

import numpy as np
import pytest

import seqlm
from conftest import step_by_step
from seqlm import kinds
from seqlm.cli import main

TINY_NEURAL = ["model.embedding_dim=12", "model.hidden_size=12", "train.batch_size=4", "train.bptt=6",
               "train.max_steps=6", "train.threads=1", "train.optimizer=adam", "train.lr=0.01"]


# variants run through the same interface checks: the adaptive softmax (tied) on a recurrent and a window LM
VARIANTS = {"lstm+adaptive": ["model.adaptive_cutoffs=10,40", "model.tie_weights=true"],
            "window+adaptive": ["model.adaptive_cutoffs=20", "model.tie_weights=true"],
            "transformer+adaptive": ["model.adaptive_cutoffs=20", "model.tie_weights=true", "model.context=5",
                                     "model.heads=3"]}


def options(kind: str, variant: str = "") -> list[str]:
    if kinds.get(kind).family == "neural":
        return sum((["--set", x] for x in TINY_NEURAL + VARIANTS.get(f"{kind}+{variant}", [])), [])
    return ["--order", "3"] + (["--k", "0.5"] if kinds.get(kind).canonical == "add-k" else [])


# how a composite row is built from trained parts: the parts' kinds and the command after training them
COMPOSITES = {
    "mixture": (["kn", "lstm"], lambda d: ["mix", str(d / "kn"), str(d / "lstm"), "--valid", str(d / "valid.txt")]),
    "dynamic": (["lstm"], lambda d: ["adapt", str(d / "lstm"), "--method", "dynamic", "--valid", str(d / "valid.txt"),
                                     "--no-tune", "--param", "rule=sgd", "--param", "lr=0.01"]),
    "cache": (["lstm"], lambda d: ["adapt", str(d / "lstm"), "--method", "cache", "--valid", str(d / "valid.txt"),
                                   "--no-tune", "--param", "size=20", "--param", "theta=0.5", "--param", "lambda=0.2"]),
}


def test_every_row_is_in_the_contract_suite():
    assert set(kinds.KINDS) == set(kinds.names()) | set(COMPOSITES)
    assert set(kinds.names("composite")) == set(COMPOSITES)


def _train(d, kind: str, out, variant: str = "") -> None:
    argv = ["-q", "train", "--model", kind, "--train", str(d / "train.txt"), "--valid", str(d / "valid.txt"),
            "--out", str(out)] + options(kind, variant)
    assert main(argv) == 0


@pytest.fixture(scope="module", params=list(kinds.names()) + list(VARIANTS) + list(COMPOSITES))
def trained(request, tmp_path_factory, toy_lines):
    kind, _, variant = request.param.partition("+")
    d = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    for name, lines in zip(("train", "valid", "test"), (toy_lines[0][:300], toy_lines[1][:40], toy_lines[2][:40])):
        (d / f"{name}.txt").write_text("\n".join(lines) + "\n")
    if kind in COMPOSITES:
        parts, command = COMPOSITES[kind]
        for part in parts:
            _train(d, part, d / part)
        assert main(["-q"] + command(d) + ["--out", str(d / "m")]) == 0
        assert seqlm.load(d / "m").__class__.__name__ == kinds.KINDS[kind].builder.rsplit(":", 1)[1]
    else:
        _train(d, kind, d / "m", variant)
    return kind, d, seqlm.load(d / "m", device="cpu"), toy_lines[2][:40]


def test_sums_to_one(trained):
    kind, _, lm, lines = trained
    state = lm.start()
    for token in [lm.vocab.stoi.get(w, 0) for w in lines[0].split()[:3]] + [0]:  # known words, then <unk>
        p = np.exp(lm.next_logprobs(state))
        assert p.sum() == pytest.approx(1.0, abs=1e-5), kind
        state = lm.advance(state, token)


def test_batched_equals_step_by_step(trained):
    kind, _, lm, lines = trained
    encoded = [lm.vocab.encode(lm.vocab.tokenizer.tokenize(x)) for x in lines[:5]]
    flat, _ = lm.score_lines(encoded, "sentence")
    assert flat == pytest.approx(step_by_step(lm, encoded), abs=1e-4), kind


def test_save_load_identical(trained, tmp_path):
    kind, d, lm, lines = trained
    again = seqlm.load(d / "m", device="cpu")
    a = seqlm.score(lm, lines[:5], per="token")
    b = seqlm.score(again, lines[:5], per="token")
    assert [r["log_prob"] for r in a] == [r["log_prob"] for r in b], kind


def test_evaluation_does_not_depend_on_batching(trained):
    kind, _, lm, lines = trained
    whole = seqlm.evaluate(lm, lines, mode="stream")
    one_by_one = seqlm.evaluate(lm, lines, mode="stream", batch_lines=1)
    assert one_by_one["perplexity"] == pytest.approx(whole["perplexity"], rel=1e-5), kind
    assert one_by_one["tokens"] == whole["tokens"]


def test_cli_end_to_end(trained, capsys):
    kind, d, _, _ = trained
    m = str(d / "m")
    capsys.readouterr()
    assert main(["evaluate", m, "--file", str(d / "test.txt"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tokens"] > 0 and (r["perplexity"] is None or r["perplexity"] > 1)  # None: inf (mle)
    assert main(["score", m, "--file", str(d / "test.txt"), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 40
    assert main(["predict", m, "--prompt", "the", "--top-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 3
    assert main(["generate", m, "--seed", "1", "--max-tokens", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"]
