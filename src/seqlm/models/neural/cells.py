"""Reference recurrent cells, written from the equations, and a stacked multi-layer runner over time.

Parameters are named and shaped exactly as in ``torch.nn.RNN/LSTM/GRU`` (``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``; gates stacked in PyTorch's order), so the same
state dict loads into either backend and the two can be proven equal (tests/test_cells.py).

Shapes: x_t (B, I), h_t (B, H).  W_* are (gates*H, I) and U_* (gates*H, H); ⊙ is the elementwise product.

Vanilla RNN (Elman)::

    h_t = φ(W x_t + b_W + U h_{t-1} + b_U),   φ = tanh or relu

LSTM (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000)::

    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)          input gate
    f_t = σ(W_f x_t + U_f h_{t-1} + b_f)          forget gate
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)       candidate
    o_t = σ(W_o x_t + U_o h_{t-1} + b_o)          output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t               cell state
    h_t = o_t ⊙ tanh(c_t)

GRU (Cho et al. 2014), in the form cuDNN and PyTorch compute::

    r_t = σ(W_r x_t + U_r h_{t-1} + b_r)                     reset gate
    z_t = σ(W_z x_t + U_z h_{t-1} + b_z)                     update gate
    n_t = tanh(W_n x_t + b_Wn + r_t ⊙ (U_n h_{t-1} + b_Un))   candidate from the reset-scaled state
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

(Cho et al. write the candidate as tanh(W x + U (r ⊙ h)); applying r after U is the variant the fused
kernels implement, so the reference follows it to be provably equal.)

Speed: the input projections W x_t of all time steps are one matrix product before the loop; only the
recurrent part runs step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn


def rnn_cell(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor, relu: bool) -> Tensor:
    """One vanilla RNN step; ``xw`` = W x_t + b_W precomputed."""
    pre = xw + torch.addmm(b_hh, h, w_hh.t())
    return torch.relu(pre) if relu else torch.tanh(pre)


def lstm_cell(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step; ``xw`` = W x_t + b_W precomputed, gates stacked (i, f, g, o)."""
    gates = xw + torch.addmm(b_hh, h, w_hh.t())
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def gru_cell(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """One GRU step; ``xw`` = W x_t + b_W precomputed, gates stacked (r, z, n)."""
    hu = torch.addmm(b_hh, h, w_hh.t())
    x_r, x_z, x_n = xw.chunk(3, dim=1)
    h_r, h_z, h_n = hu.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


# -- the table of cells: everything that differs between recurrent kinds, in one place -------------------
def _rnn_step(relu: bool):
    def step(xw, h, w_hh, b_hh):
        h = rnn_cell(xw, h, w_hh, b_hh, relu)
        return h, h
    return step


def _lstm_step(xw, state, w_hh, b_hh):
    h, c = lstm_cell(xw, state[0], state[1], w_hh, b_hh)
    return h, (h, c)


def _gru_step(xw, h, w_hh, b_hh):
    h = gru_cell(xw, h, w_hh, b_hh)
    return h, h


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: ``step(xw_t, state, U, b_U) -> (h_t, state)``; ``paired``: the state is (h, c);
    ``fused``: the single-layer ``torch.nn`` module computing the same (batch_first); ``stack``: the name of
    the multi-layer fused function in ``torch._VF``; ``forget_gate``: the chunk of the gates that is the
    forget gate (for ``model.forget_bias``), if any."""

    gates: int
    step: Callable
    fused: Callable[[int, int], nn.Module]
    stack: str
    paired: bool = False
    forget_gate: int | None = None


CELLS = {
    "lstm": Cell(4, _lstm_step, lambda i, h: nn.LSTM(i, h, 1, batch_first=True), "lstm", paired=True, forget_gate=1),
    "gru": Cell(3, _gru_step, lambda i, h: nn.GRU(i, h, 1, batch_first=True), "gru"),
    "rnn_tanh": Cell(1, _rnn_step(False), lambda i, h: nn.RNN(i, h, 1, nonlinearity="tanh", batch_first=True),
                     "rnn_tanh"),
    "rnn_relu": Cell(1, _rnn_step(True), lambda i, h: nn.RNN(i, h, 1, nonlinearity="relu", batch_first=True),
                     "rnn_relu"),
}
# the Mogrifier LSTM has its own layer module (MogrifierLSTM, below): no fused kernel, no multi-layer call
MOGRIFIER = Cell(4, _lstm_step, None, "", paired=True, forget_gate=1)
GATES = {name: cell.gates for name, cell in CELLS.items()}


class ReferenceRecurrent(nn.Module):
    """A stack of reference cells with the interface of ``torch.nn.LSTM`` (``batch_first=True``).

    ``forward(x (B, T, I), state) -> (output (B, T, H), state)``; the state is ``(h, c)`` with each
    (layers, B, H) for the LSTM, ``h`` (layers, B, H) otherwise.  ``dropout`` applies between layers
    (not after the last), as in torch.nn.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.dropout = num_layers, dropout
        g = CELLS[cell].gates
        for k in range(num_layers):
            inp = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(g * hidden_size, inp)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(g * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(g * hidden_size)))
            self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(g * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state=None):
        B, T, _ = x.shape
        L, H = self.num_layers, self.hidden_size
        cell = CELLS[self.cell]
        if state is None:
            zeros = x.new_zeros(L, B, H)
            state = (zeros, zeros.clone()) if cell.paired else zeros
        finals = []
        layer_in = x
        for k in range(L):
            w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")
            xw = torch.nn.functional.linear(layer_in, w_ih, b_ih)  # (B, T, gates*H), all steps at once
            st = (state[0][k], state[1][k]) if cell.paired else state[k]
            outs = []
            for t in range(T):
                h, st = cell.step(xw[:, t], st, w_hh, b_hh)
                outs.append(h)
            layer_in = torch.stack(outs, dim=1)
            finals.append(st)
            if self.dropout > 0 and self.training and k < L - 1:
                layer_in = torch.nn.functional.dropout(layer_in, self.dropout, True)
        if cell.paired:
            return layer_in, (torch.stack([s[0] for s in finals]), torch.stack([s[1] for s in finals]))
        return layer_in, torch.stack(finals)


class MogrifierLSTM(nn.Module):
    """One Mogrifier LSTM layer (Melis et al. 2020, "Mogrifier LSTM"), reference backend only: before each
    LSTM step the input and the previous output gate each other for ``rounds`` rounds,

        x ← 2σ(Q_i h) ⊙ x     (odd rounds i)          Q_i: (input, hidden)
        h ← 2σ(R_i x) ⊙ h     (even rounds i)         R_i: (hidden, input)

    then the LSTM step above reads the modulated x and h.  Zero rounds is the LSTM (tested).  No fused
    kernel exists for it: x changes with h at every step, so even the input projection runs step by step.
    Parameters named as torch.nn.LSTM's (``weight_hh_l0`` for DropConnect), plus ``mog_q{i}`` / ``mog_r{i}``.
    Interface of ``torch.nn.LSTM`` (batch_first, one layer): ``forward(x (B, T, I), (h, c)) -> (out, (h, c))``.
    """

    def __init__(self, input_size: int, hidden_size: int, rounds: int = 5):
        super().__init__()
        self.input_size, self.hidden_size, self.rounds = input_size, hidden_size, rounds
        H = hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * H))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * H))
        for i in range(1, rounds + 1):
            shape = (input_size, H) if i % 2 else (H, input_size)
            self.register_parameter(f"mog_{'q' if i % 2 else 'r'}{i}", nn.Parameter(torch.empty(shape)))
        bound = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def mogrify(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        for i in range(1, self.rounds + 1):
            if i % 2:
                x = 2 * torch.sigmoid(h @ getattr(self, f"mog_q{i}").t()) * x
            else:
                h = 2 * torch.sigmoid(x @ getattr(self, f"mog_r{i}").t()) * h
        return x, h

    def forward(self, x: Tensor, state=None):
        B, T, _ = x.shape
        if state is None:
            zeros = x.new_zeros(1, B, self.hidden_size)
            state = (zeros, zeros.clone())
        h, c = state[0][0], state[1][0]
        outs = []
        for t in range(T):
            xt, h = self.mogrify(x[:, t], h)
            xw = torch.nn.functional.linear(xt, self.weight_ih_l0, self.bias_ih_l0)
            h, c = lstm_cell(xw, h, c, self.weight_hh_l0, self.bias_hh_l0)
            outs.append(h)
        return torch.stack(outs, dim=1), (h[None], c[None])
