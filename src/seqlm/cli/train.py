"""``seqlm train``: any kind, from a recipe, a corpus or text files (seqlm.train); ``seqlm count``: a text's
n-gram counts, for ``seqlm train --counts`` (seqlm.count)."""

from __future__ import annotations

import sys

from seqlm import kinds
from seqlm.cli.common import add_data, add_json, command, fmt, metrics_text, print_json
from seqlm.training.defaults import MINUTES as NEURAL_MINUTES

EXAMPLES = """
  SEQLM_DATA=../shared/data seqlm train --corpus ptb --model kn --order 5 --out runs/kn5
  seqlm train --corpus ptb-char --model kn --order 7 --out runs/char7 --arpa runs/char7.arpa.gz
  seqlm train --train my.txt --valid dev.txt --model add-k --k 0.1 --order 2 --out runs/addk
  seqlm train --text book.txt --split-ratio 0.9,0.05,0.05 --level char --order 6 --out runs/book
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --results results/lstm-cpu.json
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --set train.epochs=1 --set model.hidden_size=100
  seqlm train --corpus ptb --model lstm --backend reference --out runs/ref --set train.max_steps=50
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --resume     # continue after a stop
"""


def register(sub) -> None:
    register_train(sub)
    register_count(sub)


def register_train(sub) -> None:
    t = command(sub, "train", "train any model (n-gram or neural) and save it as a folder", EXAMPLES, run)
    t.add_argument("recipe", nargs="?", help="a recipe (TOML) for any kind, e.g. recipes/ptb/kn5.toml")
    add_data(t, files=True)
    t.add_argument("--model", metavar="KIND", help=kinds.help_text() + " (default kn)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=650 --set train.epochs=1; the "
                   "flags below are sugar for it (--order 5 = --set model.order=5)")
    g = t.add_argument_group("n-gram models")
    g.add_argument("--order", help="n (model.order, default 3)")
    g.add_argument("--k", help="pseudo-count for add-k (model.k, default 1)")
    g.add_argument("--prune", help="count thresholds per order, e.g. 0,0,1: drop n-grams seen that many times "
                   "or less (model.prune)")
    g.add_argument("--counts", nargs="+", metavar="COUNTS", help="estimate from these counts folders (seqlm count), "
                   "merged, instead of a training text (data.counts)")
    g.add_argument("--prune-entropy", metavar="THRESHOLD", help="entropy pruning (Stolcke, as SRILM -prune): drop the "
                   "n-grams whose removal changes the perplexity by less than THRESHOLD, relative, e.g. 1e-8 "
                   "(model.prune_entropy)")
    g.add_argument("--max-ngrams", metavar="N", help="entropy pruning to a size: keep at most N n-grams, all orders "
                   "(model.max_ngrams)")
    g.add_argument("--memory", metavar="SIZE", help="memory budget for estimating from a file, e.g. 4G or 50%% "
                   "(model.memory, default half the available RAM): beyond it, work spills to --temp-dir")
    g.add_argument("--temp-dir", metavar="DIR", help="folder for the scratch files of estimation (model.temp_dir, "
                   "default the system's temp folder)")
    g.add_argument("--cluster", metavar="SPEC", help="estimate on Dask distributed: local:N (N worker processes on "
                   "this machine) or tcp://HOST:PORT (a running dask scheduler; --temp-dir and --out on storage every "
                   "worker sees); the same model as without it (model.cluster; needs %s)" % "seqlm[cluster]")
    g.add_argument("--quantize", metavar="BITS", help="store ln p and ln backoff above order 1 in BITS-bit codes "
                   "(model.quantize, 1-16; 8 as KenLM's build_binary -q 8 -b 8), default float32")
    g.add_argument("--arpa", help="also write the model as an ARPA file (.gz to compress)")
    g.add_argument("--overwrite", action="store_true", help="replace the n-gram model already in --out")
    n = t.add_argument_group("neural models")
    n.add_argument("--backend", help="fused library kernels (default) or reference cells (model.backend)")
    n.add_argument("--device", help="auto, cpu or cuda (train.device)")
    n.add_argument("--precision", help="fp32 or bf16 autocast (train.precision)")
    n.add_argument("--minutes", help="time budget: stop training after this many minutes, the cosine schedule ending "
                   "in it (train.max_minutes; a run without a recipe: default %g)" % NEURAL_MINUTES)
    n.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    v = t.add_argument_group("text and vocabulary (every kind)")
    v.add_argument("--level", help="what a token is: word, char, bpe or unigram (subword pieces learned from the "
                   "training text) or byte (default: the corpus's, word for files) (data.level)")
    v.add_argument("--vocab-size", help="bpe, unigram: how many pieces to learn (data.vocab_size, default 8000)")
    v.add_argument("--lowercase", action="store_true", default=None, help="lowercase all text")
    v.add_argument("--whitespace", choices=("kenlm", "unicode"), help="what separates words: kenlm (default: space, "
                   "tab and CR, as lmplz splits) or unicode (every Unicode space, as str.split) (data.whitespace)")
    v.add_argument("--min-count", help="vocabulary: keep tokens seen this often (default 1)")
    v.add_argument("--max-size", help="vocabulary: keep at most this many tokens")
    t.add_argument("--out", required=True, help="model folder (n-gram) or run folder (neural) to write")
    t.add_argument("--results", help="also write the run's summary JSON here (results/NAME.json)")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")


COUNT_EXAMPLES = """
  seqlm count part1.txt --order 5 --out counts/part1     # each shard counted alone (in parallel, anywhere)
  seqlm count part2.txt --order 5 --out counts/part2
  seqlm train --counts counts/part1 counts/part2 --model kn --order 5 --out runs/kn5   # = training on both texts
"""


def register_count(sub) -> None:
    c = command(sub, "count", "count the n-grams of a text into a counts folder, for seqlm train --counts",
                COUNT_EXAMPLES, run_count)
    c.add_argument("text", help="text file, one sentence per line")
    c.add_argument("--order", type=int, required=True, help="count n-grams of orders 1..N")
    c.add_argument("--out", required=True, help="counts folder to write")
    c.add_argument("--level", choices=("word", "char"), help="word (default) or char tokens")
    c.add_argument("--lowercase", action="store_true", help="lowercase all text")
    c.add_argument("--whitespace", choices=("kenlm", "unicode"), default="kenlm", help="what separates words")
    c.add_argument("--memory", metavar="SIZE", help="memory budget, e.g. 4G or 50%% (default half the available RAM): "
                   "beyond it, counting spills to --temp-dir")
    c.add_argument("--temp-dir", metavar="DIR", help="folder for the scratch files (default the system's temp folder)")
    add_json(c, "print the counts' description as JSON")


def run_count(args) -> int:
    from seqlm.training.train import count

    result = count(args.text, order=args.order, out=args.out, level=args.level, lowercase=args.lowercase,
                   whitespace=args.whitespace, memory=args.memory, temp_dir=args.temp_dir)
    if args.json:
        print_json(result)
    else:
        print(f"{args.out}: {result['tokens']:,} tokens, {result['lines']:,} lines, {result['types']:,} types, "
              f"n-grams {'/'.join(str(n) for n in result['ngrams'])}")
    return 0


def run(args) -> int:
    from seqlm.training.train import SUGAR, train

    options = {k: getattr(args, k) for k in SUGAR}  # the flags that are sugar for --set, as train() takes them
    lm, summary = train(args.recipe, out=args.out, overrides=args.set, arpa=args.arpa, results=args.results,
                        resume=args.resume, overwrite=args.overwrite, argv=sys.argv, **options)
    if args.json:
        print_json(summary)
    elif "metrics" in summary and "parameters" in summary.get("model", {}):
        print(f"{summary['model']['kind']} ({summary['model']['parameters']:,} parameters): "
              + (metrics_text(summary["metrics"]) or "no validation or test text to measure")
              + f", {summary['wall_seconds'] / 60:.1f} min, stopped by {summary['stop']} -> {args.out}")
    else:
        m = summary["model"]
        print(f"{m['order']}-gram {m['smoothing']}: {'/'.join(map(str, m['ngrams']))} n-grams, "
              f"vocabulary {m['vocab_size']}, {summary['seconds']:.2f}s -> {args.out}")
        for split in ("valid", "test"):
            if split in summary:
                v = summary[split]
                print(f"{split} perplexity {fmt(v['perplexity'])} ({v['tokens']} tokens, {v['oov']} OOV)")
    return 130 if summary.get("interrupted") else 0
