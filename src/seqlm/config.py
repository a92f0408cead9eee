"""Typed run configuration for every kind, n-gram and neural: defaults live here, documented field by
field; a recipe (TOML) holds only overrides, and ``--set section.field=value`` overrides those (CLI flags
such as ``--order`` are sugar for it).  Unknown keys, wrong types, non-finite numbers and options that do
not apply to the chosen kind are errors, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from seqlm import kinds
from seqlm.errors import SeqlmError
from seqlm.text.tokenize import LEVELS

NEURAL_KINDS = kinds.names("neural")


def resolve_backend(kind: str, backend: str) -> str:
    """``auto``: the fused kernels where the kind has them, else its reference cells."""
    if backend != "auto":
        return backend
    backends = kinds.get(kind).backends
    return "fused" if "fused" in backends else backends[0]
MAX_ORDER = 32


@dataclass
class DataConfig:
    corpus: str | None = "ptb"  # registered corpus (text/corpora.py: ptb, wikitext-2, text8, ...) or None with files below
    data_dir: str | None = None  # folder holding the corpus files (else $SEQLM_DATA, cache, download)
    train: str | None = None  # raw text files, one sentence per line
    valid: str | None = None
    test: str | None = None
    text: str | None = None  # one text file, split into train/valid/test by split_ratio (lines, in order)
    split_ratio: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    level: str | None = None  # word | char | bpe | unigram | byte (default: the corpus's; word for files);
    #   bpe and unigram learn vocab_size subword pieces from the training split (text/subword.py)
    vocab_size: int = 8000  # bpe, unigram: how many pieces to learn
    lowercase: bool = False
    whitespace: str = "kenlm"  # word level: kenlm (lmplz's separators: space, tab, CR) | unicode (str.split)
    min_count: int = 1  # vocabulary: keep tokens seen this often in train
    max_size: int | None = None  # vocabulary: keep at most this many tokens
    counts: list[str] = field(default_factory=list)  # n-gram models: estimate from these counts folders (seqlm
    #   count), merged, instead of a training text


MAX_QUANTIZE = 16  # bits of a quantized n-gram model's codes (models/ngram/trie.py)


def check_quantize(bits) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_QUANTIZE:
        raise SeqlmError(f"--quantize {bits}: give 1 to {MAX_QUANTIZE} bits (model.quantize; 8 is KenLM's usual "
                         f"choice), or leave it out for float32")


def check_entropy(threshold, max_ngrams) -> None:
    """The options of entropy pruning (models/ngram/prune.py): a threshold >= 0 or a size >= 1, not both."""
    import math

    if threshold is not None and max_ngrams is not None:
        raise SeqlmError("give --prune-entropy or --max-ngrams, not both (a size chooses its own threshold)")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold) or threshold < 0):
        raise SeqlmError(f"--prune-entropy {threshold}: give a relative perplexity change >= 0, e.g. 1e-8 "
                         f"(model.prune_entropy)")
    if max_ngrams is not None and (isinstance(max_ngrams, bool) or not isinstance(max_ngrams, int)
                                   or max_ngrams < 1):
        raise SeqlmError(f"--max-ngrams {max_ngrams}: give a number of n-grams >= 1 (model.max_ngrams)")


@dataclass
class ModelConfig:
    kind: str = "kn"  # any n-gram or neural row of the table of kinds (kinds.py; the kinds reference page)
    # n-gram models
    order: int = 3  # n
    k: float = 1.0  # add-k: the pseudo-count
    prune: list[int] = field(default_factory=list)  # count thresholds per order, e.g. [0, 0, 1]
    memory: str | None = None  # estimating from a file: memory budget, e.g. "4G" or "50%" (default half the
    #   available RAM); chunks of the text and buckets of n-grams spill to temp_dir beyond it
    temp_dir: str | None = None  # folder for the scratch files (default the system's temp folder)
    cluster: str | None = None  # estimate on Dask: local:N (N worker processes here) or tcp://HOST:PORT (a running
    #   scheduler); temp_dir (and --out) must then be on storage every worker sees (models/ngram/cluster.py)
    quantize: int | None = None  # bits of ln p and ln backoff above order 1 (as KenLM's build_binary -q -b);
    #   default float32
    prune_entropy: float | None = None  # entropy pruning (Stolcke; SRILM -prune): drop the n-grams whose removal
    #   changes the perplexity by less than this, relative (e.g. 1e-8); see models/ngram/prune.py
    max_ngrams: int | None = None  # entropy pruning to a size: at most this many n-grams (all orders)
    # neural models
    backend: str = "auto"  # fused (torch.nn.LSTM/GRU/RNN: cuDNN / oneDNN) | reference (cells.py) | auto (fused
    #   where the kind has it, else reference)
    mogrifier_rounds: int = 5  # mogrifier: rounds of mutual gating of input and state before each LSTM step
    embedding_dim: int = 200
    hidden_size: int = 200
    num_layers: int = 2  # recurrent layers (window: hidden layers; transformer: blocks)
    context: int | None = None  # window: number of previous tokens, n - 1 (default 4); transformer: how many
    #   tokens before it each token attends to, in every layer (default 64)
    heads: int = 4  # transformer: attention heads (embedding_dim must be a multiple; hidden_size is the
    #   feed-forward width)
    fc_layers: int = 0  # extra fully connected ReLU layers between the recurrent stack and the output
    fc_size: int = 0  # their width (0: hidden_size)
    tie_weights: bool = False  # output layer shares the embedding matrix (needs equal sizes)
    dropout: float = 0.0  # on the output of every recurrent / fully connected layer
    embedding_dropout: float = 0.0  # on the embedding vectors
    word_dropout: float = 0.0  # drop whole word types from the embedding matrix (Gal & Ghahramani 2016)
    variational: bool = False  # locked dropout: one mask per sequence, shared over time steps
    init_range: float = 0.1  # uniform(-a, a) for every weight (Zaremba et al.); 0 = PyTorch defaults
    forget_bias: float = 0.0  # LSTM: initial forget-gate bias
    weight_drop: float = 0.0  # DropConnect on the hidden-to-hidden weights, one mask per forward (Merity et al.)
    last_layer_size: int = 0  # width of the last recurrent layer (0: hidden_size); AWD-LSTM ties a narrow one
    adaptive_cutoffs: list[int] = field(default_factory=list)  # adaptive softmax: head/tail cut points in the
    #   frequency-sorted vocabulary, e.g. [2000] (empty: the full softmax); see neural/output.py


@dataclass
class TrainConfig:
    fit: bool | None = None  # fit what the config leaves unsaid to the data (training/defaults.py: a time budget,
    #   the adaptive softmax for a large vocabulary, the tuned CPU settings of the kind); None: yes without a recipe
    epochs: int = 13
    max_steps: int | None = None  # stop after this many optimizer steps (tests, quick runs)
    max_minutes: float | None = None  # stop training after this wall time, then evaluate the best model
    batch_size: int = 20
    bptt: int = 35  # truncated back-propagation through time: steps per batch
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 20.0  # for the per-token mean loss (a paper's lr on a loss summed over T steps: lr * T)
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip: float = 0.25  # gradient-norm clipping of the mean-loss gradient (0 = off)
    schedule: str = "zaremba"  # zaremba (decay every epoch after decay_start) | plateau | constant | cosine
    #   cosine: from lr to 0, step by step, over epochs x batches steps or max_minutes, whichever ends first
    lr_decay: float = 0.5  # multiply the learning rate by this when the schedule says so
    decay_start: int = 4  # zaremba: first epoch after which the learning rate decays
    patience: int = 0  # early stopping after this many epochs without validation gain (0 = off)
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    threads: int | None = None  # CPU threads (default: the cores, never more)
    eval_chunk: int = 2048  # tokens per step when evaluating (results do not depend on it)
    checkpoint_every: int = 200  # steps between resume checkpoints
    on_nan: str = "stop"  # stop | skip: what a NaN/inf loss does
    graphs: str = "auto"  # CUDA graphs for the training step: auto (on CUDA) | off
    log_every: int = 100  # steps between log records (steps.jsonl: loss, lr, gradient norm, clipping)
    eval_every: int = 1  # epochs between validations (the last epoch and a budget stop always validate)
    track_test: bool = False  # also evaluate the test split after every epoch (learning curves of test ppl)
    # AWD-LSTM's training-time ideas (Merity et al. 2018), recurrent kinds
    ar: float = 0.0  # activation regularisation: + ar * mean(h^2) of the last layer's output after dropout (AWD: 2)
    tar: float = 0.0  # temporal AR: + tar * mean((h_t - h_{t-1})^2) of its output before dropout (AWD: 1)
    variable_bptt: bool = False  # window length ~ N(bptt, 5) (N(bptt/2, 5) with p 0.05), at least 5, at most
    #   bptt + 20, the lr scaled by length / bptt (so every token counts the same)
    average: str = "off"  # off | nt (NT-ASGD: start averaging the weights when validation has not beaten the
    #   best of all but its last `nonmono` values) | tail (start at `average_start` of the budget); evaluation and
    #   the kept model use the averaged weights (Polyak averaging; with sgd this is AWD-LSTM's NT-ASGD)
    loss: str = "ce"  # ce (cross-entropy over the vocabulary) | nce (noise-contrastive estimation, nce_samples
    #   noise words per step from the training unigram; evaluation stays the full softmax); full softmax only
    nce_samples: int = 256
    nonmono: int = 5  # nt: validations without a new best (over all but these last ones) that start averaging
    average_start: float = 0.5  # tail: fraction of the budget (steps or max_minutes, whichever is further)


@dataclass
class Meta:
    title: str = ""
    source: str = ""
    target: dict = field(default_factory=dict)  # {"metric": "test_perplexity", "value": 114.5, "tolerance": 0.02}
    expected_time: str = ""
    command: str = ""
    notes: str = ""
    ablation: str = ""  # runs that share this name are one ablation: the report draws them together
    status: str = ""  # "" (run here: its results are committed) or why not yet, e.g. "not yet run here: ..."


@dataclass
class RunConfig:
    meta: Meta = field(default_factory=Meta)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""  # recipe name (file stem), used for results/<name>.json
    # the "section.key" values set by the recipe, the flags or --set (apply() records them): a run without a
    # recipe fits the others to its data (training/defaults.py)
    given: set = field(default_factory=set, repr=False, compare=False)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        del out["given"]
        return out

    @property
    def family(self) -> str:
        return kinds.get(self.model.kind).family

    def validate(self) -> "RunConfig":
        """Check every value, and that no option is set that the kind does not use."""
        kind = kinds.get(self.model.kind)
        self._check_applicable(kind)
        self._check_data()
        if kind.family == "ngram":
            self._check_ngram(kind)
        else:
            self.check_neural(kind)
        return self

    def _check_applicable(self, kind) -> None:
        defaults = {"model": ModelConfig(kind=kind.name), "train": TrainConfig()}
        ngram_model = {"kind", "order", "k", "prune", "memory", "temp_dir", "quantize", "prune_entropy", "max_ngrams",
                       "cluster"}
        for section, default in defaults.items():
            obj = getattr(self, section)
            for f in dataclasses.fields(obj):
                applies = (f.name in ngram_model) if kind.family == "ngram" else (
                    section == "train" or f.name not in ngram_model - {"kind"})
                if not applies and getattr(obj, f.name) != getattr(default, f.name):
                    other = "neural" if kind.family == "ngram" else "n-gram"
                    raise SeqlmError(f"{section}.{f.name} is for {other} models and does not apply to {kind.name} "
                                     f"({kind.family}): drop it, or choose a {other} --model")
        if kind.family == "ngram" and self.model.k != 1.0 and kind.canonical != "add-k":
            raise SeqlmError(f"model.k (--k) is the pseudo-count of add-k smoothing and does not apply to {kind.name}: "
                             f"drop it, or use --model add-k")

    def _check_data(self) -> None:
        d = self.data
        if d.counts and self.family != "ngram":
            raise SeqlmError("data.counts (--counts) holds n-gram counts: a neural model trains on text (--train)")
        if d.level not in (None, *LEVELS):
            raise SeqlmError(f"data.level must be one of {', '.join(LEVELS)} (got {d.level!r})")
        if d.whitespace not in ("kenlm", "unicode"):
            raise SeqlmError(f"data.whitespace must be kenlm or unicode (got {d.whitespace!r})")
        if d.min_count < 1:
            raise SeqlmError(f"data.min_count must be >= 1 (got {d.min_count})")
        if d.max_size is not None and d.max_size < 1:
            raise SeqlmError(f"data.max_size must be >= 1 (got {d.max_size})")
        r = d.split_ratio
        if len(r) != 3 or any(x < 0 for x in r) or sum(r) <= 0 or r[0] <= 0:
            raise SeqlmError(f"the split ratio needs three numbers >= 0 with a positive train share, e.g. "
                             f"0.8,0.1,0.1 (got {','.join(map(str, r))})")

    def _check_ngram(self, kind) -> None:
        m = self.model
        if not 1 <= m.order <= MAX_ORDER:
            raise SeqlmError(f"model.order (--order) must be between 1 and {MAX_ORDER} (got {m.order})")
        if kind.canonical == "add-k" and m.k <= 0:
            raise SeqlmError(f"model.k (--k) must be > 0 (got {m.k}); use --model mle for no smoothing")
        if m.memory is not None:
            from seqlm.io.memory import parse_memory

            parse_memory(m.memory)
        if m.quantize is not None:
            check_quantize(m.quantize)
        if m.prune_entropy is not None or m.max_ngrams is not None:
            check_entropy(m.prune_entropy, m.max_ngrams)
            if kind.canonical == "add-k":
                raise SeqlmError("an add-k model has no backoff form: entropy pruning needs one (use kn, wb or mle)")

    def check_neural(self, kind) -> None:
        m, t = self.model, self.train
        if m.mogrifier_rounds != 5 and kind.name != "mogrifier":
            raise SeqlmError(f"model.mogrifier_rounds is for --model mogrifier and does not apply to {kind.name}: drop it")
        m.backend = resolve_backend(kind.name, m.backend)
        if m.backend not in kind.backends:
            raise SeqlmError(f"{kind.name} models have no {m.backend!r} backend: choose {' or '.join(kind.backends)}")
        if t.precision not in ("fp32", "bf16"):
            raise SeqlmError(f"unknown precision {t.precision!r}: choose fp32 or bf16")
        if m.heads != 4 and kind.name != "transformer":
            raise SeqlmError(f"model.heads is for --model transformer and does not apply to {kind.name}: drop it")
        if kind.name == "transformer":
            unused = [f for f in ("fc_layers", "fc_size", "last_layer_size", "forget_bias", "weight_drop", "word_dropout",
                                  "init_range")
                      if getattr(m, f) != getattr(ModelConfig(), f)] + (["variational"] if m.variational else [])
            if unused:
                raise SeqlmError(f"model.{unused[0]} does not apply to a transformer: drop it")
            if m.embedding_dim % m.heads:
                raise SeqlmError(f"model.embedding_dim ({m.embedding_dim}) must be a multiple of model.heads ({m.heads})")
        for name in ("embedding_dim", "hidden_size", "num_layers", "context", "heads"):
            if getattr(m, name) is not None and getattr(m, name) < 1:
                raise SeqlmError(f"model.{name} must be >= 1 (got {getattr(m, name)})")
        for name in ("fc_layers", "fc_size", "last_layer_size", "mogrifier_rounds"):
            if getattr(m, name) < 0:
                raise SeqlmError(f"model.{name} must be >= 0 (got {getattr(m, name)})")
        for name in ("dropout", "embedding_dropout", "word_dropout", "weight_drop"):
            if not 0 <= getattr(m, name) < 1:
                raise SeqlmError(f"model.{name} must be in [0, 1) (got {getattr(m, name)})")
        if m.init_range < 0:
            raise SeqlmError(f"model.init_range must be >= 0 (got {m.init_range})")
        c = m.adaptive_cutoffs
        if c and (c != sorted(set(c)) or c[0] < 2):
            raise SeqlmError(f"model.adaptive_cutoffs must increase strictly from 2 up (got {c}), e.g. [2000]")
        out_dim = (m.fc_size or m.hidden_size) if m.fc_layers else (m.last_layer_size or m.hidden_size)
        if kind.name == "transformer":
            out_dim = m.embedding_dim  # the blocks keep the embedding's width
        if m.tie_weights and out_dim != m.embedding_dim:
            raise SeqlmError(f"tie_weights needs the last layer's size ({out_dim}) to equal embedding_dim "
                             f"({m.embedding_dim}): set model.embedding_dim={out_dim} or tie_weights=false")
        choices = {"optimizer": ("sgd", "adam", "adamw"), "schedule": ("zaremba", "plateau", "constant", "cosine"),
                   "graphs": ("auto", "off"), "on_nan": ("stop", "skip"), "average": ("off", "nt", "tail"), "loss": ("ce", "nce")}
        for name, allowed in choices.items():
            if getattr(t, name) not in allowed:
                raise SeqlmError(f"train.{name} must be one of {', '.join(allowed)} (got {getattr(t, name)!r})")
        if t.device not in ("auto", "cpu", "cuda") and not t.device.startswith("cuda:"):
            raise SeqlmError(f"unknown device {t.device!r}: choose auto, cpu or cuda")
        for name in ("epochs", "batch_size", "bptt", "eval_chunk", "checkpoint_every", "log_every", "eval_every"):
            if getattr(t, name) < 1:
                raise SeqlmError(f"train.{name} must be >= 1 (got {getattr(t, name)})")
        for name in ("max_steps", "threads"):
            if getattr(t, name) is not None and getattr(t, name) < 1:
                raise SeqlmError(f"train.{name} must be >= 1 or none (got {getattr(t, name)})")
        if t.max_minutes is not None and t.max_minutes <= 0:
            raise SeqlmError(f"train.max_minutes must be > 0 or none (got {t.max_minutes})")
        if t.lr <= 0:
            raise SeqlmError(f"train.lr must be > 0 (got {t.lr})")
        if t.clip < 0 or t.weight_decay < 0:
            raise SeqlmError("train.clip and train.weight_decay must be >= 0 (0 = off)")
        if not 0 <= t.momentum < 1:
            raise SeqlmError(f"train.momentum must be in [0, 1) (got {t.momentum})")
        if not 0 < t.lr_decay <= 1:
            raise SeqlmError(f"train.lr_decay must be in (0, 1] (got {t.lr_decay})")
        if t.ar < 0 or t.tar < 0:
            raise SeqlmError("train.ar and train.tar must be >= 0 (0 = off)")
        if (t.ar or t.tar) and kind.state != "recurrent":
            raise SeqlmError(f"train.ar and train.tar regularise a recurrent layer's activations; {kind.name} has "
                             f"none: drop them or choose a recurrent --model")
        if t.loss == "nce" and m.adaptive_cutoffs:
            raise SeqlmError("train.loss=nce trains a full softmax output: drop model.adaptive_cutoffs or use "
                             "train.loss=ce")
        if t.nce_samples < 1:
            raise SeqlmError(f"train.nce_samples must be >= 1 (got {t.nce_samples})")
        if t.nonmono < 1:
            raise SeqlmError(f"train.nonmono must be >= 1 (got {t.nonmono})")
        if not 0 <= t.average_start < 1:
            raise SeqlmError(f"train.average_start must be in [0, 1) (got {t.average_start})")


SECTIONS = {"meta": Meta, "data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def _coerce(value, typ, where: str):
    """``value`` as the field type ``typ`` (from TOML or a --set string)."""
    args = typing.get_args(typ)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), typ) if args else typ
    if typing.get_origin(typ) is list:
        base = list
    if isinstance(value, str) and optional and value.lower() in ("none", "null"):
        return None
    if value is None:
        if optional:
            return None
        raise SeqlmError(f"{where} cannot be empty")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            x = float(value)
            if not math.isfinite(x):
                raise SeqlmError(f"{where} must be a finite number (got {value!r})")
            return x
        if base is list:
            item = (typing.get_args(typ) or (str,))[0]
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            if not isinstance(value, list):
                raise ValueError
            return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        if base is str:
            return str(value)
        if base is dict:
            if not isinstance(value, dict):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    name = getattr(base, "__name__", str(base))
    if base is list:
        name = f"list of {getattr(typing.get_args(typ)[0], '__name__', '?')} (e.g. 0,0,1)"
    raise SeqlmError(f"{where} must be {'an' if name[0] in 'aeiou' else 'a'} {name} (got {value!r})")


def apply(cfg: RunConfig, section: str, key: str, value) -> None:
    if section not in SECTIONS:
        raise SeqlmError(f"unknown config section {section!r}: use one of {', '.join(SECTIONS)}")
    obj = getattr(cfg, section)
    types = typing.get_type_hints(type(obj))
    if key not in types:
        known = ", ".join(f.name for f in dataclasses.fields(obj))
        raise SeqlmError(f"unknown key {section}.{key}: known keys are {known}")
    setattr(obj, key, _coerce(value, types[key], f"{section}.{key}"))
    cfg.given.add(f"{section}.{key}")


def load_recipe(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeqlmError(f"{path}: no such recipe file: check the path (recipes live in recipes/)") from None
    except IsADirectoryError:
        raise SeqlmError(f"{path} is a folder: give a recipe file (.toml), e.g. recipes/ptb/kn5.toml") from None
    except PermissionError:
        raise SeqlmError(f"{path}: permission denied: make the recipe readable") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SeqlmError(f"{path} is not valid TOML ({e}): fix the recipe") from None
    cfg = RunConfig(name=path.stem)
    for section, values in data.items():
        if section not in SECTIONS:
            raise SeqlmError(f"{path}: unknown section [{section}]: use {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise SeqlmError(f"{path}: [{section}] must be a table")
        for key, value in values.items():
            apply(cfg, section, key, value)
    return cfg


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise SeqlmError(f"--set needs section.key=value, e.g. model.hidden_size=650 (got {item!r})")
        lhs, value = item.split("=", 1)
        section, key = lhs.strip().split(".", 1)
        apply(cfg, section, key, value.strip())
    return cfg
