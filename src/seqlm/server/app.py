"""``seqlm serve``: models behind an HTTP JSON API and a typing page (FastAPI + uvicorn: the ``serve`` extra).

Endpoints (JSON in and out; the OpenAPI page is at ``/docs``):

    GET  /                the typing page (plain HTML/CSS/JS shipped in the package)
    GET  /v1/health       {"status": "ok", ...}
    GET  /v1/models       the served models and their descriptions
    POST /v1/suggest      next-token suggestions for a text, or completions of its partly typed last word
    POST /v1/score        per line / per token / corpus log-probabilities (the shapes of ``seqlm score --json``)
    POST /v1/generate     samples continuing a prompt
    POST /v1/evaluate     perplexity of a posted text

Typing extends the previous request's text, so suggestions must not re-read the whole text: each model keeps
a bounded LRU of its states by token prefix (:class:`PrefixCache`); a request starts from the longest cached
prefix of its tokens and reads only the rest.

A client's mistake (malformed JSON, wrong types, out-of-range numbers, an unknown model, a body over the size
limit, non-UTF-8 bytes, an empty text) is a 4xx answer with ``{"error": ...}`` naming the fix; nothing a
client sends makes the server answer 5xx or stop.
"""

import bisect
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from seqlm.errors import SeqlmError
from seqlm.models.interface import LanguageModel
from seqlm.text.vocab import BOS_ID, SPECIALS, UNK_ID

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes
MAX_TEXT = 200_000  # characters of one text field
# prefix hashes: h_L = sum_j (id_j + 1) P^(L-1-j) mod M, all L at once with int64 arithmetic (M < 2^31, so
# every product of two residues fits); a hit is confirmed by comparing the ids, so a collision only costs a miss
_P, _M = 1_000_003, (1 << 31) - 1
_P_INV = pow(_P, -1, _M)
_powers: list = [np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64)]  # P^i and P^-i mod M, grown on use


class PrefixCache:
    """A bounded LRU of a model's states after ``<s>`` + a prefix of token ids.  ``state(ids)`` starts from
    the longest cached prefix of ``ids`` (found by prefix hashes, confirmed by comparing the ids) and reads
    only the remaining tokens; the state after all of ``ids`` is then cached."""

    def __init__(self, model: LanguageModel, capacity: int = 1024):
        self.model, self.capacity = model, capacity
        self.entries: OrderedDict = OrderedDict()  # (length, hash) -> (ids tuple, state)
        self.start_state = None
        self.hits = self.misses = 0

    def state(self, ids) -> tuple[object, int]:
        """(the state after ``ids``, how many of them came from the cache)."""
        ids = [int(i) for i in ids]
        state, start, key = self.lookup(ids)
        state = self.model.advance_tokens(state, ids[start:])
        self.insert(key, ids, state, start)
        return state, start

    def lookup(self, ids: list[int]) -> tuple[object, int, tuple]:
        """The state after the longest cached prefix of ``ids`` (the start state if none), its length, and
        the cache key of ``ids`` itself (for :meth:`insert`)."""
        hashes = _prefix_hashes(ids).tolist()
        key = (len(ids), hashes[-1])
        for n in range(len(ids), -1, -1):
            hit = self.entries.get((n, hashes[n]))
            if hit is not None and hit[0] == tuple(ids[:n]):
                self.entries.move_to_end((n, hashes[n]))
                if n == len(ids):
                    self.hits += 1
                else:
                    self.misses += 1
                return hit[1], n, key
        self.misses += 1
        if self.start_state is None:  # states are values (advance returns a new one): the start state is shared
            self.start_state = self.model.start()
        return self.start_state, 0, key

    def insert(self, key: tuple, ids: list[int], state, start: int) -> None:
        """Cache the state after ``ids`` under ``key`` (unless it came whole from the cache)."""
        if start == len(ids):
            return
        self.entries[key] = (tuple(ids), state)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)


def _prefix_hashes(ids: list[int]) -> np.ndarray:
    """The hash of every prefix of ``ids`` (index L: the first L ids), vectorized."""
    n = len(ids)
    while len(_powers[0]) < n + 1:  # double the tables: base^(m+i) = base^i * base^m
        m = len(_powers[0])
        for k, base in enumerate((_P, _P_INV)):
            _powers[k] = np.concatenate([_powers[k], _powers[k] * pow(base, m, _M) % _M])
    pw, inv = _powers
    out = np.zeros(n + 1, dtype=np.int64)
    if n:
        c = (np.asarray(ids, dtype=np.int64) + 1) * inv[:n] % _M  # (id_j + 1) P^-j
        out[1:] = np.cumsum(c) % _M * pw[:n] % _M  # times P^(L-1)
    return out


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
            masked = logp.copy()
            masked[BOS_ID] = -np.inf
            if not allow_unk:
                masked[UNK_ID] = -np.inf
            order = np.argpartition(-masked, min(k, len(masked) - 1))[:k]
            ids = order[np.argsort(-masked[order], kind="stable")]
            ids = ids[np.isfinite(masked[ids])]
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


def create_app(models: dict[str, LanguageModel], paths: dict[str, str] | None = None, cache_size: int = 1024,
               max_body: int = MAX_BODY):
    """The FastAPI application serving ``models`` (name -> model)."""
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse
        from pydantic import BaseModel, ConfigDict, Field
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise SeqlmError("seqlm serve needs FastAPI and uvicorn: pip install 'seqlm[serve]'") from None
    from seqlm.tasks.evaluate import evaluate
    from seqlm.tasks.generate import generate
    from seqlm.tasks.score import score
    from seqlm.version import __version__

    if not models:
        raise SeqlmError("nothing to serve: give one or more model folders or ARPA files")
    served = {name: Served(name, (paths or {}).get(name, name), m, cache_size) for name, m in models.items()}
    default = next(iter(served))
    app = FastAPI(title="seqlm", version=__version__, description="Language models: suggestions, scores, samples.")

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)

    class SuggestIn(Strict):
        text: str = Field(max_length=MAX_TEXT, description="the text typed so far; a last word not followed by a "
                          "space is completed")
        model: str | None = Field(None, description="a served model's name (default: the first)")
        k: int = Field(5, ge=1, le=100, description="how many suggestions")
        allow_unk: bool = False

    class ScoreIn(Strict):
        lines: list[str] | None = Field(None, max_length=10_000)
        text: str | None = Field(None, max_length=MAX_TEXT)
        model: str | None = None
        per: str = Field("line", pattern="^(line|token|corpus)$")
        mode: str = Field("sentence", pattern="^(sentence|stream)$")

    class GenerateIn(Strict):
        prompt: str = Field("", max_length=MAX_TEXT)
        model: str | None = None
        max_tokens: int = Field(30, ge=1, le=500)
        num: int = Field(1, ge=1, le=20)
        temperature: float = Field(1.0, ge=1e-3, le=1e3)
        top_k: int | None = Field(None, ge=1, le=100_000)
        top_p: float | None = Field(None, gt=0, le=1)
        greedy: bool = False
        seed: int | None = None

    class EvaluateIn(Strict):
        text: str = Field(max_length=MAX_TEXT)
        model: str | None = None
        mode: str = Field("stream", pattern="^(sentence|stream)$")

    def error(status: int, message: str):
        return JSONResponse({"error": message}, status_code=status)

    def pick(name: str | None) -> Served:
        s = served.get(name or default)
        if s is None:
            raise _ClientError(404, f"unknown model {name!r}: served models are {', '.join(served)} (GET /v1/models)")
        return s

    @app.exception_handler(_ClientError)
    async def _client(_, e):
        return error(e.status, e.message)

    @app.exception_handler(SeqlmError)
    async def _seqlm(_, e: SeqlmError):
        return error(422, str(e))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        errs = e.errors()
        if any(x.get("type") == "json_invalid" for x in errs):
            return error(400, "the body is not valid JSON: send a UTF-8 JSON object, e.g. {\"text\": \"the\"}")
        parts = []
        for x in errs[:5]:
            where = ".".join(str(p) for p in x.get("loc", ())[1:]) or "body"
            parts.append(f"{where}: {x.get('msg')}")
        return error(422, "; ".join(parts) + " (see /docs for the request shapes)")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_, e: StarletteHTTPException):
        if e.status_code == 404:
            return error(404, "no such endpoint: see /docs")
        if e.status_code == 400:  # the body could not be parsed at all (e.g. bytes that are not UTF-8)
            return error(400, f"the body is not valid JSON ({e.detail}): send a UTF-8 JSON object, "
                              "e.g. {\"text\": \"the\"}")
        return error(e.status_code, str(e.detail))

    app.add_middleware(BodyLimit, limit=max_body)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        from importlib.resources import files

        return files("seqlm.server").joinpath("web/index.html").read_text(encoding="utf-8")

    @app.get("/v1/health")
    def health():
        return {"status": "ok", "models": len(served), "version": __version__}

    @app.get("/v1/models")
    def list_models():
        return {"default": default, "models": [s.describe() for s in served.values()]}

    @app.post("/v1/suggest")
    async def suggest(req: SuggestIn):
        # in the event loop, no thread hop: a suggestion from a cached prefix takes well under a millisecond,
        # and a neural model's steps for the requests waiting together run as one batch
        s = pick(req.model)
        if s.batching:
            return await s.suggest_batched(req.text, req.k, req.allow_unk)
        return s.suggest(req.text, req.k, req.allow_unk)

    @app.post("/v1/score")
    def score_(req: ScoreIn):
        s = pick(req.model)
        if (req.lines is None) == (req.text is None):
            raise _ClientError(422, "give either lines (a list of strings) or text (one string)")
        lines = req.lines if req.lines is not None else req.text.split("\n")
        if not lines or any(not x.strip() for x in lines):
            raise _ClientError(422, "every line must hold some text: remove empty lines")
        with s.lock:
            rows = score(s.model, lines, per=req.per, mode=req.mode)
        return {"model": s.name, "results": rows}

    @app.post("/v1/generate")
    def generate_(req: GenerateIn):
        s = pick(req.model)
        out = []
        with s.lock:
            for n in range(req.num):
                out.append(generate(s.model, req.prompt, max_tokens=req.max_tokens, temperature=req.temperature,
                                    top_k=req.top_k, top_p=req.top_p, greedy=req.greedy,
                                    seed=None if req.seed is None else req.seed + n))
        return {"model": s.name, "samples": out}

    @app.post("/v1/evaluate")
    def evaluate_(req: EvaluateIn):
        s = pick(req.model)
        lines = [x for x in req.text.split("\n") if x.strip()]
        if not lines:
            raise _ClientError(422, "the text is empty: post some text to evaluate")
        with s.lock:
            r = evaluate(s.model, lines, mode=req.mode)
        return {"model": s.name, **{k: v for k, v in r.items() if k != "model"}}

    app.state.served = served
    return app


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 JSON answer before any endpoint runs
    (by its Content-Length, or counted as it arrives when it has none)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def _refuse(self, send) -> None:
        import json

        body = json.dumps({"error": f"the body is over {self.limit:,} bytes: send less text per request"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = dict(scope.get("headers") or []).get(b"content-length")
        if size is not None:
            if not size.isdigit() or int(size) > self.limit:
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        chunks, total, more = [], 0, True  # no length given: read it all (bounded), then hand it on
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.limit:
                return await self._refuse(send)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class _ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def serve(paths: list[str], host: str = "127.0.0.1", port: int = 8000, cache_size: int = 1024,
                  max_body: int = MAX_BODY) -> None:
    from seqlm.models.loader import load

    if cache_size < 1:
        raise SeqlmError(f"--cache-size must be >= 1 (got {cache_size})")
    if max_body < 1024:
        raise SeqlmError(f"--max-body must be >= 1024 bytes (got {max_body})")
    if not 0 <= port <= 65535:
        raise SeqlmError(f"--port must be in 0..65535 (got {port})")
    named = model_names(paths)
    models = {name: load(path) for name, path in named}
    app = create_app(models, dict(named), cache_size=cache_size, max_body=max_body)
    import uvicorn

    log.info("serving %s on http://%s:%d (OpenAPI page: /docs)", ", ".join(models), host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
