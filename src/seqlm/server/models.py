"""The served models: each with its prefix cache, a lock (one request at a time per model, while
concurrent suggestions share one batched step) and a sorted word list for completions; and the names
models are served under."""

from __future__ import annotations

import bisect
import threading
import time
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel
from seqlm.server.cache import PrefixCache
from seqlm.tasks.generate import top_ids
from seqlm.text.vocab import SPECIALS


class Served:
    """One served model: its name, the model, its prefix cache, a lock (one request at a time per model),
    and a sorted word list for completions."""

    def __init__(self, name: str, path: str, model: LanguageModel, cache_size: int):
        self.name, self.path, self.model = name, path, model
        self.cache = PrefixCache(model, cache_size)
        self.lock = threading.Lock()
        # suggestions are batched when the model steps a batch at once (neural models)
        self.batching = type(model).advance_many is not LanguageModel.advance_many
        self.waiting: list = []  # (state, token, future) of the requests waiting for the next batched step
        self.batches = self.batched = 0
        vocab = model.vocab
        words = [(w, i) for i, w in enumerate(vocab.itos) if w not in SPECIALS]
        words.sort()
        self.sorted_words = [w for w, _ in words]
        self.sorted_ids = np.array([i for _, i in words], dtype=np.int64)

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "level": self.model.vocab.tokenizer.level,
                "vocab_size": len(self.model.vocab), "description": self.model.describe()}

    def completions(self, partial: str) -> np.ndarray:
        """Ids of the vocabulary words that start with ``partial``."""
        lo = bisect.bisect_left(self.sorted_words, partial)
        hi = bisect.bisect_left(self.sorted_words, partial + "\U0010ffff")
        return self.sorted_ids[lo:hi]

    def _context(self, text: str) -> tuple[list[str], str]:
        """The tokens before the one to suggest, and the partly typed word (word level, no space after it)."""
        tok = self.model.vocab.tokenizer
        tokens = tok.tokenize(text)
        partial = ""
        if tok.level == "word" and tokens and text and not text[-1].isspace():
            partial, tokens = tokens[-1], tokens[:-1]
        return tokens, partial

    def suggest(self, text: str, k: int, allow_unk: bool) -> dict:
        tokens, partial = self._context(text)
        t0 = time.perf_counter()
        with self.lock:
            state, reused = self.cache.state(self.model.vocab.encode(tokens))
            logp = np.asarray(self.model.next_logprobs(state), dtype=np.float64)
        return self._answer(text, k, allow_unk, tokens, partial, reused, logp, t0)

    async def suggest_batched(self, text: str, k: int, allow_unk: bool) -> dict:
        """:meth:`suggest`, where the model's last step joins the steps of the other requests waiting in the
        event loop (one batched step for all: see ``advance_many``).  Typing adds one token to a cached
        prefix, so under load most requests cost a share of one batched step."""
        import asyncio

        tokens, partial = self._context(text)
        t0 = time.perf_counter()
        ids = [int(i) for i in self.model.vocab.encode(tokens)]
        with self.lock:
            state, reused, key = self.cache.lookup(ids)
            state = self.model.advance_tokens(state, ids[reused:-1])  # all but the last new token (typing: none)
        if reused < len(ids):
            future = asyncio.get_running_loop().create_future()
            self.waiting.append((state, ids[-1], future))
            if len(self.waiting) == 1:  # after the requests already queued in this turn of the loop
                asyncio.get_running_loop().call_soon(self._flush)
            state = await future
            self.cache.insert(key, ids, state, reused)
        with self.lock:
            logp = np.asarray(self.model.next_logprobs(state), dtype=np.float64)
        return self._answer(text, k, allow_unk, tokens, partial, reused, logp, t0)

    def _flush(self) -> None:
        batch, self.waiting = self.waiting, []
        try:
            with self.lock:
                states = self.model.advance_many([b[0] for b in batch], [b[1] for b in batch])
        except Exception as e:  # every waiting request gets the error (the handler turns it into an answer)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        self.batches += 1
        self.batched += len(batch)
        for (_, _, future), state in zip(batch, states):
            if not future.done():
                future.set_result(state)

    def _answer(self, text, k, allow_unk, tokens, partial, reused, logp, t0) -> dict:
        vocab = self.model.vocab
        if not partial:  # the whole vocabulary less <s> (and <unk>)
            ids = top_ids(logp, k, allow_unk)
        else:  # the words that complete the partial one
            candidates = self.completions(partial)
            scores = logp[candidates]
            top = np.argsort(-scores, kind="stable")[:k]
            ids = candidates[top][np.isfinite(scores[top])]
        return {"model": self.name, "text": text, "context_tokens": len(tokens), "cached_tokens": reused,
                "partial": partial, "suggestions": [{"token": vocab.itos[i], "prob": float(np.exp(logp[i])),
                                                     "log_prob": float(logp[i])} for i in ids],
                "seconds": round(time.perf_counter() - t0, 6)}


def model_names(paths: list[str]) -> list[tuple[str, str]]:
    """``NAME=PATH`` or ``PATH`` (named after its folder or file); names must be unique."""
    out, seen = [], set()
    for item in paths:
        name, sep, path = item.partition("=")
        if not sep:
            path = item
            p = Path(item.rstrip("/"))
            name = p.name if p.name != "model" else p.parent.name
            name = name.removesuffix(".gz").removesuffix(".arpa")
        if not name or name in seen:
            raise SeqlmError(f"two served models are named {name!r}: name them, e.g. kn=runs/kn5 lstm=runs/lstm")
        seen.add(name)
        out.append((name, path))
    return out
