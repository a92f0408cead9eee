"""Reference cells equal torch's cells and fused kernels, in values and gradients (float64)."""

import pytest
import torch

from seqlm.config import ModelConfig
from seqlm.models.neural.cells import ReferenceRecurrent, gru_cell, lstm_cell, rnn_cell
from seqlm.models.neural.lm import build_module

KINDS = ["lstm", "gru", "rnn_tanh", "rnn_relu"]


def torch_cell(kind, i, h):
    if kind == "lstm":
        return torch.nn.LSTMCell(i, h)
    if kind == "gru":
        return torch.nn.GRUCell(i, h)
    return torch.nn.RNNCell(i, h, nonlinearity=kind.split("_")[1])


@pytest.mark.parametrize("kind", KINDS)
def test_cell_equals_torch_cell(kind):
    torch.manual_seed(0)
    ref = torch_cell(kind, 5, 7).double()
    x = torch.randn(3, 5, dtype=torch.float64)
    h = torch.randn(3, 7, dtype=torch.float64)
    c = torch.randn(3, 7, dtype=torch.float64)
    xw = x @ ref.weight_ih.t() + ref.bias_ih
    if kind == "lstm":
        ours = lstm_cell(xw, h, c, ref.weight_hh, ref.bias_hh)
        theirs = ref(x, (h, c))
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    else:
        ours = gru_cell(xw, h, ref.weight_hh, ref.bias_hh) if kind == "gru" else \
            rnn_cell(xw, h, ref.weight_hh, ref.bias_hh, kind == "rnn_relu")
        torch.testing.assert_close(ours, ref(x, h), rtol=1e-12, atol=1e-12)


def fused_stack(kind, i, h, layers):
    if kind == "lstm":
        return torch.nn.LSTM(i, h, layers, batch_first=True)
    if kind == "gru":
        return torch.nn.GRU(i, h, layers, batch_first=True)
    return torch.nn.RNN(i, h, layers, nonlinearity=kind.split("_")[1], batch_first=True)


@pytest.mark.parametrize("kind", KINDS)
def test_stack_equals_fused_outputs_and_gradients(kind):
    torch.manual_seed(1)
    fused = fused_stack(kind, 6, 8, 2).double()
    ref = ReferenceRecurrent(kind, 6, 8, 2).double()
    ref.load_state_dict(fused.state_dict())
    x = torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, 8, dtype=torch.float64)
    state = (h0, torch.randn(2, 3, 8, dtype=torch.float64)) if kind == "lstm" else h0
    out_f, st_f = fused(x, state)
    out_r, st_r = ref(x, state)
    torch.testing.assert_close(out_r, out_f, rtol=1e-10, atol=1e-10)
    for a, b in zip(st_r if kind == "lstm" else [st_r], st_f if kind == "lstm" else [st_f]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out_f)
    grads_f = torch.autograd.grad((out_f * g).sum(), [x] + list(fused.parameters()))
    grads_r = torch.autograd.grad((out_r * g).sum(), [x] + list(ref.parameters()))
    for a, b in zip(grads_r, grads_f):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind):
    torch.manual_seed(2)
    ref = ReferenceRecurrent(kind, 3, 4, 2).double()
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: ref(inp)[0], (x,))


@pytest.mark.parametrize("kind", KINDS)
def test_language_models_equal_across_backends(kind):
    torch.manual_seed(3)
    cfg = ModelConfig(kind=kind, backend="fused", embedding_dim=6, hidden_size=6, num_layers=2, tie_weights=True,
                      fc_layers=1)
    fused = build_module(cfg, 30).double().eval()
    ref = build_module(ModelConfig(**{**cfg.__dict__, "backend": "reference"}), 30).double().eval()
    ref.load_state_dict(fused.state_dict())
    tokens = torch.randint(0, 30, (2, 9))
    a, sa = fused(tokens)
    b, sb = ref(tokens)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
