"""The neural training run: one object that holds a run's model, data, optimizer, schedule and progress, and
goes through it epoch by epoch (``train_epoch``, ``end_epoch``), checkpointing (``checkpoint.py``) and
finishing with the best model evaluated and the summary written.  ``neural.py`` starts it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from seqlm.config import RunConfig
from seqlm.errors import SeqlmError, check_signals
from seqlm.io import distributed
from seqlm.io.files import write_json
from seqlm.io.records import record
from seqlm.io.runtime import Progress, cores, resolve_device, resolve_precision, set_threads, tune_allocator
from seqlm.models.neural.lm import NeuralLM, build_module
from seqlm.models.neural.recurrent import SequenceDropout
from seqlm.text.encode import batchify, stream_ids
from seqlm.text.vocab import Vocab
from seqlm.training import defaults
from seqlm.training.checkpoint import checkpoint_note, load_resume, save_resume, write_metrics
from seqlm.training.data import run_corpus, run_tokenizer, split_metrics
from seqlm.training.schedule import epoch_end_lr, nonmonotone, scheduled_lr, window_length
from seqlm.training.step import Averager, Stepper, get_lr, make_optimizer, set_lr, use_graphs

log = logging.getLogger(__name__)


# -- the loop ------------------------------------------------------------------------------------------
def _prepare_data(cfg: RunConfig):
    """The corpus, vocabulary and batched training stream."""
    d, t = cfg.data, cfg.train
    corpus = run_corpus(d)
    tokenizer = run_tokenizer(d, corpus)
    vocab = Vocab.build((tokenizer.tokenize(x) for x in corpus.split("train")), tokenizer, d.min_count, d.max_size)
    x_all, y_all = batchify(stream_ids(vocab, corpus.split("train")), t.batch_size)
    return corpus, vocab, x_all, y_all


class Run:
    """One neural training run, as named steps: set up (here), :meth:`resume`, :meth:`begin`,
    then epochs of :meth:`train_epoch` and :meth:`end_epoch`, and :meth:`finish`.  Every file is written
    behind ``is_main`` (rank 0 under torchrun); ``progress`` (saved in each checkpoint) is everything a resume
    needs.  Under torchrun every rank runs the same steps in lockstep on its rows of the global batch; the
    decisions (stop, lr, best model) come from rank 0's clock and evaluations."""

    def __init__(self, cfg: RunConfig, out: Path, argv, world: distributed.World | None = None):
        self.t_start = time.perf_counter()
        self.world = world = world or distributed.World()
        self.cfg, self.out, self.argv, self.is_main = cfg, out, argv, world.is_main
        d, m, t = cfg.data, cfg.model, cfg.train
        self.device = distributed.start(world, resolve_device(t.device))
        self.precision = resolve_precision(t.precision, self.device)
        self.threads = None
        if self.device.type == "cpu":
            # several processes on one machine share its cores: each takes its part unless told
            self.threads = set_threads(t.threads or max(1, cores() // world.local_size))
            tune_allocator()
        torch.manual_seed(t.seed)
        self.corpus, self.vocab, x_all, y_all = _prepare_data(cfg)
        # a run without a recipe: what it was not given, fitted to the data (training/defaults.py)
        self.fitted = defaults.fit(cfg, x_all.numel(), len(self.vocab))
        self.rows = world.rows(t.batch_size)
        x_all, y_all = x_all[self.rows], y_all[self.rows]  # this rank's contiguous rows of the stream
        self.n_batches = math.ceil(x_all.shape[1] / t.bptt)
        self.total_steps = self.n_batches * t.epochs
        self.module = build_module(m, len(self.vocab)).to(self.device)
        self.forward = self.module
        if world.active:
            for sub in self.module.modules():
                if isinstance(sub, SequenceDropout):
                    sub.rows = (self.rows.start, t.batch_size)
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(self.module, device_ids=[self.device] if self.device.type == "cuda"
                                                   else None, broadcast_buffers=False)
        config = {"model": asdict(m), "train": asdict(t), "data": asdict(d), "meta": asdict(cfg.meta),
                  "recipe": cfg.name, "corpus": self.corpus.describe()}
        self.lm = NeuralLM(self.vocab, self.module, config, eval_chunk=t.eval_chunk)
        # CUDA graphs replay fixed shapes: a transformer's state grows over its first steps
        self.graphed = use_graphs(t, self.device) and not world.active and getattr(self.module, "graphable", True)
        self.optimizer = make_optimizer(t, self.module.parameters(), self.graphed)
        self.averager = Averager(self.module) if t.average != "off" else None
        self.nce = None
        if t.loss == "nce":  # noise: the training unigram; output biases start at its logs (Mnih & Teh 2012)
            from seqlm.models.neural.output import NCELoss

            counts = torch.bincount(y_all.flatten(), minlength=len(self.vocab))
            if self.world.active:
                counts = torch.tensor(distributed.all_sum(counts.tolist(), world, self.device), dtype=torch.long)
            self.nce = NCELoss(counts, t.nce_samples).to(self.device)
            with torch.no_grad():
                self.module.decoder.bias.copy_(torch.log(self.nce.noise.clamp_min(1e-12)))
        self.hidden = self.module.init_state(x_all.shape[0], self.device)
        self.progress = {"epoch": 0, "batch": 0, "pos": 0, "step": 0, "tokens": 0, "best_valid": None, "best_eval": {},
                         "bad_epochs": 0, "avg_count": None, "valid_history": [],
                         "history": [], "log": [], "skipped": 0, "train_seconds": 0.0, "epoch_loss": 0.0,
                         "epoch_tokens": 0, "window": {"loss": 0.0, "tokens": 0, "clipped": 0, "since": 0}}
        self.x_all, self.y_all = x_all, y_all
        self.level = self.vocab.tokenizer.level
        self.valid_lines = self.corpus.splits.get("valid")

    def resume(self) -> None:
        """Weights, optimizer, schedule, RNG, data position, carried state and running sums from ``last/``."""
        out, m = self.out, self.cfg.model
        saved_cfg = out / "last" / "model" / "config.json"
        saved_model = json.loads(saved_cfg.read_text())["model"] if saved_cfg.is_file() else None
        if saved_model is not None and saved_model != asdict(m):
            raise SeqlmError(f"the checkpoint in {out}/last was trained with another model config: "
                             f"resume with the same recipe and --set options")
        self._say_what_changed(out)
        template = self.module.init_state(self.cfg.train.batch_size, self.device)  # the global batch's state
        saved, hidden, tensors = load_resume(out / "last", self.lm, self.optimizer, template, self.device)
        self.hidden = distributed.take_rows(hidden, self.rows, self.module.state_batch_dim)
        saved.setdefault("pos", saved["batch"] * self.cfg.train.bptt)  # a checkpoint from before variable bptt
        self.progress.update(saved)
        if self.averager is not None:
            self.averager.load(tensors, self.progress.get("avg_count"))
        log.info("resumed from %s/last at epoch %d, batch %d (step %d)", out, self.progress["epoch"] + 1,
                 self.progress["batch"], self.progress["step"])

    def _say_what_changed(self, out: Path) -> None:
        """A resumed run takes the training settings given now; name the ones that differ from the run's own."""
        try:
            before = json.loads((out / "run.json").read_text())["config"]["train"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        now = self.cfg.to_dict()["train"]
        changed = [f"train.{k} {before.get(k)!r} -> {v!r}" for k, v in now.items() if k in before and before[k] != v]
        if changed:
            log.warning("resuming with settings changed from the run's: %s (the run goes on with the new values)",
                        ", ".join(changed))

    def begin(self) -> None:
        """The start line on stderr, ``run.json`` (config, command, commit, versions, hardware), then the
        stepper, the data on the device and the clock of the training loop."""
        if self.fitted:
            log.info("no recipe: fitted to the data (%s tokens, %s types): %s; set any with --set, the budget with "
                     "--minutes", f"{self.x_all.numel() * self.world.size:,}", f"{len(self.vocab):,}",
                     defaults.describe(self.fitted))
        n_params = sum(p.numel() for p in {id(p): p for p in self.module.parameters()}.values())
        procs = (f", {self.world.size} processes ({distributed.backend_name()}) x" if self.world.active else ",")
        log.info("training %s on %s: %s train tokens, vocabulary %s, %s parameters, %s, %s%s%s%s",
                 self.cfg.model.kind, self.corpus.describe().get("name") or "files",
                 f"{self.x_all.numel() * self.world.size:,}", f"{len(self.vocab):,}", f"{n_params:,}", self.device,
                 self.precision, f"{procs} {self.threads} threads" if self.threads else procs.rstrip(" x,"),
                 ", CUDA graphs" if self.graphed else "",
                 f", at most {self.cfg.train.max_minutes:g} min (train.max_minutes)" if self.cfg.train.max_minutes
                 else "")
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "run.json", {
                "config": self.cfg.to_dict(), **record(command=self.argv, device=self.device),
                "torch": torch.__version__, "device": str(self.device), "threads": self.threads,
                "precision": self.precision, "cuda_graphs": self.graphed,
                **self.world.describe()})
        t = self.cfg.train
        self.stepper = Stepper(self.module, self.optimizer, self.hidden,
                               torch.bfloat16 if self.precision == "bf16" else None, t.clip, graphed=self.graphed,
                               full_shape=tuple(self.x_all[:, :t.bptt].shape), forward=self.forward,
                               ar=t.ar, tar=t.tar, nce=self.nce)
        self.x_all, self.y_all = self.x_all.to(self.device), self.y_all.to(self.device)
        self.loop_t0 = time.perf_counter() - self.progress["train_seconds"]
        self.last_sync = self.progress["step"]

    def seconds(self) -> float:
        return time.perf_counter() - self.loop_t0

    def clock(self) -> float:
        """The training time that the schedule and the time budget read: rank 0's under torchrun (one
        small broadcast per step), so every rank sets the same lr and stops at the same step."""
        if not (self.world.active and self.cfg.train.max_minutes):
            return self.seconds()
        import torch.distributed as dist

        t = torch.tensor([self.seconds()], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def sync(self, record: bool = False) -> None:
        """Read the device-side sums into the epoch totals and the log window (a non-finite loss stops
        here); ``record``: close the window as one line of steps.jsonl."""
        progress = self.progress
        r = self.stepper.drain()
        if self.world.active:  # the global batch's loss and tokens (clipping, on the global norm, is the same)
            r["loss_sum"], r["tokens"] = distributed.all_sum([r["loss_sum"], r["tokens"]], self.world, self.device)
            r["tokens"] = int(r["tokens"])
        if not math.isfinite(r["loss_sum"]):
            raise SeqlmError(f"the loss became {r['loss_sum']} between steps {self.last_sync + 1} and "
                             f"{progress['step']} (epoch {progress['epoch'] + 1}): lower train.lr or set train.clip; "
                             f"{checkpoint_note(self.out)}")
        self.last_sync = progress["step"]
        progress["epoch_loss"] += r["loss_sum"]
        progress["epoch_tokens"] += r["tokens"]
        w = progress["window"]
        w["loss"] += r["loss_sum"]
        w["tokens"] += r["tokens"]
        w["clipped"] += r["clipped"]
        if record and w["tokens"] > 0:
            steps = progress["step"] - w["since"]
            progress["log"].append({"step": progress["step"], "epoch": progress["epoch"] + 1,
                                    "tokens": progress["tokens"], "seconds": round(self.seconds(), 2),
                                    "train_loss": w["loss"] / w["tokens"], "lr": get_lr(self.optimizer),
                                    "grad_norm": r["grad_norm"], "clipped_fraction": w["clipped"] / max(steps, 1)})
            progress["window"] = {"loss": 0.0, "tokens": 0, "clipped": 0, "since": progress["step"]}

    def checkpoint(self) -> None:
        self.sync()
        self.progress["train_seconds"] = self.clock()
        hidden = distributed.gather_rows(self.stepper.hidden, self.world, self.module.state_batch_dim)
        averaging = self.averager is not None and self.averager.active
        self.progress["avg_count"] = self.averager.count if averaging else None
        if self.is_main:
            save_resume(self.out / "last", self.lm, self.optimizer, dict(self.progress), hidden,
                        extra=self.averager.tensors() if averaging else None)
            write_metrics(self.out, self.progress["history"], self.progress["log"])

    def train_epoch(self) -> str | None:
        """The rest of the current epoch, step by step; returns why it stopped early (max_steps,
        max_minutes), or None at the epoch's end."""
        t, progress = self.cfg.train, self.progress
        self.module.train()
        bar = Progress(self.x_all.numel() * self.world.size, f"epoch {progress['epoch'] + 1}/{t.epochs}", unit="tok")
        width = self.x_all.shape[1]
        bar.n = min(progress["pos"], width) * t.batch_size
        stop = None
        while progress["pos"] < width:
            check_signals()  # a Ctrl-C or SIGTERM whose exception was lost (errors.SIGNALS) stops here
            p = progress["pos"]
            length = window_length(t, progress["step"])
            x = self.x_all[:, p:p + length]
            y = self.y_all[:, p:p + length]
            now = self.clock()
            if self.averager is not None and not self.averager.active and t.average == "tail" and \
                    self.budget_fraction(now) >= t.average_start:
                self.start_averaging("at %.0f%% of the budget" % (100 * t.average_start))
            lr = scheduled_lr(t, progress, self.total_steps, now)
            if lr is not None:
                set_lr(self.optimizer, lr)
            base_lr = get_lr(self.optimizer)
            scaled = t.variable_bptt and x.shape[1] != t.bptt
            if scaled:  # variable bptt: the lr scaled by the window's length
                set_lr(self.optimizer, base_lr * x.shape[1] / t.bptt)
            loss = self.stepper.step(x, y, check=not self.graphed)  # eager: read every step (stop/skip at once)
            if scaled:
                set_lr(self.optimizer, base_lr)
            finite = loss is None or math.isfinite(loss)
            if finite and self.averager is not None and self.averager.active:
                self.averager.update()
            if loss is not None and not math.isfinite(loss):
                if t.on_nan == "stop":
                    raise SeqlmError(f"the loss or its gradient became {loss} at step {progress['step'] + 1} (epoch "
                                     f"{progress['epoch'] + 1}): lower train.lr or set train.clip (or --set "
                                     f"train.on_nan=skip); {checkpoint_note(self.out)}")
                progress["skipped"] += 1
                self.stepper.reset_state(self.module.init_state(t.batch_size, self.device))
            progress["batch"] += 1
            progress["pos"] += x.shape[1]
            progress["step"] += 1
            progress["tokens"] += y.numel() * self.world.size
            if progress["step"] % t.log_every == 0:
                self.sync(record=True)
                mean = progress["epoch_loss"] / max(progress["epoch_tokens"], 1)
                bar.update(0, loss=mean, ppl=math.exp(min(mean, 50)), lr=get_lr(self.optimizer),
                           run_left=self.time_left(now))
            bar.update(y.numel() * self.world.size)
            if progress["step"] % t.checkpoint_every == 0:
                self.checkpoint()
            if t.max_steps and progress["step"] >= t.max_steps:
                stop = "max_steps"
                break
            if t.max_minutes and now > t.max_minutes * 60:
                stop = "max_minutes"
                break
        self.sync()
        bar.close()
        return stop

    def end_epoch(self) -> str | None:
        """Validate, keep the best model, schedule the lr, record, checkpoint; "early_stopping" or None."""
        t, progress = self.cfg.train, self.progress
        epoch = progress["epoch"] + 1
        record = {"epoch": epoch, "step": progress["step"], "tokens": progress["tokens"],
                  "lr": get_lr(self.optimizer),
                  "train_perplexity": _exp(progress["epoch_loss"] / max(progress["epoch_tokens"], 1)),
                  **({"train_loss_is": "nce"} if t.loss == "nce" else {}),
                  "seconds": round(self.seconds(), 1)}
        if epoch % t.eval_every == 0 or epoch == t.epochs:
            splits = ("valid", "test") if t.track_test else ("valid",)
            with self.averaged():
                record.update(self.evaluate(self.lm, splits))
            if self.averager is not None and self.averager.active:
                record["averaged"] = True
        v = record.get("valid_perplexity")
        improved = ("valid_perplexity" in record or not self.valid_lines) and (
            v is None or progress["best_valid"] is None or v < progress["best_valid"])
        if improved:
            progress["best_valid"] = v
            progress["best_eval"] = {k: x for k, x in record.items() if k.startswith("valid_")}
            progress["bad_epochs"] = 0
            if self.is_main:
                with self.averaged():
                    self.lm.save(self.out / "model", extra={"epoch": epoch, "valid_perplexity": v})
        else:
            progress["bad_epochs"] += 1
        if v is not None:
            history = progress["valid_history"]
            if t.average == "nt" and not self.averager.active and nonmonotone(history, v, t.nonmono):
                self.start_averaging(f"validation {v:.2f} did not beat the best before the last {t.nonmono}")
            history.append(v)
        if t.schedule != "cosine":
            set_lr(self.optimizer, epoch_end_lr(t, get_lr(self.optimizer), epoch, improved))
        progress["history"].append(record)
        progress.update(epoch=epoch, batch=0, pos=0, epoch_loss=0.0, epoch_tokens=0)
        log.info("epoch %d: train ppl %.2f, valid ppl %s%s, lr %.4g, %.0fs (training left: %s)", epoch,
                 record["train_perplexity"], f"{v:.2f}" if v else "-",
                 f", test ppl {record['test_perplexity']:.2f}" if "test_perplexity" in record else "",
                 record["lr"], record["seconds"], self.time_left(self.seconds()))
        self.checkpoint()
        if t.patience and progress["bad_epochs"] >= t.patience:
            return "early_stopping"
        return None

    def time_left(self, seconds: float) -> str:
        """The training time left in the whole run (every epoch, or the time budget if it ends first), from
        the pace so far, as "1h02m" / "12m30s" / "45s"."""
        frac = self.budget_fraction(seconds)
        left = seconds * (1 - frac) / frac if frac > 0 else math.inf
        if not math.isfinite(left):
            return "?"
        s = int(round(left))
        return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"

    def budget_fraction(self, seconds: float) -> float:
        t = self.cfg.train
        frac = self.progress["step"] / max(self.total_steps, 1)
        return max(frac, seconds / (t.max_minutes * 60)) if t.max_minutes else frac

    def start_averaging(self, why: str) -> None:
        self.averager.start()
        self.progress["average_from_step"] = self.progress["step"]
        log.info("averaging the weights from step %d on (%s)", self.progress["step"], why)

    @contextmanager
    def averaged(self):
        """The averaged weights in the model for the ``with`` block (no-op before averaging starts)."""
        a = self.averager
        if a is None or not a.active or a.count == 0:
            yield
            return
        a.swap()
        try:
            yield
        finally:
            a.swap()

    def evaluate(self, lm, splits) -> dict:
        """Perplexities of ``splits`` (whole streams): on rank 0 under torchrun, broadcast to the others."""
        metrics = split_metrics(lm, self.corpus, splits)[0] if self.is_main else None
        return distributed.broadcast(metrics, self.world)

    def save_at_stop(self, evaluate_current: bool) -> None:
        """A stop inside an epoch: checkpoint, and keep the model as it stands when it validates better
        (a cosine schedule ends at its best) or when no model was kept yet."""
        self.checkpoint()
        v, current = None, {}
        if evaluate_current and self.valid_lines:
            with self.averaged():
                current = self.evaluate(self.lm, ("valid",))
            v = current["valid_perplexity"]
        best = self.progress["best_valid"]
        kept = self.out / "model" / "model.safetensors"
        if distributed.broadcast(not kept.exists(), self.world) or (v is not None and (best is None or v < best)):
            self.progress["best_eval"] = current
            if self.is_main:
                with self.averaged():
                    self.lm.save(self.out / "model", extra={"epoch": self.progress["epoch"],
                                                            "step": self.progress["step"], "valid_perplexity": v})

    def finish(self, stop: str, interrupted: bool, results) -> tuple[NeuralLM, dict]:
        """Evaluate the best model on valid and test; ``summary.json`` (and ``results``)."""
        train_seconds = self.seconds()
        best = self.lm
        if self.is_main:
            best = NeuralLM.load(self.out / "model", json.loads((self.out / "model" / "config.json").read_text()),
                                 device=self.device)
        # the validation that chose the best model is its validation: only what is unknown is evaluated
        known = dict(self.progress.get("best_eval") or {})
        splits = ("test",) if "valid_perplexity" in known else ("valid", "test")
        log.info("evaluating the best model (%s)", ", ".join(splits))
        metrics = {**known, **self.evaluate(best, splits)}
        from seqlm.models.neural.embeddings import neighbour_table

        neighbours = neighbour_table(best) if self.is_main else {}
        summary = {"type": "train", "recipe": self.cfg.name or None, "config": self.cfg.to_dict(), "metrics": metrics,
                   "stop": stop,
                   "steps": self.progress["step"], "skipped_steps": self.progress["skipped"],
                   "average_from_step": self.progress.get("average_from_step"),
                   "epochs_completed": self.progress["epoch"],
                   "train_seconds": round(train_seconds, 1),
                   **record(self.t_start, command=self.argv, device=self.device),
                   "torch": torch.__version__, "precision": self.precision,
                   "cuda_graphs": self.graphed, **self.world.describe(), "model": best.describe(),
                   "target": self.cfg.meta.target,
                   "epochs": self.progress["history"], "log": self.progress["log"], "out": str(self.out),
                   **({"neighbours": neighbours} if neighbours else {}),
                   "interrupted": interrupted}
        if self.is_main:
            write_json(self.out / "summary.json", summary)
            if results:
                write_json(results, summary)
        return best, summary


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf

