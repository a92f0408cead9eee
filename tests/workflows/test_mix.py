"""Mixtures (mixture.py): linear interpolation of models sharing a vocabulary, weights by EM on validation
text; a model like any other (the interface suite), saved as a folder of its parts."""

import json

import numpy as np
import pytest

import seqlm
from conftest import step_by_step
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.models.mixture import MixtureLM, fit_weights


@pytest.fixture(scope="module")
def parts(kn_and_lstm, small_files):
    return kn_and_lstm, small_files


def test_interface(parts):
    d, files = parts
    mix = MixtureLM([seqlm.load(d / "kn"), seqlm.load(d / "lstm", device="cpu")], [0.4, 0.6])
    lines = files["test"].read_text().splitlines()[:6]
    enc = [mix.vocab.encode(mix.vocab.tokenizer.tokenize(x)) for x in lines]
    state = mix.start()
    for tok in np.concatenate(enc)[:8]:
        assert np.exp(mix.next_logprobs(state)).sum() == pytest.approx(1.0, abs=1e-6)
        state = mix.advance(state, tok)
    flat, _ = mix.score_lines(enc, "sentence")
    assert flat == pytest.approx(step_by_step(mix, enc), abs=1e-5)
    # each token's probability is the weighted sum of the parts'
    a, _ = mix.parts[0].score_lines(enc, "sentence")
    b, _ = mix.parts[1].score_lines(enc, "sentence")
    assert np.exp(flat) == pytest.approx(0.4 * np.exp(a) + 0.6 * np.exp(b), rel=1e-9)
    whole = seqlm.evaluate(mix, lines, mode="stream")
    assert seqlm.evaluate(mix, lines, mode="stream", batch_lines=1)["perplexity"] == pytest.approx(
        whole["perplexity"], rel=1e-9)


def test_em_never_lowers_the_likelihood_and_finds_the_mixing_weights():
    rng = np.random.default_rng(0)
    p1, p2 = rng.uniform(0.01, 1, 5000), rng.uniform(0.01, 1, 5000)
    truth = 0.3
    # data where a token's probability is judged by part 1 with prob 0.3: the likelihood peaks near 0.3
    lp = np.log(np.stack([np.where(rng.random(5000) < truth, p1, p1 * 0.01),
                          np.where(rng.random(5000) < truth, p2 * 0.01, p2)]))
    w, history = fit_weights(lp)
    assert all(b >= a - 1e-12 for a, b in zip(history, history[1:]))
    grid = np.linspace(0.01, 0.99, 99)
    best = grid[np.argmax([np.logaddexp(np.log(g) + lp[0], np.log(1 - g) + lp[1]).mean() for g in grid])]
    assert w[0] == pytest.approx(best, abs=0.011) and w.sum() == pytest.approx(1.0)


def test_cli_mix_fits_saves_and_beats_its_parts(parts, tmp_path, capsys):
    d, files = parts
    out = tmp_path / "mix"
    assert main(["-q", "mix", str(d / "kn"), str(d / "lstm"), "--valid", str(files["valid"]), "--out", str(out),
                 "--results", str(tmp_path / "r.json"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert sum(r["weights"]) == pytest.approx(1.0) and all(0 < w < 1 for w in r["weights"])
    assert r["metrics"]["valid_perplexity"] <= min(p["valid_perplexity"] for p in r["parts"]) + 1e-9
    mix = seqlm.load(out, device="cpu")
    valid = files["valid"].read_text().splitlines()
    assert seqlm.evaluate(mix, valid)["perplexity"] == pytest.approx(r["metrics"]["valid_perplexity"], rel=1e-9)
    for argv in (["predict", str(out), "--prompt", "the", "--json"], ["generate", str(out), "--seed", "1", "--json"],
                 ["score", str(out), "--file", str(files["test"]), "--json"]):
        assert main(argv) == 0
    capsys.readouterr()
    # given weights, and a mixture as a part of another
    assert main(["-q", "mix", str(d / "kn"), str(out), "--weights", "1,3", "--valid", str(files["valid"]),
                 "--out", str(tmp_path / "mix2")]) == 0
    assert list(seqlm.load(tmp_path / "mix2").weights) == [0.25, 0.75]


def test_an_adapted_part_is_named_with_its_adaptation(parts, tmp_path, capsys):
    d, files = parts
    assert main(["-q", "adapt", str(d / "lstm"), "--method", "cache", "--no-tune", "--valid", str(files["valid"]),
                 "--out", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    assert main(["-q", "mix", str(d / "kn"), str(tmp_path / "cache"), "--valid", str(files["valid"]), "--out",
                 str(tmp_path / "mix"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [(p["kind"], p.get("adaptation")) for p in r["parts"]] == [("ngram", None), ("lstm", "cache")]
    from seqlm.manual import _family

    assert _family({**r, "type": "mix"}) == ("ngram + (lstm + cache) mixture", "word")


def test_mix_errors(parts, tmp_path, capsys, toy_lines):
    d, files = parts
    other = tmp_path / "other.txt"
    other.write_text("\n".join(toy_lines[0][:50]).upper() + "\n")
    assert main(["-q", "train", "--model", "kn", "--train", str(other), "--out", str(tmp_path / "kn2")]) == 0
    cases = [
        (["mix", str(d / "kn"), str(tmp_path / "kn2")], "vocabulary differs"),
        (["mix", str(d / "kn"), str(d / "lstm"), "--weights", "1"], "needs 2 weights"),
        (["mix", str(d / "kn"), str(d / "lstm"), "--weights", "1,-1"], ">= 0"),
        (["mix", str(d / "kn"), str(d / "lstm"), "--weights", "a,b"], "comma-separated numbers"),
        (["mix", str(d / "kn")], "at least two"),
        (["mix", str(d / "kn"), str(d / "lstm")], "no valid text"),
    ]
    for argv, match in cases:
        out = tmp_path / "x"
        assert main(argv + ["--out", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and not out.exists(), (argv, err)
    with pytest.raises(SeqlmError, match="at least two"):
        MixtureLM([seqlm.load(d / "kn")], [1.0])
