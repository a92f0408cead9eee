"""``seqlm predict`` (the most probable next tokens) and ``seqlm generate`` (sampling), over seqlm.predict
and seqlm.generate."""

from __future__ import annotations

from seqlm.cli.common import add_json, add_model, command, input_lines, print_json, stdin_lines
from seqlm.errors import SeqlmError

PREDICT = """
  echo "the students opened their" | seqlm predict runs/kn5 --top-k 5
  seqlm predict runs/kn5 --prompt "the market" --top-k 10 --json
"""
GENERATE = """
  seqlm generate runs/kn5 --prompt "the market" --seed 1
  seqlm generate runs/kn5 --num 5 --temperature 0.8 --top-p 0.9 --seed 7 --json
  seqlm generate runs/char7 --prompt "the " --greedy --max-tokens 80
  seqlm generate runs/kn5 --prompt "the market" --beam 8 --num 3 --length-penalty 1 --ban "N $"
  seqlm generate runs/lstm --prompts prompts.txt --beam 4 --json    (every prompt's beam in one batched step)
"""


def register(sub) -> None:
    r = command(sub, "predict", "most probable next tokens after each prompt line (stdin or --prompt)", PREDICT,
                predict)
    add_model(r)
    r.add_argument("--prompt", help="the prompt (else one per stdin line)")
    r.add_argument("--top-k", type=int, default=5, help="how many suggestions (default 5)")
    r.add_argument("--allow-unk", action="store_true", help="may suggest <unk>")
    add_json(r, "one JSON object per prompt")

    g = command(sub, "generate", "sample text from a model", GENERATE, generate)
    add_model(g)
    g.add_argument("--prompt", default="", help="text to continue (default: a new sentence)")
    g.add_argument("--prompts", metavar="FILE", help="one prompt per line (- for stdin), instead of --prompt: each "
                   "gets its --num outputs; with --beam all prompts are searched together, one batched step each")
    g.add_argument("--num", type=int, default=1, help="how many samples (default 1)")
    g.add_argument("--max-tokens", type=int, default=50, help="stop after this many tokens (default 50)")
    g.add_argument("--temperature", type=float, default=1.0, help="divide log-probs by this (default 1)")
    g.add_argument("--top-k", type=int, help="sample among the k most probable tokens")
    g.add_argument("--top-p", type=float, help="sample from the smallest set holding this much probability")
    g.add_argument("--greedy", action="store_true", help="always take the most probable token")
    g.add_argument("--seed", type=int, help="random seed (same seed, same text)")
    g.add_argument("--allow-unk", action="store_true", help="may generate <unk>")
    b = g.add_argument_group("beam search (instead of sampling)")
    b.add_argument("--beam", type=int, help="keep this many hypotheses; --num of them are printed, best first")
    b.add_argument("--length-penalty", type=float, default=1.0, help="rank finished texts by log-prob / "
                   "length^this (default 1; 0: the plain log-prob)")
    b.add_argument("--ban", default="", help="words never to produce, separated by spaces")
    b.add_argument("--prefix", default="", help="text the output must begin with (forced, and scored)")
    add_json(g, "one JSON object per sample")


def predict(args) -> int:
    from seqlm.models.loader import load
    from seqlm.tasks.generate import predict

    model = load(args.model, level=args.level)
    prompts = [args.prompt] if args.prompt is not None else stdin_lines()
    for prompt in prompts:
        preds = predict(model, prompt, top_k=args.top_k, allow_unk=args.allow_unk)
        if args.json:
            print_json({"prompt": prompt, "predictions": preds})
        else:
            print(f"{prompt} ...")
            for rank, p in enumerate(preds, 1):
                print(f"  {rank}. {p['token']}\t{p['prob']:.4f}")
    return 0


def generate(args) -> int:
    from seqlm.models.loader import load
    from seqlm.tasks.generate import generate_many

    model = load(args.model, level=args.level)
    if args.prompts is not None and args.prompt:
        raise SeqlmError("give either --prompt or --prompts FILE, not both")
    prompts = input_lines(args.prompts) if args.prompts is not None else [args.prompt]
    if args.beam is not None:
        from seqlm.tasks.generate import beam_search

        sampling = [flag for flag, on in (("--seed", args.seed is not None), ("--temperature", args.temperature != 1.0),
                                          ("--top-k", args.top_k is not None), ("--top-p", args.top_p is not None),
                                          ("--greedy", args.greedy)) if on]
        if sampling:
            raise SeqlmError(f"{sampling[0]} is a sampling option: a beam search (--beam) takes no sampling options")
        found = beam_search(model, prompts, beam=args.beam, max_tokens=args.max_tokens, num=args.num,
                            length_penalty=args.length_penalty, banned_words=args.ban.split(), prefix=args.prefix,
                            allow_unk=args.allow_unk)
        samples = [out for outs in found for out in outs]
    else:
        if args.ban or args.prefix:
            raise SeqlmError("--ban and --prefix constrain a beam search: add --beam N")
        samples = [out for prompt in prompts for out in generate_many(
            model, prompt, num=args.num, seed=args.seed, max_tokens=args.max_tokens, temperature=args.temperature,
            top_k=args.top_k, top_p=args.top_p, greedy=args.greedy, allow_unk=args.allow_unk)]
    for out in samples:
        print_json(out) if args.json else print(out["text"])
    return 0
