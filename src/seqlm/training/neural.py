"""One training loop for every neural kind (recurrent and fixed-window).

Teacher forcing over the token stream: the training text is one stream (each line then ``</s>``, after
a leading ``</s>``), cut into ``batch_size`` contiguous rows and read ``bptt`` steps at a time; the state
is carried across batches and detached (truncated BPTT).  Gradient-norm clipping; SGD with the Zaremba
schedule, Adam or AdamW; decay on plateau; early stopping; validation each epoch; the best model kept.

Run folder (``--out``): ``model/`` the best model (config.json, vocab.json, model.safetensors; ``seqlm
evaluate RUN`` finds it), ``last/`` (the
latest resume checkpoint: weights, optimizer, schedule, RNG, data position, carried state; written
atomically), ``metrics.jsonl`` (one line per epoch), ``run.json`` (resolved config, command line,
commit, versions) and ``summary.json`` (final metrics).  Resuming from ``last/`` reproduces the same
weights as an uninterrupted run.

Under ``torchrun`` the same loop runs in every process, each on its rows of the global batch, wrapped in
DistributedDataParallel (``seqlm.io.distributed`` says what makes it the one-process run).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from seqlm import errors
from seqlm.config import RunConfig
from seqlm.errors import SeqlmError
from seqlm.io import distributed
from seqlm.models.neural.lm import NeuralLM
from seqlm.training.checkpoint import checkpoint_note
from seqlm.training.run import Run

log = logging.getLogger(__name__)


# -- the loop ------------------------------------------------------------------------------------------
def train_neural(cfg: RunConfig, out: str | Path, resume: bool = False, results: str | Path | None = None,
                 argv: list[str] | None = None) -> tuple[NeuralLM, dict]:
    """Train ``cfg`` into the run folder ``out``; see the module docstring.  Under ``torchrun`` this is
    one of the processes of one run (``seqlm.io.distributed``): rank 0 writes the files."""
    cfg.validate()
    world = distributed.world_from_env()
    if world.active and cfg.train.on_nan == "skip":
        raise SeqlmError("train.on_nan=skip cannot run under torchrun (a rank that skips a step would leave the "
                         "others waiting in the gradient exchange): use train.on_nan=stop")
    if not resume and Path(out, "last").exists():
        raise SeqlmError(f"{out} already holds a training run: add --resume to continue it, or choose another --out")
    created = not Path(out).exists()
    try:
        run = Run(cfg, Path(out), argv, world)
        try:
            return _train(run, resume, results)
        except RuntimeError as e:  # under torchrun: a collective broke because another rank stopped
            if not world.active or isinstance(e, SeqlmError):
                raise
            raise distributed.failure(e, world, checkpoint_note(run.out)) from None
    except Exception:
        # a run that fails before its first checkpoint (a full disk, a bad setting found late) leaves nothing
        # behind: the folder it made goes; one with a checkpoint stays, to resume
        if created and world.is_main and not Path(out, "last").exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        distributed.stop()


def _train(run: "Run", resume: bool, results) -> tuple[NeuralLM, dict]:
    if resume:
        run.resume()
    run.begin()
    stop, interrupted = None, False
    try:
        while stop is None and run.progress["epoch"] < run.cfg.train.epochs:
            stop = run.train_epoch() or run.end_epoch()
    except (KeyboardInterrupt, Exception) as e:
        if not isinstance(e, KeyboardInterrupt) and not errors.SIGNALS:
            raise
        # Ctrl-C or SIGTERM, or what replaced its exception on the way up (see cli._after_signal)
        interrupted, stop = True, "interrupted"
        log.warning("interrupted: saving a checkpoint and evaluating the best model")
    if stop in ("max_steps", "max_minutes", "interrupted"):
        run.save_at_stop(evaluate_current=not interrupted)
    return run.finish(stop or "epochs", interrupted, results)

