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

from seqlm.config import ModelConfig, resolve_backend
from seqlm.models.neural.cells import CELLS, MOGRIFIER, MogrifierLSTM, ReferenceRecurrent
from seqlm.models.neural.output import FeatureLM, make_output


def drop_connect(w: Tensor, p: float) -> Tensor:
    """``w`` with each entry zeroed with probability ``p`` and the rest scaled by 1/(1-p) (one mask)."""
    return w * w.new_empty(w.shape).bernoulli_(1 - p) / (1 - p)


class SequenceDropout(nn.Module):
    """Dropout on (B, T, ...); ``locked`` draws one mask per sequence (B, 1, D) shared over time.

    ``rows`` = (first row, global batch size) when this process trains some rows of a larger batch
    (``torchrun``): the mask is drawn for the whole global batch and this process keeps its rows, so the
    masks are those of one process training the whole batch (see ``seqlm.io.distributed``).  On CPU the mask
    is always drawn explicitly (the same random numbers either way); on CUDA a single process uses the fused
    ``F.dropout``.
    """

    def __init__(self, p: float, locked: bool):
        super().__init__()
        self.p, self.locked = p, locked
        self.rows: tuple[int, int] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if not self.locked and self.rows is None and x.is_cuda:
            return nn.functional.dropout(x, self.p, True)
        shape = list(x.shape)
        if self.locked:
            shape[1] = 1
        first = 0
        if self.rows is not None:
            first, shape[0] = self.rows
        # uniform draws compared with the keep probability: on CPU ~2.3x faster than bernoulli_ (measured)
        mask = torch.rand(shape, device=x.device) < 1 - self.p
        if self.rows is not None:
            mask = mask[first:first + x.shape[0]]
        return x * mask.to(x.dtype) * (1 / (1 - self.p))


def make_layer(kind: str, backend: str, input_size: int, hidden_size: int, rounds: int = 5) -> nn.Module:
    if kind == "mogrifier":
        return MogrifierLSTM(input_size, hidden_size, rounds)
    if backend == "reference":
        return ReferenceRecurrent(kind, input_size, hidden_size, 1)
    return CELLS[kind].fused(input_size, hidden_size)


class RecurrentLM(FeatureLM):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.kind
        self.state_batch_dim = 1  # each layer's state is (1, B, H)
        self.cell = MOGRIFIER if cfg.kind == "mogrifier" else CELLS[cfg.kind]
        self.backend = resolve_backend(cfg.kind, cfg.backend)
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim)
        self.sizes = [cfg.hidden_size] * (cfg.num_layers - 1) + [cfg.last_layer_size or cfg.hidden_size]
        inputs = [cfg.embedding_dim] + self.sizes[:-1]
        self.layers = nn.ModuleList(make_layer(cfg.kind, self.backend, i, h, cfg.mogrifier_rounds)
                                    for i, h in zip(inputs, self.sizes))
        self.embedding_drop = SequenceDropout(cfg.embedding_dropout, cfg.variational)
        self.drop = SequenceDropout(cfg.dropout, cfg.variational)
        fc_size = cfg.fc_size or cfg.hidden_size
        self.fc = nn.ModuleList(nn.Linear(self.sizes[-1] if k == 0 else fc_size, fc_size)
                                for k in range(cfg.fc_layers))
        out_dim = fc_size if cfg.fc_layers else self.sizes[-1]
        self.decoder = make_output(out_dim, vocab_size, cfg.adaptive_cutoffs)
        # training with activation regularisation (AR/TAR) sets this: forward then keeps the last recurrent
        # layer's output before and after dropout in ``activations`` for the step's penalty
        self.record_activations = False
        self.activations: tuple[Tensor, Tensor] | None = None
        self.init_weights()
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight

    def init_weights(self) -> None:
        a = self.cfg.init_range
        if a > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -a, a)
        f = self.cell.forget_gate
        if f is not None and self.cfg.forget_bias:
            for layer, H in zip(self.layers, self.sizes):
                layer.bias_ih_l0.data[f * H:(f + 1) * H] = self.cfg.forget_bias
                layer.bias_hh_l0.data[f * H:(f + 1) * H] = 0.0

    def init_state(self, batch_size: int, device=None):
        """Zero state: a list with one entry per layer ((h, c) for LSTMs), each (1, B, H of that layer)."""
        dtype = self.embedding.weight.dtype
        z = lambda H: torch.zeros(1, batch_size, H, device=device, dtype=dtype)  # noqa: E731
        return [(z(H), z(H)) if self.cell.paired else z(H) for H in self.sizes]

    @staticmethod
    def detach_state(state):
        return [tuple(s.detach() for s in st) if isinstance(st, tuple) else st.detach() for st in state]

    def embed(self, tokens: Tensor) -> Tensor:
        weight = self.embedding.weight
        p = self.cfg.word_dropout
        if self.training and p > 0:
            keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
            weight = weight * keep
        return nn.functional.embedding(tokens, weight)

    @property
    def can_stack(self) -> bool:
        """Whether the layers can run as one multi-layer cuDNN call (fused backend, equal widths, dropout
        between layers not locked): cuDNN then overlaps the layers' time steps, which one call per layer
        cannot."""
        c = self.cfg
        return (self.backend == "fused" and c.num_layers > 1 and not (c.variational and c.dropout > 0)
                and len(set(self.sizes)) == 1)

    def run_stack(self, x: Tensor, state):
        """All layers in one call of the fused kernel (the function ``nn.LSTM/GRU/RNN`` call), with this
        model's weights (DropConnect applied as in :meth:`run_layer`) and its dropout between layers."""
        p = self.cfg.weight_drop if self.training else 0.0
        weights = []
        for layer in self.layers:
            w_hh = drop_connect(layer.weight_hh_l0, p) if p > 0 else layer.weight_hh_l0
            weights += [layer.weight_ih_l0, w_hh, layer.bias_ih_l0, layer.bias_hh_l0]
        drop = self.cfg.dropout if self.training else 0.0
        args = (weights, True, len(self.layers), drop, self.training, False, True)
        fn = getattr(torch._VF, self.cell.stack)
        if self.cell.paired:
            h0 = torch.cat([st[0] for st in state])  # (L, B, H)
            c0 = torch.cat([st[1] for st in state])
            out, h, c = fn(x, (h0, c0), *args)
            return out, [(h[k:k + 1], c[k:k + 1]) for k in range(len(self.layers))]
        out, h = fn(x, torch.cat(state), *args)
        return out, [h[k:k + 1] for k in range(len(self.layers))]

    def run_layer(self, layer: nn.Module, x: Tensor, state):
        """One recurrent layer; in training with ``weight_drop``, DropConnect on its hidden-to-hidden
        weights (Wan et al. 2013; Merity et al. 2018): one mask per forward call, so the same dropped
        weights at every time step.  The dropped matrix is passed through ``torch.func.functional_call``
        (the module's own parameter stays intact; no monkey-patching), which works for both backends."""
        p = self.cfg.weight_drop
        if not self.training or p == 0:
            return layer(x, state)
        return torch.func.functional_call(layer, {"weight_hh_l0": drop_connect(layer.weight_hh_l0, p)}, (x, state))

    def features(self, tokens: Tensor, state=None):
        """What the output layer reads at each position (B, T, d): the last recurrent layer's output (or the
        last fully connected layer's), after dropout; and the new state."""
        if state is None:
            state = self.init_state(tokens.shape[0], tokens.device)
        x = self.embedding_drop(self.embed(tokens))  # (B, T, E)
        if x.is_cuda and self.can_stack:
            raw, new_state = self.run_stack(x, state)
            x = self.drop(raw)
        else:
            new_state = []
            for layer, st in zip(self.layers, state):
                raw, st = self.run_layer(layer, x, st)  # (B, T, H)
                x = self.drop(raw)
                new_state.append(st)
        if self.record_activations and self.training:
            self.activations = (raw, x)
        for fc in self.fc:
            x = self.drop(torch.relu(fc(x)))
        return x, new_state

