"""Latency and throughput of ``seqlm serve`` on loopback: suggestions while a person types.

    python bench/serve.py --models runs/kn5 runs/cpu-lstm [--requests 5000] [--seconds 60] [--results FILE]

Starts ``seqlm serve`` (a separate process, as deployed) with the models, waits for /v1/health, then for each
model:

* typing: C concurrent clients (C = 1, 8, 32) each type PTB validation sentences word by word (the sentences
  dealt out to the clients in turn), asking for suggestions after every keystroke-like step (the text so far,
  the last word partly typed or complete), as many requests as ``--requests`` or ``--seconds`` allow;
  p50/p99 latency (client-side, loopback) and requests/s; every non-200 answer is counted as an error;
* text length: one client extends texts of 10, 100 and 1,000 tokens by one word at a time (the server has
  cached the prefix, as when typing): p50/p99 latency at each length.

The last line is one JSON object with every figure, the machine and the goals (KN5 p99 <= 5 ms and >= 1,000
requests/s at 32 clients; LSTM p99 <= 20 ms; latency at 1,000 tokens within 2x of 10 tokens), and at the end
the server's health.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from seqlm.io.records import git_commit, hardware  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def typing_requests(lines: list[str], model: str) -> list[list[dict]]:
    """The suggestion requests of a person typing each of ``lines`` (one list per line, in order): after each
    word's first letters and after the whole word and its space."""
    out = []
    for line in lines:
        words, typed, session = line.split(), "", []
        for w in words:
            if len(w) > 2:
                session.append({"text": typed + w[:2], "model": model, "k": 5})
            typed += w + " "
            session.append({"text": typed, "model": model, "k": 5})
        out.append(session)
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load generator's client.

    Measured on this 2-core machine against the same server (KN5, 32 clients): httpx's AsyncClient spent more
    CPU per request than the server itself (705 requests/s, p99 211 ms), this client 2,183 requests/s (p99
    29 ms); on a shared 2-core machine the client's cost is part of every figure, so it must be small.
    """

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def run_clients(port: int, sessions: list[list[dict]], clients: int, budget: float, limit: int):
    """``clients`` people typing at once: the typing sessions (one per sentence) dealt out in turn, each
    person's requests in order (so each extends that person's previous text, as typing does)."""
    lat, errors, done = [], 0, 0
    t_end = time.perf_counter() + budget
    per = [[r for session in sessions[i::clients] for r in session] for i in range(clients)]

    async def one(reqs):
        nonlocal errors, done
        conn = await Connection.open(port)
        try:
            for body in reqs:
                if done >= limit or time.perf_counter() > t_end:
                    return
                done += 1
                t = time.perf_counter()
                status, _ = await conn.request("POST", "/v1/suggest", body)
                lat.append(time.perf_counter() - t)
                if status != 200:
                    errors += 1
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in per))
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors, "seconds": round(wall, 2),
            "requests_per_s": len(lat) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


async def length_latency(port: int, model: str, words: list[str], lengths=(10, 100, 1000), steps: int = 100):
    out = []
    conn = await Connection.open(port)
    for n in lengths:
        base = " ".join(words[:n]) + " "
        lat = []
        await conn.request("POST", "/v1/suggest", {"text": base, "model": model})  # the prefix, cached
        text = base
        for k in range(steps):
            text += words[(n + k) % len(words)] + " "
            t = time.perf_counter()
            status, body = await conn.request("POST", "/v1/suggest", {"text": text, "model": model})
            lat.append(time.perf_counter() - t)
            assert status == 200, body
        ms = np.array(lat) * 1000
        out.append({"tokens": n, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))})
    conn.close()
    return out


async def bench(port: int, names: list[str], lines: list[str], args) -> dict:
    results = {}
    for name in names:
        reqs = typing_requests(lines, name)
        await run_clients(port, reqs[:20], 4, 10, 200)  # warm-up
        rows = []
        for c in (1, 8, 32):
            row = await run_clients(port, reqs, c, args.seconds, args.requests)
            rows.append(row)
            print(f"{name}: {c:>2} clients: {row['requests']} requests, {row['errors']} errors, "
                  f"{row['requests_per_s']:,.0f} req/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
                  file=sys.stderr)
        words = " ".join(lines).split()
        length = await length_latency(port, name, words)
        for r in length:
            print(f"{name}: text of {r['tokens']} tokens + 1 word: p50 {r['p50_ms']:.2f} ms, p99 "
                  f"{r['p99_ms']:.2f} ms", file=sys.stderr)
        results[name] = {"typing": rows, "length": length,
                         "length_ratio_1000_vs_10": length[-1]["p50_ms"] / length[0]["p50_ms"]}
    conn = await Connection.open(port)
    status, body = await conn.request("GET", "/v1/health")
    conn.close()
    return {"results": results, "health_after": json.loads(body) if status == 200 else {"status": status}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="NAME=PATH or PATH (as seqlm serve takes them)")
    ap.add_argument("--requests", type=int, default=5000, help="at most this many requests per client count")
    ap.add_argument("--seconds", type=float, default=60, help="at most this long per client count")
    ap.add_argument("--data-dir", default=os.environ.get("SEQLM_DATA"), help="folder holding ptb/")
    ap.add_argument("--results", help="also write the JSON here")
    args = ap.parse_args()
    from seqlm.server.app import model_names
    from seqlm.text.corpora import load_corpus

    lines = load_corpus("ptb", data_dir=args.data_dir).split("valid")[:2000]
    names = [n for n, _ in model_names(args.models)]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "seqlm", "-q", "serve", *args.models, "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(600):
            if server.poll() is not None:
                raise SystemExit(f"the server stopped: {server.stderr.read()[-500:]}")
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        try:
            import uvloop  # the event loop uvicorn[standard] brings; the plain asyncio one otherwise

            run = uvloop.run
        except ImportError:
            run = asyncio.run
        out = run(bench(port, names, lines, args))
    finally:
        server.terminate()
        server.wait(timeout=10)
    out.update({"type": "serve", "benchmark": "serve", "models": args.models, "hardware": hardware(), "commit": git_commit(REPO),
                "goals": {"kn5_p99_ms": 5, "kn5_requests_per_s_32": 1000, "lstm_p99_ms": 20, "length_ratio": 2}})
    line = json.dumps(out)
    if args.results:
        Path(args.results).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
