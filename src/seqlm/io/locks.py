"""Locks on outputs: a command that writes a folder holds an advisory lock on it for its whole run, so that two
seqlm processes never write one output together (the second stops at once, naming the first)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from seqlm.errors import SeqlmError
from seqlm.io.files import check_parent, output_error, signals_held


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, flag: str = "--out", wait: bool = False) -> Iterator[None]:
    """Hold an advisory lock on the output ``path`` (a folder or file seqlm is about to write) for the whole
    block: a second seqlm process writing the same path stops at once with one line naming the process that
    holds it (``wait``: it waits for it instead, saying so once; signals still stop it while it waits).  The
    lock is ``flock`` on ``.NAME.lock`` beside the path (the path itself is replaced atomically), removed on
    release; it is checked after locking to be the file still at that name, so a process that opened it just
    before its removal tries again.  Where ``flock`` is missing (not POSIX), the block runs unlocked."""
    try:
        import fcntl  # noqa: F401 (only whether it exists)
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    check_parent(path, flag)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path, e) from None
    mine = None  # the locked descriptor, once held: the finally below removes the lock only then
    try:
        told = False
        while True:
            mine, holder = _take(lock)
            if mine is not None:
                break
            if not wait:
                raise SeqlmError(f"{path} is being written by another seqlm process (pid {holder}): wait for "
                                 f"it to finish, or choose another {flag}")
            if not told:
                told = True
                import logging

                logging.getLogger("seqlm").info("waiting for seqlm process %s, which is writing %s", holder, path)
            time.sleep(0.2)
        os.ftruncate(mine, 0)
        os.write(mine, str(os.getpid()).encode())
        yield
    finally:
        if mine is not None:
            with contextlib.suppress(OSError):
                lock.unlink()
            os.close(mine)


def _take(lock: Path) -> tuple[int | None, str]:
    """(the locked descriptor of ``lock``, "") or (None, the pid of the process that holds it)."""
    import fcntl

    with signals_held():  # a signal between making the file and holding it would leave it behind: it waits
        while True:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
            except OSError as e:
                raise output_error(lock, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                return None, holder
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                return fd, ""
            os.close(fd)  # removed by its holder between our open and our lock: take the new one


def locks_output(fn):
    """Decorate a function that writes the folder given as its ``out`` argument: :func:`output_lock` on it
    for the whole call (checks of ``out`` inside then hold until the writing is done)."""
    import functools
    import inspect

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def locked(*args, **kwargs):
        out = signature.bind(*args, **kwargs).arguments.get("out")
        with output_lock(out) if out is not None else contextlib.nullcontext():
            return fn(*args, **kwargs)

    return locked
