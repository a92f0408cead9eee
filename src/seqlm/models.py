"""Load any saved model: a seqlm model folder (any kind) or an ARPA file."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SeqlmError
from .interface import LanguageModel


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
    if path.is_file():
        from .ngram.arpa import read_arpa
        from .text.tokenize import Tokenizer

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
    if kind in ("ngram", "neural", "dynamic", "cache", "mixture"):
        from .files import verify_folder

        verify_folder(path, config)
    if kind == "ngram":
        from .ngram.model import NGramLM

        return NGramLM.load(path, config)
    if kind == "neural":
        from .neural.lm import NeuralLM
        from .runtime import resolve_device

        return NeuralLM.load(path, config, device=resolve_device(device))
    if kind == "mixture":
        from .mixture import MixtureLM

        return MixtureLM.load(path, config, device=device)
    if kind in ("dynamic", "cache"):
        from .neural.adapt import load_adapted
        from .runtime import resolve_device

        return load_adapted(path, config, device=resolve_device(device))
    raise SeqlmError(f"{config_path}: unknown model kind {kind!r}: it was written by another seqlm version; "
                     f"retrain it")
