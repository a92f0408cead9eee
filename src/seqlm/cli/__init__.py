"""Command line: ``seqlm COMMAND``, one subcommand per API function of the same name.

Each module here registers its subcommands (arguments, help, examples) and handles them: parse, call
the API function, print.  Rules live in the API, so a Python user meets the same checks.  Every
SeqlmError is printed as one line ``seqlm: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Sequence

from seqlm.cli import analysis, demo, evaluate, export, generate, rescore, serve, train, workflows
from seqlm.cli.common import Parser
from seqlm.errors import SIGNALS, SeqlmError, Terminated, explain

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
    del SIGNALS[:]  # SIGINT/SIGTERM seen during this call (errors.SIGNALS: long loops check it every step)

    finishing = []  # set once the command has returned: a signal then is recorded, not raised

    def on_signal(signum, frame):
        SIGNALS.append(signum)
        if finishing:  # the output is complete and the handlers are being put back: raising here would only
            return     # print a traceback from the finally below
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    # first of all: a SIGTERM while the commands' modules load is handled as one later is
    previous = [(s, _handle(s, on_signal)) for s in (signal.SIGTERM, signal.SIGINT)]
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_signal
    args = None
    try:
        p = parser()
        args = p.parse_args(argv)
        from seqlm.io.runtime import setup_logging

        setup_logging(-1 if args.quiet else (1 if args.verbose else 0))
        if not args.command:
            p.print_help(sys.stderr)
            return 2
        code = args.run(args) or 0
        # a command that handled the signal itself (a neural run saves, evaluates and returns) ends as one
        # whose signal escaped
        return _stopped(signal.SIGTERM in SIGNALS) if SIGNALS else code
    except KeyboardInterrupt as e:
        return _stopped(isinstance(e, Terminated) or signal.SIGTERM in SIGNALS)
    except Exception as e:  # noqa: BLE001 (the one place any other exception becomes one line)
        verbose = bool(args is not None and args.verbose)
        if SIGNALS:  # the signal's exception, replaced on its way up by code that lost it (_after_signal)
            return _after_signal(e, verbose)
        if isinstance(e, SeqlmError):
            print(f"seqlm: error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, BrokenPipeError):
            return 0
        return _unexpected(e, verbose)
    finally:
        finishing.append(True)
        for signum, handler in previous:
            _handle(signum, handler)
        sys.unraisablehook = hook


def _quiet_signal(unraisable) -> None:
    """A signal's exception raised where Python can only print it (a finalizer, a gc callback of a library) is not
    printed: SIGNALS holds the signal, and the command stops at its next check (errors.check_signals)."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def _after_signal(e: Exception, verbose: bool) -> int:
    """Any exception once SIGINT or SIGTERM has arrived ends the command as the signal does (143 or 130): a
    handler's exception raised inside C code that calls back into Python is often replaced on its way out, not
    passed on (numpy's fromfile turns it into ``TypeError: expected str, bytes or os.PathLike object``), and
    what failed after the signal is its consequence, not a bug or the user's mistake. -v prints it."""
    if verbose:
        import traceback

        sys.stderr.write("".join(traceback.format_exception(e)))
    return _stopped(signal.SIGTERM in SIGNALS)


def _stopped(terminated: bool) -> int:
    """The last line and exit status of a command stopped by SIGTERM (143) or Ctrl-C (130)."""
    print("seqlm: terminated (SIGTERM)" if terminated else "seqlm: interrupted", file=sys.stderr)
    return 143 if terminated else 130


def _handle(signum, handler):
    """Install ``handler`` for ``signum`` where Python allows it (the main thread); the previous one."""
    if handler is None:  # nothing was installed (see below)
        return None
    try:
        return signal.signal(signum, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None


def _unexpected(e: Exception, verbose: bool) -> int:
    """A failure of the machine gets its fix (exit 2); anything else is a bug: one line, the traceback in a
    file (and on stderr with -v), exit 1."""
    import tempfile
    import traceback

    fix = explain(e)
    if fix:
        print(f"seqlm: error: {fix}", file=sys.stderr)
        return 2
    text = "".join(traceback.format_exception(e))
    with tempfile.NamedTemporaryFile("w", prefix="seqlm-bug-", suffix=".txt", delete=False) as f:
        f.write(text)
    if verbose:
        sys.stderr.write(text)
    print(f"seqlm: error: internal error ({type(e).__name__}: {e}): this is a bug in seqlm; its traceback is in "
          f"{f.name} (-v prints it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
