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
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..errors import SeqlmError, atomic_dir, atomic_write
from ..evaluate import evaluate
from ..runtime import Progress, git_commit, hardware, tune_allocator
from ..text.corpora import load_corpus
from ..text.encode import encode_lines, join_with_eos
from ..text.tokenize import Tokenizer
from ..text.vocab import EOS_ID, Vocab
from .lm import NeuralLM, build_module

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqlmError(f"--device {name} asked for, but no CUDA device is available: use --device cpu or auto")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = min(threads or cores, cores)  # more threads than cores is a cliff: never oversubscribe
    torch.set_num_threads(n)
    return n


def stream_ids(vocab: Vocab, lines: list[str]) -> np.ndarray:
    """``</s>`` + every line followed by ``</s>``, as ids."""
    return np.concatenate([[EOS_ID], join_with_eos(encode_lines(vocab, lines).lines)])


def batchify(ids: np.ndarray, batch_size: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets as (batch_size, n) contiguous rows of the stream."""
    n = (len(ids) - 1) // batch_size
    if n < 2:
        raise SeqlmError(f"the training text has {len(ids) - 1} tokens, too few for one batch of {batch_size} rows: "
                         f"give more text or lower train.batch_size")
    x = torch.from_numpy(ids[: n * batch_size].reshape(batch_size, n).copy())
    y = torch.from_numpy(ids[1: n * batch_size + 1].reshape(batch_size, n).copy())
    return x, y


def make_optimizer(cfg, params):
    t = cfg.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)


# -- resume checkpoints ------------------------------------------------------------------------------
def _state_tensors(state, prefix: str) -> dict:
    out = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    else:
        for k, st in enumerate(state):
            for j, s in enumerate(st if isinstance(st, tuple) else (st,)):
                out[f"{prefix}.{k}.{j}"] = s
    return out


def _restore_state(template, tensors: dict, prefix: str):
    if isinstance(template, torch.Tensor):
        return tensors[prefix]
    return [tuple(tensors[f"{prefix}.{k}.{j}"] for j in range(len(st))) if isinstance(st, tuple)
            else tensors[f"{prefix}.{k}.0"] for k, st in enumerate(template)]


def save_resume(path: Path, lm: NeuralLM, optimizer, progress: dict, hidden) -> None:
    """Weights, optimizer, RNG, data position and carried state, in one atomically replaced folder."""
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors = {}
    for idx, st in opt["state"].items():
        for key, value in st.items():
            tensors[f"opt.{idx}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    tensors.update(_state_tensors(hidden, "hidden"))
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_dir(path) as tmp:
        lm.save(tmp / "model")
        save_file(tensors, str(tmp / "resume.safetensors"))
        with atomic_write(tmp / "resume.json") as f:
            json.dump({"progress": progress, "param_groups": opt["param_groups"]}, f)


def load_resume(path: Path, lm: NeuralLM, optimizer, hidden_template, device):
    from safetensors.torch import load_file

    from ..models import load

    if not (path / "resume.json").is_file():
        raise SeqlmError(f"nothing to resume: {path} holds no checkpoint; start without --resume")
    saved = load(path / "model")
    lm.module.load_state_dict(saved.module.state_dict())
    try:
        tensors = load_file(str(path / "resume.safetensors"))
        meta = json.loads((path / "resume.json").read_text())
    except Exception as e:  # damaged resume files
        raise SeqlmError(f"the resume checkpoint in {path} is damaged ({e}): start again without --resume") from None
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state["state"].setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict(state)
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    hidden = _restore_state(hidden_template, {k: v.to(device) for k, v in tensors.items()}, "hidden")
    return meta["progress"], hidden


# -- the loop ------------------------------------------------------------------------------------------
class TokenCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (N, V) logits, with the gradient softmax - onehot computed in place.

    Same value and gradient as ``F.cross_entropy``, without its zero-filled (N, V) gradient and separate
    log-softmax backward: on 2 CPU cores those two passes over the logits took ~40% of a bf16 step at
    2x200 (profiled); here the backward is two in-place passes over the saved log-probabilities.
    """

    @staticmethod
    def forward(ctx, logits, targets):
        logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V) fp32
        ctx.save_for_backward(logp, targets)
        ctx.in_dtype = logits.dtype
        return -logp.gather(1, targets[:, None]).mean()

    @staticmethod
    def backward(ctx, grad_out):
        logp, targets = ctx.saved_tensors
        grad = logp.exp_()  # softmax, in place: logp is not needed again
        grad[torch.arange(len(targets), device=grad.device), targets] -= 1.0
        grad.mul_(grad_out / len(targets))
        return grad.to(ctx.in_dtype), None


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return TokenCrossEntropy.apply(logits, targets)


def train_step(module, optimizer, x, y, hidden, autocast, clip: float) -> tuple[float, object]:
    """One step of teacher forcing on a (B, T) window: forward from the detached carried state, mean
    token cross-entropy, backward, gradient-norm clipping, update.  A non-finite loss updates nothing.

    Returns the loss (a float) and the state to carry into the next window.
    """
    hidden = module.detach_state(hidden)
    with autocast:
        logits, new_hidden = module(x, hidden)  # (B, T, V)
    loss = token_cross_entropy(logits.flatten(0, 1), y.flatten())
    optimizer.zero_grad(set_to_none=True)
    value = loss.item()
    if not math.isfinite(value):
        return value, new_hidden
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizer.step()
    return value, new_hidden


def train_neural(cfg: RunConfig, out: str | Path, resume: bool = False, results: str | Path | None = None,
                 argv: list[str] | None = None) -> tuple[NeuralLM, dict]:
    cfg.validate()
    t_start = time.perf_counter()
    out = Path(out)
    d, m, t = cfg.data, cfg.model, cfg.train
    device = resolve_device(t.device)
    threads = set_threads(t.threads) if device.type == "cpu" else None
    if device.type == "cpu":
        tune_allocator()
    torch.manual_seed(t.seed)
    files = {k: getattr(d, k) for k in ("train", "valid", "test") if getattr(d, k)}
    corpus = load_corpus(d.corpus if not files else None, data_dir=d.data_dir, level=d.level, need=("train",), **files)
    tokenizer = Tokenizer(d.level or corpus.level, d.lowercase)
    vocab = Vocab.build((tokenizer.tokenize(x) for x in corpus.split("train")), tokenizer, d.min_count, d.max_size)
    x_all, y_all = batchify(stream_ids(vocab, corpus.split("train")), t.batch_size, t.bptt)
    n_batches = math.ceil(x_all.shape[1] / t.bptt)
    module = build_module(m, len(vocab)).to(device)
    config = {"model": asdict(m), "train": asdict(t), "data": asdict(d), "meta": asdict(cfg.meta),
              "recipe": cfg.name, "corpus": corpus.describe()}
    lm = NeuralLM(vocab, module, config, eval_chunk=t.eval_chunk)
    optimizer = make_optimizer(cfg, module.parameters())
    hidden = module.init_state(t.batch_size, device)
    progress = {"epoch": 0, "batch": 0, "step": 0, "lr": t.lr, "best_valid": None, "bad_epochs": 0,
                "history": [], "skipped": 0, "train_seconds": 0.0}
    if resume:
        saved_model = json.loads((out / "last" / "model" / "config.json").read_text())["model"] \
            if (out / "last" / "model" / "config.json").is_file() else None
        if saved_model is not None and saved_model != asdict(m):
            raise SeqlmError(f"the checkpoint in {out}/last was trained with another model config: "
                             f"resume with the same recipe and --set options")
        progress, hidden = load_resume(out / "last", lm, optimizer, hidden, device)
        log.info("resumed from %s/last at epoch %d, batch %d (step %d)", out, progress["epoch"] + 1,
                 progress["batch"], progress["step"])
    elif (out / "last").exists():
        raise SeqlmError(f"{out} already holds a training run: add --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "run.json") as f:
        json.dump({"config": cfg.to_dict(), "command": argv or sys.argv, "commit": git_commit(),
                   "torch": torch.__version__, "device": str(device), "threads": threads,
                   "hardware": _hardware(device)}, f, indent=2)

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16")
    valid_lines = corpus.splits.get("valid")
    interrupted = False
    stop_reason = "epochs"
    x_all, y_all = x_all.to(device), y_all.to(device)
    loop_t0 = time.perf_counter() - progress["train_seconds"]

    def checkpoint():
        progress["train_seconds"] = time.perf_counter() - loop_t0
        save_resume(out / "last", lm, optimizer, dict(progress), hidden)

    try:
        while progress["epoch"] < t.epochs:
            module.train()
            bar = Progress(x_all.numel(), f"epoch {progress['epoch'] + 1}/{t.epochs}", unit="tok")
            bar.n = min(progress["batch"] * t.bptt, x_all.shape[1]) * t.batch_size
            total_loss, total_tokens = 0.0, 0
            while progress["batch"] < n_batches:
                i = progress["batch"]
                x = x_all[:, i * t.bptt:(i + 1) * t.bptt]
                y = y_all[:, i * t.bptt:(i + 1) * t.bptt]
                loss, new_hidden = train_step(module, optimizer, x, y, hidden, autocast, t.clip)
                if not math.isfinite(loss):
                    if t.on_nan == "stop":
                        raise SeqlmError(f"the loss became {loss} at step {progress['step'] + 1} (epoch "
                                         f"{progress['epoch'] + 1}): lower train.lr or set train.clip; the last "
                                         f"checkpoint in {out}/last is intact (or --set train.on_nan=skip)")
                    progress["skipped"] += 1
                    hidden = module.init_state(t.batch_size, device)
                else:
                    hidden = new_hidden
                    total_loss += loss * y.numel()
                    total_tokens += y.numel()
                progress["batch"] += 1
                progress["step"] += 1
                mean = total_loss / max(total_tokens, 1)
                bar.update(y.numel(), loss=mean, ppl=math.exp(min(mean, 50)), lr=optimizer.param_groups[0]["lr"])
                if progress["step"] % t.checkpoint_every == 0:
                    checkpoint()
                if t.max_steps and progress["step"] >= t.max_steps:
                    stop_reason = "max_steps"
                    break
                if t.max_minutes and time.perf_counter() - loop_t0 > t.max_minutes * 60:
                    stop_reason = "max_minutes"
                    break
            bar.close()
            if stop_reason != "epochs":
                break
            # end of epoch: validate, keep the best, schedule
            epoch = progress["epoch"] + 1
            record = {"epoch": epoch, "step": progress["step"], "lr": optimizer.param_groups[0]["lr"],
                      "train_perplexity": math.exp(total_loss / max(total_tokens, 1)),
                      "seconds": round(time.perf_counter() - loop_t0, 1)}
            if valid_lines:
                v = evaluate(lm, valid_lines, mode="stream")["perplexity"]
                record["valid_perplexity"] = v
                improved = progress["best_valid"] is None or v < progress["best_valid"]
            else:
                improved, v = True, None
            if improved:
                progress["best_valid"] = v
                progress["bad_epochs"] = 0
                lm.save(out / "model", extra={"epoch": epoch, "valid_perplexity": v})
            else:
                progress["bad_epochs"] += 1
            if t.schedule == "zaremba" and epoch >= t.decay_start:
                _scale_lr(optimizer, t.lr_decay)
            elif t.schedule == "plateau" and not improved:
                _scale_lr(optimizer, t.lr_decay)
            progress["history"].append(record)
            progress["epoch"] = epoch
            progress["batch"] = 0
            _write_metrics(out, progress["history"])
            log.info("epoch %d: train ppl %.2f, valid ppl %s, lr %.4g, %.0fs", epoch, record["train_perplexity"],
                     f"{v:.2f}" if v else "-", record["lr"], record["seconds"])
            checkpoint()
            if t.patience and progress["bad_epochs"] >= t.patience:
                stop_reason = "early_stopping"
                break
    except KeyboardInterrupt:
        interrupted = True
        stop_reason = "interrupted"
        log.warning("interrupted: saving a checkpoint and evaluating the best model")
    if stop_reason in ("max_steps", "max_minutes", "interrupted"):
        checkpoint()
        if not (out / "model" / "model.safetensors").exists():
            lm.save(out / "model", extra={"epoch": progress["epoch"], "valid_perplexity": None})
    train_seconds = time.perf_counter() - loop_t0
    best = NeuralLM.load(out / "model", json.loads((out / "model" / "config.json").read_text()), device=device)
    metrics = {}
    for split in ("valid", "test"):
        if split in corpus.splits:
            r = evaluate(best, corpus.splits[split], mode="stream")
            metrics[f"{split}_perplexity"] = r["perplexity"]
            if vocab.tokenizer.level == "char":
                metrics[f"{split}_bits_per_character"] = r["bits_per_character"]
    summary = {"recipe": cfg.name or None, "metrics": metrics, "stop": stop_reason, "steps": progress["step"],
               "epochs_completed": progress["epoch"], "train_seconds": round(train_seconds, 1),
               "wall_seconds": round(time.perf_counter() - t_start, 1), "hardware": _hardware(device),
               "torch": torch.__version__, "commit": git_commit(), "precision": t.precision,
               "model": best.describe(), "target": cfg.meta.target, "epochs": progress["history"],
               "out": str(out), "interrupted": interrupted}
    with atomic_write(out / "summary.json") as f:
        json.dump(summary, f, indent=2)
    if results:
        with atomic_write(results) as f:
            json.dump(summary, f, indent=2)
    return best, summary


def _scale_lr(optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] *= factor


def _write_metrics(out: Path, history: list[dict]) -> None:
    with atomic_write(out / "metrics.jsonl") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")


def _hardware(device: torch.device) -> dict:
    hw = hardware()
    hw["threads"] = torch.get_num_threads()
    if device.type == "cuda":
        hw["device"] = torch.cuda.get_device_name(device)
    return hw
