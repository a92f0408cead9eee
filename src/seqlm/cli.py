"""Command line: one subcommand per API function of the same name; parse, call, print.  No logic here.

Results go to stdout (text, or JSON with --json); logs and progress go to stderr.  Every SeqlmError is
printed as one line ``seqlm: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from seqlm import kinds
from seqlm.errors import SeqlmError

EXAMPLES = {
    "train": """examples:
  SEQLM_DATA=../shared/data seqlm train --corpus ptb --model kn --order 5 --out runs/kn5
  seqlm train --corpus ptb-char --model kn --order 7 --out runs/char7 --arpa runs/char7.arpa.gz
  seqlm train --train my.txt --valid dev.txt --model add-k --k 0.1 --order 2 --out runs/addk
  seqlm train --text book.txt --split-ratio 0.9,0.05,0.05 --level char --order 6 --out runs/book
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --results results/lstm-cpu.json
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --set train.epochs=1 --set model.hidden_size=100
  seqlm train --corpus ptb --model lstm --backend reference --out runs/ref --set train.max_steps=50
  seqlm train recipes/ptb/lstm-cpu.toml --out runs/lstm --resume     # continue after a stop""",
    "evaluate": """examples:
  SEQLM_DATA=../shared/data seqlm evaluate runs/kn5 --corpus ptb --split test --json
  seqlm evaluate runs/kn5 --file my_test.txt --mode sentence
  seqlm evaluate lm.arpa.gz --file test.txt --json""",
    "score": """examples:
  printf 'there is a\\nihra s eet\\n' | seqlm score runs/char7 --json
  seqlm score runs/kn5 --file sentences.txt --per token --json
  echo "the market rose" | seqlm score runs/kn5 --per corpus""",
    "predict": """examples:
  echo "the students opened their" | seqlm predict runs/kn5 --top-k 5
  seqlm predict runs/kn5 --prompt "the market" --top-k 10 --json""",
    "generate": """examples:
  seqlm generate runs/kn5 --prompt "the market" --seed 1
  seqlm generate runs/kn5 --num 5 --temperature 0.8 --top-p 0.9 --seed 7 --json
  seqlm generate runs/char7 --prompt "the " --greedy --max-tokens 80""",
    "export": """examples:
  seqlm export runs/kn5 kn5.arpa
  seqlm export runs/kn5 kn5.arpa.gz""",
    "neighbours": """examples:
  seqlm neighbours runs/lstm money --top-k 10
  seqlm neighbours runs/lstm president --json""",
    "report": """examples:
  seqlm report results/ --out reports/ptb-cpu
  seqlm report results/ runs/cpu-lstm runs/cpu-gru --out reports/ptb-cpu""",
    "diagnose": """examples:
  seqlm diagnose gradients runs/cpu-lstm --corpus ptb --split valid --out results/gradients-lstm.json
  seqlm diagnose gradients runs/cpu-rnn --file valid.txt --K 150 --plot rnn-gradients.png
  seqlm diagnose recall --out results/probe-recall.json --plot reports/figures/recall.png""",
    "demo": """examples:
  seqlm demo
  seqlm demo --json""",
    "rescore": """examples:
  seqlm rescore runs/lstm nbest.txt                           # ID [SCORE] HYPOTHESIS lines, or Kaldi's UTT-N TEXT
  seqlm rescore runs/kn5 nbest.txt --lm-weight 0.8 --word-penalty 0.5 --best
  seqlm rescore lm.arpa nbest.txt --log-base 10 --json        # scores in the file are log10""",
    "serve": """examples:
  seqlm serve runs/kn5 runs/lstm                       # http://127.0.0.1:8000/ (the page), /docs (the API)
  seqlm serve kn=runs/kn5 chars=runs/char-lstm --port 8080
  curl -s localhost:8000/v1/suggest -d '{"text": "the students op"}' -H 'content-type: application/json'""",
    "mix": """examples:
  seqlm mix runs/kn5 runs/lstm --out runs/mix --test        # weights fitted by EM on the corpus's valid split
  seqlm mix runs/kn5 runs/lstm --weights 0.3,0.7 --out runs/mix-fixed
  seqlm evaluate runs/mix --corpus ptb                        # then use it as any model""",
    "adapt": """examples:
  seqlm adapt runs/lstm --method cache --out runs/lstm-cache            # tuned on the model's corpus's valid split
  seqlm adapt runs/lstm --method dynamic --out runs/lstm-dyn --param lr=1e-5,2e-5,5e-5 --param decay=0.01
  seqlm adapt runs/lstm --method dynamic --param rule=sgd --param lr=0.01 --no-tune --out runs/lstm-dyn-sgd
  seqlm evaluate runs/lstm-cache --corpus ptb                            # then use it as any model""",
}


class _Parser(argparse.ArgumentParser):
    """argparse with seqlm's error shape: one line ``seqlm: error: ...`` naming the fix, exit status 2."""

    def error(self, message: str):
        sys.stderr.write(f"seqlm: error: {message}: see '{self.prog} --help'\n")
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="seqlm", description="Train, evaluate, score with and generate from "
                                "language models.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="run 'seqlm COMMAND --help' for a command's options and examples")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    p.add_argument("--version", action="version", version=f"seqlm {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def data_args(q: argparse.ArgumentParser, files: bool = True) -> None:
        g = q.add_argument_group("data")
        g.add_argument("--corpus", help="registered corpus: ptb, ptb-char")
        g.add_argument("--data-dir", help="folder holding corpus files (else $SEQLM_DATA, the cache, download)")
        if files:
            g.add_argument("--train", help="training text file, one sentence per line")
            g.add_argument("--valid", help="validation text file")
            g.add_argument("--test", help="test text file")
            g.add_argument("--text", help="one text file, split into train/valid/test by --split-ratio")
            g.add_argument("--split-ratio", help="line ratios for --text (default 0.8,0.1,0.1)")

    t = cmd("train", "train any model (n-gram or neural) and save it as a folder")
    t.add_argument("recipe", nargs="?", help="a recipe (TOML) for any kind, e.g. recipes/ptb/kn5.toml")
    data_args(t)
    t.add_argument("--model", metavar="KIND", help=kinds.help_text() + " (default kn)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=650 --set train.epochs=1; the "
                   "flags below are sugar for it (--order 5 = --set model.order=5)")
    g = t.add_argument_group("n-gram models")
    g.add_argument("--order", help="n (model.order, default 3)")
    g.add_argument("--k", help="pseudo-count for add-k (model.k, default 1)")
    g.add_argument("--prune", help="count thresholds per order, e.g. 0,0,1: drop n-grams seen that many times "
                   "or less (model.prune)")
    g.add_argument("--memory", metavar="SIZE", help="memory budget for estimating from a file, e.g. 4G or 50%% "
                   "(model.memory, default half the available RAM): beyond it, work spills to --temp-dir")
    g.add_argument("--temp-dir", metavar="DIR", help="folder for the scratch files of estimation (model.temp_dir, "
                   "default the system's temp folder)")
    g.add_argument("--arpa", help="also write the model as an ARPA file (.gz to compress)")
    g.add_argument("--overwrite", action="store_true", help="replace the n-gram model already in --out")
    n = t.add_argument_group("neural models")
    n.add_argument("--backend", help="fused library kernels (default) or reference cells (model.backend)")
    n.add_argument("--device", help="auto, cpu or cuda (train.device)")
    n.add_argument("--precision", help="fp32 or bf16 autocast (train.precision)")
    n.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    v = t.add_argument_group("text and vocabulary (every kind)")
    v.add_argument("--level", help="word or char tokenization (default: the corpus's, word for files)")
    v.add_argument("--lowercase", action="store_true", default=None, help="lowercase all text")
    v.add_argument("--min-count", help="vocabulary: keep tokens seen this often (default 1)")
    v.add_argument("--max-size", help="vocabulary: keep at most this many tokens")
    t.add_argument("--out", required=True, help="model folder (n-gram) or run folder (neural) to write")
    t.add_argument("--results", help="also write the run's summary JSON here (results/NAME.json)")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")

    e = cmd("evaluate", "perplexity of a model on a corpus split or a file")
    e.add_argument("model", help="model folder or ARPA file")
    e.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this level "
                   "(seqlm's own ARPA files say theirs)")
    data_args(e, files=False)
    e.add_argument("--split", default="test", choices=("train", "valid", "test"), help="corpus split (default test)")
    e.add_argument("--file", help="evaluate on this text file instead of a corpus split")
    e.add_argument("--mode", default="stream", choices=("stream", "sentence"),
                   help="carry state across lines (stream, default) or reset per line (sentence)")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    s = cmd("score", "log-probability of each input line (stdin or --file)")
    s.add_argument("model", help="model folder or ARPA file")
    s.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this level "
                   "(seqlm's own ARPA files say theirs)")
    s.add_argument("--file", help="read lines from this file instead of stdin")
    s.add_argument("--per", default="line", choices=("line", "token", "corpus"), help="granularity (default line)")
    s.add_argument("--mode", default="sentence", choices=("stream", "sentence"), help="default sentence")
    s.add_argument("--json", action="store_true", help="one JSON object per line")

    r = cmd("predict", "most probable next tokens after each prompt line (stdin or --prompt)")
    r.add_argument("model", help="model folder or ARPA file")
    r.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this level "
                   "(seqlm's own ARPA files say theirs)")
    r.add_argument("--prompt", help="the prompt (else one per stdin line)")
    r.add_argument("--top-k", type=int, default=5, help="how many suggestions (default 5)")
    r.add_argument("--allow-unk", action="store_true", help="may suggest <unk>")
    r.add_argument("--json", action="store_true", help="one JSON object per prompt")

    g = cmd("generate", "sample text from a model")
    g.add_argument("model", help="model folder or ARPA file")
    g.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this level "
                   "(seqlm's own ARPA files say theirs)")
    g.add_argument("--prompt", default="", help="text to continue (default: a new sentence)")
    g.add_argument("--num", type=int, default=1, help="how many samples (default 1)")
    g.add_argument("--max-tokens", type=int, default=50, help="stop after this many tokens (default 50)")
    g.add_argument("--temperature", type=float, default=1.0, help="divide log-probs by this (default 1)")
    g.add_argument("--top-k", type=int, help="sample among the k most probable tokens")
    g.add_argument("--top-p", type=float, help="sample from the smallest set holding this much probability")
    g.add_argument("--greedy", action="store_true", help="always take the most probable token")
    g.add_argument("--seed", type=int, help="random seed (same seed, same text)")
    g.add_argument("--allow-unk", action="store_true", help="may generate <unk>")
    g.add_argument("--json", action="store_true", help="one JSON object per sample")

    x = cmd("export", "write an n-gram model as an ARPA file")
    x.add_argument("model", help="model folder")
    x.add_argument("arpa", help="ARPA file to write (.gz to compress)")

    nb = cmd("neighbours", "nearest words in a neural model's input embedding (cosine similarity)")
    nb.add_argument("model", help="neural model or run folder")
    nb.add_argument("word", nargs="+", help="one or more words")
    nb.add_argument("--top-k", type=int, default=10, help="how many neighbours (default 10)")
    nb.add_argument("--json", action="store_true", help="one JSON object per word")

    rp = cmd("report", "write a report (tables, learning curves, embedding neighbours) from results and runs")
    rp.add_argument("sources", nargs="+", help="results folders (*.json) and/or run folders")
    rp.add_argument("--out", default="reports/report", help="report folder to write (default reports/report)")

    dg = cmd("diagnose", "measure what a trained model does inside: gradients through time")
    dg.add_argument("what", choices=("gradients", "recall"), help="gradients: norm of d ln p(next) / d state k "
                    "steps back, for MODEL; recall: the long-range recall probe, every family trained on generated "
                    "text (no MODEL)")
    dg.add_argument("model", nargs="?", help="recurrent model or run folder (gradients)")
    dg.add_argument("--distances", default="1,2,5,10,20,50,100", help="recall: distances d (default 1,2,5,10,20,50,100)")
    dg.add_argument("--families", default="kn5,window,rnn_tanh,lstm,gru", help="recall: which families")
    data_args(dg, files=False)
    dg.add_argument("--split", default="valid", choices=("train", "valid", "test"), help="corpus split (default valid)")
    dg.add_argument("--file", help="a text file instead of a corpus split")
    dg.add_argument("--K", type=int, default=100, help="steps back (default 100)")
    dg.add_argument("--positions", type=int, default=200, help="positions sampled (default 200)")
    dg.add_argument("--out", help="write the result JSON here (e.g. results/gradients-lstm.json)")
    dg.add_argument("--plot", help="write the log-scale figure here (PNG; needs matplotlib)")
    dg.add_argument("--json", action="store_true", help="print the result JSON")

    ad = cmd("adapt", "wrap a neural model in dynamic evaluation or a continuous cache, tuned on validation text")
    ad.add_argument("model", help="neural model or run folder")
    ad.add_argument("--method", required=True, choices=("dynamic", "cache"),
                    help="dynamic: Krause et al. 2018; cache: Grave et al. 2017's continuous cache pointer")
    data_args(ad, files=False)
    ad.add_argument("--valid", help="tune on this text file (default: the valid split of --corpus, or of the corpus "
                    "the model was trained on)")
    ad.add_argument("--train", help="dynamic (rms rule): training text for the gradient statistics (default: the "
                    "train split of that corpus)")
    ad.add_argument("--valid-lines", type=int, help="tune on the first N lines of the validation text only (faster)")
    ad.add_argument("--stats-tokens", type=int, help="dynamic (rms rule): use only this many training tokens")
    ad.add_argument("--param", action="append", default=[], metavar="NAME=V[,V...]",
                    help="fix a parameter (one value) or search these values on validation; dynamic: lr, decay, "
                    "segment, epsilon, rule (rms|sgd); cache: size, theta, lambda")
    ad.add_argument("--no-tune", action="store_true", help="no search: the given (or default) values")
    ad.add_argument("--test", action="store_true", help="also evaluate the test split (stream) and time it")
    ad.add_argument("--out", required=True, help="folder to write (usable wherever a model is)")
    ad.add_argument("--results", help="write the tuning, perplexities, times and hardware as JSON here")
    ad.add_argument("--json", action="store_true", help="print the result JSON")

    sv = cmd("serve", "serve models over HTTP: a JSON API (suggest, score, generate, evaluate) and a typing page")
    sv.add_argument("models", nargs="+", metavar="[NAME=]MODEL", help="model folders or ARPA files (any kinds), "
                    "optionally named (default: the folder's name)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--cache-size", type=int, default=1024, help="model states kept per model by text prefix "
                    "(default 1024)")
    sv.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)")

    rs = cmd("rescore", "add a language model's score to n-best hypotheses and pick each utterance's best")
    rs.add_argument("model", help="model folder or ARPA file")
    rs.add_argument("nbest", help="n-best file: ID [SCORE] HYPOTHESIS per line, or Kaldi's UTT-N HYPOTHESIS (- for "
                    "stdin)")
    rs.add_argument("--level", choices=("word", "char"), help="read an ARPA file from another tool at this level")
    rs.add_argument("--format", default="auto", choices=("auto", "id-score-text", "id-text", "kaldi"),
                    help="the n-best shape (default auto: told apart from the file)")
    rs.add_argument("--lm-weight", type=float, default=1.0, help="weight of the LM log-probability (default 1)")
    rs.add_argument("--word-penalty", type=float, default=0.0, help="added per word (default 0)")
    rs.add_argument("--log-base", default="e", choices=("e", "10"), help="base of the LM score added (default e; 10 "
                    "to match log10 scores in the file)")
    rs.add_argument("--best", action="store_true", help="print only each utterance's best hypothesis (UTT TEXT)")
    rs.add_argument("--json", action="store_true", help="print one JSON object")

    mx = cmd("mix", "interpolate models that share a vocabulary, with weights fitted by EM on validation text")
    mx.add_argument("models", nargs="+", help="two or more model folders or ARPA files (any kinds)")
    mx.add_argument("--weights", help="comma-separated weights, one per model (default: fitted by EM)")
    data_args(mx, files=False)
    mx.add_argument("--valid", help="fit on this text file (default: the valid split of --corpus, or of the corpus "
                    "the models were trained on)")
    mx.add_argument("--valid-lines", type=int, help="fit on the first N lines only")
    mx.add_argument("--test", action="store_true", help="also evaluate the test split (stream), mixture and parts")
    mx.add_argument("--out", required=True, help="mixture folder to write (usable wherever a model is)")
    mx.add_argument("--results", help="write the weights and perplexities as JSON here")
    mx.add_argument("--json", action="store_true", help="print the result JSON")

    d = cmd("demo", "train n-gram models on the bundled generated corpora and show what they do")
    d.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def _version() -> str:
    from seqlm import __version__

    return __version__


def _print_json(obj) -> None:
    """Strict JSON (non-finite numbers as null: JSON.parse rejects Infinity and NaN), one object a line."""
    from seqlm.io.files import dumps

    print(dumps(obj, ensure_ascii=False, default=_json_default))


def _json_default(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x).__name__)


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else str(x)


def _stdin_lines() -> list[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise SeqlmError("no input: pipe text into stdin or give --file")
    data = sys.stdin.buffer.read()
    from seqlm.text.corpora import decode_lines

    return decode_lines(data, "stdin", keep_blank=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from seqlm.io.runtime import setup_logging

    setup_logging(-1 if args.quiet else (1 if args.verbose else 0))
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args) or 0
    except SeqlmError as e:
        print(f"seqlm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqlm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _train(args) -> int:
    from seqlm.training.train import train

    if args.split_ratio and not args.text:
        raise SeqlmError("--split-ratio splits a --text file: give --text FILE, or drop --split-ratio")
    options = {k: getattr(args, k) for k in ("corpus", "data_dir", "train", "valid", "test", "text", "split_ratio",
                                              "model", "order", "k", "prune", "memory", "temp_dir", "backend", "device", "precision",
                                              "level", "lowercase", "min_count", "max_size")}
    lm, summary = train(args.recipe, out=args.out, overrides=args.set, arpa=args.arpa, results=args.results,
                        resume=args.resume, overwrite=args.overwrite, argv=sys.argv, **options)
    if args.json:
        _print_json(summary)
    elif "metrics" in summary and "parameters" in summary.get("model", {}):
        m = summary["metrics"]
        print(f"{summary['model']['kind']} ({summary['model']['parameters']:,} parameters): "
              + ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in m.items())
              + f", {summary['wall_seconds'] / 60:.1f} min, stopped by {summary['stop']} -> {args.out}")
    else:
        m = summary["model"]
        print(f"{m['order']}-gram {m['smoothing']}: {'/'.join(map(str, m['ngrams']))} n-grams, "
              f"vocabulary {m['vocab_size']}, {summary['seconds']:.2f}s -> {args.out}")
        if "valid" in summary:
            v = summary["valid"]
            print(f"valid perplexity {_fmt(v['perplexity'])} ({v['tokens']} tokens, {v['oov']} OOV)")
    return 130 if summary.get("interrupted") else 0


def _evaluate(args) -> int:
    from seqlm.tasks.evaluate import evaluate_data
    from seqlm.models.loader import load

    model = load(args.model, level=args.level)
    result = evaluate_data(model, corpus=args.corpus, split=args.split, file=args.file, data_dir=args.data_dir,
                           mode=args.mode)
    source = result["data"]
    if args.json:
        _print_json(result)
    else:
        unit = result["unit"]
        print(f"{source}: perplexity {_fmt(result['perplexity'])}, {result[f'bits_per_{unit}']:.4f} bits/{unit}, "
              f"{result['tokens']} tokens, {result['oov']} OOV "
              f"(perplexity without OOV {_fmt(result['perplexity_without_oov'])}), mode {result['mode']}")
    return 0


def _input_lines(args) -> list[str]:
    from seqlm.text.corpora import read_lines

    return read_lines(args.file, keep_blank=True) if args.file else _stdin_lines()


def _score(args) -> int:
    from seqlm.models.loader import load
    from seqlm.tasks.score import score

    model = load(args.model, level=args.level)
    rows = score(model, _input_lines(args), per=args.per, mode=args.mode)
    for row in rows:
        if args.json:
            _print_json(row)
        elif args.per == "corpus":
            print(f"log_prob {row['log_prob']:.4f} (ln), {row['tokens']} tokens, perplexity {_fmt(row['perplexity'])}")
        else:
            print(f"{row['log_prob']:.4f}\t{row['text']}")
            for t in row.get("token_log_probs", []):
                print(f"\t{t['log_prob']:.4f}\t{t['token']}{'  (OOV)' if t['oov'] else ''}")
    return 0


def _predict(args) -> int:
    from seqlm.tasks.generate import predict
    from seqlm.models.loader import load

    model = load(args.model, level=args.level)
    prompts = [args.prompt] if args.prompt is not None else _stdin_lines()
    for prompt in prompts:
        preds = predict(model, prompt, top_k=args.top_k, allow_unk=args.allow_unk)
        if args.json:
            _print_json({"prompt": prompt, "predictions": preds})
        else:
            print(f"{prompt} ...")
            for rank, p in enumerate(preds, 1):
                print(f"  {rank}. {p['token']}\t{p['prob']:.4f}")
    return 0


def _generate(args) -> int:
    from seqlm.tasks.generate import generate
    from seqlm.models.loader import load

    if args.num < 1:
        raise SeqlmError(f"--num must be >= 1 (got {args.num})")
    model = load(args.model, level=args.level)
    for i in range(args.num):
        seed = None if args.seed is None else args.seed + i
        out = generate(model, args.prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, seed=seed,
                       allow_unk=args.allow_unk)
        if args.json:
            _print_json(out)
        else:
            print(out["text"])
    return 0


def _export(args) -> int:
    from seqlm.models.loader import load
    from seqlm.models.ngram.arpa import write_arpa

    write_arpa(load(args.model), args.arpa)
    print(args.arpa)
    return 0


def _neighbours(args) -> int:
    from seqlm.analysis.embeddings import neighbours
    from seqlm.models.loader import load

    model = load(args.model, device="cpu")
    for word in args.word:
        near = neighbours(model, word, k=args.top_k)
        if args.json:
            _print_json({"word": word, "neighbours": near})
        else:
            print(f"{word}: " + ", ".join(f"{n['token']} {n['cosine']:.2f}" for n in near))
    return 0


def _report(args) -> int:
    from seqlm.report.build import report

    print(report(args.sources, args.out))
    return 0


def _diagnose(args) -> int:
    if args.what == "recall":
        return _recall(args)
    from seqlm.analysis.gradients import diagnose_gradients, plot
    from seqlm.tasks.evaluate import read_source
    from seqlm.io.files import check_targets, write_json
    from seqlm.models.loader import load
    from seqlm.io.runtime import hardware

    check_targets(out=args.out, plot=args.plot)
    if not args.model:
        raise SeqlmError("seqlm diagnose gradients needs a model: seqlm diagnose gradients RUN --corpus ptb")
    model = load(args.model, device="cpu")
    lines, _ = read_source(model, corpus=args.corpus, split=args.split, file=args.file, data_dir=args.data_dir)
    result = diagnose_gradients(model, lines, K=args.K, positions=args.positions)
    result.update(model=str(args.model), kind=model.config.get("model", {}).get("kind"), hardware=hardware(),
                  title=f"{Path(args.model).name}: gradient through time")
    if args.out:
        write_json(args.out, result)
    if args.plot:
        try:
            plot(result, args.plot)
        except ImportError:
            raise SeqlmError("--plot needs matplotlib: pip install 'seqlm[plot]'") from None
    if args.json:
        _print_json(result)
    else:
        for name in result["states"]:
            tr, ini = result["trained"][name], result.get("init", {}).get(name, {})
            print(f"{name}: gradient horizon {tr['horizon']} steps trained, {ini.get('horizon')} at init "
                  f"(median norm at k=0 {tr['median'][0]:.3g}, at k={args.K} {tr['median'][-1]:.3g})")
    return 0


def _recall(args) -> int:
    from seqlm.analysis import probe
    from seqlm.io.files import check_targets, write_json
    from seqlm.io.runtime import hardware

    check_targets(out=args.out, plot=args.plot)
    try:
        distances = [int(x) for x in args.distances.split(",")]
    except ValueError:
        raise SeqlmError(f"--distances needs comma-separated integers (got {args.distances!r})") from None
    if any(d < 1 for d in distances):
        raise SeqlmError("--distances must be >= 1")
    families = args.families.split(",")
    unknown = [f for f in families if f not in probe.FAMILIES]
    if unknown:
        raise SeqlmError(f"unknown families {unknown}: choose from {', '.join(probe.FAMILIES)}")
    result = probe.run_probe(distances, families)
    result["hardware"] = hardware()
    if args.out:
        write_json(args.out, result)
    if args.plot:
        probe.plot(result, args.plot)
    if args.json:
        _print_json(result)
    else:
        print("recall accuracy (chance %.3f)" % result["chance"])
        print(f"{'family':<10}" + "".join(f"{'d=' + str(d):>8}" for d in distances))
        for fam, acc in result["accuracy"].items():
            print(f"{fam:<10}" + "".join(f"{acc[str(d)]:>8.2f}" for d in distances))
    return 0


def _demo(args) -> int:
    from seqlm.workflows.demo import demo

    demo(as_json=args.json)
    return 0


def _adapt(args) -> int:
    from seqlm.workflows.adapt import adapt_command

    result = adapt_command(args.model, args.method, out=args.out, params=args.param, tune=not args.no_tune,
                           corpus=args.corpus, data_dir=args.data_dir, valid=args.valid, train=args.train,
                           stats_tokens=args.stats_tokens, valid_lines=args.valid_lines, test=args.test, results=args.results, argv=sys.argv)
    if args.json:
        _print_json(result)
    else:
        m = result["metrics"]
        print(f"{args.method} {_params_text(result['params'])}: "
              + ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in m.items()) + f" -> {args.out}")
    return 0


def _serve(args) -> int:
    from seqlm.serve.app import serve_command

    serve_command(args.models, host=args.host, port=args.port, cache_size=args.cache_size, max_body=args.max_body)
    return 0


def _rescore(args) -> int:
    from seqlm.models.loader import load
    from seqlm.tasks.rescore import parse_nbest, rescore

    model = load(args.model, level=args.level)
    lines = _stdin_lines() if args.nbest == "-" else _read(args.nbest)
    hyps = parse_nbest(lines, args.format, name="stdin" if args.nbest == "-" else args.nbest)
    rows, best = rescore(model, hyps, args.lm_weight, args.word_penalty, args.log_base)
    if args.json:
        _print_json({"hypotheses": rows, "best": best})
    elif args.best:
        for row in best:
            print(f"{row['utterance']}\t{row['text']}")
    else:  # each utterance's hypotheses, best first
        order = {u["utterance"]: k for k, u in enumerate(best)}
        ranked = sorted(rows, key=lambda r: (order[r["utterance"]], -r["total"], r["line"]))
        rank = {}
        for row in ranked:
            rank[row["utterance"]] = rank.get(row["utterance"], 0) + 1
            print(f"{row['utterance']}\t{rank[row['utterance']]}\t{row['id']}\t{row['total']:.4f}\t"
                  f"{row['lm_log_prob']:.4f}\t{row['text']}")
    return 0


def _read(path):
    from seqlm.text.corpora import read_lines

    return read_lines(path)


def _mix(args) -> int:
    from seqlm.models.mixture import mix_command

    result = mix_command(args.models, out=args.out, weights=args.weights, corpus=args.corpus, data_dir=args.data_dir,
                         valid=args.valid, valid_lines=args.valid_lines, test=args.test, results=args.results,
                         argv=sys.argv)
    if args.json:
        _print_json(result)
    else:
        for p in result["parts"]:
            print(f"  {p['model']}: weight {p['weight']:.4f}, valid perplexity {_fmt(p['valid_perplexity'])}"
                  + (f", test perplexity {_fmt(p['test_perplexity'])}" if "test_perplexity" in p else ""))
        print("mixture: " + ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in result["metrics"].items())
              + f" -> {args.out}")
    return 0


def _params_text(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


COMMANDS = {"train": _train, "evaluate": _evaluate, "score": _score, "predict": _predict,
            "generate": _generate, "export": _export, "neighbours": _neighbours,
            "report": _report, "diagnose": _diagnose, "demo": _demo,
            "adapt": _adapt, "mix": _mix, "rescore": _rescore,
            "serve": _serve}

if __name__ == "__main__":
    sys.exit(main())
