"""Results tables for the README, generated from ``results/*.json`` (never typed by hand).

    python -m seqlm.report            # rewrite the README section between the results markers
    python -m seqlm.report --check    # exit 1 if the README is not what results/ says

Two shapes of result file are rendered: recipe runs (``{"recipe": ..., "metrics": {...}, ...}``) and the
n-gram benchmark (``{"benchmark": "ngram-ptb", "perplexity": [...], ...}``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _f(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def ngram_table(res: dict, source: str) -> list[str]:
    lines = [f"**n-gram models on PTB** (interpolated modified Kneser-Ney; from `{source}`, written by "
             f"`python bench/ngram.py --results {source}`; {res['hardware']['cpu']}, {res['hardware']['cores']} cores)",
             "", "| order | n-grams | valid ppl | test ppl | test ppl, sentence mode | test vs KenLM lmplz |",
             "|---|---|---|---|---|---|"]
    ken = res.get("lmplz_5gram", {}).get("reference", {}).get("test_perplexity", {})
    for row in res["perplexity"]:
        ref = ken.get(str(row["order"]))
        vs = f"{(row['test_stream'] / ref - 1) * 100:+.3f}% of {ref}" if ref else "–"
        lines.append(f"| {row['order']} | {sum(row['ngrams']):,} | {_f(row['valid_stream'])} | "
                     f"{_f(row['test_stream'])} | {_f(row['test_sentence'])} | {vs} |")
    est, sc = res["estimate_5gram"], res["scoring"]
    lines += ["", f"5-gram estimation, whole process from the shell: {est['seconds']:.2f} s, peak "
              f"{est['peak_mb']:.0f} MB. Scoring: {sc['seqlm_scorer_tokens_per_s'] / 1e6:.2f} M tokens/s "
              f"(scorer), {sc['seqlm_evaluate_tokens_per_s'] / 1e6:.2f} M tokens/s (evaluate, tokenizing included)"
              + (f"; the kenlm Python module on the same ARPA: {sc['kenlm_python_tokens_per_s'] / 1e6:.2f} M tokens/s."
                 if "kenlm_python_tokens_per_s" in sc else ".")]
    return lines


def recipe_table(rows: list[tuple[dict, str]]) -> list[str]:
    lines = ["**Recipe runs** (each row from its `results/` file, written by the run itself)", "",
             "| recipe | valid ppl | test ppl | target | wall time | hardware | file |", "|---|---|---|---|---|---|---|"]
    for res, source in rows:
        m = res.get("metrics", {})
        target = res.get("target", {})
        tgt = f"{target.get('metric', '')} {target.get('value', '')}".strip() or "–"
        hw = res.get("hardware", {})
        hw_s = hw.get("device") or hw.get("cpu", "")
        lines.append(f"| {res['recipe']} | {_f(m.get('valid_perplexity'))} | {_f(m.get('test_perplexity'))} | "
                     f"{tgt} | {res.get('wall_seconds', 0) / 60:.1f} min | {hw_s} | `{source}` |")
    return lines


def render(results_dir: Path) -> str:
    blocks: list[list[str]] = []
    recipes = []
    for path in sorted(results_dir.glob("*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        rel = f"results/{path.name}"
        if res.get("benchmark") == "ngram-ptb":
            blocks.append(ngram_table(res, rel))
        elif "recipe" in res:
            recipes.append((res, rel))
    if recipes:
        blocks.append(recipe_table(recipes))
    if not blocks:
        return "No results yet."
    return "\n\n".join("\n".join(b) for b in blocks)


def update(readme: Path, results_dir: Path) -> tuple[str, str]:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{render(results_dir)}\n{END}{tail}"
    return text, new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="generate the README's results tables from results/")
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--results", default="results")
    ap.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = ap.parse_args(argv)
    old, new = update(Path(args.readme), Path(args.results))
    if args.check:
        if old != new:
            print("README results are stale: run python -m seqlm.report", file=sys.stderr)
            return 1
        return 0
    if old != new:
        from .errors import atomic_write

        with atomic_write(args.readme) as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
