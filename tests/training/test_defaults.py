"""A neural run without a recipe gets settings fitted to its data (training/defaults.py); every value given wins."""

import json
from types import SimpleNamespace

import pytest

from seqlm.cli import main
from seqlm.training import defaults
from seqlm.training.run import Run
from seqlm.training.train import make_config


def fit(overrides=(), recipe=None, tokens=1_000_000, vocab=10_001, **options):
    cfg = make_config(recipe, list(overrides), **{"model": "lstm", **options})
    return cfg, defaults.fit(cfg, tokens, vocab)


@pytest.mark.parametrize("vocab,cuts", [(60, []), (5000, []), (10_001, [1000, 4000]), (19_881, [1000, 4000]),
                                        (86_725, [1000, 4000, 16000, 64000])])
def test_the_adaptive_softmax_for_a_large_vocabulary(vocab, cuts):
    assert defaults.adaptive_cutoffs(vocab) == cuts
    assert all(c < vocab for c in cuts)


def test_a_run_without_a_recipe_gets_the_tuned_cpu_settings_and_a_budget():
    cfg, chosen = fit()
    m, t = cfg.model, cfg.train
    assert (m.embedding_dim, m.hidden_size, m.num_layers, m.tie_weights) == (300, 300, 2, True)
    assert m.adaptive_cutoffs == [1000, 4000] and m.dropout == 0.4
    assert (t.schedule, t.max_minutes, t.epochs, t.optimizer) == ("cosine", defaults.MINUTES, 100, "sgd")
    assert chosen["train.max_minutes"] == defaults.MINUTES
    small, _ = fit(tokens=50_000)
    assert small.model.dropout == 0.5 and small.model.embedding_dropout == 0.3  # small data: more dropout


def test_every_given_value_wins():
    cfg, chosen = fit(["model.dropout=0.1", "train.lr=3", "model.adaptive_cutoffs=2000"], minutes=2)
    assert cfg.model.dropout == 0.1 and cfg.train.lr == 3 and cfg.model.adaptive_cutoffs == [2000]
    assert cfg.train.max_minutes == 2
    assert not {"model.dropout", "train.lr", "train.max_minutes", "model.adaptive_cutoffs"} & set(chosen)


def test_one_width_given_sets_the_other_and_nce_keeps_the_full_softmax():
    cfg, _ = fit(["model.hidden_size=128"])
    assert cfg.model.embedding_dim == 128 and cfg.model.tie_weights
    cfg, _ = fit(["model.hidden_size=128", "model.embedding_dim=64"])
    assert not cfg.model.tie_weights
    cfg, _ = fit(["model.embedding_dim=96"], model="transformer")
    assert (cfg.model.embedding_dim, cfg.model.hidden_size, cfg.train.optimizer) == (96, 384, "adamw")
    cfg, _ = fit(["train.loss=nce"])
    assert cfg.model.adaptive_cutoffs == []


def test_a_recipe_or_fit_false_keeps_the_plain_defaults(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[model]\nkind = "lstm"\n')
    for cfg, chosen in (fit(recipe=recipe), fit(["train.fit=false"])):
        assert chosen == {} and cfg.model.hidden_size == 200 and cfg.train.max_minutes is None
    cfg, chosen = fit(["train.fit=true"], recipe=recipe)  # a recipe may ask for it
    assert chosen and cfg.model.hidden_size == 300


def test_a_step_limit_replaces_the_time_budget():
    cfg, chosen = fit(["train.max_steps=10"])
    assert cfg.train.max_minutes is None and "train.max_minutes" not in chosen


def test_the_run_says_what_was_fitted_and_records_it(tmp_path, small_files, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "lstm", "--train", str(small_files["train"]), "--out", str(out),
                 "--set", "model.hidden_size=16", "--set", "train.max_steps=3", "--set", "train.threads=1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "no recipe: fitted to the data" in err and "tie_weights=True" in err
    config = json.loads((out / "run.json").read_text())["config"]
    assert config["model"]["embedding_dim"] == 16 and config["model"]["tie_weights"]
    assert config["train"]["schedule"] == "cosine" and "given" not in config


@pytest.mark.parametrize("fraction,seconds,left", [(0.5, 60, "1m00s"), (0.1, 400, "1h00m"), (0.9, 9, "1s"),
                                                   (0.0, 5, "?")])
def test_the_whole_runs_time_left(fraction, seconds, left):
    run = SimpleNamespace(budget_fraction=lambda s: fraction)
    assert Run.time_left(run, seconds) == left
