"""``seqlm evaluate`` (perplexity of a corpus split or a file) and ``seqlm score`` (log-probability of each
line), over seqlm.evaluate and seqlm.score."""

from __future__ import annotations

import sys

from seqlm.cli.common import (
    add_data,
    add_json,
    add_model,
    command,
    fmt,
    input_lines,
    json_line,
    print_json,
    write_lines,
)
from seqlm.errors import SeqlmError

EVALUATE = """
  SEQLM_DATA=../shared/data seqlm evaluate runs/kn5 --corpus ptb --split test --json
  seqlm evaluate runs/kn5 --file my_test.txt --mode sentence
  seqlm evaluate lm.arpa.gz --file test.txt --json
"""
SCORE = """
  printf 'there is a\\nihra s eet\\n' | seqlm score runs/char7 --json
  seqlm score runs/kn5 --file sentences.txt --per token --json
  echo "the market rose" | seqlm score runs/kn5 --per corpus
  SEQLM_THREADS=1 seqlm score runs/kn5 --file big.txt --per corpus   # one thread (default: one per core)
"""


LISTING_LINES = 1 << 15  # seqlm score --per token: lines listed at once (their text is held whole)


def register(sub) -> None:
    e = command(sub, "evaluate", "perplexity of a model on a corpus split or a file", EVALUATE, evaluate)
    add_model(e)
    add_data(e, split="test")
    e.add_argument("--mode", default="stream", choices=("stream", "sentence"),
                   help="carry state across lines (stream, default) or reset per line (sentence)")
    add_json(e)

    s = command(sub, "score", "log-probability of each input line (stdin or --file)", SCORE, score)
    add_model(s)
    s.add_argument("--file", help="read lines from this file instead of stdin")
    s.add_argument("--per", default="line", choices=("line", "token", "corpus"), help="granularity (default line)")
    s.add_argument("--mode", default="sentence", choices=("stream", "sentence"), help="default sentence")
    add_json(s, "one JSON object per line")


def quiet_blas(model: str) -> None:
    """A model folder is queried with no matrix product in numpy: its BLAS threads off (io.runtime)."""
    from pathlib import Path

    from seqlm.io.runtime import import_numpy_quietly

    if Path(model).is_dir():
        import_numpy_quietly()


def evaluate(args) -> int:
    quiet_blas(args.model)  # first: before anything imports numpy
    from seqlm.models.loader import load
    from seqlm.tasks.evaluate import evaluate_data

    model = load(args.model, level=args.level)
    if args.file == "-":  # stdin, as score reads it
        from seqlm.tasks.evaluate import evaluate

        if args.corpus:
            raise SeqlmError("give either a file or a corpus to evaluate on, not both")
        result = evaluate(model, [line for line in input_lines("-") if line.strip()], mode=args.mode)
        result["data"] = "stdin"
    else:
        result = evaluate_data(model, corpus=args.corpus, split=args.split, file=args.file, data_dir=args.data_dir,
                               mode=args.mode)
    if args.json:
        print_json(result)
    else:
        unit = result["unit"]
        print(f"{result['data']}: perplexity {fmt(result['perplexity'])}, {result[f'bits_per_{unit}']:.4f} "
              f"bits/{unit}, {result['tokens']} tokens, {result['oov']} OOV "
              f"(perplexity without OOV {fmt(result['perplexity_without_oov'])}), mode {result['mode']}")
    return 0


def score(args) -> int:
    quiet_blas(args.model)  # first: before anything imports numpy
    from seqlm.models.loader import load
    from seqlm.tasks.score import score

    model = load(args.model, level=args.level)
    if args.per == "corpus" and args.file and args.file != "-":  # a file's totals: read and encoded in blocks, no object per token
        from seqlm.tasks.evaluate import evaluate_file

        rows = [evaluate_file(model, args.file, mode=args.mode)]
    elif args.per != "corpus" and not args.json:  # as text: score's numbers without a dict per line or token
        from seqlm.tasks.score import checked_lines

        lines = checked_lines(input_lines(args.file), args.per, args.mode)
        if args.per == "line":
            totals = model.line_totals(lines, args.mode)[0]
            write_lines(map(line_text, totals, lines))
            return 0
        # written by the model where it can (its lines scored independently), a chunk of lines at a time
        chunks = [lines[a:a + LISTING_LINES] for a in range(0, len(lines), LISTING_LINES)]
        listing = model.token_listing(chunks[0], args.mode)
        if listing is not None:
            sys.stdout.write(listing)
            for chunk in chunks[1:]:
                listing = model.token_listing(chunk, args.mode)
                if listing is None:  # a chunk the model declines: made from the rows
                    write_lines(score_lines(score(model, chunk, per="token", mode=args.mode), args))
                else:
                    sys.stdout.write(listing)
            return 0
        rows = score(model, lines, per=args.per, mode=args.mode)
    else:
        rows = score(model, input_lines(args.file), per=args.per, mode=args.mode)
    write_lines(score_lines(rows, args))
    return 0


def score_lines(rows, args):
    """What ``seqlm score`` prints for its rows, line by line."""
    for row in rows:
        if args.json:
            yield json_line(row)
        elif args.per == "corpus":
            yield f"log_prob {row['log_prob']:.4f} (ln), {row['tokens']} tokens, perplexity {fmt(row['perplexity'])}"
        else:
            yield line_text(row["log_prob"], row["text"])
            for t in row.get("token_log_probs", ()):
                yield f"\t{t['log_prob']:.4f}\t{t['token']}{'  (OOV)' if t['oov'] else ''}"


def line_text(total: float, text: str) -> str:
    """A scored line as ``seqlm score`` prints it: its total ln p to four decimals, a tab, the line."""
    return f"{total:.4f}\t{text}"
