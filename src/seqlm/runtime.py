"""Process-level helpers: logging to stderr, a small progress bar, timing, run metadata."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("seqlm")


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("seqlm: %(message)s"))
    root = logging.getLogger("seqlm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line every ``every`` s otherwise."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", every: float = 10.0):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.t0 = self.last = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.enabled = log.isEnabledFor(logging.INFO)
        self.extra = ""

    def update(self, n: int = 1, **fields) -> None:
        self.n += n
        if fields:
            self.extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        now = time.perf_counter()
        if self.enabled and (now - self.last >= (0.2 if self.tty else self.every)):
            self.last = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        rate = self.n / max(now - self.t0, 1e-9)
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * 20)
            head = f"{self.desc} [{bar:<20}] {self.n}/{self.total}"
        else:
            head = f"{self.desc} {self.n}"
        line = f"{head} {rate:,.0f} {self.unit}/s {self.extra}".rstrip()
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line + end)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter(), end="\n" if self.tty else "")


def tune_allocator() -> bool:
    """Keep freed memory in the heap instead of returning it to the OS (glibc only).

    A training step allocates and frees the same large buffers (logits, their gradients: tens of MB) every
    step; glibc serves those with mmap and unmaps them on free, so every step pays page faults on fresh
    pages (measured: ~25% of a bf16 CPU step at 2x200).  Raising the mmap and trim thresholds makes the
    buffers reuse warm pages.  Returns whether the setting took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 28)) and bool(libc.mallopt(m_trim_threshold, 1 << 28))
    except (OSError, AttributeError):
        return False


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def resolve_device(name: str):
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is a one-line error."""
    import torch

    from .errors import SeqlmError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqlmError(f"--device {name} asked for, but no CUDA device is available: use --device cpu or auto")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (default: the cores this process may run on, never more)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = min(threads or cores, cores)  # more threads than cores is a cliff: never oversubscribe
    torch.set_num_threads(n)
    return n


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_supported(device) -> bool:
    """Whether bf16 runs natively: on CUDA, the device says; on CPU, AVX-512 BF16 or AMX (x86), else no.

    Without them oneDNN's bf16 LSTM has no kernel (it fails to create its primitive) and bf16 matrix
    products are emulated, slower than fp32: so we check the CPU instead of trapping the crash.
    """
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    # oneDNN may be capped below the CPU (ONEDNN_MAX_CPU_ISA): then its bf16 kernels are missing too
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap in ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"):
        return False
    flags = cpu_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device) -> str:
    """The precision to run: bf16 falls back to fp32, with one warning, where the device lacks it."""
    if precision == "bf16" and not bf16_supported(device):
        log.warning("bf16 asked for, but this %s has no native bf16 (%s): training in fp32", device.type,
                    "no avx512_bf16/amx_bf16 in /proc/cpuinfo, or oneDNN capped below them"
                    if device.type == "cpu" else "device says no")
        return "fp32"
    return precision
