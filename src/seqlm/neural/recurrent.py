"""Recurrent LM: embedding -> stacked recurrent layers -> dropout -> [fully connected layers] -> output.

Zaremba et al. 2014 (dropout on the non-recurrent connections), Gal & Ghahramani 2016 (variational /
locked dropout, word-type dropout), Press & Wolf 2017 and Inan et al. 2017 (weight tying), and the extra
fully connected layers of the seed paper ("LSTM for Model Language").

Input: token ids (B, T) and the state from the previous batch (None = zeros); output: logits (B, T, V)
and the new state.  Layers are kept as one single-layer module each, so that dropout between layers can
be locked (one mask per sequence), and both backends share parameter names: ``layers.{k}.weight_ih_l0``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .cells import GATES, ReferenceRecurrent


class SequenceDropout(nn.Module):
    """Dropout on (B, T, D); ``locked`` draws one mask per sequence (B, 1, D) shared over time."""

    def __init__(self, p: float, locked: bool):
        super().__init__()
        self.p, self.locked = p, locked

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if not self.locked:
            return nn.functional.dropout(x, self.p, True)
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask


def make_layer(kind: str, backend: str, input_size: int, hidden_size: int) -> nn.Module:
    if backend == "reference":
        return ReferenceRecurrent(kind, input_size, hidden_size, 1)
    if kind == "lstm":
        return nn.LSTM(input_size, hidden_size, 1, batch_first=True)
    if kind == "gru":
        return nn.GRU(input_size, hidden_size, 1, batch_first=True)
    return nn.RNN(input_size, hidden_size, 1, nonlinearity=kind.split("_")[1], batch_first=True)


class RecurrentLM(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.kind
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.layers = nn.ModuleList(
            make_layer(cfg.kind, cfg.backend, cfg.embedding_dim if k == 0 else cfg.hidden_size, cfg.hidden_size)
            for k in range(cfg.num_layers))
        self.embedding_drop = SequenceDropout(cfg.embedding_dropout, cfg.variational)
        self.drop = SequenceDropout(cfg.dropout, cfg.variational)
        fc_size = cfg.fc_size or cfg.hidden_size
        self.fc = nn.ModuleList(nn.Linear(cfg.hidden_size if k == 0 else fc_size, fc_size)
                                for k in range(cfg.fc_layers))
        out_dim = fc_size if cfg.fc_layers else cfg.hidden_size
        self.decoder = nn.Linear(out_dim, vocab_size)
        self.init_weights()
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight

    def init_weights(self) -> None:
        a = self.cfg.init_range
        if a > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -a, a)
        if self.kind == "lstm" and self.cfg.forget_bias:
            H = self.cfg.hidden_size
            for layer in self.layers:
                layer.bias_ih_l0.data[H:2 * H] = self.cfg.forget_bias
                layer.bias_hh_l0.data[H:2 * H] = 0.0

    def init_state(self, batch_size: int, device=None):
        """Zero state: a list with one entry per layer ((h, c) for LSTMs), each (1, B, H)."""
        H = self.cfg.hidden_size
        dtype = self.embedding.weight.dtype
        z = lambda: torch.zeros(1, batch_size, H, device=device, dtype=dtype)  # noqa: E731
        return [(z(), z()) if self.kind == "lstm" else z() for _ in self.layers]

    @staticmethod
    def detach_state(state):
        return [tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach() for st in state]

    @staticmethod
    def select_state(state, index: Tensor):
        """The state of the batch rows in ``index`` (for batched decoding)."""
        return [tuple(s[:, index] for s in st) if isinstance(st, tuple) else st[:, index] for st in state]

    def embed(self, tokens: Tensor) -> Tensor:
        weight = self.embedding.weight
        p = self.cfg.word_dropout
        if self.training and p > 0:
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            weight = weight * keep
        return nn.functional.embedding(tokens, weight)

    def forward(self, tokens: Tensor, state=None):
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        x = self.embedding_drop(self.embed(tokens))  # (B, T, E)
        new_state = []
        for layer, st in zip(self.layers, state):
            x, st = layer(x, st)  # (B, T, H)
            x = self.drop(x)
            new_state.append(st)
        for fc in self.fc:
            x = self.drop(torch.relu(fc(x)))
        return self.decoder(x), new_state  # (B, T, V)


def gates(kind: str) -> int:
    return GATES[kind]
