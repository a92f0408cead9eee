"""The tables of the comparison on units: one text in words, characters, subword pieces and bytes on one scale
(bench/units.py), where a word model's bits go against a subword and a byte model's (bench/unit_bits.py), and
the two subword libraries (bench/subword_libs.py)."""

from __future__ import annotations

from seqlm.reporting.markdown import md_table, number


def subword_libs_table(res: dict, source: str) -> list[str]:
    """HF tokenizers against sentencepiece on the same text and settings (bench/subword_libs.py)."""
    hw = res.get("hardware", {})
    rows = [[r["library"], r["units"], f"{r['learn_seconds']:.1f} s", f"{r['lines_per_second_one_by_one']:,.0f}",
             f"{r['lines_per_second_batch']:,.0f}", f"{r['test_pieces']:,}"] for r in res["rows"]]
    return md_table(f"**Subword libraries** ({res['pieces']:,} pieces learned from {res['corpus']}'s "
                  f"{res['train_lines']:,} training lines, byte fallback; its {res['test_lines']:,} test lines cut; "
                  f"`python bench/subword_libs.py`, from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)",
                  ["library", "units", "learn", "lines/s, one at a time", "lines/s, one batch", "test pieces"], rows)


def _unit_of(label: str) -> str:
    """What a token is, from a units row's label (rows of neural runs recorded before their metrics said)."""
    return {"word": "word", "char": "character", "byte": "byte"}.get(label, "subword")


def units_table(res: dict, source: str) -> list[str]:
    """The same text in words, characters, subword pieces and bytes, on one scale (bench/units.py)."""
    hw = res.get("hardware", {})
    rows = []
    for r in res["rows"]:
        size = (f"{sum(r['ngrams']):,} n-grams" if r.get("ngrams") else
                f"{r['parameters']:,} parameters" if r.get("parameters") else "")
        rows.append([r["corpus"], r["model"], r["units"], f"{r['bits_per_byte']:.4f}", number(r["word_perplexity"]),
                     f"{number(r['perplexity'])} per {r.get('unit') or _unit_of(r['units'])}", f"{r['oov']:,}", f"{r['vocab_size']:,}", size,
                     f"{r['model_mb']:.1f} MB", f"{r['seconds']:.0f} s",
                     f"{r['epochs']} epochs, {r['tokens_seen'] / 1e6:.1f}M tokens, {r['tokens_per_second']:,.0f}/s"
                     if r.get("tokens_seen") else "–"])
    budget = f"; each LSTM stopped by `--minutes {res['lstm_minutes']:g}`" if res.get("lstm_minutes") else ""
    return md_table(f"**One text, every unit** (test split; bits per byte and word-level perplexity count the same "
                  f"bytes and words whatever the unit; `seqlm train --level L` as a whole process{budget}; `python "
                  f"bench/units.py`, from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)",
                  ["corpus", "model", "units", "bits per byte", "word ppl", "token ppl", "OOV tokens", "vocabulary",
                   "size", "folder", "seconds", "training"], rows)


def unit_bits_table(res: dict, source: str) -> list[str]:
    """The same test text's bits per byte split over the words the word model knows, those it does not, and
    the line ends (bench/unit_bits.py)."""
    hw = res.get("hardware", {})
    rows = [[r["model"], f"{r['bits_per_byte']:.4f}", f"{r['known_words_bits_per_byte']:.4f}",
             f"{r['unknown_words_bits_per_byte']:.4f}", f"{r['line_ends_bits_per_byte']:.4f}",
             f"{r['bits_per_known_word']:.2f}", f"{r['bits_per_unknown_word']:.2f}"] for r in res["rows"]]
    share = res["unknown_words"] / res["words"]
    return md_table(f"**Where the bits go, by unit** ({res['corpus']} test: {res['words']:,} words, "
                    f"{res['unknown_words']:,} ({share:.1%}) unknown to the {res['unknown_by']} model, which scores "
                    f"each as one `<unk>` where the others spell it; a word's bits are its tokens', its space "
                    f"included; stream mode; `python bench/unit_bits.py`, from `{source}`; {hw.get('cpu')}, "
                    f"{hw.get('cores')} cores)",
                    ["model", "bits per byte", "of which: known words", "unknown words", "line ends",
                     "bits per known word", "bits per unknown word"], rows) + ["", _lead(res)]


def _lead(res: dict) -> str:
    """Each model's distance from the word model of its family, split as the table splits the bits."""
    family = lambda r: r["model"].split()[0].rstrip("0123456789")  # noqa: E731  KN5, KN6 -> KN; LSTM
    word = {family(r): r for r in res["rows"] if r["level"] == "word"}
    says = []
    for r in res["rows"]:
        w = word.get(family(r))
        if w is None or r is w:
            continue
        d = {k: r[f"{k}_bits_per_byte"] - w[f"{k}_bits_per_byte"] for k in ("known_words", "unknown_words", "line_ends")}
        says.append(f"`{r['model']}` is {r['bits_per_byte'] - w['bits_per_byte']:+.4f} bits per byte from `{w['model']}`: "
                    f"{d['known_words']:+.4f} on the known words, {d['unknown_words']:+.4f} on the unknown ones, "
                    f"{d['line_ends']:+.4f} on the line ends.")
    return " ".join(says)
