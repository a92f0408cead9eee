"""``seqlm diagnose``: measure what models do inside, and write the result (and its figure).

- ``gradients``: for a trained recurrent model, the norm of d ln p(next) / d state k steps back
  (``analysis/gradients.py``): why the gated kinds learn long dependencies and the vanilla RNN does not.
- ``recall``: the long-range recall probe (``analysis/probe.py``): every family trained on generated
  text where a token must be recalled from d positions back.
"""

from __future__ import annotations

from pathlib import Path

from seqlm.errors import SeqlmError
from seqlm.io.files import check_targets, write_json
from seqlm.io.records import record

WHAT = ("gradients", "recall")


def diagnose(what: str, model: str | Path | None = None, *, corpus: str | None = None, split: str = "valid",
             file=None, data_dir=None, K: int = 100, positions: int = 200,
             distances="1,2,5,10,20,50,100", families="kn5,window,rnn_tanh,lstm,gru,transformer",
             out=None, plot=None) -> dict:
    """Run diagnostic ``what`` (gradients | recall) and return its result; ``out``: also write it as JSON,
    ``plot``: also draw its figure (PNG, needs matplotlib).

    gradients: ``model`` (a recurrent model or run folder) on ``file`` or the ``split`` of ``corpus``,
    ``K`` steps back at ``positions`` sampled positions.  recall: ``distances`` and ``families`` as lists
    or comma-separated text."""
    if what not in WHAT:
        raise SeqlmError(f"unknown diagnostic {what!r}: choose {' or '.join(WHAT)}")
    check_targets(out=out, plot=plot)
    result = _gradients(model, corpus, split, file, data_dir, K, positions) if what == "gradients" \
        else _recall(distances, families)
    result = {"type": "probe" if what == "recall" else what, **result, **record()}
    if out:
        write_json(out, result)
    if plot:
        _plot(what, result, plot)
    return result


def _gradients(model, corpus, split, file, data_dir, K, positions) -> dict:
    from seqlm.analysis.gradients import diagnose_gradients
    from seqlm.models.loader import load
    from seqlm.tasks.evaluate import read_source

    if not model:
        raise SeqlmError("seqlm diagnose gradients needs a model: seqlm diagnose gradients RUN --corpus ptb")
    lm = load(model, device="cpu")
    lines, _ = read_source(lm, corpus=corpus, split=split, file=file, data_dir=data_dir)
    result = diagnose_gradients(lm, lines, K=K, positions=positions)
    result.update(model=str(model), kind=lm.config.get("model", {}).get("kind"),
                  title=f"{Path(model).name}: gradient through time")
    return result


def _as_list(value, name: str, cast):
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [cast(x) for x in items]
    except (TypeError, ValueError):
        kind = "integers" if cast is int else "names"
        raise SeqlmError(f"--{name} needs comma-separated {kind} (got {value!r})") from None


def _recall(distances, families) -> dict:
    from seqlm.analysis import probe

    distances = _as_list(distances, "distances", int)
    if any(d < 1 for d in distances):
        raise SeqlmError("--distances must be >= 1")
    families = _as_list(families, "families", str)
    unknown = [f for f in families if f not in probe.FAMILIES]
    if unknown:
        raise SeqlmError(f"unknown families {unknown}: choose from {', '.join(probe.FAMILIES)}")
    return probe.run_probe(distances, families)


def _plot(what: str, result: dict, path) -> None:
    if what == "recall":
        from seqlm.analysis.probe import plot
    else:
        from seqlm.analysis.gradients import plot
    try:
        plot(result, path)
    except ImportError:
        raise SeqlmError("--plot needs matplotlib: pip install 'seqlm[plot]'") from None
