"""``seqlm rescore``: add a language model's score to n-best hypotheses (seqlm's tasks.rescore)."""

from __future__ import annotations

from seqlm.cli.common import add_json, add_model, command, print_json, stdin_lines, write_lines

EXAMPLES = """
  seqlm rescore runs/lstm nbest.txt                           # ID [SCORE] HYPOTHESIS lines, or Kaldi's UTT-N TEXT
  seqlm rescore runs/kn5 nbest.txt --lm-weight 0.8 --word-penalty 0.5 --best
  seqlm rescore lm.arpa nbest.txt --log-base 10 --json        # scores in the file are log10
"""


def register(sub) -> None:
    rs = command(sub, "rescore", "add a language model's score to n-best hypotheses and pick each utterance's best",
                 EXAMPLES, run)
    add_model(rs)
    rs.add_argument("nbest", help="n-best file: ID [SCORE] HYPOTHESIS per line, or Kaldi's UTT-N HYPOTHESIS (- for "
                    "stdin)")
    rs.add_argument("--format", default="auto", choices=("auto", "id-score-text", "id-text", "kaldi"),
                    help="the n-best shape (default auto: told apart from the file)")
    rs.add_argument("--lm-weight", type=float, default=1.0, help="weight of the LM log-probability (default 1)")
    rs.add_argument("--word-penalty", type=float, default=0.0, help="added per word (default 0)")
    rs.add_argument("--log-base", default="e", choices=("e", "10"), help="base of the LM score added (default e; 10 "
                    "to match log10 scores in the file)")
    rs.add_argument("--best", action="store_true", help="print only each utterance's best hypothesis (UTT TEXT)")
    add_json(rs)


def run(args) -> int:
    from seqlm.models.loader import load
    from seqlm.tasks.rescore import parse_nbest, rescore
    from seqlm.text.corpora import read_lines

    model = load(args.model, level=args.level)
    lines = stdin_lines() if args.nbest == "-" else read_lines(args.nbest)
    hyps = parse_nbest(lines, args.format, name="stdin" if args.nbest == "-" else args.nbest)
    rows, best = rescore(model, hyps, args.lm_weight, args.word_penalty, args.log_base)
    if args.json:
        print_json({"hypotheses": rows, "best": best})
    elif args.best:
        write_lines(f"{row['utterance']}\t{row['text']}" for row in best)
    else:  # each utterance's hypotheses, best first
        write_lines(ranked_lines(rows, best))
    return 0


def ranked_lines(rows, best):
    """Each utterance's hypotheses, best first: utterance, rank, id, total, LM log-prob, text."""
    order = {u["utterance"]: k for k, u in enumerate(best)}
    rank: dict = {}
    for row in sorted(rows, key=lambda r: (order[r["utterance"]], -r["total"], r["line"])):
        rank[row["utterance"]] = rank.get(row["utterance"], 0) + 1
        yield (f"{row['utterance']}\t{rank[row['utterance']]}\t{row['id']}\t{row['total']:.4f}\t"
               f"{row['lm_log_prob']:.4f}\t{row['text']}")
