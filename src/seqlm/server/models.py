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
from seqlm.text.subword import BYTE_PIECE, SPACE, SUBWORD
from seqlm.text.vocab import EOS_ID, SPECIALS

MAX_PIECES = 8  # a suggested word is at most this many subword pieces
MAX_SYMBOLS = 24  # ... or this many characters or bytes
WORD_LEVELS = SUBWORD + ("char", "byte")  # the levels whose suggestions are whole words built from their tokens


class Served:
    """One served model: its name, the model, its prefix cache, a lock (one request at a time per model),
    and a sorted word list for completions."""

    def __init__(self, name: str, path: str, model: LanguageModel, cache_size: int):
        self.name, self.path, self.model = name, path, model
        self.cache = PrefixCache(model, cache_size)
        self.lock = threading.Lock()
        self._piece_table = None  # subword models: see _pieces
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
        """The tokens before the one to suggest, and the partly typed word (no space after it); at character and
        byte level the context ends with its space (the tokenizer drops a trailing one), so the model is at a
        word's start."""
        tok = self.model.vocab.tokenizer
        if tok.level in WORD_LEVELS:
            partial = text.split()[-1] if text.split() and not text[-1].isspace() else ""
            tokens = tok.tokenize(text[:len(text) - len(partial)])
            if tok.level in ("char", "byte") and tokens:
                tokens.append(SPACE)
            return tokens, partial
        tokens = tok.tokenize(text)
        partial = ""
        if tok.level == "word" and tokens and text and not text[-1].isspace():
            partial, tokens = tokens[-1], tokens[:-1]
        return tokens, partial

    def _pieces(self):
        """What a suggested word is made of, per token of the vocabulary: its text as UTF-8 bytes (a byte piece's
        byte), whether it may be a word's first token, whether a later one, and whether it ends the word before
        it.  Subword pieces: a word is a piece that begins with ``▁`` and pieces that do not (byte pieces among
        them), ended by the next word's first piece or the line's end.  Characters and bytes: a word is a run of
        tokens other than the space, ended by the space or the line's end."""
        if self._piece_table is None:
            itos = self.model.vocab.itos
            texts = []
            for w in itos:
                m = BYTE_PIECE.fullmatch(w)
                texts.append(bytes([int(m.group(1), 16)]) if m else w.removeprefix(SPACE).encode("utf-8"))
            special = np.array([w in SPECIALS for w in itos])
            if self.model.vocab.tokenizer.level in SUBWORD:
                begins = np.array([w.startswith(SPACE) for w in itos])
                first, later, ends = begins & ~special, ~begins & ~special, begins.copy()
            else:
                space = np.array([w == SPACE for w in itos])
                first = later = ~space & ~special
                ends = space.copy()
            ends[EOS_ID] = True
            self._piece_table = texts, first, later, ends
        return self._piece_table

    def words(self, state, logp: np.ndarray, partial: str, k: int) -> list[tuple[str, float, list[int]]]:
        """Whole words from a subword, character or byte model, built token by token by a beam search from
        ``state`` (:meth:`_pieces` says what a word is made of): it ends where the model's next token ends it, so
        its log-probability is that of its tokens plus that of ending there.  Only words that start with
        ``partial`` and are whole UTF-8 text; the ``k`` most probable, as (word, log p, token ids)."""
        texts, first, later, ends = self._pieces()
        level = self.model.vocab.tokenizer.level
        longest = MAX_PIECES if level in SUBWORD else MAX_SYMBOLS
        typed = partial.encode("utf-8")
        width = max(2 * k, 8)
        beam = [(0.0, state, b"", [], logp)]
        found: dict[str, tuple[float, list[int]]] = {}
        for _ in range(longest):
            grown = []
            for score, st, word, ids, lp in beam:
                if ids and word.startswith(typed):  # the word may end here
                    try:
                        text = word.decode("utf-8")
                    except UnicodeDecodeError:  # a character not finished yet
                        text = None
                    end = score + float(np.logaddexp.reduce(lp[ends]))
                    if text is not None and end > found.get(text, (-np.inf,))[0]:
                        found[text] = (end, ids)
                allowed = np.flatnonzero((later if ids else first) & np.isfinite(lp))
                rest = typed[len(word):]
                if rest:  # tokens consistent with what is still to type
                    allowed = np.array([i for i in allowed if texts[i] and (texts[i].startswith(rest) or
                                                                            rest.startswith(texts[i]))], dtype=np.int64)
                for i in allowed[np.argsort(-lp[allowed], kind="stable")[:width]]:
                    grown.append((score + float(lp[i]), st, word + texts[i], ids + [int(i)]))
            kth = sorted((v[0] for v in found.values()), reverse=True)[k - 1] if len(found) >= k else -np.inf
            grown = sorted((g for g in grown if g[0] > kth), key=lambda g: -g[0])[:width]  # no better word below
            if not grown:
                break
            states = self.model.advance_many([g[1] for g in grown], [g[3][-1] for g in grown])
            beam = [(g[0], s, g[2], g[3], np.asarray(self.model.next_logprobs(s), dtype=np.float64))
                    for g, s in zip(grown, states)]
        best = sorted(found.items(), key=lambda item: -item[1][0])[:k]
        return [(w, score, ids) for w, (score, ids) in best]

    def suggest(self, text: str, k: int, allow_unk: bool) -> dict:
        tokens, partial = self._context(text)
        t0 = time.perf_counter()
        with self.lock:
            state, reused = self.cache.state(self.model.vocab.encode(tokens))
            logp = np.asarray(self.model.next_logprobs(state), dtype=np.float64)
            if self.model.vocab.tokenizer.level in WORD_LEVELS:
                return self._word_answer(text, k, tokens, partial, reused, state, logp, t0)
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
            if self.model.vocab.tokenizer.level in WORD_LEVELS:
                return self._word_answer(text, k, tokens, partial, reused, state, logp, t0)
        return self._answer(text, k, allow_unk, tokens, partial, reused, logp, t0)

    def _word_answer(self, text, k, tokens, partial, reused, state, logp, t0) -> dict:
        """A subword, character or byte model's suggestions: whole words (:meth:`words`), each with the tokens
        it is made of."""
        vocab = self.model.vocab
        found = self.words(state, logp, partial, k)
        return {"model": self.name, "text": text, "context_tokens": len(tokens), "cached_tokens": reused,
                "partial": partial, "suggestions": [{"token": w, "prob": float(np.exp(lp)), "log_prob": float(lp),
                                                     "pieces": [vocab.itos[i] for i in ids]} for w, lp, ids in found],
                "seconds": round(time.perf_counter() - t0, 6)}

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
