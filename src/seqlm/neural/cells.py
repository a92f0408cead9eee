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

import torch
from torch import Tensor, nn

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


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


class ReferenceRecurrent(nn.Module):
    """A stack of reference cells with the interface of ``torch.nn.LSTM`` (``batch_first=True``).

    ``forward(x (B, T, I), state) -> (output (B, T, H), state)``; the state is ``(h, c)`` with each
    (layers, B, H) for the LSTM, ``h`` (layers, B, H) otherwise.  ``dropout`` applies between layers
    (not after the last), as in torch.nn.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        if cell not in GATES:
            raise ValueError(cell)
        self.cell, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.dropout = num_layers, dropout
        g = GATES[cell]
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
        lstm = self.cell == "lstm"
        if state is None:
            zeros = x.new_zeros(L, B, H)
            state = (zeros, zeros.clone()) if lstm else zeros
        h0 = state[0] if lstm else state
        c0 = state[1] if lstm else None
        hs, cs = [], []
        layer_in = x
        for k in range(L):
            w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")
            xw = torch.nn.functional.linear(layer_in, w_ih, b_ih)  # (B, T, gates*H), all steps at once
            h = h0[k]
            c = c0[k] if lstm else None
            outs = []
            for t in range(T):
                if lstm:
                    h, c = lstm_cell(xw[:, t], h, c, w_hh, b_hh)
                elif self.cell == "gru":
                    h = gru_cell(xw[:, t], h, w_hh, b_hh)
                else:
                    h = rnn_cell(xw[:, t], h, w_hh, b_hh, self.cell == "rnn_relu")
                outs.append(h)
            layer_in = torch.stack(outs, dim=1)
            hs.append(h)
            if lstm:
                cs.append(c)
            if self.dropout > 0 and self.training and k < L - 1:
                layer_in = torch.nn.functional.dropout(layer_in, self.dropout, True)
        h_n = torch.stack(hs)
        return layer_in, ((h_n, torch.stack(cs)) if lstm else h_n)
