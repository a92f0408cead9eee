"""The figures, redrawn from result files (matplotlib, the ``plot`` extra): learning curves per hardware,
characters, ablations, gradients through time, recall, and the n-gram scale benchmark."""

from __future__ import annotations

from pathlib import Path

from seqlm.io.files import PNG_METADATA
from seqlm.reporting.markdown import number
from seqlm.reporting.results import read_results, text_level
from seqlm.reporting.tables import ablation_of


def plot_scale(res: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for tool, style in (("seqlm", "o-"), ("lmplz", "s--")):
        pts = [(r["tokens"], r[tool]) for r in res["rows"] if "seconds" in r.get(tool, {})]
        if not pts:
            continue
        x = [p[0] for p in pts]
        axes[0].plot(x, [p[1]["seconds"] for p in pts], style, label=tool)
        axes[1].plot(x, [p[1]["peak_mb"] / 1024 for p in pts], style, label=tool)
    for ax, what in zip(axes, ("wall seconds", "peak memory (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training tokens")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"5-gram estimation vs corpus size ({res.get('hardware', {}).get('cpu')}, "
                 f"{res.get('hardware', {}).get('cores')} cores)")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def plot_prune(res: dict, target: Path) -> None:
    """Test perplexity against n-grams kept, one panel per corpus: count pruning, entropy pruning (both
    histories) and the entropy threshold sweep (bench/prune.py)."""
    from seqlm.reporting.tables import PRUNE_METHODS

    _, plt = _plt()
    corpora = list(dict.fromkeys(r["corpus"] for r in res["rows"]))
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4), squeeze=False)
    styles = {"count": "o-", "entropy": "s-", "entropy-srilm": "^--", "entropy-threshold": "x:"}
    names = {**PRUNE_METHODS, "entropy-threshold": "entropy thresholds 1e-9..1e-6 (histories by counts)"}
    for ax, corpus in zip(axes[0], corpora):
        rows = [r for r in res["rows"] if r["corpus"] == corpus]
        for method, style in styles.items():
            pts = sorted((r["ngrams"], r["test_perplexity"]) for r in rows if r["method"] == method)
            if pts:
                ax.plot(*zip(*pts), style, label=names[method], ms=4)
        full = next(r for r in rows if r["method"] == "none")
        ax.axhline(full["test_perplexity"], color="black", lw=0.8, ls=":", label="unpruned")
        ax.set_xscale("log")
        ax.set_xlabel("n-grams kept")
        ax.set_ylabel("test perplexity")
        ax.set_title(f"{corpus}: modified-KN {res['order']}-gram")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, plt, target)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    return matplotlib, plt


def _save(fig, plt, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)
    return target


def _ppl_axis(matplotlib, ax) -> None:
    ax.set_yscale("log")
    ax.set_yticks([60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 400])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("perplexity (PTB)")
    ax.set_ylim(top=400)
    ax.grid(True, which="both", alpha=0.3)


def figures(results_dir: Path, out_dir: Path) -> list[Path]:
    """PNG figures of the recipe runs (needs matplotlib, the ``plot`` extra), one set per hardware:
    validation (and test) perplexity against wall-clock training time and against tokens seen, n-grams as
    horizontal lines; test perplexity per recipe; gradient norm before clipping and the clipped fraction
    over training.  Then the gradient and recall figures (:func:`analysis_figures`)."""
    matplotlib, plt = _plt()
    runs, ngrams, ablations = [], [], {}
    for _, res in read_results(results_dir, "train"):
        if ablation_of(res):
            ablations.setdefault(ablation_of(res), []).append(res)
        elif res.get("epochs"):
            runs.append(res)
        elif res.get("metrics", {}).get("valid_perplexity") and "ngrams" in res.get("model", {}):
            ngrams.append(res)
    written = []
    is_char = lambda r: text_level(r) == "char"  # noqa: E731
    chars = [r for r in runs + ngrams if is_char(r)]
    runs, ngrams = [r for r in runs if not is_char(r)], [r for r in ngrams if not is_char(r)]
    if chars:
        written.append(char_figure(chars, out_dir / "curves-char.png"))
    on_gpu = lambda r: bool(r.get("hardware", {}).get("device"))  # noqa: E731
    names = [r["recipe"] for r in runs]
    for r in runs:  # runs of one recipe in several precisions: say which is which
        r["label"] = f"{r['recipe']} ({r.get('precision')})" if names.count(r["recipe"]) > 1 else r["recipe"]
    for name in ("gpu", "cpu"):
        group = [r for r in runs if on_gpu(r) == (name == "gpu")]
        if not group:
            continue
        hw = group[0]["hardware"].get("device") or group[0]["hardware"].get("cpu")
        for axis in ("time", "tokens"):
            fig, ax = plt.subplots(figsize=(8, 5))
            for res in group:
                key = "seconds" if axis == "time" else "tokens"
                scale = 60 if axis == "time" else 1e6
                pts = [(e[key] / scale, e["valid_perplexity"]) for e in res["epochs"]
                       if "valid_perplexity" in e and key in e]
                if not pts:
                    continue
                line, = ax.plot(*zip(*pts), marker=".", label=f"{res['label']} valid")
                test = [(e[key] / scale, e["test_perplexity"]) for e in res["epochs"] if "test_perplexity" in e and key in e]
                if test:
                    ax.plot(*zip(*test), ls="--", color=line.get_color(), label=f"{res['label']} test")
            for res in ngrams if name == "cpu" else []:
                ax.axhline(res["metrics"]["valid_perplexity"], color="black", ls=":", lw=1,
                           label=f"{res['recipe']} valid (n-gram, {res.get('seconds', 0):.0f} s)")
            _ppl_axis(matplotlib, ax)
            ax.set_xlabel("training wall time (min)" if axis == "time" else "training tokens seen (millions)")
            ax.legend(fontsize=7)
            ax.set_title(f"PTB learning curves, {hw}")
            written.append(_save(fig, plt, out_dir / (f"curves-{name}.png" if axis == "time" else f"tokens-{name}.png")))
        fig, ax = plt.subplots(figsize=(8, 4))
        bars = [(r["label"], r["metrics"]["test_perplexity"]) for r in group] + \
            ([(r["recipe"], r["metrics"]["test_perplexity"]) for r in ngrams] if name == "cpu" else [])
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color="tab:blue")
        for i, (_, v) in enumerate(bars):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlabel("test perplexity (PTB)")
        ax.set_title(f"Test perplexity per recipe, {hw}")
        written.append(_save(fig, plt, out_dir / f"test-{name}.png"))
        logged = [r for r in group if r.get("log")]
        if logged:
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
            for res in logged:
                xs = [x["seconds"] / 60 for x in res["log"]]
                top.plot(xs, [x["grad_norm"] for x in res["log"]], label=res["label"], lw=1)
                bottom.plot(xs, [x["clipped_fraction"] for x in res["log"]], label=res["label"], lw=1)
            top.set_yscale("log")
            top.set_ylabel("gradient norm before clipping")
            bottom.set_ylabel("fraction of steps clipped")
            bottom.set_xlabel("training wall time (min)")
            top.legend(fontsize=7)
            top.grid(True, alpha=0.3)
            bottom.grid(True, alpha=0.3)
            top.set_title(f"Gradient norms and clipping, {hw}")
            written.append(_save(fig, plt, out_dir / f"gradnorm-{name}.png"))
    for name, group in sorted(ablations.items()):
        written.append(ablation_figure(name, group, out_dir / f"ablation-{name}.png"))
    written += analysis_figures(results_dir, out_dir)
    return written


def char_figure(group: list[dict], target: Path) -> Path:
    """Character-level runs: validation bits per character against training wall time, n-grams as lines."""
    _, plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    for res in group:
        m = res["metrics"]
        if res.get("epochs"):
            pts = [(e["seconds"] / 60, e["valid_bits_per_character"]) for e in res["epochs"]
                   if "valid_bits_per_character" in e]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=f"{res['recipe']} valid (test {m['test_bits_per_character']:.3f})")
        elif "valid_bits_per_character" in m:
            ax.axhline(m["valid_bits_per_character"], color="black", ls=":", lw=1,
                       label=f"{res['recipe']} valid (n-gram; test {m['test_bits_per_character']:.3f})")
    ax.set_xlabel("training wall time (min)")
    ax.set_ylabel("bits per character (PTB characters)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    hw = group[0].get("hardware", {})
    ax.set_title(f"PTB characters, {hw.get('device') or hw.get('cpu', '')}")
    return _save(fig, plt, target)


def ablation_figure(name: str, group: list[dict], target: Path) -> Path:
    """Runs of one ablation side by side, step by step: training loss, gradient norm before clipping and
    the fraction of steps clipped, against the tokens seen; each labelled with its final perplexities."""
    _, plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for res in sorted(group, key=lambda r: r["recipe"]):
        m = res.get("metrics", {})
        label = (f"{res['config']['meta'].get('title') or res['recipe']}: test ppl {number(m.get('test_perplexity'), 1)}"
                 + (f", {res['skipped_steps']} non-finite steps skipped" if res.get("skipped_steps") else ""))
        xs = [x["tokens"] / 1e6 for x in res.get("log", [])]
        axes[0].plot(xs, [x["train_loss"] for x in res["log"]], lw=1, label=label)
        axes[1].plot(xs, [x["grad_norm"] for x in res["log"]], lw=1, label=label)
        axes[2].plot(xs, [x["clipped_fraction"] for x in res["log"]], lw=1, label=label)
    axes[0].set_ylabel("training loss (nats/token)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("gradient norm before clipping")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("fraction of steps clipped")
    axes[2].set_xlabel("training tokens seen (millions)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    hw = group[0].get("hardware", {})
    axes[0].set_title(f"Ablation: {name} ({hw.get('device') or hw.get('cpu', '')})")
    return _save(fig, plt, target)


def analysis_figures(results_dir: Path, out_dir: Path) -> list[Path]:
    """The gradient and recall figures, redrawn from their result files."""
    from seqlm.analysis import gradients, probe

    written = []
    draw = {"gradients": gradients.plot, "probe": probe.plot, "ngram-scale": plot_scale, "prune": plot_prune}
    for path, res in read_results(results_dir, *draw):
        target = out_dir / f"{path.stem}.png"
        draw[res["type"]](res, target)
        written.append(target)
    return written

