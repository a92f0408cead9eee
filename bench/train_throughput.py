"""Training throughput (tokens/s) of every neural kind and backend, fp32 and bf16, next to a baseline.

    python bench/train_throughput.py [--quick] [--sizes 200,650] [--device cpu|cuda]
    python bench/train_throughput.py --ddp 2 [--device cpu|cuda]
    python bench/train_throughput.py --output-layer --sizes 200,650   (full softmax vs adaptive vs NCE)

``--ddp N``: ``seqlm train`` itself (2x200 LSTM, global batch 20, bptt 35, on a generated Zipfian text with
a 10k vocabulary) in N processes under torchrun (DDP; on CPU each process takes cores/N threads) next to
one process with every core, same run; tokens/s from the runs' own step logs, warm-up excluded.

On CUDA every seqlm configuration is timed eagerly and with the whole step captured as a CUDA graph
(neural/step.py), and the headline ratio is ``graphed_bf16_vs_baseline`` at the largest size.  bf16 is
measured only where the device runs it natively (on a CPU: avx512_bf16 or amx_bf16); it is skipped, and
the output says so, elsewhere.

Baseline, measured in the same run: a plain PyTorch loop equal to the PyTorch word_language_model example
(embedding -> 2-layer nn.LSTM -> dropout -> linear, untied, full softmax, cross-entropy, manual SGD update,
clip 0.25; batch 20, bptt 35).  seqlm is timed through its own training step (neural/training.py
train_step) on the same shapes, with the process set up as ``seqlm train`` sets it up (threads = cores,
allocator tuning).  Every measurement runs in a fresh process, so none inherits another's state.  Achieved GFLOP/s are printed against the matmul peak of the precision,
measured here too.  The last line is one JSON object with every figure, including the ratios
``fused_fp32_vs_baseline``, ``fused_bf16_vs_baseline`` and ``reference_vs_fused`` (2x200 LSTM, fp32).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from seqlm.config import ModelConfig  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402
from seqlm.io.runtime import bf16_supported, set_threads, tune_allocator  # noqa: E402
from seqlm.models.neural.cells import GATES  # noqa: E402
from seqlm.models.neural.lm import build_module  # noqa: E402
from seqlm.training.step import Stepper, make_optimizer  # noqa: E402

V, B, T = 10000, 20, 35


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype, device, n=2048, reps=5, blocks=3) -> float:
    """Best of ``blocks`` timings of ``reps`` n x n matrix products."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(blocks):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 * reps / best / 1e9


EXAMPLE_KINDS = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH"}  # the example's --model for each kind


class ExampleModel(torch.nn.Module):
    """The PyTorch word_language_model example's RNNModel (untied): its --model LSTM, GRU or RNN_TANH."""

    def __init__(self, size: int, dropout: float = 0.2, kind: str = "lstm"):
        super().__init__()
        self.drop = torch.nn.Dropout(dropout)
        self.encoder = torch.nn.Embedding(V, size)
        if kind == "rnn_tanh":
            self.rnn = torch.nn.RNN(size, size, 2, nonlinearity="tanh", dropout=dropout)
        else:
            self.rnn = getattr(torch.nn, EXAMPLE_KINDS[kind])(size, size, 2, dropout=dropout)
        self.decoder = torch.nn.Linear(size, V)

    def forward(self, x, hidden):
        emb = self.drop(self.encoder(x))
        out, hidden = self.rnn(emb, hidden)
        return self.decoder(self.drop(out)).view(-1, V), hidden


def time_baseline(size: int, steps: int, device, kind: str = "lstm") -> float:
    model = ExampleModel(size, kind=kind).to(device)
    model.train()
    x = zipf_ids((T, B), device)
    y = zipf_ids((T * B,), device)
    hidden = tuple(torch.zeros(2, B, size, device=device) for _ in range(2 if kind == "lstm" else 1))
    hidden = hidden if kind == "lstm" else hidden[0]
    crit = torch.nn.CrossEntropyLoss()
    lr = 20.0

    def step():
        nonlocal hidden
        hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        model.zero_grad()
        out, hidden = model(x, hidden)
        loss = crit(out, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)

    return best_of_blocks(step, steps, device)


def best_of_blocks(step, steps: int, device, blocks: int = 3, warmup: int = 3) -> float:
    """Tokens/s of the fastest of ``blocks`` runs of ``steps`` steps (after ``warmup``): the machine's
    noise only ever slows a block down, so the best block is the most repeatable figure."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(blocks):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return B * T * steps / best


def zipf_ids(shape, device) -> torch.Tensor:
    """Token ids drawn as words are (rank-frequency 1/rank, ids sorted by frequency as seqlm's vocabularies
    are): the full softmax costs the same for any targets, the adaptive softmax depends on where they fall."""
    p = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), int(torch.tensor(shape).prod()), replacement=True).view(shape).to(device)


ADAPTIVE = [1000, 4000]  # cut points of the adaptive softmax rows (PTB: the head covers 79% of tokens)
NCE_SAMPLES = 256  # noise words per step of the NCE rows


def time_seqlm(kind: str, backend: str, precision: str, size: int, steps: int, device, graphed: bool = False,
               adaptive: bool = False, nce: int = 0) -> float:
    """seqlm's training step (neural/step.py Stepper), set up as ``seqlm train`` sets it up; ``nce``: the
    output layer trained by NCE with that many noise samples (from the Zipfian unigram)."""
    if device.type == "cpu":
        tune_allocator()
    cfg = ModelConfig(kind=kind, backend=backend, embedding_dim=size, hidden_size=size, num_layers=2,
                      dropout=0.2, embedding_dropout=0.2, context=4, tie_weights=adaptive,
                      adaptive_cutoffs=ADAPTIVE if adaptive else [])
    if kind == "transformer":  # as recipes/ptb/cpu/transformer.toml: feed-forward 4x the width, context 64
        cfg.hidden_size, cfg.context = 4 * size, TRANSFORMER_CONTEXT
    module = build_module(cfg, V).to(device)
    module.train()
    train = type("T", (), {"optimizer": "sgd", "lr": 20.0, "momentum": 0.0, "weight_decay": 0.0})
    opt = make_optimizer(train, module.parameters(), graphed)
    x = zipf_ids((B, T), device)
    y = zipf_ids((B, T), device)
    noise = None
    if nce:
        from seqlm.models.neural.output import NCELoss

        noise = NCELoss(torch.bincount(zipf_ids((100_000,), "cpu").flatten(), minlength=V), nce).to(device)
    stepper = Stepper(module, opt, module.init_state(B, device), torch.bfloat16 if precision == "bf16" else None,
                      0.25, graphed=graphed, full_shape=(B, T), nce=noise)
    check = device.type == "cpu"  # as seqlm train: eager steps read the loss, graphed ones do not

    def step():
        stepper.step(x, y, check=check)

    rate = best_of_blocks(step, steps, device)
    if graphed and stepper.graph is None:
        raise RuntimeError("graph capture failed")
    return rate


TRANSFORMER_CONTEXT = 64


def flops_per_token(kind: str, size: int) -> float:
    """Forward + backward (3x forward) multiply-adds x 2 of the matrix products."""
    if kind == "window":
        fwd = 4 * size * size + size * size + size * V
    elif kind == "transformer":  # per block: q, k, v, out (4 d^2), feed-forward (8 d^2), scores and values
        fwd = 2 * (12 * size * size + 2 * (TRANSFORMER_CONTEXT + T) * size) + size * V
    else:
        g = GATES[kind]
        fwd = 2 * g * size * (2 * size) + size * V
    return 3 * 2 * fwd


def measure(job: dict, device) -> float | None:
    """Tokens/s of one job, in a fresh child process (None, with the reason on stderr, if it failed)."""
    cmd = [sys.executable, __file__, "--job", json.dumps(job), "--device", str(device)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  {job}: failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
        return None
    return float(out.stdout.strip().splitlines()[-1])


def run_job(job: dict, device) -> float:
    if device.type == "cpu":
        set_threads(None)
    if job["what"] == "baseline":
        return time_baseline(job["size"], job["steps"], device, job.get("kind", "lstm"))
    return time_seqlm(job["kind"], job["backend"], job["precision"], job["size"], job["steps"], device,
                      job.get("graphed", False), job.get("adaptive", False), job.get("nce", 0))


ROW = re.compile(r"2x(\d+) (\w+)\s+(\w+)\s+(fp32|bf16)( graphed)?\s*:\s+([\d,]+) tokens/s\s+([\d.]+)x baseline")
BASE = re.compile(r"2x(\d+) baseline, PyTorch example loop, fp32: ([\d,]+) tokens/s(?: \((\w+)\))?")
PEAK = re.compile(r"matmul peak: (.*)")


def parse_log(path: str) -> dict:
    """The figures of an interrupted run, from the lines it printed on stderr (a stop loses nothing)."""
    out = {"type": "train-throughput", "benchmark": "train-throughput", "source": f"parsed from the run's stderr log {Path(path).name}",
           "results": []}
    num = lambda x: float(x.replace(",", ""))  # noqa: E731
    for line in Path(path).read_text().splitlines():
        if m := PEAK.match(line):
            out["matmul_peak_gflops"] = {p.split()[0]: num(p.split()[1]) for p in m[1].split(", ")}
        elif m := BASE.match(line):
            kind = next((k for k, v in EXAMPLE_KINDS.items() if v == m[3]), "lstm")
            out["results"].append({"name": f"baseline (PyTorch example loop, {EXAMPLE_KINDS[kind]})", "kind": kind,
                                   "size": int(m[1]), "precision": "fp32", "graphed": False,
                                   "tokens_per_s": num(m[2])})
        elif m := ROW.match(line):
            out["results"].append({"name": f"seqlm {m[2]} {m[3]}", "kind": m[2], "backend": m[3], "size": int(m[1]),
                                   "precision": m[4], "graphed": bool(m[5]), "tokens_per_s": num(m[6]),
                                   "vs_baseline": float(m[7])})
    return out


def zipf_text(path: Path, tokens: int, vocab: int = 10_000, seed: int = 0) -> None:
    """A text of ``tokens`` words drawn from a Zipfian distribution over ``vocab`` types, 20 per line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1)
    ids = rng.choice(vocab, size=tokens, p=p / p.sum())
    words = np.array([f"w{i}" for i in range(vocab)])[ids]
    path.write_text("\n".join(" ".join(words[i:i + 20]) for i in range(0, tokens, 20)) + "\n")


def ddp_bench(nproc: int, device: str, quick: bool) -> dict:
    """Tokens/s of ``seqlm train`` in ``nproc`` processes (torchrun, DDP) and in one process, same run."""
    import shutil
    import tempfile

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        raise SystemExit("torchrun is not on PATH: install PyTorch's command-line tools")
    dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    steps, warm = (40, 10) if quick else (120, 20)
    precisions = ["fp32", "bf16"] if bf16_supported(torch.device(dev)) else ["fp32"]
    out = {"type": "train-throughput-ddp", "benchmark": "train-throughput-ddp", "device": dev, "processes": nproc, "hardware": hardware(),
           "torch": torch.__version__, "commit": git_commit(REPO), "model": "lstm 2x200 tied", "global_batch": B,
           "bptt": T, "vocab": V, "steps": steps, "warmup_steps": warm, "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zipf_text(tmp / "train.txt", 400_000)
        zipf_text(tmp / "valid.txt", 2_000, seed=1)
        for precision in precisions:
            for procs in (1, nproc):
                run = tmp / f"run-{precision}-{procs}"
                args = ["train", "--train", str(tmp / "train.txt"), "--valid", str(tmp / "valid.txt"), "--model",
                        "lstm", "--out", str(run), "--device", dev, "--precision", precision,
                        "--set", "model.embedding_dim=200", "--set", "model.hidden_size=200",
                        "--set", "model.tie_weights=true", "--set", "model.dropout=0.2",
                        "--set", f"train.batch_size={B}", "--set", f"train.bptt={T}", "--set", "train.log_every=10",
                        "--set", f"train.max_steps={steps}", "--set", "train.checkpoint_every=100000",
                        "--set", "data.max_size=20000", "--set", "train.fit=false"]
                prefix = [sys.executable, "-m", "seqlm"] if procs == 1 else [
                    torchrun, "--standalone", f"--nproc_per_node={procs}", "-m", "seqlm"]
                r = subprocess.run(prefix + ["-q"] + args, capture_output=True, text=True,
                                   env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")})
                if r.returncode != 0:
                    print(f"  {procs} process(es), {precision}: failed: {r.stderr.strip()[-400:]}", file=sys.stderr)
                    continue
                log = [json.loads(x) for x in (run / "steps.jsonl").read_text().splitlines()]
                a = next(x for x in log if x["step"] >= warm)
                z = log[-1]
                rate = (z["tokens"] - a["tokens"]) / (z["seconds"] - a["seconds"])
                threads = json.loads((run / "run.json").read_text()).get("threads")
                out["results"].append({"processes": procs, "threads_per_process": threads, "precision": precision,
                                       "tokens_per_s": rate})
                print(f"{procs} process(es) x {threads} thread(s), {precision}: {rate:,.0f} tokens/s", file=sys.stderr)
    for precision in precisions:
        one = next((x["tokens_per_s"] for x in out["results"] if x["processes"] == 1 and x["precision"] == precision),
                   None)
        many = next((x["tokens_per_s"] for x in out["results"] if x["processes"] == nproc and
                     x["precision"] == precision), None)
        out[f"ddp_vs_one_process_{precision}"] = many / one if one and many else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer steps, 2x200 only")
    ap.add_argument("--sizes", default=None, help="comma-separated hidden sizes (default 200, and 650 unless --quick)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parse-log", metavar="LOG", help="print the JSON of an interrupted run from its stderr log")
    ap.add_argument("--ddp", type=int, metavar="N", help="compare N processes under torchrun with one process")
    ap.add_argument("--output-layer", action="store_true", help="only the output-layer rows: the LSTM with the full "
                    "softmax, the tied adaptive softmax and NCE (256 noise words), each size")
    args = ap.parse_args()
    if args.ddp:
        print(json.dumps(ddp_bench(args.ddp, args.device, args.quick)))
        return
    if args.parse_log:
        print(json.dumps(parse_log(args.parse_log)))
        return
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    threads = set_threads(None) if device.type == "cpu" else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
    if args.job:
        print(run_job(json.loads(args.job), device))
        return
    cuda = device.type == "cuda"
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([200] if args.quick else [200, 650])
    steps = (50 if args.quick else 100) if cuda else (8 if args.quick else 15)
    precisions = ["fp32", "bf16"] if bf16_supported(device) else ["fp32"]
    skipped = [] if "bf16" in precisions else ["bf16: this device has no native bf16 (emulated bf16 is slower than fp32)"]
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    modes = [False, True] if cuda else [False]
    peak = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16, device, n=8192 if cuda else 2048)
            for p in precisions}
    out = {"type": "train-throughput", "benchmark": "train-throughput", "device": str(device), "threads": threads, "hardware": hardware(),
           "torch": torch.__version__, "commit": git_commit(REPO), "batch": B, "bptt": T, "vocab": V,
           "matmul_peak_gflops": peak, "skipped": skipped, "results": []}
    if cuda:
        out["hardware"]["device"] = torch.cuda.get_device_name()
    print("matmul peak: " + ", ".join(f"{p} {v:,.0f} GFLOP/s" for p, v in peak.items()), file=sys.stderr)
    for size in sizes:
        bases = {}  # the example loop of each recurrent kind: each seqlm row is timed against its own kind's
        for kind in ([] if args.output_layer else list(EXAMPLE_KINDS)[1:]) + ["lstm"]:
            bases[kind] = measure({"what": "baseline", "kind": kind, "size": size, "steps": steps}, device)
            out["results"].append({"name": f"baseline (PyTorch example loop, {EXAMPLE_KINDS[kind]})", "kind": kind,
                                   "size": size, "precision": "fp32", "graphed": False, "tokens_per_s": bases[kind]})
            print(f"2x{size} baseline, PyTorch example loop, fp32: {bases[kind]:,.0f} tokens/s"
                  f"{'' if kind == 'lstm' else f' ({EXAMPLE_KINDS[kind]})'}", file=sys.stderr)
        base = bases["lstm"]
        for kind in ("lstm", "gru", "rnn_tanh", "window", "transformer"):
            for backend in (("fused", "reference") if kind not in ("window", "transformer") else ("fused",)):
                for precision in precisions:
                    for graphed in modes:
                        if args.quick and backend == "reference" and (kind != "lstm" or precision == "bf16"):
                            continue
                        if cuda and kind != "lstm" and (precision == "fp32" or not graphed):
                            continue  # on CUDA the other kinds: their fastest configuration only
                        if args.output_layer and (kind, backend, graphed) != ("lstm", "fused", False):
                            continue
                        rate = measure({"what": "seqlm", "kind": kind, "backend": backend, "precision": precision,
                                        "size": size, "steps": steps, "graphed": graphed}, device)
                        if rate is None:
                            continue
                        gflops = rate * flops_per_token(kind, size) / 1e9
                        own = bases.get(kind, base)  # window and transformer: against the LSTM example loop
                        row = {"name": f"seqlm {kind} {backend}", "kind": kind, "backend": backend, "size": size,
                               "precision": precision, "graphed": graphed, "tokens_per_s": rate,
                               "vs_baseline": rate / own, "baseline": EXAMPLE_KINDS.get(kind, "LSTM"),
                               "gflops": gflops, "fraction_of_peak": gflops / peak[precision]}
                        out["results"].append(row)
                        print(f"2x{size} {kind:<8} {backend:<9} {precision}{' graphed' if graphed else '        '}: "
                              f"{rate:>10,.0f} tokens/s  {rate / own:5.2f}x baseline  {gflops:8.1f} GFLOP/s "
                              f"({gflops / peak[precision]:.1%} of peak)", file=sys.stderr)
        for precision in precisions:  # the adaptive softmax (tied), next to the full softmax above
            rate = measure({"what": "seqlm", "kind": "lstm", "backend": "fused", "precision": precision, "size": size,
                            "steps": steps, "adaptive": True}, device)
            if rate is None:
                continue
            full = next((r["tokens_per_s"] for r in out["results"] if r.get("kind") == "lstm" and
                         r.get("backend") == "fused" and r["precision"] == precision and r["size"] == size and
                         not r["graphed"]), None)
            out["results"].append({"name": "seqlm lstm fused, adaptive softmax", "kind": "lstm", "backend": "fused",
                                   "size": size, "precision": precision, "graphed": False, "adaptive": ADAPTIVE,
                                   "tokens_per_s": rate, "vs_baseline": rate / base,
                                   "vs_full_softmax": rate / full if full else None})
            print(f"2x{size} lstm     fused     {precision} adaptive softmax {ADAPTIVE}: {rate:>10,.0f} tokens/s  "
                  f"{rate / base:5.2f}x baseline  {rate / full if full else float('nan'):.2f}x the full softmax",
                  file=sys.stderr)
            rate = measure({"what": "seqlm", "kind": "lstm", "backend": "fused", "precision": precision, "size": size,
                            "steps": steps, "nce": NCE_SAMPLES}, device)
            if rate is None:
                continue
            out["results"].append({"name": "seqlm lstm fused, NCE", "kind": "lstm", "backend": "fused", "size": size,
                                   "precision": precision, "graphed": False, "nce_samples": NCE_SAMPLES,
                                   "tokens_per_s": rate, "vs_baseline": rate / base,
                                   "vs_full_softmax": rate / full if full else None})
            print(f"2x{size} lstm     fused     {precision} NCE, {NCE_SAMPLES} noise words: {rate:>10,.0f} tokens/s  "
                  f"{rate / base:5.2f}x baseline  {rate / full if full else float('nan'):.2f}x the full softmax",
                  file=sys.stderr)

    def rate(kind, backend, precision, size=sizes[0], graphed=False):
        return next((r["tokens_per_s"] for r in out["results"] if r.get("kind") == kind and
                     r.get("backend") == backend and r["precision"] == precision and r["size"] == size and
                     r["graphed"] == graphed), None)

    def ratio(a, b):
        return a / b if a and b else None

    base0 = rate("lstm", None, "fp32")
    out["fused_fp32_vs_baseline"] = ratio(rate("lstm", "fused", "fp32"), base0)
    out["fused_bf16_vs_baseline"] = ratio(rate("lstm", "fused", "bf16"), base0)
    out["reference_vs_fused"] = ratio(rate("lstm", "reference", "fp32"), rate("lstm", "fused", "fp32"))
    for kind in EXAMPLE_KINDS:  # every recurrent kind's fused step against its own example loop
        for precision in precisions:
            out[f"{kind}_fused_{precision}_vs_baseline"] = ratio(rate(kind, "fused", precision), rate(kind, None, "fp32"))
    out["output_layer_vs_full_softmax"] = {  # per size and precision: the training speed-up of each output layer
        f"2x{r['size']} {r['precision']} {'adaptive' if r.get('adaptive') else 'nce'}": r["vs_full_softmax"]
        for r in out["results"] if r.get("adaptive") or r.get("nce_samples")}
    if cuda:
        big = sizes[-1]
        base_big = next(r["tokens_per_s"] for r in out["results"] if r["size"] == big and r.get("backend") is None)
        out["largest_size"] = big
        out["graphed_bf16_vs_baseline"] = ratio(rate("lstm", "fused", "bf16", big, True), base_big)
        out["graphed_fp32_vs_baseline"] = ratio(rate("lstm", "fused", "fp32", big, True), base_big)
        out["reference_graphed_vs_eager"] = ratio(rate("lstm", "reference", "bf16", big, True),
                                                  rate("lstm", "reference", "bf16", big, False))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
