"""Rescoring n-best lists (rescore.py): both shapes read, the LM score added with its weight and word
penalty, and on a generated n-best list the best hypothesis changes to the right one once the LM is added."""

import json

import numpy as np
import pytest

import seqlm
from seqlm.cli import main
from seqlm.errors import SeqlmError
from seqlm.tasks.rescore import parse_nbest, rescore


@pytest.fixture(scope="module")
def kn(tmp_path_factory, toy_lines):
    d = tmp_path_factory.mktemp("rescore")
    (d / "train.txt").write_text("\n".join(toy_lines[0]) + "\n")
    assert main(["-q", "train", "--model", "kn", "--order", "3", "--train", str(d / "train.txt"), "--out",
                 str(d / "kn")]) == 0
    return d, seqlm.load(d / "kn")


def nbest(lines, seed=0):
    """For each true sentence: itself and two corruptions (words shuffled, one word replaced), with
    'acoustic' scores that prefer a corruption by a small margin."""
    rng = np.random.default_rng(seed)
    out, truth = [], {}
    for k, line in enumerate(lines):
        words = line.split()
        shuffled = list(rng.permutation(words))
        replaced = list(words)
        replaced[len(words) // 2] = "xylophone"
        utt = f"utt{k}"
        truth[utt] = line
        out += [f"{utt} -10.5 {line}", f"{utt} -10.0 {' '.join(shuffled)}", f"{utt} -10.2 {' '.join(replaced)}"]
    return out, truth


def test_the_lm_changes_the_best_hypothesis(kn, toy_lines, tmp_path, capsys):
    d, lm = kn
    lines = [x for x in toy_lines[2][:20] if len(x.split()) >= 4][:10]
    text, truth = nbest(lines)
    hyps = parse_nbest(text)
    assert [h.score for h in hyps[:3]] == [-10.5, -10.0, -10.2]
    _, before = rescore(lm, hyps, lm_weight=0.0)
    assert all(b["text"] != truth[b["utterance"]] for b in before)  # the acoustic scores alone choose wrong
    rows, best = rescore(lm, hyps, lm_weight=1.0)
    assert [b["text"] for b in best] == [truth[b["utterance"]] for b in best]
    lp = seqlm.score(lm, [hyps[0].text])[0]["log_prob"]
    assert rows[0]["total"] == pytest.approx(-10.5 + lp)
    f = tmp_path / "nbest.txt"
    f.write_text("\n".join(text) + "\n")
    assert main(["rescore", str(d / "kn"), str(f), "--best"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{u}\t{t}" for u, t in truth.items()]
    # the default: every hypothesis, each utterance's best first (utterance, rank, id, total, LM log-prob, text)
    assert main(["rescore", str(d / "kn"), str(f)]) == 0
    ranked = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(ranked) == len(rows) and [u for u, *_ in ranked if _[0] == "1"] == list(truth)
    assert [(u, t) for u, r, _, _, _, t in ranked if r == "1"] == list(truth.items())
    for u in truth:
        mine = [(int(r), float(total)) for v, r, _, total, _, _ in ranked if v == u]
        assert [r for r, _ in mine] == list(range(1, len(mine) + 1))
        assert [t for _, t in mine] == sorted((t for _, t in mine), reverse=True)
    assert main(["rescore", str(d / "kn"), str(f), "--json", "--log-base", "10", "--word-penalty", "0.5"]) == 0
    r = json.loads(capsys.readouterr().out)
    h0 = r["hypotheses"][0]
    assert h0["lm_log_prob"] == pytest.approx(lp / np.log(10)) and h0["total"] == pytest.approx(
        -10.5 + lp / np.log(10) + 0.5 * h0["words"])


def test_kaldi_and_id_text_shapes(kn):
    _, lm = kn
    kaldi = ["utt1-1 the cat", "utt1-2 a cat", "utt2-1 the dog", "utt-with-dash-3 the end"]
    hyps = parse_nbest(kaldi)
    assert [h.utterance for h in hyps] == ["utt1", "utt1", "utt2", "utt-with-dash"] and hyps[0].score is None
    plain = ["1 the cat sat", "1 cat the sat", "2 the dog"]
    hyps = parse_nbest(plain)
    assert [h.utterance for h in hyps] == ["1", "1", "2"] and hyps[0].text == "the cat sat"
    rows, best = rescore(lm, hyps)
    assert len(rows) == 3 and [b["utterance"] for b in best] == ["1", "2"]
    # a hypothesis that starts with a number is text when not every line has a score
    assert parse_nbest(["1 3 dogs", "1 the dogs"])[0].text == "3 dogs"


@pytest.mark.parametrize("lines,fmt,match", [
    ([], "auto", "no hypotheses"),
    (["onlyid"], "auto", "expected ID HYPOTHESIS"),
    (["u1 notanumber the cat"], "id-score-text", "expected ID SCORE HYPOTHESIS"),
    (["u1 the cat"], "kaldi", "UTTERANCE-N"),
    (["u1 the cat"], "xml", "unknown n-best --format"),
])
def test_bad_nbest(lines, fmt, match):
    with pytest.raises(SeqlmError, match=match):
        parse_nbest(lines, fmt)


def test_cli_bad_file(kn, tmp_path, capsys):
    d, _ = kn
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("u1 caf\xe9 au lait\n".encode("latin-1"))
    assert main(["rescore", str(d / "kn"), str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["rescore", str(d / "kn"), str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
