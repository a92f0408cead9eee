"""A neural run's files: the resume checkpoint (``last/``: weights, optimizer, schedule, RNG, data
position, carried state; written atomically, so a kill leaves the previous one whole) and the metric logs.

Resuming from ``last/`` reproduces the same weights as an uninterrupted run (tested).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, atomic_write, dumps, sha256_file
from seqlm.models.neural.lm import NeuralLM

# optimizer options that say how it runs, not what it learned: kept from the current optimizer on resume
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


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


def save_resume(path: Path, lm: NeuralLM, optimizer, progress: dict, hidden, extra: dict | None = None) -> None:
    """Weights, optimizer, RNG, data position and carried state (and ``extra`` tensors: the averaged weights),
    in one atomically replaced folder."""
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
    tensors.update(extra or {})
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_dir(path) as tmp:
        lm.save(tmp / "model")
        save_file(tensors, str(tmp / "resume.safetensors"))
        with atomic_write(tmp / "resume.json") as f:
            groups = [{k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items()}
                      for g in opt["param_groups"]]
            json.dump({"progress": progress, "param_groups": groups,
                       "resume.safetensors": sha256_file(tmp / "resume.safetensors")}, f)


def load_resume(path: Path, lm: NeuralLM, optimizer, hidden_template, device):
    from safetensors.torch import load_file

    from seqlm.models.loader import load

    if not (path / "resume.json").is_file():
        raise SeqlmError(f"nothing to resume: {path} holds no checkpoint; start without --resume")
    saved = load(path / "model")
    try:
        lm.module.load_state_dict(saved.module.state_dict())
    except RuntimeError as e:  # another vocabulary or another model shape
        detail = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise SeqlmError(f"the checkpoint in {path} comes from another model or vocabulary than this run's config "
                         f"and data ({detail}): resume with the run's own data and settings, or start a new --out") from None
    try:
        meta = json.loads((path / "resume.json").read_text())
        digest = meta.get("resume.safetensors")  # checkpoints from before it was recorded: unchecked
        if digest is not None and sha256_file(path / "resume.safetensors") != digest:
            raise ValueError("resume.safetensors does not match the checksum in resume.json")
        tensors = load_file(str(path / "resume.safetensors"))
    except Exception as e:  # damaged resume files
        raise SeqlmError(f"the resume checkpoint in {path} is damaged ({e}): start again without --resume") from None
    # the saved hyper-parameters and lr, this optimizer's own implementation flags (fused, capturable, ...)
    # and lr type (a device tensor when training is graphed): a checkpoint moves between CPU and GPU
    current = optimizer.param_groups
    groups = [{**saved_group, **{k: cur[k] for k in IMPLEMENTATION_FLAGS if k in cur}}
              for saved_group, cur in zip(meta["param_groups"], current)]
    lr_tensors = [g["lr"] if isinstance(g["lr"], torch.Tensor) else None for g in current]
    state: dict = {"state": {}, "param_groups": groups}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state["state"].setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict(state)
    for group, lr_tensor in zip(optimizer.param_groups, lr_tensors):
        if lr_tensor is not None:
            group["lr"] = lr_tensor.fill_(float(group["lr"]))
    torch.set_rng_state(tensors["rng.cpu"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    hidden = _restore_state(hidden_template, {k: v.to(device) for k, v in tensors.items()}, "hidden")
    return meta["progress"], hidden, tensors


def checkpoint_note(out: Path) -> str:
    if (out / "last" / "resume.json").is_file():
        return f"the last checkpoint in {out}/last is intact (--resume continues from it)"
    return "no checkpoint was written before it: start again without --resume"


def write_metrics(out: Path, history: list[dict], steps: list[dict]) -> None:
    """``metrics.jsonl``: one line per epoch; ``steps.jsonl``: one line per ``train.log_every`` steps."""
    for name, rows in (("metrics.jsonl", history), ("steps.jsonl", steps)):
        with atomic_write(out / name) as f:
            for rec in rows:
                f.write(dumps(rec) + "\n")
