"""Models built from saved models: ``seqlm mix`` (a mixture, weights by EM), ``seqlm interpolate`` (one n-gram
model from several) and ``seqlm adapt`` (dynamic evaluation or a cache), over seqlm.mix, seqlm.interpolate
and seqlm.adapt."""

from __future__ import annotations

from seqlm.cli.common import add_data, add_json, add_model, command, fmt, metrics_text, print_json

MIX = """
  seqlm mix runs/kn5 runs/lstm --out runs/mix --test        # weights fitted by EM on the corpus's valid split
  seqlm mix runs/kn5 runs/lstm --weights 0.3,0.7 --out runs/mix-fixed
  seqlm evaluate runs/mix --corpus ptb                        # then use it as any model
"""
INTERPOLATE = """
  seqlm interpolate runs/news-kn5 runs/web-kn5 --fit valid.txt --out runs/both-kn5     # weights by EM on valid.txt
  seqlm interpolate a.arpa b.arpa --weights 0.7,0.3 --out runs/ab --arpa ab.arpa        # one ARPA file from two
"""
ADAPT = """
  seqlm adapt runs/lstm --method cache --out runs/lstm-cache            # tuned on the model's corpus's valid split
  seqlm adapt runs/lstm --method dynamic --out runs/lstm-dyn --param lr=1e-5,2e-5,5e-5 --param decay=0.01
  seqlm adapt runs/lstm --method dynamic --param rule=sgd --param lr=0.01 --no-tune --out runs/lstm-dyn-sgd
  seqlm evaluate runs/lstm-cache --corpus ptb                            # then use it as any model
"""


def register(sub) -> None:
    ad = command(sub, "adapt", "wrap a neural model in dynamic evaluation or a continuous cache, tuned on "
                 "validation text", ADAPT, adapt)
    add_model(ad, "neural model or run folder", level=False)
    ad.add_argument("--method", required=True, choices=("dynamic", "cache"),
                    help="dynamic: Krause et al. 2018; cache: Grave et al. 2017's continuous cache pointer")
    add_data(ad)
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
    add_json(ad, "print the result JSON")

    mx = command(sub, "mix", "interpolate models that share a vocabulary, with weights fitted by EM on validation "
                 "text", MIX, mix)
    mx.add_argument("models", nargs="+", help="two or more model folders or ARPA files (any kinds)")
    mx.add_argument("--weights", help="comma-separated weights, one per model (default: fitted by EM)")
    add_data(mx)
    mx.add_argument("--valid", help="fit on this text file (default: the valid split of --corpus, or of the corpus "
                    "the models were trained on)")
    mx.add_argument("--valid-lines", type=int, help="fit on the first N lines only")
    mx.add_argument("--test", action="store_true", help="also evaluate the test split (stream), mixture and parts")
    mx.add_argument("--out", required=True, help="mixture folder to write (usable wherever a model is)")
    mx.add_argument("--results", help="write the weights and perplexities as JSON here")
    add_json(mx, "print the result JSON")

    ip = command(sub, "interpolate", "one n-gram model that interpolates n-gram models at the n-gram level (as SRILM "
                 "-mix-lm), weights given or fitted by EM", INTERPOLATE, interpolate)
    ip.add_argument("models", nargs="+", help="two or more n-gram model folders or ARPA files (one tokenizer; "
                    "vocabularies may differ)")
    ip.add_argument("--weights", help="comma-separated weights, one per model")
    ip.add_argument("--fit", metavar="FILE", help="fit the weights by EM on this text file instead")
    ip.add_argument("--out", required=True, help="model folder to write")
    ip.add_argument("--arpa", help="also write the model as an ARPA file (.gz to compress)")
    ip.add_argument("--quantize", type=int, metavar="BITS", help="store ln p and ln backoff above order 1 in BITS-bit "
                    "codes (default float32)")
    ip.add_argument("--overwrite", action="store_true", help="replace the n-gram model already in --out")
    add_json(ip, "print the result JSON")


def interpolate(args) -> int:
    from seqlm.workflows.interpolate import interpolate

    result = interpolate(args.models, out=args.out, weights=args.weights, fit=args.fit, arpa=args.arpa,
                         quantize=args.quantize, overwrite=args.overwrite)
    if args.json:
        print_json(result)
    else:
        fit = result.get("fit")
        for i, (p, w) in enumerate(zip(result["parts"], result["weights"])):
            print(f"  {p['model']}: weight {w:.4f}" + (f", perplexity {fmt(fit['part_perplexity'][i])}" if fit else ""))
        n = sum(result["ngrams"])
        print(f"one {len(result['ngrams'])}-gram model, {n:,} n-grams" + (
            f", perplexity {fmt(fit['perplexity'])} on {fit['file']} (token-by-token mixture: "
            f"{fmt(fit['token_mixture_perplexity'])})" if fit else "") + f" -> {args.out}")
    return 0


def adapt(args) -> int:
    from seqlm.workflows.adapt import adapt

    result = adapt(args.model, args.method, out=args.out, params=args.param, tune=not args.no_tune,
                   corpus=args.corpus, data_dir=args.data_dir, valid=args.valid, train=args.train,
                   stats_tokens=args.stats_tokens, valid_lines=args.valid_lines, test=args.test, results=args.results)
    if args.json:
        print_json(result)
    else:
        params = " ".join(f"{k}={v}" for k, v in result["params"].items())
        print(f"{args.method} {params}: {metrics_text(result['metrics'])} -> {args.out}")
    return 0


def mix(args) -> int:
    from seqlm.workflows.mix import mix

    result = mix(args.models, out=args.out, weights=args.weights, corpus=args.corpus, data_dir=args.data_dir,
                 valid=args.valid, valid_lines=args.valid_lines, test=args.test, results=args.results)
    if args.json:
        print_json(result)
    else:
        for p in result["parts"]:
            print(f"  {p['model']}: weight {p['weight']:.4f}, valid perplexity {fmt(p['valid_perplexity'])}"
                  + (f", test perplexity {fmt(p['test_perplexity'])}" if "test_perplexity" in p else ""))
        print(f"mixture: {metrics_text(result['metrics'])} -> {args.out}")
    return 0
