"""``seqlm export``: an n-gram model as an ARPA file (seqlm.export)."""

from __future__ import annotations

from seqlm.cli.common import add_model, command

EXAMPLES = """
  seqlm export runs/kn5 kn5.arpa
  seqlm export runs/kn5 kn5.arpa.gz
"""


def register(sub) -> None:
    x = command(sub, "export", "write an n-gram model as an ARPA file", EXAMPLES, run)
    add_model(x, "model folder", level=False)
    x.add_argument("arpa", help="ARPA file to write (.gz to compress)")


def run(args) -> int:
    from seqlm.models.loader import load
    from seqlm.models.ngram.arpa import write_arpa

    write_arpa(load(args.model), args.arpa)
    print(args.arpa)
    return 0
