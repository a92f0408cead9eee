"""A large generated corpus for the n-gram scale benchmark: no download, fully determined by a seed.

    python bench/corpus.py --tokens 100M --out /tmp/big.txt [--seed 0] [--types 200000]

The text has what makes real corpora hard for n-gram tools:
* a Zipfian vocabulary (Zipf-Mandelbrot weights 1 / (rank + 2.7)) of ``--types`` made-up words (200,000 by
  default; the longer the text, the more of them it uses, as with real text);
* syntax-like structure: every word belongs to one of 96 classes, and the class of the next word follows
  a sparse random Markov chain (a handful of likely successors per class), so bigrams and trigrams are
  far from independent;
* idioms: 15% of the units are multi-word phrases (2 to 6 words) drawn Zipf-ly from a table of 60,000
  phrases, so 4- and 5-grams repeat the way fixed expressions do;
* sentences of 3 to 60 words (lognormal lengths, median ~20), one per line.

Generation is vectorized (all sentences of a block advance one word at a time together) and written in
blocks, so memory stays small whatever ``--tokens`` is.  The last line of output is one JSON object
(tokens, lines, types used, seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = 96
PHRASES = 60_000
PHRASE_RATE = 0.15
SYLLABLES = [c + v for c in "bdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]


def size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


class Source:
    def __init__(self, types: int, seed: int):
        rng = np.random.default_rng(seed)
        self.rng = np.random.default_rng(seed + 1)
        self.words = _make_words(types, rng)
        weight = 1.0 / (np.arange(types) + 2.7)
        cls = rng.integers(0, CLASSES, types)
        cls[:CLASSES] = np.arange(CLASSES)  # every class has a frequent word
        order = np.argsort(cls, kind="stable")  # words grouped by class, by rank within each
        self.members = order
        w = weight[order]
        self.cum = np.cumsum(w) / w.sum()
        bounds = np.searchsorted(cls[order], np.arange(CLASSES + 1))
        self.lo = np.concatenate([[0.0], self.cum])[bounds[:-1]]
        self.hi = self.cum[bounds[1:] - 1]
        # sparse class transitions: each class strongly prefers a few successors
        trans = rng.dirichlet(np.full(CLASSES, 0.05), size=CLASSES)
        cum = np.cumsum(trans, axis=1)
        cum[:, -1] = 1.0
        self.trans_flat = (cum + np.arange(CLASSES)[:, None]).ravel()
        self.start_cum = np.cumsum(rng.dirichlet(np.full(CLASSES, 0.3)))
        # the phrase table: short class-chain walks, so idioms look like the rest of the text
        lengths = np.sort(rng.integers(2, 7, PHRASES))[::-1]
        walks = self._walk(lengths, rng)
        self.phrase_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.phrase_len = lengths
        self.phrase_flat = walks[np.arange(walks.shape[1]) < lengths[:, None]]
        pw = 1.0 / (np.arange(PHRASES) + 5.0)
        self.phrase_cum = np.cumsum(pw) / pw.sum()

    def _word(self, classes: np.ndarray, rng) -> np.ndarray:
        u = self.lo[classes] + rng.random(len(classes)) * (self.hi[classes] - self.lo[classes])
        return self.members[np.minimum(np.searchsorted(self.cum, u), len(self.cum) - 1)]

    def _walk(self, lengths: np.ndarray, rng) -> np.ndarray:
        """Class-chain walks of the given lengths (sorted longest first), as an (n, max length) word matrix:
        each step draws only for the walks still going."""
        n = len(lengths)
        width = int(lengths[0]) if n else 0
        out = np.zeros((n, width), dtype=np.int64)
        c = np.minimum(np.searchsorted(self.start_cum, rng.random(n)), CLASSES - 1)
        going = n
        for j in range(width):
            going = int(np.searchsorted(-lengths, -j, side="left"))  # walks longer than j
            c = c[:going]
            out[:going, j] = self._word(c, rng)
            # next class: one search in the rows' cumulative tables laid end to end (row r spans r..r+1)
            flat = np.searchsorted(self.trans_flat, c + rng.random(going) * 0.999999999)
            c = np.minimum(flat - c * CLASSES, CLASSES - 1)
        return out

    def block(self, n_sentences: int) -> tuple[np.ndarray, np.ndarray]:
        """Word ids of ``n_sentences`` sentences, flat, and each sentence's length in words."""
        rng = self.rng
        units = np.sort(np.clip(np.rint(np.exp(rng.normal(np.log(16), 0.5, n_sentences))), 2, 48).astype(np.int64))[::-1]
        walks = self._walk(units, rng)
        keep = np.arange(walks.shape[1]) < units[:, None]
        unit_ids = walks[keep]  # words, sentence by sentence
        sentence_of_unit = np.repeat(np.arange(n_sentences), units)
        is_phrase = rng.random(len(unit_ids)) < PHRASE_RATE
        phrase = np.minimum(np.searchsorted(self.phrase_cum, rng.random(int(is_phrase.sum()))), PHRASES - 1)
        unit_len = np.ones(len(unit_ids), dtype=np.int64)
        unit_len[is_phrase] = self.phrase_len[phrase]
        src = np.repeat(unit_ids, unit_len)
        pos = np.flatnonzero(np.repeat(is_phrase, unit_len))
        within = np.arange(len(src)) - np.repeat(np.cumsum(unit_len) - unit_len, unit_len)
        phrase_of = np.repeat(np.cumsum(is_phrase) - 1, unit_len)[pos]
        src[pos] = self.phrase_flat[self.phrase_start[phrase[phrase_of]] + within[pos]]
        lengths = np.bincount(sentence_of_unit, weights=unit_len, minlength=n_sentences).astype(np.int64)
        over = lengths > 60
        if over.any():  # cut the rare very long sentence at 60 words
            keep_tok = np.arange(len(src)) - np.repeat(np.cumsum(lengths) - lengths, lengths) < 60
            src, lengths = src[keep_tok], np.minimum(lengths, 60)
        # sentences were drawn longest first: shuffle them
        perm = rng.permutation(len(lengths))
        starts = np.cumsum(lengths) - lengths
        new_len = lengths[perm]
        within = np.arange(int(new_len.sum())) - np.repeat(np.cumsum(new_len) - new_len, new_len)
        return src[np.repeat(starts[perm], new_len) + within], new_len


def _make_words(n: int, rng) -> np.ndarray:
    """``n`` distinct pronounceable made-up words, short ones for the frequent ranks."""
    words: list[str] = []
    seen: set[str] = set()
    syl = np.array(SYLLABLES)
    k = 1
    while len(words) < n:
        count = min(len(syl) ** k, 4 * (n - len(words)) + 100)
        cand = rng.choice(syl, size=(count, k))
        for w in ("".join(row) for row in cand):
            if w not in seen:
                seen.add(w)
                words.append(w)
                if len(words) == n:
                    break
        k += 1
    return np.array([w.encode() for w in words], dtype=object)


def write(path: Path, tokens: int, types: int, seed: int) -> dict:
    t0 = time.perf_counter()
    src = Source(types, seed)
    encoded = [bytes(w) for w in src.words]
    word_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    word_len = np.array([len(w) for w in encoded], dtype=np.int64)
    word_start = np.cumsum(word_len) - word_len
    written = lines = 0
    used = np.zeros(types, dtype=bool)
    with open(path, "wb") as f:
        while written < tokens:
            ids, lengths = src.block(200_000)
            room = tokens - written
            if len(ids) > room:  # whole sentences only, up to the budget
                n = max(1, int(np.searchsorted(np.cumsum(lengths), room, side="right")))
                lengths = lengths[:n]
                ids = ids[:int(lengths.sum())]
            row_len = word_len[ids] + 1
            ends = np.cumsum(row_len)
            out = np.empty(int(ends[-1]), dtype=np.uint8)
            within = np.arange(len(out)) - np.repeat(ends - row_len, row_len)
            tok_of_byte = np.repeat(np.arange(len(ids)), row_len)
            is_word = within < word_len[ids][tok_of_byte]
            out[is_word] = word_bytes[word_start[ids][tok_of_byte[is_word]] + within[is_word]]
            out[~is_word] = 32
            out[ends[np.cumsum(lengths) - 1] - 1] = 10
            f.write(out.tobytes())
            used[ids] = True
            written += len(ids)
            lines += len(lengths)
    return {"path": str(path), "tokens": written, "lines": lines, "types_used": int(used.sum()),
            "types": types, "seed": seed, "bytes": path.stat().st_size, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="10M", help="words to write (whole sentences; 1M, 30M, 100M ...)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--types", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    info = write(Path(args.out), size(args.tokens), args.types, args.seed)
    print(f"{info['tokens']:,} tokens, {info['lines']:,} lines, {info['types_used']:,} word types, "
          f"{info['bytes'] / 1e6:.0f} MB in {info['seconds']:.1f}s -> {args.out}", file=sys.stderr)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
