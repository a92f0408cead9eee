"""The engine of estimation on a cluster (cluster.py): a Dask client on a local cluster of worker processes or on
a running scheduler, with the per-worker memory budget, and the scratch folder's files as the tasks read and
write them (each written under a temporary name and renamed, so a task a dead worker left half done is simply
run again), metered per task for the benchmark's scaling model."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import resource
import signal
import socket
import time
import warnings
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError, check_signals, signals_held
from seqlm.io.memory import parse_memory
from seqlm.text.bulk import read_raw

log = logging.getLogger(__name__)

INSTALL = "pip install 'seqlm[cluster]'"
FAULT = "SEQLM_CLUSTER_FAULT"  # tests: "stage:index[:always]" kills the worker running that task


# -- the engine --------------------------------------------------------------------------------------
class Engine:
    """A Dask client on a local cluster of N worker processes (``local:N``) or on a running scheduler
    (``tcp://HOST:PORT``), with the per-worker memory budget."""

    def __init__(self, spec: str, memory: str | int | None):
        self.spec = spec
        m = re.fullmatch(r"local:(\d+)", spec)
        if not m and not re.fullmatch(r"(tcp|tls)://[^\s]+:\d+", spec):
            raise SeqlmError(f"--cluster {spec!r}: give local:N (N worker processes here) or tcp://HOST:PORT (a "
                             f"running dask scheduler)")
        self.local = int(m.group(1)) if m else None
        if self.local is not None and not 1 <= self.local <= 256:
            raise SeqlmError(f"--cluster {spec}: give between 1 and 256 local workers")
        self.memory = memory
        self.cluster = self.client = None
        self.environ: dict | None = None  # this process's environment before local workers started
        self.stages: dict[str, dict] = {}  # per task function: tasks, seconds, bytes (the benchmark's scaling model)

    def __enter__(self) -> "Engine":
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise SeqlmError(f"--cluster needs Dask distributed: {INSTALL}") from None
        # a run stopped by a signal leaves the client's pending gathers to asyncio, which would print each one's
        # traceback ("Task exception was never retrieved ... AllExit") after seqlm's one line
        if not any(isinstance(f, _QuietExit) for f in logging.getLogger("asyncio").filters):
            logging.getLogger("asyncio").addFilter(_QuietExit())
        if self.local is not None:
            import dask

            # "port 8787 is in use": its HTTP server takes another, and says so.  And the workers keep glibc's
            # dynamic mmap threshold: dask sets MALLOC_TRIM_THRESHOLD_, which turns it off, and then every array
            # over 128 KB is fresh pages to fault in (packing the trie ran 2x slower).  memory_limit=0: the
            # budget sizes every task, the nanny must not kill a worker on its own
            environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            # a nanny sets that environment in this process to start its worker (OMP_NUM_THREADS=1 and the
            # like, which a PyTorch imported later would obey): put back as it was once they run, and at close
            # (a nanny restarting a dead worker sets it again)
            self.environ = dict(os.environ)
            try:
                with signals_held(), warnings.catch_warnings(), \
                        dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                    warnings.simplefilter("ignore", UserWarning)
                    self.cluster = LocalCluster(n_workers=self.local, threads_per_worker=1, processes=True,
                                                memory_limit=0, dashboard_address=None,
                                                silence_logs=logging.CRITICAL)
                    self.client = Client(self.cluster)
                self.put_back_environ()
            except BaseException:  # a signal while the workers started: they are stopped, then it is raised
                self.close()
                raise
            self.workers = self.local
            self.budget = max(1 << 12, parse_memory(self.memory) // self.local)
        else:
            try:
                host, port = self.spec.split("://", 1)[1].rsplit(":", 1)
                socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()  # refused: at once
                self.client = Client(self.spec, timeout="10s")
            except (OSError, TimeoutError) as e:
                raise SeqlmError(f"--cluster {self.spec}: no dask scheduler answers there ({e}): start one "
                                 f"(dask scheduler; dask worker {self.spec}) or check the address") from None
            info = self.client.scheduler_info()["workers"]
            if not info:
                self.close()
                raise SeqlmError(f"--cluster {self.spec}: the scheduler has no workers: start some "
                                 f"(dask worker {self.spec})")
            self.workers = len(info)
            limits = [w.get("memory_limit") or 0 for w in info.values()]
            self.budget = parse_memory(self.memory) if self.memory else (min(limits) // 2 if all(limits) else
                                                                        parse_memory(None))
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                    pass
        self.client = self.cluster = None
        self.put_back_environ()

    def put_back_environ(self) -> None:
        """This process's environment as it was before the local workers started (nothing for a remote cluster)."""
        if self.environ is None:
            return
        for k in set(os.environ) - set(self.environ):
            del os.environ[k]
        for k, v in self.environ.items():
            if os.environ.get(k) != v:
                os.environ[k] = v

    def map(self, fn, *iterables, **common) -> list:
        """``[fn(*args, **common) for args in zip(*iterables)]`` on the workers, in order."""
        items = list(zip(*iterables))
        if not items:
            return []
        from distributed import KilledWorker

        check_signals()  # a signal whose exception was swallowed (a library's callback) stops the run here
        t0 = time.perf_counter()
        futures = self.client.map(functools.partial(_timed, fn), *zip(*items), pure=False, **common)
        try:
            done = self.client.gather(futures)
            wall = time.perf_counter() - t0
            name = fn.__name__.strip("_")
            st = self.stages.setdefault(name, {"calls": 0, "tasks": 0, "wall_s": 0.0, "task_s": 0.0, "max_task_s": 0.0,
                                               "read_bytes": 0, "written_bytes": 0, "client_bytes": 0})
            st["calls"] += 1
            st["tasks"] += len(done)
            st["wall_s"] += wall
            for _, sec, r, w, c in done:
                st["task_s"] += sec
                st["max_task_s"] = max(st["max_task_s"], sec)
                st["read_bytes"] += r
                st["written_bytes"] += w
                st["client_bytes"] += c
            log.debug("%s: %d tasks in %.2fs", name, len(items), wall)
            return [d[0] for d in done]
        except KilledWorker:
            tries = 1 + int(self.client.run_on_scheduler(_allowed_failures))
            raise SeqlmError(f"--cluster {self.spec}: a worker died running {fn.__name__.strip('_')}, {tries} times "
                             f"on {tries} workers; no model was written: give each worker more memory (or a lower "
                             f"--memory), and see the workers' logs") from None
        finally:
            self.client.cancel(futures)

    def check_storage(self, *folders: Path) -> None:
        """Every worker must see the scratch and output folders at the same paths (shared storage)."""
        seen = self.client.run(_visible, [str(f) for f in folders])
        for worker, missing in seen.items():
            if missing:
                raise SeqlmError(f"--cluster {self.spec}: worker {worker} cannot see {missing[0]}: give --temp-dir and "
                                 f"--out on storage every worker mounts at the same path")

    def peak_rss_mb(self) -> list[float]:
        """Each worker process's peak resident memory so far (MB)."""
        return sorted(round(v / 1024, 1) for v in self.client.run(_peak_kb).values())


class _QuietExit(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ not in ("AllExit", "CancelledError")


def _allowed_failures() -> int:
    import dask

    return dask.config.get("distributed.scheduler.allowed-failures")


def _visible(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.isdir(p)]


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fault(work: Path, stage: str, i: int) -> None:
    """Tests: kill this worker process at the task named by $SEQLM_CLUSTER_FAULT (once, or every time)."""
    want = os.environ.get(FAULT, "")
    if not want.startswith(f"{stage}:{i}"):
        return
    marker = work.parent / f"seqlm-fault-{stage}-{i}"  # beside the scratch folder: the test sees it
    if want.endswith(":always") or not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


# -- files of the scratch folder ----------------------------------------------------------------------
class Meter:
    """Bytes a task read from and wrote to the scratch folder (per process: a worker runs one task at a time)."""

    read = written = 0


def _timed(fn, *args, **common):
    """Run a task and measure it: (result, seconds, bytes read, bytes written, bytes of the result)."""
    Meter.read = Meter.written = 0
    t0 = time.perf_counter()
    out = fn(*args, **common)
    return out, time.perf_counter() - t0, Meter.read, Meter.written, len(pickle.dumps(out))


def read_counted(path: Path, dtype, start: int = 0, count: int = -1) -> np.ndarray:
    a = read_raw(path, dtype, start, count)
    Meter.read += a.nbytes
    return a


def scratch(work: Path, name: str, *at) -> Path:
    return work / (name + "-".join(str(a) for a in at) + ".bin")


def save(path: Path, a: np.ndarray) -> None:
    """Write an array whole, under a temporary name renamed at the end (a retried task overwrites it)."""
    tmp = path.with_name(path.name + ".part")
    np.ascontiguousarray(a).tofile(tmp)
    Meter.written += a.nbytes
    os.replace(tmp, path)


def remove_scratch(work: Path, *names: str) -> None:
    for name in names:
        for f in work.glob(name + "*.bin"):
            f.unlink()
