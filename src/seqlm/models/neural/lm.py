"""NeuralLM: a torch module (recurrent or fixed-window) behind the LanguageModel interface.

Neural models read ``</s>`` as the start-of-text context (the token that separates sentences in the
training stream, as in Mikolov's and Zaremba's setups); ``<s>`` is never an input.  In stream mode the
whole text is one sequence, scored in chunks of ``eval_chunk`` tokens with the state carried, so the
result does not depend on the chunk size; in sentence mode lines are independent and scored in padded
batches.  Scoring runs in fp32 without autograd.

Saved as a folder: ``config.json`` (kind, constructor arguments, training config, the SHA-256 of the
weights), ``vocab.json`` and ``model.safetensors`` (loading never unpickles).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from seqlm.config import ModelConfig
from seqlm.errors import SeqlmError
from seqlm.io.files import atomic_dir, write_config
from seqlm.io.runtime import Progress, resolve_device
from seqlm.models.interface import LanguageModel, State, check_mode
from seqlm.models.neural.output import is_adaptive
from seqlm.text.encode import join_with_eos
from seqlm.text.vocab import BOS_ID, EOS_ID, Vocab

FORMAT = "seqlm-neural-1"
PROGRESS_FROM = 50_000  # tokens: a stream this long shows a progress bar while it is scored


def build_module(cfg: ModelConfig, vocab_size: int) -> torch.nn.Module:
    """The kind's module, from the table of kinds."""
    from seqlm.kinds import builder

    return builder(cfg.kind)(cfg, vocab_size)


class NeuralLM(LanguageModel):
    kind = "neural"

    def __init__(self, vocab: Vocab, module: torch.nn.Module, config: dict | None = None, eval_chunk: int = 2048):
        self.vocab = vocab
        self.module = module
        self.config = dict(config or {})
        self.eval_chunk = eval_chunk

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    # -- single steps -----------------------------------------------------------------------------
    @torch.no_grad()
    def _step(self, hidden, token: int):
        self.module.eval()
        x = torch.tensor([[token]], device=self.device)
        logits, hidden = self.module(x, hidden)
        return hidden, log_softmax(logits[0, -1]).double().cpu().numpy()

    def start(self) -> State:
        return self._step(None, EOS_ID)

    def advance(self, state: State, token: int) -> State:
        return self._step(state[0], int(token))

    def next_logprobs(self, state: State) -> np.ndarray:
        return state[1]

    @torch.no_grad()
    def advance_tokens(self, state: State, tokens) -> State:
        """The state after ``tokens``, read by one forward pass over the sequence (not one step each)."""
        tokens = [int(t) for t in tokens]
        if len(tokens) < 2:
            return self.advance(state, tokens[0]) if tokens else state
        self.module.eval()
        features, hidden = self.module(torch.tensor([tokens], device=self.device), state[0], features_only=True)
        logits = self.module.decoder(features[:, -1:])  # the output layer at the last position only
        return hidden, log_softmax(logits[0, -1]).double().cpu().numpy()

    @torch.no_grad()
    def advance_many(self, states, tokens) -> list:
        """One batched step for several states (the suggestions of concurrent requests): the states' hidden
        tensors are stacked along the module's batch dimension, stepped once, and split again."""
        dim = getattr(self.module, "state_batch_dim", None)
        if len(states) < 2 or dim is None or any(s[0] is None for s in states):
            return [self.advance(s, t) for s, t in zip(states, tokens)]
        self.module.eval()
        x = torch.tensor([[int(t)] for t in tokens], device=self.device)
        logits, hidden = self.module(x, _stack([s[0] for s in states], dim))
        logp = log_softmax(logits[:, -1]).double().cpu().numpy()
        return [(_row(hidden, i, dim), logp[i]) for i in range(len(states))]

    # -- batched scoring --------------------------------------------------------------------------
    @torch.no_grad()
    def score_lines(self, lines, mode="sentence", state=None):
        check_mode(mode)
        self.module.eval()
        if mode == "stream":
            return self._score_stream(lines, state)
        return self._score_sentences(lines), None

    def _score_stream(self, lines, state):
        """One sequence: [prev] + tokens; the state is (hidden, last token read)."""
        seq = join_with_eos(lines)
        hidden, prev = (None, EOS_ID) if state is None else state
        inputs = torch.from_numpy(np.concatenate([[prev], seq[:-1]])).to(self.device) if len(seq) else None
        targets = torch.from_numpy(seq).to(self.device)
        out = []
        bar = Progress(len(seq), "evaluating", unit="tok") if len(seq) > PROGRESS_FROM else None
        for i in range(0, len(seq), self.eval_chunk):
            x = inputs[i:i + self.eval_chunk][None]
            lp, hidden = self.target_logprobs(x, hidden, targets[i:i + self.eval_chunk][None])
            out.append(lp[0])
            if bar:
                bar.update(len(x[0]))
        if bar:
            bar.close()
        flat = torch.cat(out).double().cpu().numpy() if out else np.zeros(0)
        return flat, (hidden, int(seq[-1]) if len(seq) else prev)

    def target_logprobs(self, x, hidden, y):
        """ln p of each target (B, T), fp32, and the new state; an adaptive output computes only the
        targets' clusters."""
        if is_adaptive(self.module):
            lp, hidden = self.module(x, hidden, targets=y)
            return lp.float(), hidden
        logits, hidden = self.module(x, hidden)
        return _gather(logits.flatten(0, 1), y.flatten()).view(y.shape), hidden

    def _score_sentences(self, lines):
        # padded batches of at most ~32M logits (128 MB in fp32), at most 16384 tokens
        max_tokens = min(16384, max(256, (1 << 25) // len(self.vocab)))
        lengths = np.array([len(x) + 1 for x in lines], dtype=np.int64)
        result = np.zeros(int(lengths.sum()))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = np.argsort(-lengths, kind="stable")
        i = 0
        while i < len(order):
            width = int(lengths[order[i]])
            rows = max(1, max_tokens // width)
            batch = order[i:i + rows]
            x = np.full((len(batch), width), EOS_ID, dtype=np.int64)
            y = np.full((len(batch), width), EOS_ID, dtype=np.int64)
            for r, j in enumerate(batch):
                line = np.asarray(lines[j], dtype=np.int64)
                x[r, 1:len(line) + 1] = line
                y[r, :len(line)] = line
            lp, _ = self.target_logprobs(torch.from_numpy(x).to(self.device), None,
                                          torch.from_numpy(y).to(self.device))
            lp = lp.double().cpu().numpy()
            for r, j in enumerate(batch):
                result[offsets[j]:offsets[j] + lengths[j]] = lp[r, :lengths[j]]
            i += len(batch)
        return result

    # -- persistence --------------------------------------------------------------------------------
    def describe(self) -> dict:
        m = self.config.get("model", {})
        n_params = sum(p.numel() for p in {id(p): p for p in self.module.parameters()}.values())
        return {"kind": m.get("kind", self.module.kind), "backend": m.get("backend"), "vocab_size": len(self.vocab),
                "hidden_size": m.get("hidden_size"), "num_layers": m.get("num_layers"), "parameters": n_params}

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from safetensors.torch import save_model

        config = dict(self.config)
        config.update(extra or {})
        config.update(kind=self.kind, format=FORMAT)
        # a CPU copy: on CUDA the fused RNN weights are views into one flat buffer, which safetensors
        # refuses to save as shared storage (tied weights stay tied in the copy, and are stored once)
        module = copy.deepcopy(self.module).cpu() if self.device.type != "cpu" else self.module
        with atomic_dir(path) as tmp:
            save_model(module, str(tmp / "model.safetensors"))
            self.vocab.save(tmp / "vocab.json")
            write_config(tmp, config)

    @classmethod
    def load(cls, path: str | Path, config: dict, device: str | torch.device = "cpu") -> "NeuralLM":
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        if isinstance(device, str):
            device = resolve_device(device)
        path = Path(path)
        vocab = Vocab.load(path / "vocab.json")
        mcfg = _model_config(path, config)
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise SeqlmError(f"{weights} is missing: the model folder is incomplete, retrain or copy it again")
        module = build_module(mcfg, len(vocab))
        try:
            missing, unexpected = load_model(module, str(weights), strict=False)
        except SafetensorError as e:
            raise SeqlmError(f"{weights} is damaged ({e}): copy the model folder again or retrain") from None
        except RuntimeError as e:
            shape = module.embedding.weight.shape[0]
            raise SeqlmError(f"{weights} does not fit this vocabulary/config ({shape} tokens in vocab.json): "
                             f"the checkpoint comes from another vocabulary or model; use its own folder "
                             f"({str(e).splitlines()[0][:120]})") from None
        if missing or unexpected:
            raise SeqlmError(f"{weights} has other tensors than the config describes (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}): use the folder's own config.json")
        module.to(device)
        return cls(vocab, module, config, eval_chunk=config.get("train", {}).get("eval_chunk", 2048))


def _model_config(path: Path, config: dict) -> ModelConfig:
    """The model section of a saved config, typed and checked as a recipe's would be."""
    from seqlm import kinds
    from seqlm.config import RunConfig, apply

    section = config.get("model")
    if not isinstance(section, dict):
        raise SeqlmError(f"{path}/config.json has no model section: retrain the model")
    cfg = RunConfig()
    try:
        for key, value in section.items():
            apply(cfg, "model", key, value)
        kind = kinds.get(cfg.model.kind)
        if kind.family != "neural":
            raise SeqlmError(f"{kind.name} is not a neural kind")
        cfg.check_neural(kind)
    except SeqlmError as e:
        raise SeqlmError(f"{path}/config.json: {e}; restore the file or retrain the model") from None
    return cfg.model


def _stack(states: list, dim: int):
    """States of batch 1 (tensors, or lists/tuples of them) joined along ``dim``, keeping the structure."""
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(states, dim=dim)
    return type(first)(_stack([s[j] for s in states], dim) for j in range(len(first)))


def _row(state, i: int, dim: int):
    """Row ``i`` of a batched state (a batch-1 state, compact: not a view of the batch)."""
    if isinstance(state, torch.Tensor):
        return state.narrow(dim, i, 1).clone()
    return type(state)(_row(s, i, dim) for s in state)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """ln-probabilities over the vocabulary less ``<s>`` (which is never predicted), in fp32."""
    logits = logits.float().clone()
    logits[..., BOS_ID] = -torch.inf
    return torch.log_softmax(logits, dim=-1)


def _gather(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ln p(target) from (N, V) logits."""
    return log_softmax(logits).gather(1, targets[:, None])[:, 0]

