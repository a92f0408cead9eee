"""Memory budgets: how much memory there is, and ``--memory`` sizes (``4G``, ``500M``, ``50%``) in bytes.

The one home of the budget that bounded-memory estimation (``models/ngram/external.py``) sizes its
blocks, chunks and runs by, and that the config validates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from seqlm.errors import SeqlmError

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def available_memory() -> int:
    """The memory this process can still use: the machine's available memory, within the address-space
    limit (``ulimit -v``) less what the process already maps, and within a cgroup's (a container's) limit."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if free is None:
        free = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return max(min(free, _address_space_left(), _cgroup_left()), 1 << 20)


def last_level_cache() -> int:
    """Bytes of the CPU's largest cache (Linux's sysfs), or 32 MiB where it cannot be read: what decides
    whether data read at random is in cache or comes from memory."""
    best = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:  # "32768K"
            m = re.fullmatch(r"(\d+)([KMG]?)", (index / "size").read_text().strip())
        except OSError:
            continue
        if m:
            best = max(best, int(m.group(1)) * _UNITS[m.group(2)])
    return best or 32 << 20


def _address_space_left() -> int:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return 1 << 62
    if soft == resource.RLIM_INFINITY:
        return 1 << 62
    try:  # what the process maps already (libraries, the Python heap) counts against the limit
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        used = 0
    return max(soft - used, 0)


def _cgroup_left() -> int:
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read().strip())
    except (OSError, ValueError):
        return 1 << 62
    return 1 << 62 if limit == "max" else max(int(limit) - used, 0)


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
