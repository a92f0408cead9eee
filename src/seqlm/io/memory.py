"""Memory budgets: how much memory there is, and ``--memory`` sizes (``4G``, ``500M``, ``50%``) in bytes.

The one home of the budget that bounded-memory estimation (``models/ngram/external.py``) sizes its
blocks, chunks and runs by, and that the config validates.
"""

from __future__ import annotations

import os
import re

from seqlm.errors import SeqlmError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def parse_memory(text: str | int | None) -> int:
    """Bytes of ``4G``, ``500M``, ``80%`` (of the available memory) or a plain byte count; None: half the
    available memory (as lmplz's -S, a share of the machine)."""
    if text is None:
        return available_memory() // 2
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*|\s*(\d+(?:\.\d+)?)\s*%\s*", str(text).upper())
        if not m:
            raise SeqlmError(f"--memory {text!r} is not a size: give e.g. 4G, 500M or 50%")
        if m.group(3) is not None:
            value = int(available_memory() * float(m.group(3)) / 100)
        else:
            value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise SeqlmError(f"--memory must be more than 0 (got {text!r})")
    return value
