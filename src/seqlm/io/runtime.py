"""Process-level helpers: logging to stderr, the progress bar, devices and threads, run metadata."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("seqlm")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a handler that kept the stream it was made with
    would write into a closed one once a caller, a test's capture, swapped stderr back)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def import_numpy_quietly() -> None:
    """Import numpy with its OpenBLAS in one thread, unless numpy is already imported or the user set
    ``OPENBLAS_NUM_THREADS``: for a command that queries a model folder.  At import OpenBLAS starts a thread
    per core that spins for about a tenth of a second before it sleeps; querying a model makes no matrix
    product with numpy (torch has its own threads), and on 2 cores those threads take a core from seqlm's
    scoring threads (``seqlm score --file`` on 1M tokens: 0.188 s, 0.161 s with them off).  Reading an ARPA
    file does use them (its numbers are parsed by matrix-vector products: ``seqlm convert`` of PTB's 5-gram
    takes 1.43 s with them, 1.57 s without), so commands that may read one keep them.  The environment is put
    back at once: torch and child processes see the user's."""
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    finally:
        del os.environ["OPENBLAS_NUM_THREADS"]


def setup_logging(verbosity: int = 0) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("seqlm: %(message)s"))
    root = logging.getLogger("seqlm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Progress:
    """A progress bar on stderr (tqdm: rate, elapsed time, ETA), shown at log level INFO: redrawn in place on
    a terminal, every ``every`` seconds otherwise (logs).  ``update(n, **fields)`` adds ``n`` and shows the
    fields (loss, lr, ...) after the bar."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", every: float = 10.0, delay: float = 0.0):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                        disable=not log.isEnabledFor(logging.INFO), mininterval=0.2 if tty else every,
                        dynamic_ncols=tty, ascii=not tty, leave=True, delay=delay)

    @property
    def n(self) -> int:
        return self.bar.n

    @n.setter
    def n(self, value: int) -> None:
        self.bar.n = value
        self.bar.last_print_n = value

    def update(self, n: int = 1, **fields) -> None:
        if fields:
            self.bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in fields.items()},
                                 refresh=False)
        self.bar.update(n)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.close(failed=exc_type is not None)

    def close(self, failed: bool = False) -> None:
        """Done (``failed``: erase the bar, so an error message stands alone)."""
        if failed:
            self.bar.leave = False
        self.bar.close()


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


def resolve_device(name: str):
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is a one-line error."""
    import torch

    from seqlm.errors import SeqlmError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqlmError(f"--device {name} asked for, but no CUDA device is available: use --device cpu or auto")
    return torch.device(name)


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def scoring_threads() -> int:
    """How many threads seqlm's compiled scoring of many lines uses: ``$SEQLM_THREADS`` where set, else the
    cores this process may run on (never more than those)."""
    value = os.environ.get("SEQLM_THREADS", "").strip()
    if not value:
        return cores()
    if not value.isdigit() or int(value) < 1:
        from seqlm.errors import SeqlmError

        raise SeqlmError(f"SEQLM_THREADS={value!r}: give a whole number of threads, 1 or more (or unset it)")
    return min(int(value), cores())


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (default: the cores this process may run on, never more)."""
    import torch

    n = min(threads or cores(), cores())  # more threads than cores is a cliff: never oversubscribe
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
