"""``seqlm export``: an n-gram model as an ARPA file (seqlm.export); ``seqlm convert``: an n-gram model (an
ARPA file, or a folder of any seqlm format) as a model folder, float32 or quantized."""

from __future__ import annotations

from seqlm.cli.common import add_model, command

EXAMPLES = """
  seqlm export runs/kn5 kn5.arpa
  seqlm export runs/kn5 kn5.arpa.gz
"""

CONVERT_EXAMPLES = """
  seqlm convert kn5.arpa runs/kn5                 # an ARPA file from any tool, memory-mapped from then on
  seqlm convert runs/kn5 runs/kn5-q8 --quantize 8  # 8-bit ln p and ln backoff (KenLM's -q 8 -b 8)
  seqlm convert runs/old-kn5 runs/kn5              # a folder of an older seqlm format
  seqlm convert runs/kn5 runs/kn5-small --prune-entropy 1e-8   # Stolcke's entropy pruning (SRILM -prune)
  seqlm convert kn5.arpa runs/kn5-1m --max-ngrams 1000000      # pruned to a size
"""


def register(sub) -> None:
    x = command(sub, "export", "write an n-gram model as an ARPA file", EXAMPLES, run)
    add_model(x, "model folder", level=False)
    x.add_argument("arpa", help="ARPA file to write (.gz to compress)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing file seqlm did not write")
    c = command(sub, "convert", "write an n-gram model (ARPA file or model folder) as a model folder, float32 or "
                "quantized", CONVERT_EXAMPLES, run_convert)
    add_model(c, "n-gram model folder (any seqlm format) or ARPA file")
    c.add_argument("out", help="model folder to write")
    c.add_argument("--quantize", type=int, metavar="BITS", help="ln p and ln backoff above order 1 as BITS-bit codes "
                   "(1-16; 8 as KenLM's build_binary -q 8 -b 8), default float32")
    c.add_argument("--prune-entropy", type=float, metavar="THRESHOLD", help="entropy pruning (Stolcke, as SRILM "
                   "-prune): drop the n-grams whose removal changes the perplexity by less than THRESHOLD, relative")
    c.add_argument("--max-ngrams", type=int, metavar="N", help="entropy pruning to a size: keep at most N n-grams")
    c.add_argument("--overwrite", action="store_true", help="replace the n-gram model already in OUT")


def run(args) -> int:
    from seqlm.io.files import check_target
    from seqlm.models.loader import load
    from seqlm.models.ngram.arpa import write_arpa

    check_target(args.arpa, "the ARPA file", inputs=[args.model], overwrite=args.overwrite)
    write_arpa(load(args.model), args.arpa)
    print(args.arpa)
    return 0


def run_convert(args) -> int:
    from seqlm.models.loader import convert

    lm = convert(args.model, args.out, quantize=args.quantize, overwrite=args.overwrite, level=args.level,
                 prune_entropy=args.prune_entropy, max_ngrams=args.max_ngrams)
    n, size = sum(lm.trie.sizes()), lm.trie.nbytes()
    print(f"{args.out}: {lm.order}-gram, {n:,} n-grams, {size / 1e6:.1f} MB ({size / max(n, 1):.2f} bytes per n-gram"
          f"{f', {args.quantize}-bit values' if args.quantize else ', float32 values'})")
    return 0
