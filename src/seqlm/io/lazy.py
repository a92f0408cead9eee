"""Names a package binds from its modules on first use (PEP 562): importing the package, or one module of it,
imports none of the others, so a command loads only what it uses (start-up is part of every command's time)."""

from __future__ import annotations

import importlib
import sys


def exports(package: str, homes: dict):
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in ``homes`` (name ->
    module, or (module, name there)): each is imported on first use and then bound in the package."""

    def __getattr__(name: str):
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = home if isinstance(home, tuple) else (home, name)
        value = getattr(importlib.import_module(module), attr)
        setattr(sys.modules[package], name, value)  # bound once: later uses are plain lookups
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(homes))

    return __getattr__, __dir__
