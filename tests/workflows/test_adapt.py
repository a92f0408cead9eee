"""seqlm adapt / seqlm.adapt (workflows/adapt.py): the search on validation text (the cache's whole grid, dynamic
evaluation's learning rate past the grid's edge), the saved folder loaded back with the same numbers, and
the options refused with one line."""

import json

import pytest

import seqlm
from conftest import tiny_run
from seqlm.cli import main
from seqlm.models import adapted as adapt


@pytest.fixture(scope="module")
def base(tmp_path_factory, small_files):
    d = tmp_path_factory.mktemp("adapt")
    tiny_run(d, small_files, extra=["train.epochs=2", "model.tie_weights=true"])
    return d / "m", small_files

def test_cli_adapt_tunes_saves_and_loads(base, tmp_path, capsys):
    path, files = base
    out = tmp_path / "cache"
    assert main(["-q", "adapt", str(path), "--method", "cache", "--valid", str(files["valid"]), "--param",
                 "size=20,100", "--param", "theta=0.3,1.0", "--param", "lambda=0.1,0.3", "--out", str(out),
                 "--results", str(tmp_path / "r.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["trials"]) == 8  # the cache's whole grid (no extension: its grid is searched as given)
    best = min(result["trials"], key=lambda r: r["valid_perplexity"])
    assert {k: best[k] for k in ("size", "theta", "lambda")} == result["params"]
    assert json.loads((tmp_path / "r.json").read_text())["params"] == result["params"]
    lm = seqlm.load(out, device="cpu")
    valid = files["valid"].read_text().splitlines()
    assert seqlm.evaluate(lm, valid)["perplexity"] == pytest.approx(result["metrics"]["valid_perplexity"], rel=1e-6)
    assert seqlm.evaluate(lm, valid)["perplexity"] < result["base"]["valid_perplexity"]
    for argv in (["predict", str(out), "--prompt", "the", "--json"], ["generate", str(out), "--seed", "1", "--json"],
                 ["score", str(out), "--file", str(files["test"]), "--json"]):
        assert main(argv) == 0
    capsys.readouterr()
    # dynamic, rms rule with its statistics, saved and loaded back with the same numbers
    out2 = tmp_path / "dyn"
    assert main(["-q", "adapt", str(path), "--method", "dynamic", "--valid", str(files["valid"]), "--train",
                 str(files["train"]), "--param", "lr=1e-4,1e-3", "--param", "decay=0.01", "--out", str(out2),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    lrs = [t["lr"] for t in result["trials"]]
    assert lrs[:2] == [1e-4, 1e-3] and len(lrs) <= 2 + adapt.EXTEND and result["params"]["rule"] == "rms"
    best = min(result["trials"], key=lambda t: t["valid_perplexity"])["lr"]
    assert result["params"]["lr"] == best and (best in (1e-4, 1e-3) or len(lrs) > 2)  # past the edge only when best
    again = seqlm.load(out2, device="cpu")
    assert seqlm.evaluate(again, valid)["perplexity"] == pytest.approx(result["metrics"]["valid_perplexity"],
                                                                       rel=1e-6)


@pytest.mark.parametrize("args,match", [
    (["--param", "alpha=1"], "no parameter 'alpha'"),
    (["--param", "lambda=1.5"], "lambda in"),
    (["--param", "size=ten"], "size must be a int"),
    (["--param", "lambda"], "NAME=VALUE"),
    (["--param", "lambda=0.1,0.2", "--no-tune"], "one value per --param"),
])
def test_cli_adapt_bad_options(base, tmp_path, capsys, args, match):
    path, files = base
    out = tmp_path / "x"
    assert main(["adapt", str(path), "--method", "cache", "--valid", str(files["valid"]), "--out", str(out)]
                + args) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not out.exists()


def test_cli_adapt_refuses_existing_out_and_ngrams(base, tmp_path, capsys):
    path, files = base
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    assert main(["adapt", str(path), "--method", "cache", "--valid", str(files["valid"]), "--out", str(keep)]) == 2
    assert "already exists" in capsys.readouterr().err and (keep / "mine.txt").read_text() == "x"
    assert main(["-q", "train", "--model", "kn", "--train", str(files["train"]), "--out", str(tmp_path / "kn")]) == 0
    assert main(["adapt", str(tmp_path / "kn"), "--method", "cache", "--valid", str(files["valid"]), "--out",
                 str(tmp_path / "y")]) == 2
    assert "not a neural model" in capsys.readouterr().err
