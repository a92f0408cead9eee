"""Result files (reporting/results.py): each says its type; a file without one is a one-line error."""

import json

import pytest

from conftest import REPO
from seqlm.errors import SeqlmError
from seqlm.reporting.results import TYPES, read_results


def test_every_committed_result_says_its_type():
    found = read_results(REPO / "results")
    assert found and {res["type"] for _, res in found} <= set(TYPES)


def test_a_result_without_a_type_is_one_line(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"recipe": "x", "metrics": {}}))
    with pytest.raises(SeqlmError, match="old.json has no known \"type\""):
        read_results(tmp_path)


def test_a_run_without_a_recipe_is_named_by_its_file(tmp_path):
    # seqlm train without a recipe fits its settings to the data and records no recipe name: the tables, the
    # figures and the race name it by its results file
    (tmp_path / "cpu-lstm-fitted.json").write_text(json.dumps({"type": "train", "recipe": None, "metrics": {}}))
    (tmp_path / "cpu-lstm.json").write_text(json.dumps({"type": "train", "recipe": "lstm", "metrics": {}}))
    assert [res["recipe"] for _, res in read_results(tmp_path, "train")] == ["cpu-lstm-fitted", "lstm"]


def _run(name, kind, per_epoch_s, valid, train=None, nce=False):
    """A made-up 15-minute CPU training result: epochs of 1M tokens each, ``per_epoch_s`` seconds each."""
    epochs = [{"epoch": i + 1, "tokens": (i + 1) * 1_000_000, "seconds": (i + 1) * per_epoch_s,
               "train_perplexity": (train or v * 0.9), "valid_perplexity": v, **({"train_loss_is": "nce"} if nce else {})}
              for i, v in enumerate(valid)]
    return {"type": "train", "recipe": name, "stop": "max_minutes", "hardware": {"cpu": "x86", "cores": 2},
            "model": {"kind": kind, "parameters": 1000}, "precision": "fp32", "epochs": epochs,
            "metrics": {"valid_perplexity": min(valid), "test_perplexity": min(valid) - 5}}


def test_the_race_table_says_per_second_and_per_token_why_a_kind_loses(tmp_path):
    from seqlm.reporting.tables import render

    runs = {"lstm": _run("lstm-nce", "lstm", 100, [200, 150, 120, 100], nce=True),
            "lstm-exact": _run("lstm-exact", "lstm", 100, [210, 160, 130, 110], train=100),
            "tf": _run("tf", "transformer", 200, [250, 180], train=120)}
    for name, res in runs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
    text = render(tmp_path)
    assert "**Per second and per token, PTB words**" in text
    race = text.split("**Per second and per token, PTB words**")[1].splitlines()
    row = next(line for line in race if line.startswith("| lstm-nce |"))
    # 4M tokens in 400 s; its validation after the Transformer's 2M tokens; no training ppl for NCE
    assert "| 10,000 | 4.0M | 150.00 | 100.00 | 95.00 | – (NCE) |" in row
    row = next(line for line in race if line.startswith("| tf |"))
    assert "| 5,000 | 2.0M | 180.00 | 180.00 | 175.00 | 120.0 / 180.0 |" in row
    verdict = next(line for line in race if line.startswith("The best Transformer here"))
    assert "`tf`, ends +84.2% against `lstm-nce`" in verdict
    assert "0.50x the tokens per second (5,000 against 10,000), so it saw 0.50x the tokens" in verdict
    assert "after 2.0M tokens its validation ppl was 180.00 against 150.00" in verdict
    assert "`tf`'s validation perplexity is 1.50x its training perplexity (dropout on), `lstm-exact`'s 1.10x" in verdict
    (tmp_path / "tf.json").unlink()  # no Transformer: no race to explain
    assert "Per second and per token" not in render(tmp_path)
