"""One exception type for every user-facing failure, and the one place that turns any other into a line.

A :class:`SeqlmError` carries one line that says what is wrong and how to fix it; the CLI prints it
(``seqlm: error: ...``) and exits with status 2, never a traceback.  :func:`explain` names the fix for the
failures of the machine rather than of seqlm (memory, a full disk); anything else is a bug, which the CLI
reports in one line with the file its traceback was written to.  Writing files: ``io/files.py``.
"""

from __future__ import annotations

import contextlib
import errno


class SeqlmError(Exception):
    """A problem with the user's input or environment, stated in one line with its fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a terminated run cleans up and saves as an interrupted
    one does (the CLI then exits 143 instead of 130)."""


# the SIGINT/SIGTERM the command line received (its handlers record them before raising): a long loop checks
# it at each step, so a signal whose KeyboardInterrupt was swallowed (raised inside a finalizer, which Python
# only prints) still stops it at the next step
SIGNALS: list[int] = []


def check_signals() -> None:
    """Raise KeyboardInterrupt (Terminated for SIGTERM) where a signal was received and not yet acted on."""
    import signal

    if SIGNALS:
        raise Terminated() if SIGNALS[-1] == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM held back for the block and delivered as it ends: for the instant between making a
    temporary file and knowing its name, and for a block that starts processes, where an exception would
    leave a file behind or processes half started.  Held where Python runs its handlers: a signal the kernel
    gives to any thread (a scoring thread, a library's) has its handler run by the main thread, so a thread's
    signal mask would not hold it; here each handler is replaced by one that records, and each signal recorded
    is raised again once the handlers are back.  Processes started in the block inherit no mask.  In another
    thread nothing is raised, so nothing needs holding."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    previous = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) is not None:  # (None: a handler set from C, which could not be put back)
            previous[s] = signal.signal(s, lambda signum, frame: seen.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(seen):
            signal.raise_signal(s)


def explain(e: BaseException) -> str | None:
    """The one-line fix for a failure of the machine (out of memory, a full disk, the file-size limit), None for
    anything else."""
    if isinstance(e, (ImportError, OSError)) and ("failed to map segment" in str(e)
                                                  or "cannot allocate memory" in str(e).lower()):
        # a shared library (PyTorch's) that could not be mapped: the address-space limit or the machine
        return ("out of memory loading a library (PyTorch maps more than the address-space limit leaves): raise the limit "
                "(ulimit -v) or run where more memory is free")
    if isinstance(e, MemoryError):
        return ("out of memory: lower --memory (n-gram estimation), train.batch_size or the model size, or run "
                "where more memory is free")
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return f"the disk is full{where}: free space there, or give --out / --temp-dir on another disk"
    if isinstance(e, OSError) and e.errno == errno.EFBIG:
        where = f" writing {e.filename}" if e.filename else ""
        return (f"a file grew past this process's file-size limit{where} (ulimit -f): raise the limit, or write "
                f"less (a smaller model, --quantize)")
    text = str(e)
    if isinstance(e, OSError) and e.errno is None and "requested and" in text and "written" in text:
        # numpy's tofile on a short write ("5775 requested and 896 written"), which carries no errno
        return ("a write was cut short: the disk is full or the file-size limit (ulimit -f) was reached: free "
                "space there, or give --out / --temp-dir on another disk")
    if "No space left on device" in text:  # libraries that wrap the OSError (safetensors)
        return "the disk is full: free space there, or give --out / --temp-dir on another disk"
    if "File too large" in text:
        return "a file grew past this process's file-size limit (ulimit -f): raise the limit, or write less"
    return None
