"""What every subcommand shares: seqlm's parser (errors as one line), the argument groups written once,
and printing (JSON one object a line; numbers that may be infinite).

Results go to stdout (text, or JSON with --json); logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import math
import sys

from seqlm.errors import SeqlmError


class Parser(argparse.ArgumentParser):
    """argparse with seqlm's error shape: one line ``seqlm: error: ...`` naming the fix, exit status 2."""

    def error(self, message: str):
        sys.stderr.write(f"seqlm: error: {message}: see '{self.prog} --help'\n")
        sys.exit(2)


def command(sub, name: str, help: str, examples: str, run) -> argparse.ArgumentParser:
    """A subcommand ``name`` whose handler is ``run(args) -> exit status``, with its examples as epilog."""
    p = sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples.strip("\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    return p


def add_model(p: argparse.ArgumentParser, help: str = "model folder or ARPA file", level: bool = True) -> None:
    """The MODEL argument and, for commands that read ARPA files, --level."""
    p.add_argument("model", help=help)
    if level:
        p.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this "
                       "level (seqlm's own ARPA files say theirs)")


def add_data(p: argparse.ArgumentParser, files: bool = False, split: str | None = None) -> argparse._ArgumentGroup:
    """--corpus and --data-dir; with ``files``, the training files (--train/--valid/--test or --text);
    with ``split``, --split (that default) and --file (a text instead of a corpus split)."""
    g = p.add_argument_group("data")
    g.add_argument("--corpus", help="registered corpus: ptb, ptb-char, wikitext-2[-raw], wikitext-103[-raw], "
                                    "text8, enwik8 (downloaded once into the cache, checksum-verified)")
    g.add_argument("--data-dir", help="folder holding corpus files (else $SEQLM_DATA, the cache, download)")
    if files:
        g.add_argument("--train", help="training text file, one sentence per line")
        g.add_argument("--valid", help="validation text file")
        g.add_argument("--test", help="test text file")
        g.add_argument("--text", help="one text file, split into train/valid/test by --split-ratio")
        g.add_argument("--split-ratio", help="line ratios for --text (default 0.8,0.1,0.1)")
    if split:
        g.add_argument("--split", default=split, choices=("train", "valid", "test"),
                       help=f"corpus split (default {split})")
        g.add_argument("--file", help="a text file instead of a corpus split")
    return g


def add_json(p: argparse.ArgumentParser, what: str = "print one JSON object") -> None:
    p.add_argument("--json", action="store_true", help=what)


def print_json(obj) -> None:
    """Strict JSON (non-finite numbers as null: JSON.parse rejects Infinity and NaN), one object a line."""
    print(json_line(obj))


def json_line(obj) -> str:
    """:func:`print_json`'s line."""
    from seqlm.io.files import dumps

    return dumps(obj, ensure_ascii=False, default=_json_default)


def write_lines(lines, chunk: int = 4096) -> None:
    """Each string of ``lines`` (any iterable) as a line on stdout, written ``chunk`` lines at a time: for a
    command printing a line per input line (score, rescore), a print() per line costs about as much as scoring
    the line."""
    buf: list[str] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= chunk:
            sys.stdout.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        sys.stdout.write("\n".join(buf) + "\n")


def _json_default(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x).__name__)


def fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else str(x)


def metrics_text(metrics: dict) -> str:
    """``valid perplexity 91.20, test perplexity 88.10``."""
    return ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in metrics.items())


def stdin_lines() -> list[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise SeqlmError("no input: pipe text into stdin or give --file")
    from seqlm.text.corpora import decode_lines

    return decode_lines(sys.stdin.buffer.read(), "stdin", keep_blank=True)


def input_lines(file: str | None) -> list[str]:
    """The lines of ``file``, or of stdin when it is None or ``-``."""
    if file and file != "-":
        from seqlm.text.corpora import read_lines

        return read_lines(file, keep_blank=True)
    return stdin_lines()
