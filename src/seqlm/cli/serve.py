"""``seqlm serve``: models over HTTP (seqlm.serve; the server/ package)."""

from __future__ import annotations

from seqlm.cli.common import command

EXAMPLES = """
  seqlm serve runs/kn5 runs/lstm                       # http://127.0.0.1:8000/ (the page), /docs (the API)
  seqlm serve kn=runs/kn5 chars=runs/char-lstm --port 8080
  curl -s localhost:8000/v1/suggest -d '{"text": "the students op"}' -H 'content-type: application/json'
"""


def register(sub) -> None:
    sv = command(sub, "serve", "serve models over HTTP: a JSON API (suggest, score, generate, evaluate) and a "
                 "typing page", EXAMPLES, run)
    sv.add_argument("models", nargs="+", metavar="[NAME=]MODEL", help="model folders or ARPA files (any kinds), "
                    "optionally named (default: the folder's name)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--cache-size", type=int, default=1024, help="model states kept per model by text prefix "
                    "(default 1024)")
    sv.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")


def run(args) -> int:
    from seqlm.server.app import serve

    serve(args.models, host=args.host, port=args.port, cache_size=args.cache_size, max_body=args.max_body)
    return 0
