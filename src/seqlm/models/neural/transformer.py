"""Decoder-only Transformer LM: pre-LayerNorm blocks of causal self-attention and a feed-forward layer, rotary
positions, tied embeddings and the adaptive softmax option, in the harness of every other neural kind.

Every token attends to itself and the ``model.context`` tokens before it, and no further, whatever the batch: in
each layer, a position's keys and values come from that layer's input at those positions.  The state carried
from one batch to the next (as a recurrent state is) is each layer's input at the last ``context`` positions
and how many of those are filled (a text's first tokens have fewer before them), a fixed shape, so a text read
in chunks, read whole, or read one token at a time (a decoder's step, the server's suggestions: a cache of the
layer inputs, from which keys and values are recomputed) gives the same numbers, and stream evaluation is a
sliding window in which every token sees up to ``context`` tokens of history.  Through the layers the reach
grows (layer l sees l x context tokens back), as in Transformer-XL.

Positions are rotary (RoPE, Su et al. 2021): attention depends only on the distance between two tokens, which
is what a window sliding over a stream needs (absolute positions would change meaning as the window moves);
learned absolute positions would also tie the model to one window length.

Input: token ids (B, T) and the state (a tuple: one (B, context, d) tensor per layer, then the (B, 1) count of
filled positions; None: empty); output: logits (B, T, V) (or ln p of ``targets`` with the adaptive softmax) and
the new state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqlm.config import ModelConfig
from seqlm.errors import SeqlmError
from seqlm.models.neural.output import FeatureLM, make_output
from seqlm.models.neural.recurrent import SequenceDropout

DEFAULT_CONTEXT = 64  # model.context when a recipe leaves it unset


def rotary(x: Tensor, positions: Tensor) -> Tensor:
    """``x`` (B, H, T, D) with each pair of its first 2*(D//2) dimensions rotated by angle position * theta_i
    (theta_i = 10000^(-2i/D)); an odd last dimension is left as it is."""
    half = x.shape[-1] // 2
    if half == 0:
        return x
    theta = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = positions.to(torch.float32)[:, None] * theta[None, :]  # (T, half)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos, rest], dim=-1)


class Block(nn.Module):
    """x + attention(LN(x)) then x + MLP(LN(x)); keys and values over [memory; x]."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        # explicit masks (recurrent.SequenceDropout), so that under torchrun each rank keeps its rows of the
        # global batch's masks and two processes take the steps of one (as the recurrent kinds do)
        self.drop = SequenceDropout(dropout, locked=False)
        self.attention_drop = SequenceDropout(dropout, locked=False)

    def forward(self, x: Tensor, memory: Tensor, valid: Tensor) -> Tensor:
        """``x`` (B, T, d) after the block, its keys and values over [memory (B, C, d); x]; ``valid``: which
        key each query may see (B, 1, T, C + T)."""
        B, T, d = x.shape
        C = memory.shape[1]
        h = self.ln1(torch.cat([memory, x], dim=1))  # (B, C + T, d)
        q, k, v = self.qkv(h).split(d, dim=-1)
        q = q[:, C:]

        def heads(t: Tensor) -> Tensor:
            return t.view(B, t.shape[1], self.heads, d // self.heads).transpose(1, 2)

        q, k, v = heads(q), heads(k), heads(v)
        positions = torch.arange(C + T, device=x.device)
        q, k = rotary(q, positions[C:]), rotary(k, positions)
        if self.training and self.attention_drop.p > 0:
            # dropout on the attention weights, with its mask drawn as every other (SDPA's own dropout draws
            # per process, which no second process could repeat): the weights written out, then dropped
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
            att = self.attention_drop(weights) @ v
        else:
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=valid)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, T, d)))
        return x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(x))))))


class TransformerLM(FeatureLM):
    graphable = False  # the state grows over the first steps: no fixed shapes for CUDA graphs

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        d = cfg.embedding_dim
        if d % cfg.heads:
            raise SeqlmError(f"model.embedding_dim ({d}) must be a multiple of model.heads ({cfg.heads})")
        self.cfg = cfg
        self.kind = "transformer"
        self.state_batch_dim = 0  # each layer's memory is (B, M, d)
        self.context = cfg.context or DEFAULT_CONTEXT
        self.embedding = nn.Embedding(vocab_size, d)
        self.embedding_drop = SequenceDropout(cfg.embedding_dropout, locked=False)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.hidden_size, cfg.dropout) for _ in range(cfg.num_layers))
        self.ln = nn.LayerNorm(d)
        self.decoder = make_output(d, vocab_size, cfg.adaptive_cutoffs)
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.normal_(p, 0.0, 0.02)  # GPT-2's; model.init_range (the recurrent kinds') does not apply
                if name.endswith(("proj.weight", "ff2.weight")):  # residual outputs scaled by depth (GPT-2)
                    p.data /= math.sqrt(2 * max(cfg.num_layers, 1))
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight

    def init_state(self, batch_size: int, device=None) -> tuple[Tensor, ...]:
        d = self.embedding.weight.shape[1]
        memories = tuple(torch.zeros(batch_size, self.context, d, device=device) for _ in self.blocks)
        return memories + (torch.zeros(batch_size, 1, dtype=torch.long, device=device),)

    @staticmethod
    def detach_state(state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(m.detach() for m in state)

    def features(self, tokens: Tensor, state=None):
        """The final LayerNorm's output at each position (B, T, d) and the new state."""
        B, T = tokens.shape
        if state is None:
            state = self.init_state(B, tokens.device)
        *memories, filled = state
        C = self.context
        # query i (at C + i) sees keys j with i <= j <= C + i (itself and the context before it), of which the
        # memory slots j < C only where filled (the last ``filled`` of them)
        j = torch.arange(C + T, device=tokens.device)
        i = torch.arange(T, device=tokens.device)[:, None]
        band = (j[None, :] >= i) & (j[None, :] <= C + i)  # (T, C + T)
        filled_ok = (j[None, :] >= C - filled) | (j[None, :] >= C)  # (B, C + T)
        valid = (band[None] & filled_ok[:, None, :])[:, None]  # (B, 1, T, C + T)
        x = self.embedding_drop(self.embedding(tokens))
        new_state = []
        for block, memory in zip(self.blocks, memories):
            memory = memory.to(x.dtype)
            new_state.append(torch.cat([memory, x], dim=1)[:, -C:])
            x = block(x, memory, valid)
        return self.ln(x), tuple(new_state) + (torch.clamp(filled + T, max=C),)
