"""Defaults that fit a neural run to its data, for a run without a recipe.

A recipe says everything it wants, and the dataclass defaults of ``config.py`` are what it leaves unsaid (the
committed runs depend on them).  A run without a recipe (``seqlm train --model lstm --train my.txt``) is a
user's first try on their own text, where those defaults (a 2x200 full-softmax LSTM, 13 epochs of SGD with
the Zaremba decay, no time budget) are slow on a large vocabulary and never say when they will end.  Such a
run takes the settings of the tuned 15-minute CPU recipes of its kind instead (``recipes/ptb/cpu/``:
the best of each kind there), fitted to the data:

* a time budget, ``train.max_minutes`` = :data:`MINUTES` (``--minutes``), with the cosine schedule ending in
  it and as many epochs as fit (``train.epochs`` = 100), the best model on validation kept;
* the adaptive softmax for a vocabulary above :data:`FULL_SOFTMAX_UP_TO` types, its cut points the tuned
  ``[1000, 4000]`` of PTB's 10k words extended by x4 steps (16000, 64000, ...) below 0.8 of the vocabulary
  (on Brown's raw text, 86.7k types, 3.72k tokens/s against 2.98k with the last cut at 20000: the last
  cluster's scores are the step's largest product);
* more dropout on small data (under :data:`SMALL` training tokens), which a budget reads many times over.

``train.fit`` decides: by default true without a recipe and false with one; a recipe may set it to have what
it leaves unsaid fitted, a run without one may set it false for the dataclass defaults.

The model's size depends on the data only, never on the machine, so the same command builds the same model
anywhere (and ``--resume`` finds it).  Every value the recipe-less run is given (``--set``, the flags) wins
over its fitted one; the start of the log says what was fitted.
"""

from __future__ import annotations

MINUTES = 10.0  # the time budget of a run without a recipe
FULL_SOFTMAX_UP_TO = 5000  # larger vocabularies get the adaptive softmax
CUTS = (1000, 4000, 16000, 64000, 256000, 1024000)  # adaptive softmax cut points, those below 0.8 V
SMALL = 200_000  # training tokens under which dropout is raised by SMALL_EXTRA
SMALL_EXTRA = 0.1

_TRAIN = {"train.epochs": 100, "train.schedule": "cosine", "train.max_minutes": MINUTES}
# the tuned 15-minute CPU recipes, by the kind's state: recipes/ptb/cpu/lstm-adaptive.toml, window.toml,
# transformer.toml
BY_STATE = {
    "recurrent": {"model.embedding_dim": 300, "model.hidden_size": 300, "model.num_layers": 2,
                  "model.tie_weights": True, "model.dropout": 0.4, "model.embedding_dropout": 0.2,
                  "train.optimizer": "sgd", "train.lr": 20.0, "train.clip": 0.25},
    "window": {"model.context": 6, "model.embedding_dim": 256, "model.hidden_size": 256, "model.num_layers": 1,
               "model.tie_weights": True, "model.dropout": 0.6, "model.embedding_dropout": 0.3,
               "model.init_range": 0.05, "train.optimizer": "adam", "train.lr": 0.002, "train.clip": 0.25},
    "layers": {"model.embedding_dim": 200, "model.hidden_size": 800, "model.num_layers": 2, "model.context": 64,
               "model.tie_weights": True, "model.dropout": 0.2, "model.embedding_dropout": 0.2,
               "train.optimizer": "adamw", "train.lr": 0.001, "train.weight_decay": 0.01, "train.clip": 1.0},
}


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """The adaptive softmax's cut points for a vocabulary of ``vocab_size`` (empty: the full softmax)."""
    if vocab_size <= FULL_SOFTMAX_UP_TO:
        return []
    return [c for c in CUTS if c < 0.8 * vocab_size]


def fitted(state: str, tokens: int, vocab_size: int) -> dict:
    """The fitted values ("section.key" -> value) for a kind of this state, on this much data."""
    values = {**_TRAIN, **BY_STATE[state], "model.adaptive_cutoffs": adaptive_cutoffs(vocab_size)}
    if tokens < SMALL:
        for key in ("model.dropout", "model.embedding_dropout"):
            values[key] = round(min(values[key] + SMALL_EXTRA, 0.7), 2)
    return values


def fit(cfg, tokens: int, vocab_size: int) -> dict:
    """Give a run without a recipe (or any with ``train.fit = true``; none with ``train.fit = false``) the
    fitted value of every setting it was not given; returns what was set.  A run that stops by steps
    (``train.max_steps``) gets no time budget."""
    from seqlm import kinds

    if not (cfg.train.fit if cfg.train.fit is not None else not cfg.name):
        return {}
    state = kinds.get(cfg.model.kind).state
    values = fitted(state, tokens, vocab_size)
    if cfg.train.max_steps is not None:
        values.pop("train.max_minutes")
    # a given value wins over the fitted ones it constrains: one width given sets the other (tied weights
    # need the output's width equal to the embedding's), NCE trains a full softmax
    given = cfg.given
    ratio = 4 if state == "layers" else 1  # a transformer's feed-forward is 4x its width
    if "model.embedding_dim" in given and "model.hidden_size" not in given:
        values["model.hidden_size"] = cfg.model.embedding_dim * ratio
    if "model.hidden_size" in given and "model.embedding_dim" not in given:
        values["model.embedding_dim"] = max(1, cfg.model.hidden_size // ratio)
    if given & {"model.fc_layers", "model.fc_size", "model.last_layer_size"} or (
            ratio == 1 and given >= {"model.embedding_dim", "model.hidden_size"}
            and cfg.model.embedding_dim != cfg.model.hidden_size):
        values["model.tie_weights"] = False  # the output's width is the user's: untied unless they tie it
    if cfg.train.loss == "nce":
        values["model.adaptive_cutoffs"] = []
    chosen = {}
    for key, value in values.items():
        if key in cfg.given:
            continue
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
        chosen[key] = value
    cfg.validate()
    return chosen


def describe(chosen: dict) -> str:
    """The fitted values in one line for the log."""
    return ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in chosen.items())
