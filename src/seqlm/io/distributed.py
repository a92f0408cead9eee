"""Training on several processes: ``torchrun`` and PyTorch's DistributedDataParallel, nothing of our own.

``torchrun --nproc_per_node=N -m seqlm train RECIPE --out RUN`` starts N copies of ``seqlm train``; torchrun
gives each its rank in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT`` or a rendezvous for several nodes), and this module reads them.

What a run under N processes is, and why it is the same run as one process with the same global batch:

- the backend is NCCL on CUDA and gloo on CPU (chosen from the device); on CUDA each process takes the
  GPU of its local rank;
- every process builds the same model from the same seed and the same data; the training stream is cut
  into ``train.batch_size`` contiguous rows, as in one process, and rank r takes rows
  ``[r*B/N, (r+1)*B/N)``, so the carried (truncated-BPTT) state stays per row;
- DDP averages the gradients; every rank holds the same number of tokens per step, so the average is the
  gradient of the mean loss over the whole global batch, and clipping then sees the global norm;
- dropout masks are drawn for the whole global batch from the same random stream on every rank and each
  rank keeps its rows (``SequenceDropout.rows``), so the masks are those of the one-process run and the
  random streams of the ranks never drift apart (word dropout and DropConnect draw identically anyway);
- only rank 0 writes files and prints progress; it evaluates (the full stream, never trimmed, so the
  number is the one-process number) and broadcasts the result, so every rank takes the same decisions;
- a checkpoint holds the carried state of every row (gathered to rank 0), and every rank resumes from it.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqlm.errors import SeqlmError

if TYPE_CHECKING:  # torch is imported where it is used: an n-gram run never loads it
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def rows(self, batch_size: int) -> slice:
        """The rows of a global batch that this rank trains on."""
        if batch_size % self.size:
            raise SeqlmError(f"train.batch_size={batch_size} does not split over {self.size} processes: "
                             f"give a batch size divisible by {self.size} (the global batch is split by rows)")
        n = batch_size // self.size
        return slice(self.rank * n, (self.rank + 1) * n)

    def describe(self) -> dict:
        return {"world_size": self.size, "backend": backend_name() if self.active else None}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SeqlmError(f"{name}={value!r} in the environment is not a number: launch with torchrun") from None


def world_from_env() -> World:
    """This process's place, from torchrun's environment (one process when it is absent)."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise SeqlmError(f"RANK={rank} and WORLD_SIZE={size} in the environment do not fit: launch with torchrun")
    local_rank = _env_int("LOCAL_RANK", rank)
    return World(rank, size, local_rank, _env_int("LOCAL_WORLD_SIZE", size))


def backend_name() -> str | None:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else None


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL for CUDA, gloo for CPU); returns the device this rank trains on."""
    if not world.active:
        return device
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise SeqlmError("this PyTorch build has no torch.distributed: train in one process (without torchrun)")
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise SeqlmError(f"local rank {world.local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                             f"start at most {torch.cuda.device_count()} processes per node")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        minutes = float(os.environ.get("SEQLM_DIST_TIMEOUT_MINUTES", "30"))
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
        except (RuntimeError, ValueError) as e:
            raise SeqlmError(f"could not join the {world.size} training processes ({str(e).splitlines()[0]}): "
                             f"launch with torchrun --nproc_per_node=N -m seqlm train ...") from None
    if not world.is_main:  # one voice: rank 0 prints progress and notes, the others only their errors
        logging.getLogger("seqlm").setLevel(logging.WARNING)
    return device


def stop() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(obj, world: World):
    """Rank 0's ``obj`` on every rank (a small picklable value: metrics, a decision)."""
    if not world.active:
        return obj
    import torch.distributed as dist

    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(values: list[float], world: World, device) -> list[float]:
    """Element-wise sums over the ranks (fp64)."""
    if not world.active:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_rows(state, world: World, dim: int):
    """The carried state of the whole global batch (rows of every rank, in rank order), from each
    rank's rows: a tensor, or a list of tensors / tuples of tensors, concatenated along ``dim``."""
    if not world.active:
        return state
    import torch
    import torch.distributed as dist

    def one(t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(world.size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=dim)

    if isinstance(state, torch.Tensor):
        return one(state)
    return [tuple(one(s) for s in st) if isinstance(st, tuple) else one(st) for st in state]


def take_rows(state, rows: slice, dim: int):
    """This rank's rows of a global-batch state (the inverse of :func:`gather_rows`)."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.narrow(dim, rows.start, rows.stop - rows.start).contiguous()
    return [tuple(take_rows(s, rows, dim) for s in st) if isinstance(st, tuple) else take_rows(st, rows, dim)
            for st in state]


def failure(e: BaseException, world: World, note: str) -> SeqlmError:
    """A collective that failed because another rank died, as one line."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return SeqlmError(f"rank {world.rank} of {world.size}: another training process stopped ({first[:160]}); "
                      f"{note}")
