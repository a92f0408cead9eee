"""Looking inside models: ``seqlm neighbours`` (embedding), ``seqlm diagnose`` (gradients through time,
the recall probe) and ``seqlm report`` (tables and figures from results)."""

from __future__ import annotations

from seqlm.cli.common import add_data, add_json, add_model, command, print_json

NEIGHBOURS = """
  seqlm neighbours runs/lstm money --top-k 10
  seqlm neighbours runs/lstm president --json
"""
DIAGNOSE = """
  seqlm diagnose gradients runs/cpu-lstm --corpus ptb --split valid --out results/gradients-lstm.json
  seqlm diagnose gradients runs/cpu-rnn --file valid.txt --K 150 --plot rnn-gradients.png
  seqlm diagnose recall --out results/probe-recall.json --plot recall.png
"""
REPORT = """
  seqlm report results/ --out reports/ptb
  seqlm report results/ runs/cpu-lstm runs/cpu-gru --out reports/ptb
"""


def register(sub) -> None:
    nb = command(sub, "neighbours", "nearest words in a neural model's input embedding (cosine similarity)",
                 NEIGHBOURS, neighbours)
    add_model(nb, "neural model or run folder", level=False)
    nb.add_argument("word", nargs="+", help="one or more words")
    nb.add_argument("--top-k", type=int, default=10, help="how many neighbours (default 10)")
    add_json(nb, "one JSON object per word")

    dg = command(sub, "diagnose", "measure what a trained model does inside: gradients through time", DIAGNOSE,
                 diagnose)
    dg.add_argument("what", choices=("gradients", "recall"), help="gradients: norm of d ln p(next) / d state and "
                    "/ d input k steps back, for MODEL; recall: the long-range recall probe, every family trained on generated "
                    "text (no MODEL)")
    dg.add_argument("model", nargs="?", help="recurrent or transformer model, or its run folder (gradients)")
    dg.add_argument("--distances", default="1,2,5,10,20,50,100", help="recall: distances d (default 1,2,5,10,20,50,100)")
    dg.add_argument("--families", default="kn5,window,rnn_tanh,lstm,gru,transformer", help="recall: which families")
    add_data(dg, split="valid")
    dg.add_argument("--K", type=int, default=100, help="steps back (default 100)")
    dg.add_argument("--positions", type=int, default=200, help="positions sampled (default 200)")
    dg.add_argument("--out", help="write the result JSON here (e.g. results/gradients-lstm.json)")
    dg.add_argument("--plot", help="write the log-scale figure here (PNG; needs matplotlib)")
    add_json(dg, "print the result JSON")

    rp = command(sub, "report", "write a report (tables, learning curves, embedding neighbours) from results and runs",
                 REPORT, report)
    rp.add_argument("sources", nargs="+", help="results folders (*.json) and/or run folders")
    rp.add_argument("--out", default="reports/report", help="report folder to write (default reports/report)")


def neighbours(args) -> int:
    from seqlm.models.loader import load
    from seqlm.models.neural.embeddings import neighbours

    model = load(args.model, device="cpu")
    for word in args.word:
        near = neighbours(model, word, k=args.top_k)
        if args.json:
            print_json({"word": word, "neighbours": near})
        else:
            print(f"{word}: " + ", ".join(f"{n['token']} {n['cosine']:.2f}" for n in near))
    return 0


def diagnose(args) -> int:
    from seqlm.workflows.diagnose import diagnose

    result = diagnose(args.what, args.model, corpus=args.corpus, split=args.split, file=args.file,
                      data_dir=args.data_dir, K=args.K, positions=args.positions, distances=args.distances,
                      families=args.families, out=args.out, plot=args.plot)
    if args.json:
        print_json(result)
    elif args.what == "recall":
        distances = result["distances"]
        print("recall accuracy (chance %.3f)" % result["chance"])
        print(f"{'family':<10}" + "".join(f"{'d=' + str(d):>8}" for d in distances))
        for fam, acc in result["accuracy"].items():
            print(f"{fam:<10}" + "".join(f"{acc[str(d)]:>8.2f}" for d in distances))
    else:
        for name in result["states"]:
            tr, ini = result["trained"][name], result.get("init", {}).get(name, {})
            print(f"{name}: gradient horizon {tr['horizon']} steps trained, {ini.get('horizon')} at init "
                  f"(median norm at k=0 {tr['median'][0]:.3g}, at k={args.K} {tr['median'][-1]:.3g})")
    return 0


def report(args) -> int:
    from seqlm.reporting.report import report

    print(report(args.sources, args.out))
    return 0
