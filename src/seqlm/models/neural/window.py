"""Fixed-window neural LM (Bengio et al. 2003, "A Neural Probabilistic Language Model"):
the n-1 previous tokens' embeddings, concatenated -> tanh hidden layer(s) -> softmax over the vocabulary.

Same interface as the recurrent LM: ``forward(tokens (B, T), state) -> (logits (B, T, V), state)``;
the state is the last n-1 token ids of each row (B, n-1), initially ``</s>`` (the start-of-text context).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqlm.config import ModelConfig
from seqlm.models.neural.output import FeatureLM, make_output
from seqlm.models.neural.recurrent import SequenceDropout
from seqlm.text.vocab import EOS_ID


class WindowLM(FeatureLM):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.kind = "window"
        self.state_batch_dim = 0  # the state is (B, n-1)
        self.n_ctx = cfg.context or 4
        self.embedding = nn.Embedding(vocab_size, cfg.embedding_dim)
        sizes = [self.n_ctx * cfg.embedding_dim] + [cfg.hidden_size] * cfg.num_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.drop = SequenceDropout(cfg.dropout, locked=False)
        self.embedding_drop = SequenceDropout(cfg.embedding_dropout, locked=False)
        self.decoder = make_output(cfg.hidden_size, vocab_size, cfg.adaptive_cutoffs)
        if cfg.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        if cfg.tie_weights:
            self.decoder.weight = self.embedding.weight

    def init_state(self, batch_size: int, device=None) -> Tensor:
        return torch.full((batch_size, self.n_ctx), EOS_ID, dtype=torch.long, device=device)

    @staticmethod
    def detach_state(state: Tensor) -> Tensor:
        return state

    def features(self, tokens: Tensor, state: Tensor | None = None):
        """The last hidden layer's output at each position (B, T, d) and the new state."""
        B, T = tokens.shape
        if state is None:
            state = self.init_state(B, tokens.device)
        ctx = torch.cat([state, tokens], dim=1)  # (B, n-1 + T)
        windows = ctx.unfold(1, self.n_ctx, 1)[:, 1:]  # (B, T, n-1): the tokens before each target
        # windows[:, t] ends with tokens[:, t]: the context for predicting the token after it
        x = self.embedding_drop(self.embedding(windows)).flatten(2)  # (B, T, (n-1) E)
        for layer in self.hidden:
            x = self.drop(torch.tanh(layer(x)))
        return x, ctx[:, -self.n_ctx:]
