"""Command line: ``seqlm COMMAND``, one subcommand per API function of the same name.

Each module here registers its subcommands (arguments, help, examples) and handles them: parse, call
the API function, print.  Rules live in the API, so a Python user meets the same checks.  Every
SeqlmError is printed as one line ``seqlm: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from seqlm.cli import analysis, demo, evaluate, export, generate, rescore, serve, train, workflows
from seqlm.cli.common import Parser
from seqlm.errors import SeqlmError

# the order of the commands in ``seqlm --help``
GROUPS = (train, evaluate, generate, export, analysis, demo, workflows, serve, rescore)


def parser() -> argparse.ArgumentParser:
    from seqlm.version import __version__

    p = Parser(prog="seqlm", description="Train, evaluate, score with and generate from language models.",
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="run 'seqlm COMMAND --help' for a command's options and examples")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    p.add_argument("--version", action="version", version=f"seqlm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    from seqlm.io.runtime import setup_logging

    setup_logging(-1 if args.quiet else (1 if args.verbose else 0))
    if not args.command:
        p.print_help(sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except SeqlmError as e:
        print(f"seqlm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
