"""CUDA: the graphed training step equals the eager one, resume and NaN handling under graphs, the
multi-layer cuDNN call, and GPU-trained models load on CPU.  Opt in with ``-m gpu`` on a CUDA machine."""

import math
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_run
from seqlm.config import ModelConfig
from seqlm.errors import SeqlmError
from seqlm.models.loader import load
from seqlm.models.neural.recurrent import RecurrentLM
from seqlm.training.step import Stepper, make_optimizer, set_lr

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _train(graphed, optimizer, kind="lstm", backend="fused", steps=12, lr_change_at=None):
    torch.manual_seed(0)
    torch.backends.cudnn.deterministic = True
    cfg = ModelConfig(kind=kind, backend=backend, embedding_dim=32, hidden_size=32, num_layers=2)
    module = RecurrentLM(cfg, 100).cuda().train()
    t = SimpleNamespace(optimizer=optimizer, lr=0.5 if optimizer == "sgd" else 0.01, momentum=0.0, weight_decay=0.0)
    opt = make_optimizer(t, module.parameters(), graphed)
    stepper = Stepper(module, opt, module.init_state(4, "cuda"), None, clip=0.5, graphed=graphed, full_shape=(4, 6))
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        width = 3 if i == steps - 2 else 6  # one short window: eager, between replays
        x = torch.randint(0, 100, (4, width), generator=g).cuda()
        y = torch.randint(0, 100, (4, width), generator=g).cuda()
        if i == lr_change_at:
            set_lr(opt, t.lr / 10)
        stepper.step(x, y)
    r = stepper.drain()
    return module, r, stepper


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kind,backend", [("lstm", "fused"), ("gru", "fused"), ("lstm", "reference")])
def test_graphed_step_equals_eager(optimizer, kind, backend):
    eager, re, _ = _train(False, optimizer, kind, backend, lr_change_at=8)
    graphed, rg, stepper = _train(True, optimizer, kind, backend, lr_change_at=8)
    assert stepper.graph is not None, "capture failed"
    assert re["tokens"] == rg["tokens"]
    assert rg["loss_sum"] == pytest.approx(re["loss_sum"], rel=1e-4)
    for (k, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        if optimizer == "sgd":
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=k)
        else:
            # Adam moves a weight by ~lr whatever its gradient's size, so a gradient that is ~0 up to
            # rounding (summation order differs between the runs) may move either way: compare the bulk
            off = ((a - b).abs() > 1e-4).float().mean().item()
            assert off < 0.01, (k, off)


def test_graphed_training_resumes_and_loads_on_cpu(tmp_path, small_files):  # noqa: F811
    common = ["train.device=cuda", "train.optimizer=sgd", "train.lr=1", "train.checkpoint_every=5",
              "train.epochs=2"]
    tiny_run(tmp_path, small_files, "a", extra=common + ["train.max_steps=40"])
    tiny_run(tmp_path, small_files, "b", extra=common + ["train.max_steps=20"])
    _, summary = tiny_run(tmp_path, small_files, "b", extra=common + ["train.max_steps=40"], resume=True)
    assert summary["cuda_graphs"]
    a = load(tmp_path / "a" / "last" / "model", device="cpu").module.state_dict()
    b = load(tmp_path / "b" / "last" / "model", device="cpu").module.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    gpu, cpu = load(tmp_path / "b", device="cuda"), load(tmp_path / "b", device="cpu")
    lines = [[5, 6, 7], [8, 9]]
    lg, _ = gpu.score_lines(lines)
    lc, _ = cpu.score_lines(lines)
    assert lg == pytest.approx(lc, abs=1e-3)


def test_nan_loss_stops_under_graphs(tmp_path, small_files, monkeypatch):  # noqa: F811
    """Under graphs the loss is read every train.log_every steps: a NaN stops training there."""
    from seqlm.training import step

    real = step.token_cross_entropy
    monkeypatch.setattr(step, "token_cross_entropy", lambda logits, y: real(logits, y) * float("nan"))
    with pytest.raises(SeqlmError, match="the loss became nan between steps 1 and 5"):
        tiny_run(tmp_path, small_files, extra=["train.device=cuda", "train.optimizer=sgd", "train.log_every=5"])
    assert not (tmp_path / "m" / "last").exists()  # no checkpoint was written after the NaN


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_multilayer_cudnn_call_equals_layer_by_layer(kind):
    torch.manual_seed(0)
    m = RecurrentLM(ModelConfig(kind=kind, embedding_dim=16, hidden_size=32, num_layers=2), 50).cuda().double()
    m.eval()
    x = torch.randint(0, 50, (3, 9), device="cuda")
    a, _ = m(x)
    ref = RecurrentLM(ModelConfig(kind=kind, embedding_dim=16, hidden_size=32, num_layers=2), 50).double()
    ref.load_state_dict({k: v.cpu() for k, v in m.state_dict().items()})
    b, _ = ref.eval()(x.cpu())
    torch.testing.assert_close(a.cpu(), b, rtol=1e-7, atol=1e-7)
    assert math.isfinite(a.sum().item())
