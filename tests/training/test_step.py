"""The training step and its options: schedules, DropConnect, the multi-layer fused call, resume of the
running loss, bf16 fallback.  CPU only; the CUDA-graph path is proven equal to the eager one in
tests/test_gpu.py (``-m gpu``)."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_run
from seqlm.config import ModelConfig, TrainConfig
from seqlm.io.runtime import resolve_precision
from seqlm.models.loader import load
from seqlm.models.neural.recurrent import RecurrentLM
from seqlm.training import schedule as training
from seqlm.training.step import Stepper, make_optimizer


def test_cosine_schedule_by_steps_and_by_time():
    t = TrainConfig(schedule="cosine", lr=2.0)
    lr = lambda step, seconds=0.0, tt=t: training.scheduled_lr(tt, {"step": step}, 100, seconds)  # noqa: E731
    assert lr(0) == pytest.approx(2.0)
    assert lr(50) == pytest.approx(1.0)
    assert lr(100) == pytest.approx(0.0, abs=1e-12)
    assert lr(150) == pytest.approx(0.0, abs=1e-12)  # never negative, never back up
    timed = TrainConfig(schedule="cosine", lr=2.0, max_minutes=1.0)
    # half the time budget spent after 10% of the steps: the time decides
    assert lr(10, 30.0, timed) == pytest.approx(1.0)
    assert training.scheduled_lr(TrainConfig(schedule="zaremba"), {"step": 3}, 100, 0.0) is None


def test_epoch_schedules():
    z = TrainConfig(schedule="zaremba", decay_start=4, lr_decay=0.5)
    assert training.epoch_end_lr(z, 1.0, 3, True) == 1.0
    assert training.epoch_end_lr(z, 1.0, 4, True) == 0.5
    p = TrainConfig(schedule="plateau", lr_decay=0.25)
    assert training.epoch_end_lr(p, 1.0, 9, True) == 1.0
    assert training.epoch_end_lr(p, 1.0, 9, False) == 0.25


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_multilayer_call_equals_layer_by_layer(kind):
    """The one-call path cuDNN takes on GPU computes what the per-layer path computes (float64, CPU)."""
    torch.manual_seed(0)
    m = RecurrentLM(ModelConfig(kind=kind, embedding_dim=8, hidden_size=16, num_layers=3), 50).double().eval()
    assert m.can_stack
    state = [tuple(torch.randn_like(s) for s in st) if isinstance(st, tuple) else torch.randn_like(st)
             for st in m.init_state(4)]
    x = m.embed(torch.randint(0, 50, (4, 7)))
    a, sa = m.run_stack(x, state)
    b, sb = x, []
    for layer, st in zip(m.layers, state):
        b, st = m.run_layer(layer, b, st)
        sb.append(st)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(sa, sb, rtol=0, atol=1e-12)
    assert not RecurrentLM(ModelConfig(kind=kind, dropout=0.2, variational=True), 50).can_stack
    assert not RecurrentLM(ModelConfig(kind=kind, backend="reference"), 50).can_stack


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_weight_drop_is_one_mask_over_time(backend):
    """DropConnect: each hidden-to-hidden weight is kept (scaled by 1/(1-p)) or zeroed as a whole, with the
    same dropped matrix at every time step: the layer's output equals stepping the LSTM equations by hand
    with that one matrix.  The module's own weight is untouched, and evaluation uses it undropped."""
    from seqlm.models.neural.cells import lstm_cell

    torch.manual_seed(0)
    p = 0.5
    m = RecurrentLM(ModelConfig(kind="lstm", backend=backend, embedding_dim=6, hidden_size=5, num_layers=1,
                                weight_drop=p), 20).double()
    layer = m.layers[0]
    w = layer.weight_hh_l0.detach().clone()
    x = torch.randn(3, 9, 6, dtype=torch.float64)
    state = m.init_state(3)[0]
    m.train()
    torch.manual_seed(7)
    out, _ = m.run_layer(layer, x, state)
    torch.manual_seed(7)
    mask = torch.empty_like(w).bernoulli_(1 - p)
    dropped = w * mask / (1 - p)
    assert 0.3 < (mask == 0).double().mean() < 0.7
    h, c = state[0][0], state[1][0]
    xw = torch.nn.functional.linear(x, layer.weight_ih_l0, layer.bias_ih_l0)
    steps = []
    for t in range(9):
        h, c = lstm_cell(xw[:, t], h, c, dropped, layer.bias_hh_l0)
        steps.append(h)
    torch.testing.assert_close(out, torch.stack(steps, 1))
    assert torch.equal(layer.weight_hh_l0, w)
    m.eval()
    torch.testing.assert_close(m.run_layer(layer, x, state)[0], layer(x, state)[0])


def test_last_layer_size_ties_a_narrow_output(tmp_path, small_files):  # noqa: F811
    lm, summary = tiny_run(tmp_path, small_files, extra=["model.num_layers=3", "model.hidden_size=24",
                                                         "model.last_layer_size=16", "model.tie_weights=true",
                                                         "model.weight_drop=0.3", "train.max_steps=30"])
    sizes = [layer.weight_hh_l0.shape[1] for layer in lm.module.layers]
    assert sizes == [24, 24, 16]
    assert lm.module.decoder.weight is lm.module.embedding.weight
    assert math.isfinite(summary["metrics"]["test_perplexity"])


def test_stepper_eager_equals_plain_loop():
    """The stepper's eager step is forward, mean cross-entropy, backward, clip, SGD: written out here."""
    torch.manual_seed(0)
    cfg = ModelConfig(kind="lstm", embedding_dim=8, hidden_size=8, num_layers=2)
    a, b = RecurrentLM(cfg, 30), RecurrentLM(cfg, 30)
    b.load_state_dict(a.state_dict())
    t = SimpleNamespace(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0)
    stepper = Stepper(a, make_optimizer(t, a.parameters()), a.init_state(2), None, clip=0.1)
    opt = torch.optim.SGD(b.parameters(), lr=0.5)
    hidden = b.init_state(2)
    for _ in range(4):
        x, y = torch.randint(0, 30, (2, 5)), torch.randint(0, 30, (2, 5))
        stepper.step(x, y, check=True)
        logits, hidden = b(x, b.detach_state(hidden))
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.1)
        opt.step()
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)
    r = stepper.drain()
    assert r["tokens"] == 40 and r["clipped"] == 4 and r["grad_norm"] > 0.1


def test_an_overflowing_gradient_updates_nothing():
    """A finite loss whose gradient is not finite (no clipping to save it): the eager step reports the
    non-finite norm and leaves the weights and the carried state as they were."""
    torch.manual_seed(0)
    m = RecurrentLM(ModelConfig(kind="rnn_tanh", embedding_dim=8, hidden_size=8, num_layers=1), 30)
    t = SimpleNamespace(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0)
    stepper = Stepper(m, make_optimizer(t, m.parameters()), m.init_state(2), None, clip=0.0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.layers[0].weight_hh_l0.register_hook(lambda g: g * float("inf"))
    x, y = torch.randint(0, 30, (2, 5)), torch.randint(0, 30, (2, 5))
    value = stepper.step(x, y, check=True)
    assert not math.isfinite(value)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(torch.equal(h, torch.zeros_like(h)) for h in stepper.hidden)


def test_resume_reproduces_the_metrics(tmp_path, small_files):  # noqa: F811
    """Killed mid-epoch and resumed: metrics.jsonl (train perplexity included) and steps.jsonl equal the
    uninterrupted run's, except the wall-clock seconds."""
    common = ["model.dropout=0.3", "train.epochs=2", "train.checkpoint_every=7", "train.log_every=5"]
    tiny_run(tmp_path, small_files, "a", extra=common)
    per_epoch = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])["step"]
    tiny_run(tmp_path, small_files, "b", extra=common + [f"train.max_steps={per_epoch + per_epoch // 2}"])
    tiny_run(tmp_path, small_files, "b", extra=common, resume=True)

    def rows(run, name):
        out = [json.loads(x) for x in (tmp_path / run / name).read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in out]

    for name in ("metrics.jsonl", "steps.jsonl"):
        a, b = rows("a", name), rows("b", name)
        assert len(a) == len(b) > 1, name
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            for k in ra:
                assert ra[k] == pytest.approx(rb[k], rel=1e-9), (name, k)
    wa = load(tmp_path / "a" / "last" / "model").module.state_dict()
    wb = load(tmp_path / "b" / "last" / "model").module.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bf16_falls_back_on_a_cpu_without_it(monkeypatch):
    from seqlm.io import runtime

    warnings = []
    monkeypatch.setattr(runtime.log, "warning", lambda msg, *a: warnings.append(msg % a))
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "fma"})
    assert resolve_precision("bf16", torch.device("cpu")) == "fp32"
    assert len(warnings) == 1 and "no native bf16" in warnings[0]
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
