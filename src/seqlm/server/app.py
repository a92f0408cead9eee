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
a bounded LRU of its states by token prefix (``server/cache.py``); the served models, their locks and batched
steps are in ``server/models.py``.

A client's mistake (malformed JSON, wrong types, out-of-range numbers, an unknown model, a body over the size
limit, non-UTF-8 bytes, an empty text) is a 4xx answer with ``{"error": ...}`` naming the fix; nothing a
client sends makes the server answer 5xx or stop.
"""

import logging

from seqlm.errors import SeqlmError, explain
from seqlm.models.interface import LanguageModel
from seqlm.server.models import Served, model_names

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes



def create_app(models: dict[str, LanguageModel], paths: dict[str, str] | None = None, cache_size: int = 1024,
               max_body: int = MAX_BODY):
    """The FastAPI application serving ``models`` (name -> model)."""
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import HTMLResponse, JSONResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
    except ImportError:
        raise SeqlmError("seqlm serve needs FastAPI and uvicorn: pip install 'seqlm[serve]'") from None
    from seqlm.server.schemas import EvaluateIn, GenerateIn, ScoreIn, SuggestIn
    from seqlm.tasks.evaluate import evaluate
    from seqlm.tasks.generate import beam_search, generate
    from seqlm.tasks.score import score
    from seqlm.version import __version__

    if not models:
        raise SeqlmError("nothing to serve: give one or more model folders or ARPA files")
    served = {name: Served(name, (paths or {}).get(name, name), m, cache_size) for name, m in models.items()}
    default = next(iter(served))
    app = FastAPI(title="seqlm", version=__version__, description="Language models: suggestions, scores, samples.")

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

    @app.exception_handler(Exception)
    async def _unexpected(request, e: Exception):
        # the machine (memory, disk): 503 with the fix; anything else is a bug of the server, logged whole
        fix = explain(e)
        if fix is not None:
            return error(503, fix)
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(e).__name__}): a bug of seqlm's server, its traceback is in "
                          f"the server's log")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        errs = e.errors()
        if any(x.get("type") == "json_invalid" for x in errs):
            return error(400, "the body is not valid JSON: send a UTF-8 JSON object, e.g. {\"text\": \"the\"}")
        if any(tuple(x.get("loc", ())) == ("body",) and x.get("type") == "model_attributes_type" for x in errs):
            sent = request.headers.get("content-type") or "none"
            if not sent.startswith("application/json"):
                return error(415, f"the body must be JSON, sent with Content-Type: application/json (this one: {sent}), "
                                  "e.g. {\"text\": \"the\"}")
            return error(422, "the body must be a JSON object, e.g. {\"text\": \"the\"} (see /docs for the request shapes)")
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
        lines = req.lines if req.lines is not None else req.text  # a text is cut at newlines as the API cuts it
        if req.lines is not None and (not lines or any(not x.strip() for x in lines)):
            raise _ClientError(422, "every line must hold some text: remove empty lines")
        with s.lock:
            rows = score(s.model, lines, per=req.per, mode=req.mode)
        return {"model": s.name, "results": rows}

    @app.post("/v1/generate")
    def generate_(req: GenerateIn):
        s = pick(req.model)
        if req.beam is not None:
            with s.lock:
                out = beam_search(s.model, req.prompt, beam=req.beam, max_tokens=req.max_tokens, num=req.num,
                                  length_penalty=req.length_penalty, banned_words=req.ban, prefix=req.prefix)
            return {"model": s.name, "samples": out}
        if req.ban or req.prefix:
            raise _ClientError(422, "ban and prefix constrain a beam search: give beam too")
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
    check_port(host, port)
    models = {name: load(path) for name, path in named}
    app = create_app(models, dict(named), cache_size=cache_size, max_body=max_body)
    import uvicorn

    check_port(host, port)  # again: loading took a while
    log.info("serving %s on http://%s:%d (OpenAPI page: /docs)", ", ".join(models), host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def check_port(host: str, port: int) -> None:
    """Fail in one line, before saying "serving", when ``host:port`` cannot be listened on (in use, or not an
    address of this machine)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise SeqlmError(f"--host {host}: not an address of this machine ({e.strerror}): give e.g. 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(address)
        except OSError as e:
            raise SeqlmError(f"cannot listen on {host}:{port} ({e.strerror}): choose another --port, or stop the "
                             f"process using it") from None
