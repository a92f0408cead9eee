"""Time a recipe's training step and its stream evaluation, without training it: for planning a budget.

    python bench/step_time.py RECIPE [RECIPE ...] [--set section.key=value ...] [--steps 100]

For each recipe: the step as ``seqlm train`` runs it (device, precision, CUDA graphs when on CUDA) on
random windows of the recipe's shape, ms per step (best of 3 blocks), seconds per PTB epoch (929,589
training tokens), and the seconds of one stream evaluation of ``--eval-tokens`` tokens (PTB valid: 73,760).
Baseline, same run: the plain eager step (no graphs) of the same model.  Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from seqlm.config import apply_overrides, load_recipe  # noqa: E402
from seqlm.io.records import hardware  # noqa: E402
from seqlm.io.runtime import resolve_device, resolve_precision, set_threads  # noqa: E402
from seqlm.models.neural.lm import NeuralLM, build_module  # noqa: E402
from seqlm.text.tokenize import Tokenizer  # noqa: E402
from seqlm.text.vocab import Vocab  # noqa: E402
from seqlm.training.step import (  # noqa: E402
    Stepper,
    make_optimizer,
    use_graphs,  # noqa: E402
)

PTB_TRAIN_TOKENS = 929_589  # PTB train: 887,521 words + 42,068 </s>


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(cfg, device, graphed: bool, steps: int, V: int) -> float:
    t = cfg.train
    torch.manual_seed(0)
    module = build_module(cfg.model, V).to(device).train()
    opt = make_optimizer(t, module.parameters(), graphed)
    precision = resolve_precision(t.precision, device)
    stepper = Stepper(module, opt, module.init_state(t.batch_size, device),
                      torch.bfloat16 if precision == "bf16" else None, t.clip, graphed=graphed,
                      full_shape=(t.batch_size, t.bptt))
    x = torch.randint(0, V, (t.batch_size, t.bptt), device=device)
    y = torch.randint(0, V, (t.batch_size, t.bptt), device=device)
    for _ in range(6):
        stepper.step(x, y)
    best = float("inf")
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            stepper.step(x, y)
        sync(device)
        best = min(best, (time.perf_counter() - t0) / steps)
    stepper.drain()
    return best, module


def time_eval(module, device, tokens: int, V: int, chunk: int) -> float:
    words = [f"w{i}" for i in range(V - 3)]
    vocab = Vocab.build([words], Tokenizer("word"))
    lm = NeuralLM(vocab, module, {}, eval_chunk=chunk)
    rng = np.random.default_rng(0)
    lines = [rng.integers(3, V, 20) for _ in range(tokens // 21)]
    sync(device)
    t0 = time.perf_counter()
    lm.score_lines(lines, mode="stream")
    sync(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="+")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--eval-tokens", type=int, default=73_760)
    ap.add_argument("--vocab", type=int, default=10_000)
    args = ap.parse_args()
    out = {"type": "step-time", "benchmark": "step-time", "hardware": hardware(), "torch": torch.__version__, "results": []}
    for recipe in args.recipes:
        cfg = apply_overrides(load_recipe(recipe), args.overrides).validate()
        device = resolve_device(cfg.train.device)
        if device.type == "cpu":
            set_threads(cfg.train.threads)
        else:
            out["hardware"]["device"] = torch.cuda.get_device_name()
        graphed = use_graphs(cfg.train, device)
        eager_s, _ = time_steps(cfg, device, False, args.steps, args.vocab)
        step_s, module = time_steps(cfg, device, graphed, args.steps, args.vocab) if graphed else (eager_s, None)
        if module is None:
            _, module = time_steps(cfg, device, False, 1, args.vocab)
        eval_s = time_eval(module.eval(), device, args.eval_tokens, args.vocab, cfg.train.eval_chunk)
        per_epoch = PTB_TRAIN_TOKENS / (cfg.train.batch_size * cfg.train.bptt) * step_s
        row = {"recipe": Path(recipe).stem, "graphed": graphed, "ms_per_step": step_s * 1e3,
               "eager_ms_per_step": eager_s * 1e3, "speedup_vs_eager": eager_s / step_s,
               "tokens_per_s": cfg.train.batch_size * cfg.train.bptt / step_s,
               "seconds_per_ptb_epoch": per_epoch, "eval_seconds": eval_s, "eval_tokens": args.eval_tokens}
        out["results"].append(row)
        print(f"{row['recipe']}: {row['ms_per_step']:.2f} ms/step ({'graphed' if graphed else 'eager'}; eager "
              f"{row['eager_ms_per_step']:.2f}), {row['tokens_per_s']:,.0f} tok/s, {per_epoch:.1f} s/PTB epoch, "
              f"eval {eval_s:.1f} s per {args.eval_tokens:,} tokens", file=sys.stderr)
        del module
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
