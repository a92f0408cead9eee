"""What a run records about itself: the hardware, the commit, the command line and the wall time.

Every result JSON under ``results/`` carries these, so that a figure is only ever compared with one
measured on the same machine in the same run.  One helper, :func:`record`, used by every command
that writes results (train, mix, adapt, diagnose).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the checkout seqlm runs from (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware(device=None) -> dict:
    """CPU model, cores, Python and platform; with a torch ``device``: torch's threads and the GPU's name."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    if device is not None:
        import torch

        hw["threads"] = torch.get_num_threads()
        if device.type == "cuda":
            hw["device"] = torch.cuda.get_device_name(device)
    return hw


def record(started: float | None = None, command: list[str] | None = None, device=None) -> dict:
    """``hardware``, ``commit`` and ``command`` (default: this process's command line), and
    ``wall_seconds`` since ``started`` (a ``time.perf_counter()`` value) when given."""
    out = {"hardware": hardware(device), "commit": git_commit(),
           "command": list(command) if command is not None else list(sys.argv)}
    if started is not None:
        out["wall_seconds"] = round(time.perf_counter() - started, 1)
    return out
