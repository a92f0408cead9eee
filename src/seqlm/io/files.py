"""Writing files safely: atomically, with the user's permissions, and with one-line errors.

Every file seqlm writes goes through :func:`atomic_write` or :func:`atomic_dir`: the content lands in a
temporary sibling that is renamed into place only once complete, so an interrupted run never leaves a
partial file behind.  Temporary names carry the writer's process id (``.NAME.PID.XXXX.tmp``): the next
write to the same folder removes those whose process is gone (a SIGKILL leaves them), and nothing else.
Files and folders get the permissions the user's umask gives (``mkstemp`` alone would make them 0600).
An ``OSError`` on output (read-only folder, full disk, a folder where a file should go) becomes a
:class:`SeqlmError` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator

from seqlm.errors import SeqlmError, explain, signals_held


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path, e: OSError) -> SeqlmError:
    """The one line for an output that could not be written: the machine's fix where errors.explain knows it
    (a full disk, the file-size limit), else the reason and what to choose instead."""
    machine = explain(OSError(e.errno, e.strerror) if e.errno else e)  # the path is said once, here
    if machine:
        return SeqlmError(f"cannot write {path}: {machine}")
    reason = e.strerror or str(e)
    fix = {"EROFS": "choose a writable location",
           "EACCES": "choose a folder you can write to", "EPERM": "choose a folder you can write to",
           "EISDIR": "give a file name, not a folder", "ENOTDIR": "a parent of it is a file: choose another path"}
    import errno

    name = errno.errorcode.get(e.errno or 0, "")
    return SeqlmError(f"cannot write {path}: {reason}: {fix.get(name, 'choose another output path')}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale(path: Path) -> None:
    """Remove, in ``path``'s folder, the temporary files and folders of seqlm writes whose process no longer
    runs (a SIGKILL leaves them): only names of seqlm's own pattern ``.NAME.PID.XXXX.tmp`` (or ``.old``)."""
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            name = entry.name
            if not (name.startswith(".") and (name.endswith(".tmp") or name.endswith(".old"))):
                continue
            parts = name.rsplit(".", 3)  # [".NAME", PID, XXXX, "tmp"]
            if len(parts) != 4 or len(parts[0]) < 2 or not parts[1].isdigit() or _pid_alive(int(parts[1])):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()


def scratch_dir(base: Path, prefix: str) -> Path:
    """A new scratch folder ``PREFIX-PID-XXXX`` in ``base``, after removing the ones of that prefix whose
    process no longer runs (a SIGKILL leaves them; the pid in the name tells a dead owner from a live one)."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            rest = entry.name[len(prefix) + 1:] if entry.name.startswith(prefix + "-") else ""
            pid = rest.split("-", 1)[0]
            if pid.isdigit() and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", dir=base))


def _prepare(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(path.parent, e) from None
    if path.is_dir() and not path.is_symlink():
        raise SeqlmError(f"cannot write {path}: it is a folder: give a file name")
    clean_stale(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    _prepare(path)
    tmp = None
    try:
        with signals_held():  # a signal while the file is made would leave it, its name unknown: it waits
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise output_error(path, e) from None
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def _umask_modes(folder: Path) -> None:
    """Give every file and folder under ``folder`` the mode the umask gives, whatever wrote it (safetensors
    writes 0600): what a folder seqlm writes promises."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path`` that replaces ``path`` only when the block succeeds.

    An existing folder at ``path`` is kept until the new one is complete, then swapped out.  Callers
    decide whether replacing it is allowed (see :func:`check_output_folder`).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SeqlmError(f"{path} exists and is not a folder: choose another --out")
    _prepare(path.parent / path.name) if not path.is_dir() else clean_stale(path)
    tmp = None
    try:
        with signals_held():  # a signal while the folder is made would leave it, its name unknown: it waits
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        _umask_modes(tmp)
        with signals_held():  # the swap is whole or not begun: a signal in it would leave no folder at path
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".old", dir=path.parent))
                os.replace(path, old / "previous")
                os.replace(tmp, path)
                tmp = None
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
                tmp = None
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise output_error(path, e) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def strict(obj):
    """``obj`` with every non-finite float replaced by None, so that it is strict JSON (``JSON.parse``
    rejects ``Infinity`` and ``NaN``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """Strict JSON of ``obj``: a non-finite number is null (:func:`strict`, walked only when there is one)."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # Infinity or NaN somewhere
        return json.dumps(strict(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    with atomic_write(path) as f:
        f.write(dumps(obj, indent=indent))


# -- model folders: every file checksummed in config.json ------------------------------------------------
def sha256_file(path: str | os.PathLike) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _canonical(config: dict) -> str:
    import hashlib

    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_config(folder: Path, config: dict, default=None) -> dict:
    """Write ``folder/config.json`` recording the SHA-256 of every other file in ``folder`` and of the
    config itself, so that a foreign, damaged or hand-edited file is refused at load, never used."""
    config = json.loads(json.dumps(config, default=default))  # as it will read back
    config["files"] = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
                       if p.is_file() and p.name != "config.json"}
    config["config_sha256"] = _canonical(config)
    with atomic_write(folder / "config.json") as f:
        json.dump(config, f, indent=2)
    return config


def verify_folder(folder: Path, config: dict) -> None:
    """Check a model folder against the checksums its config.json records (folders written before they
    were recorded pass unchecked)."""
    if "config_sha256" in config and _canonical(config) != config["config_sha256"]:
        raise SeqlmError(f"{folder}/config.json was edited after training (its checksum does not match): "
                         f"restore it or retrain the model")
    for name, digest in (config.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            raise SeqlmError(f"{path} is missing: the model folder is incomplete; copy it again or retrain")
        if sha256_file(path) != digest:
            raise SeqlmError(f"{path} does not match the checksum in config.json (from another model, truncated "
                             f"or modified): copy the model folder again or retrain")


def check_parent(path: Path, flag: str) -> None:
    """Fail now when the nearest existing parent of ``path`` is a file (nothing can be written under it)."""
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise SeqlmError(f"cannot write {path}: {parent} is a file, not a folder: choose another {flag}")
            return


def check_new_outputs(out: Path, results: Path | None = None) -> None:
    """Fail now, before any work, when ``out`` (a folder seqlm will create) already exists or cannot be
    created, or ``results`` (a file) cannot be written."""
    out = Path(out)
    if out.exists():
        raise SeqlmError(f"{out} already exists: choose another --out, or remove it first (this command never "
                         f"replaces a folder)")
    check_parent(out, "--out")
    if results:
        check_target(Path(results), "--results")


def check_target(path: Path, flag: str, inputs=(), overwrite: bool | None = None) -> None:
    """Fail now, not after the work, when ``path`` cannot be written as a file: a folder, under a file, one of
    the command's ``inputs`` (paths), or an existing file seqlm did not write (:func:`written_by_seqlm`),
    which only ``overwrite`` replaces (None: the command has no --overwrite)."""
    path = Path(path)
    if path.is_dir():
        raise SeqlmError(f"{flag} {path} is a folder: give a file name")
    check_parent(path, flag)
    for given in inputs:
        if given is not None and _same_path(path, Path(given)):
            raise SeqlmError(f"{flag} {path} is also an input of this command: write the output to another path")
    if path.exists() and not overwrite and not written_by_seqlm(path):
        fix = "add --overwrite to replace it, or " if overwrite is not None else "remove it yourself, or "
        raise SeqlmError(f"{flag} {path} exists and seqlm did not write it: {fix}choose another path "
                         f"(seqlm never replaces a file it did not write)")


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b) or a.resolve() == b.resolve()
    except OSError:
        return False


PNG_METADATA = {"Software": "seqlm"}  # in every figure seqlm writes: how it knows its own PNG files


def written_by_seqlm(path: Path) -> bool:
    """Whether the file at ``path`` is one seqlm writes to a path a user names: an ARPA file carrying seqlm's
    tokenizer mark, a JSON object of seqlm's results (a ``type`` and the run's record), or a PNG figure
    marked as seqlm's."""
    import gzip

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                head = g.read(1 << 16)
    except (OSError, EOFError):
        return False
    if head.startswith(b"\x89PNG"):
        return b"Software\x00seqlm" in head
    if head.lstrip().startswith(b"\\data\\"):
        return b"<seqlm:tokenizer:" in head
    if head.lstrip().startswith(b"{"):
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and "type" in obj and any(k in obj for k in ("hardware", "commit", "model", "seqlm"))
    return False


def check_targets(**paths) -> None:
    """:func:`check_target` for each ``flag=path`` given (None: not asked for); ``_`` in a flag is ``-``."""
    for flag, path in paths.items():
        if path is not None:
            check_target(Path(path), "--" + flag.replace("_", "-"))


SEQLM_FILES = {"config.json", "vocab.json", "model.npz", "tables", "trie", "model.safetensors", "run.json", "summary.json",
               "metrics.jsonl", "steps.jsonl", "model", "last"}


def check_output_folder(out: Path, family: str, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an output folder that would lose someone's files.

    - a new or empty folder is fine;
    - a folder with files seqlm did not write is refused (seqlm never deletes what it did not write);
    - an n-gram model folder may be replaced by an n-gram model with ``overwrite``;
    - a neural run folder is resumed (``resume``) or refused, never wiped; one stopped before its first
      checkpoint (run.json and logs only) is started over without ``resume``;
    - a model folder of another family is refused.
    """
    if not out.exists():
        if resume:
            raise SeqlmError(f"nothing to resume: {out} does not exist; start without --resume")
        return
    if not out.is_dir():
        raise SeqlmError(f"{out} exists and is not a folder: choose another --out")
    entries = [p.name for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith((".tmp", ".old")))]
    if not entries:
        if resume:
            raise SeqlmError(f"nothing to resume: {out} is empty; start without --resume")
        return
    foreign = sorted(set(entries) - SEQLM_FILES)
    if foreign:
        raise SeqlmError(f"{out} holds files seqlm did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}): choose a new or empty folder for --out")
    is_run = (out / "run.json").exists() or (out / "last").exists()
    is_ngram = (out / "model.npz").exists() or (out / "tables").is_dir() or (out / "trie").is_dir()
    existing = "neural" if is_run else ("ngram" if is_ngram else None)
    if existing != family:
        what = {"neural": "a neural training run", "ngram": "an n-gram model"}.get(existing, "an unknown seqlm folder")
        raise SeqlmError(f"{out} holds {what}: choose another --out for this {family} model")
    if family == "neural":  # a run folder is started, checkpointed or finished: each has one way on
        started_only = not any((out / name).exists() for name in ("last", "model", "summary.json"))
        if resume:
            if started_only:
                raise SeqlmError(f"nothing to resume: {out} was started but stopped before its first checkpoint: run "
                                 f"the same command without --resume to start it over")
            return
        if started_only:
            return  # never checkpointed: starting again replaces its files (run.json, the logs)
        raise SeqlmError(f"{out} already holds a training run: add --resume to continue it, or choose another "
                         f"--out (a run folder is never wiped)")
    if resume:
        raise SeqlmError("--resume continues neural training runs: an n-gram model is estimated in one go")
    if not overwrite:
        raise SeqlmError(f"{out} already holds an n-gram model: add --overwrite to replace it, or choose another --out")
