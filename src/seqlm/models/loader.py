"""Load any saved model: a seqlm model folder (any kind) or an ARPA file.

A folder's config.json names its kind; the table of kinds (``seqlm.kinds``) names the function that
loads it, so adding a kind never touches this file.  A file is an ARPA file (plain or gzip).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from seqlm import kinds
from seqlm.errors import SeqlmError
from seqlm.io.files import verify_folder
from seqlm.io.locks import locks_output
from seqlm.models.interface import LanguageModel


def load(path: str | Path, device: str = "auto", level: str | None = None) -> LanguageModel:
    """A model from a folder written by ``seqlm train`` or from an ARPA file (``.arpa``, ``.arpa.gz``).

    ``device`` places a neural model: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.  ``level``
    (word | char) reads an ARPA file from another tool at that level; seqlm's own ARPA files say theirs.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"load() takes a path (str or Path), not {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise SeqlmError(f"{path}: no such model folder or ARPA file: train one with seqlm train --out {path}")
    if path.is_file() and (path.parent / "config.json").is_file() and path.suffix in (".json", ".npy", ".safetensors"):
        raise SeqlmError(f"{path} is a file of the model folder {path.parent}: give the folder")
    if path.is_file():
        from seqlm.models.ngram.arpa_reader import read_arpa
        from seqlm.text.tokenize import Tokenizer

        return read_arpa(path, Tokenizer(level) if level else None)
    if level:
        raise SeqlmError("--level applies to ARPA files only: a model folder knows its level")
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"  # a training run folder: its best model
    config_path = path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeqlmError(f"{path} has no config.json: give a folder written by seqlm train, or an ARPA file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeqlmError(f"{config_path} is not valid JSON ({e}): retrain the model") from None
    kind = config.get("kind") if isinstance(config, dict) else None
    loader = kinds.loader(kind) if isinstance(kind, str) else None
    if loader is None:
        raise SeqlmError(f"{config_path}: unknown model kind {kind!r}: it was written by another seqlm version; "
                         f"retrain it")
    verify_folder(path, config)
    return loader(path, config, device=device)


@locks_output
def convert(source: str | Path, out: str | Path, quantize: int | None = None, overwrite: bool = False,
            level: str | None = None, prune_entropy: float | None = None, max_ngrams: int | None = None) -> LanguageModel:
    """``seqlm convert``: the n-gram model ``source`` (a model folder of any seqlm format, or an ARPA file)
    written as a model folder of this format at ``out``, its values float32 or ``quantize``-bit codes, and
    entropy-pruned where ``prune_entropy`` or ``max_ngrams`` is given (models/ngram/prune.py)."""
    from seqlm.config import check_entropy
    from seqlm.io.files import check_output_folder
    from seqlm.models.ngram.model import NGramLM
    from seqlm.models.ngram.smoothing import Tables

    out = Path(out)
    check_entropy(prune_entropy, max_ngrams)
    check_output_folder(out, "ngram", overwrite=overwrite)
    if Path(source).resolve() == out.resolve():
        raise SeqlmError(f"convert {source} into another folder: --out is the source itself")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*older seqlm format")
        lm = load(source, device="cpu", level=level)
    if not isinstance(lm, NGramLM):
        raise SeqlmError(f"{source} is a {lm.describe().get('kind')} model: only n-gram models are converted")
    config = {k: v for k, v in lm.config.items() if k not in ("quantize", "trie", "table_bytes", "files",
                                                             "config_sha256", "format")}
    if quantize is not None:
        config["quantize"] = quantize
    if prune_entropy is not None or max_ngrams is not None:
        from seqlm.models.ngram.prune import prune_model

        converted = prune_model(lm, prune_entropy, max_ngrams, config)
    else:
        converted = NGramLM(lm.vocab, Tables(lm.trie.V, lm.tables.keys, lm.tables.logprob, lm.tables.logbow,
                                             lm.tables.unseen, lm.tables.info), config)
    converted.save(out)
    return converted
