"""``seqlm demo``: n-gram models on the bundled generated corpora, in seconds, offline."""

from __future__ import annotations

from seqlm.cli.common import add_json, command

EXAMPLES = """
  seqlm demo
  seqlm demo --json
"""


def register(sub) -> None:
    d = command(sub, "demo", "train n-gram models on the bundled generated corpora and show what they do", EXAMPLES,
                run)
    add_json(d, "print the results as JSON")


def run(args) -> int:
    from seqlm.workflows.demo import demo

    demo(as_json=args.json)
    return 0
