"""CTC decoding with a language model: word error rate and speed, pyctcdecode with KenLM next to seqlm models.

    SEQLM_DATA=../shared/data python bench/asr.py --lstm runs/asr-lstm [--utterances 100]
        [--results results/asr.json]

Synthetic emissions (``seqlm.asr.synthetic_emissions``: PTB test sentences as characters, 1-3 frames a
character, a quarter of the letters confused with one they sound like, 10% of every frame's mass spread at
random; ``<unk>`` and ``N`` tokens left out of the sentences), decoded by pyctcdecode's beam search (beam 20,
alpha 0.5, beta 1.5) with: no LM; the PTB KN5 through the kenlm module (its ARPA file); the same KN5 through
seqlm; an LSTM (``--lstm``, fused word by word); the mixture of the KN5 and that LSTM (EM weights on PTB's
valid split).  Every decoder sees the same emissions in the same run.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import seqlm  # noqa: E402
from common import finish, ptb_kn5, ptb_test_lines, source_scratch  # noqa: E402
from seqlm import asr  # noqa: E402
from seqlm.io.records import git_commit, hardware  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lstm", help="a neural run or model folder trained on PTB (rows for it and its mixture)")
    ap.add_argument("--utterances", type=int, default=100)
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--work", help="scratch folder, kept: its models are reused while seqlm's source is unchanged (default: a temporary one, removed)")
    ap.add_argument("--results", help="also write the figures to this JSON file (e.g. results/asr.json)")
    args = ap.parse_args()
    import pyctcdecode

    work = source_scratch(args.work, "seqlm-asr-")
    kn5, arpa = ptb_kn5(work)
    lines = ptb_test_lines()
    texts = []
    for line in lines:
        words = [w for w in line.split() if w not in ("<unk>", "N")]
        if words:
            texts.append(asr.speakable(" ".join(words)))
        if len(texts) == args.utterances:
            break
    rng = np.random.default_rng(0)
    emissions = [asr.synthetic_emissions(t, rng, confuse=0.25, noise=0.1) for t in texts]
    unigrams = [w for w in seqlm.load(kn5).vocab.itos if not (w.startswith("<") and w.endswith(">"))]
    decoders = {"none": asr.build_ctcdecoder(asr.LABELS),
                "KN5 (kenlm module)": pyctcdecode.build_ctcdecoder(asr.LABELS, str(arpa), unigrams=unigrams),
                "KN5 (seqlm)": asr.build_ctcdecoder(asr.LABELS, kn5)}
    if args.lstm:
        mix = work / "mix"
        if not mix.exists():
            seqlm.mix([kn5, args.lstm], out=mix)
        decoders["LSTM (seqlm)"] = asr.build_ctcdecoder(asr.LABELS, args.lstm)
        decoders["KN5 + LSTM mixture (seqlm)"] = asr.build_ctcdecoder(asr.LABELS, mix)
    out: dict = {"type": "asr", "benchmark": "asr", "utterances": len(texts),
                 "words": sum(len(t.split()) for t in texts), "beam": args.beam, "alpha": 0.5, "beta": 1.5,
                 "confuse": 0.25, "noise": 0.1, "lstm": args.lstm, "rows": [], "hardware": hardware(),
                 "commit": git_commit(REPO)}
    decoded = {}
    for name, decoder in decoders.items():
        t0 = time.perf_counter()
        decoded[name] = [decoder.decode(e, beam_width=args.beam) for e in emissions]
        seconds = time.perf_counter() - t0
        errors = [asr.word_errors(t, d) for t, d in zip(texts, decoded[name])]
        row = {"decoder": name, "wer": sum(e for e, _ in errors) / sum(n for _, n in errors),
               "utterances_per_s": len(texts) / seconds, "seconds": seconds}
        out["rows"].append(row)
        print(f"{name}: WER {row['wer']:.4f}, {row['utterances_per_s']:.1f} utterances/s", file=sys.stderr)
    out["seqlm_kn5_beams_equal_kenlm"] = decoded["KN5 (seqlm)"] == decoded["KN5 (kenlm module)"]
    print(f"best beams equal (KN5 seqlm vs kenlm): {out['seqlm_kn5_beams_equal_kenlm']}", file=sys.stderr)
    if args.lstm:
        summary = Path(args.lstm) / "summary.json"
        if summary.is_file():
            out["lstm_test_perplexity"] = json.loads(summary.read_text())["metrics"].get("test_perplexity")
    finish(out, args.results, work, keep=bool(args.work))


if __name__ == "__main__":
    main()
