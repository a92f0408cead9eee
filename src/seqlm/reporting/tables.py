"""Markdown tables of results, one function per result type, and :func:`render`: every table a results
folder makes.  Every number is read from the files; nothing is typed."""

from __future__ import annotations

from pathlib import Path

from seqlm.reporting.markdown import md_table, number
from seqlm.reporting.race import race_tables
from seqlm.reporting.results import read_results
from seqlm.reporting.units import subword_libs_table, unit_bits_table, units_table


def ngram_table(res: dict, source: str) -> list[str]:
    lines = [f"**n-gram models on PTB** (interpolated modified Kneser-Ney; from `{source}`, written by "
             f"`python bench/ngram.py --results {source}`; {res['hardware']['cpu']}, {res['hardware']['cores']} cores)",
             "", "| order | n-grams | valid ppl | test ppl | test ppl, sentence mode | test vs KenLM lmplz |",
             "|---|---|---|---|---|---|"]
    ken = (res.get("kenlm_reference") or res.get("lmplz_5gram", {}).get("reference", {})).get("test_perplexity", {})
    for row in res["perplexity"]:
        ref = ken.get(str(row["order"]))
        vs = f"{(row['test_stream'] / ref - 1) * 100:+.3f}% of {ref}" if ref else "–"
        lines.append(f"| {row['order']} | {sum(row['ngrams']):,} | {number(row['valid_stream'])} | "
                     f"{number(row['test_stream'])} | {number(row['test_sentence'])} | {vs} |")
    est, sc = res["estimate_5gram"], res["scoring"]
    lines += ["", f"5-gram estimation, whole process from the shell: {est['seconds']:.2f} s, peak "
              f"{est['peak_mb']:.0f} MB. Scoring: {sc['seqlm_scorer_tokens_per_s'] / 1e6:.2f} M tokens/s "
              f"(scorer), {sc['seqlm_evaluate_tokens_per_s'] / 1e6:.2f} M tokens/s (evaluate, tokenizing included)"
              + (f"; the kenlm Python module on the same ARPA: {sc['kenlm_python_tokens_per_s'] / 1e6:.2f} M tokens/s."
                 if "kenlm_python_tokens_per_s" in sc else ".")]
    ken_est = res.get("lmplz_5gram", {})
    if "seconds" in ken_est:
        lines[-1] += (f" KenLM's `lmplz -o 5 -S 1G` in the same run: {ken_est['seconds']:.2f} s, peak "
                      f"{ken_est['peak_mb']:.0f} MB.")
    files = res.get("files")
    if files:
        ours, theirs = files["seqlm_read_arpa"], files.get("kenlm_read_arpa")
        lines += ["", f"Model files ({files['arpa_bytes'] / 1e6:.0f} MB ARPA of the 5-gram): write "
                  f"{files['write_arpa_seconds']:.2f} s; read {ours['seconds']:.2f} s, +{ours['added_mb']:.0f} MB over "
                  f"the process's imports"
                  + (f" (the kenlm module: {theirs['seconds']:.2f} s, +{theirs['added_mb']:.0f} MB)" if theirs else "")
                  + f"; load of the seqlm model folder (memory-mapped) {files['seqlm_load_folder']['seconds'] * 1000:.1f} ms."]
    mem = res.get("evaluate_memory")
    if mem:
        lines[-1] += (f" Evaluation's peak memory on {mem['x100']['tokens']:,} tokens is {mem['growth']:.2f}x that on "
                      f"{mem['x10']['tokens']:,} (read from a file as it is scored).")
    return lines


def recipe_table(rows: list[tuple[dict, str]]) -> list[str]:
    lines = ["**Recipe runs** (each row from its `results/` file, written by the run itself; \"vs target\" compares "
             "the target's metric with the published number the recipe names)", "",
             "| recipe | valid ppl | test ppl | target | vs target | epochs | stopped by | wall time | precision | "
             "hardware | file |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res, source in rows:
        m = res.get("metrics", {})
        target = res.get("target", {})
        tgt = (f"{target.get('metric', '').replace('_perplexity', ' ppl').replace('_bits_per_character', ' bpc')} "
               f"{target.get('value', '')}").strip() or "–"
        ours, goal = m.get(target.get("metric", "")), target.get("value")
        vs = f"{(ours / goal - 1) * 100:+.1f}%" if ours and goal else "–"
        hw = res.get("hardware", {})
        hw_s = hw.get("device") or hw.get("cpu", "")
        if res.get("concurrency", "").startswith("one of"):
            hw_s += " (shared by 6 runs)"
        if (res.get("world_size") or 1) > 1:
            hw_s += f" ({res['world_size']} processes, {res.get('backend')})"
        test = number(m.get("test_perplexity")) + (f" ({m['test_bits_per_character']:.3f} bpc)"
                                               if "test_bits_per_character" in m else "")
        lines.append(f"| {res['recipe']} | {number(m.get('valid_perplexity'))} | {test} | "
                     f"{tgt} | {vs} | {res.get('epochs_completed', '–')} | {res.get('stop', '–')} | "
                     f"{res.get('wall_seconds', 0) / 60:.1f} min | {res.get('precision', '–')} | {hw_s} | `{source}` |")
    return lines


def throughput_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    rows = []
    for r in res["results"]:
        name = f"2x{r['size']} {r['kind']}" if r.get("kind") != "window" else f"window {r['size']}"
        backend = (r.get("backend") or "baseline") + (", adaptive softmax" if r.get("adaptive") else "") + \
            (f", NCE ({r['nce_samples']} noise words)" if r.get("nce_samples") else "")
        rows.append([name, backend, r["precision"], "yes" if r.get("graphed") else "no", f"{r['tokens_per_s']:,.0f}",
                     f"{r.get('vs_baseline', 1.0):.2f}x"])
    return md_table(f"**Training throughput** (batch {res.get('batch')}, bptt {res.get('bptt')}, vocabulary "
                  f"{res.get('vocab'):,}; from `{source}`; {hw.get('device') or hw.get('cpu')}, torch "
                  f"{res.get('torch')}; baseline = the PyTorch word_language_model loop, measured in the same run: "
                  f"each recurrent kind against the loop on the same kind (its --model LSTM, GRU, RNN_TANH), the window "
                  f"and transformer rows against its LSTM)",
                  ["model", "backend", "precision", "CUDA graph", "tokens/s", "vs baseline"], rows)


def ddp_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    one = {r["precision"]: r["tokens_per_s"] for r in res["results"] if r["processes"] == 1}
    rows = [[str(r["processes"]), str(r["threads_per_process"]), r["precision"], f"{r['tokens_per_s']:,.0f}",
             f"{r['tokens_per_s'] / one[r['precision']]:.2f}x" if one.get(r["precision"]) else "–"]
            for r in res["results"]]
    return md_table(f"**Training in several processes** (`seqlm train` under torchrun, DDP, {res['model']}, global "
                  f"batch {res['global_batch']}, bptt {res['bptt']}; tokens/s after {res['warmup_steps']} warm-up "
                  f"steps; from `{source}`; {hw.get('device') or hw.get('cpu')}, {hw.get('cores')} cores, torch "
                  f"{res.get('torch')})", ["processes", "threads each", "precision", "tokens/s", "vs one process"], rows)


def gradients_table(rows: list[tuple[dict, str]]) -> list[str]:
    lines = ["**Gradients through time** (`seqlm diagnose gradients`: median over the positions of "
             "||d ln p(x_{t+1}) / d state_{t-k}||; the horizon is the first k where it falls below 1e-3 of its "
             "first value; trained vs the same model at initialisation)", "",
             "| model | state | horizon, trained | horizon, at init | median at k=0 (trained) | at k=K (trained) | K | "
             "file |", "|---|---|---|---|---|---|---|---|"]
    for res, source in rows:
        for name in res["states"]:
            tr, ini = res["trained"][name], res.get("init", {}).get(name, {})
            hz = lambda c: "> K" if c.get("horizon") is None else str(c.get("horizon"))  # noqa: E731
            first = tr["median"][tr.get("from_k", 0)]
            lines.append(f"| {Path(res.get('model', '?')).name} | {name} | {hz(tr)} | {hz(ini) if ini else '–'} | "
                         f"{first:.3g} | {tr['median'][-1]:.3g} | {res['K']} | `{source}` |")
    return lines


def ablation_table(name: str, base: tuple[dict, str] | None, rows: list[tuple[dict, str]],
                   adapted: list[tuple[dict, str]]) -> list[str]:
    """One ablation (recipes sharing ``meta.ablation``) against its base run, and the evaluation-time
    methods (``seqlm adapt``) applied to the base model: test perplexity, change, training and evaluation time."""
    base_res = base[0] if base else None
    base_ppl = (base_res or {}).get("metrics", {}).get("test_perplexity")
    delta = lambda p: f"{(p / base_ppl - 1) * 100:+.1f}%" if p and base_ppl else "–"  # noqa: E731
    out = []
    if base_res:
        out.append(["base: " + base_res["recipe"], number(base_res["metrics"].get("valid_perplexity")), number(base_ppl), "–",
                    f"{base_res.get('wall_seconds', 0) / 60:.1f} min", "–", f"`{base[1]}`"])
    for res, source in sorted(rows, key=lambda r: r[0]["metrics"].get("test_perplexity") or 1e9):
        m = res["metrics"]
        title = (res.get("config") or {}).get("meta", {}).get("title", res["recipe"])
        change = title.split("CPU 15 min, ", 1)[-1]
        out.append([f"{res['recipe']}: {change}", number(m.get("valid_perplexity")), number(m.get("test_perplexity")),
                    delta(m.get("test_perplexity")), f"{res.get('wall_seconds', 0) / 60:.1f} min", "–", f"`{source}`"])
    for res, source in adapted:
        m, sec = res["metrics"], res.get("seconds", {})
        params = ", ".join(f"{k} {v}" for k, v in res["params"].items())
        tuned = f"tuned on {res.get('valid_lines', '?')} validation lines in {sec.get('tuning', 0) / 60:.1f} min"
        test_time = (f"test {sec['test']:.0f} s (static {sec.get('test_without', 0):.0f} s)"
                     if "test" in sec else "–")
        out.append([f"+ {res['method']} at test time ({params}; {tuned})", number(m.get("valid_perplexity")),
                    number(m.get("test_perplexity")), delta(m.get("test_perplexity")), "+0 (same model)", test_time,
                    f"`{source}`"])
    hw = (base_res or (rows or adapted)[0][0]).get("hardware", {})
    return md_table(f"**Ablation `{name}`** (the base recipe with one change per row, each run for real on "
                  f"{hw.get('device') or hw.get('cpu')}, {hw.get('cores')} cores; evaluation-time rows wrap the base "
                  f"model, their parameters tuned on validation only; PTB, stream mode)",
                  ["row", "valid ppl", "test ppl", "vs base", "training wall time", "evaluation time", "file"], out)


def _scale_memory(res: dict) -> str:
    given = {row.get("seqlm", {}).get("memory") for row in res["rows"]} - {None}
    return res.get("seqlm_memory") or (given.pop() if len(given) == 1 else "(unbounded)")


def scale_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    lines = [f"**n-gram estimation at scale** (`python bench/ngram.py --scale`: the 5-gram from the shell on generated "
             f"text, `bench/corpus.py`; `seqlm train --memory {_scale_memory(res)}` next to "
             f"`lmplz -o {res['order']} -S {res['lmplz_memory']}`, one after the "
             f"other; from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores, "
             f"{res.get('memory_available_gb', 0):.0f} GB available)", "",
             "| tokens | word types | n-grams | seqlm seconds | seqlm peak MB | lmplz seconds | lmplz peak MB | seqlm / lmplz time |",
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for row in res["rows"]:
        ours, theirs = row.get("seqlm", {}), row.get("lmplz", {})
        if "skipped" in ours:
            notes.append(f"{row['tokens']:,} tokens, seqlm not run: {ours['skipped']}.")
        ratio = (f"{ours['seconds'] / theirs['seconds']:.2f}x" if "seconds" in ours and "seconds" in theirs else "–")
        ngrams = f"{sum(row['ngrams']):,}" if row.get("ngrams") else "–"
        lines.append(f"| {row['tokens']:,} | {row['types']:,} | {ngrams} | {number(ours.get('seconds'), 1)} | {number(ours.get('peak_mb'), 0)} | "
                     f"{number(theirs.get('seconds'), 1)} | {number(theirs.get('peak_mb'), 0)} | {ratio} |")
    agree = res.get("agreement") or {}
    if "max_abs_log10" in agree:
        same = "the same" if agree["seqlm_ngrams"] == agree["lmplz_ngrams"] else "different"
        notes.append(f"The {agree['tokens']:,}-token model, estimated spilling (`--memory {agree['memory']}`), against "
                     f"lmplz's ARPA file of the same text scored by the kenlm module: {same} n-gram counts per order, "
                     f"sentence log10 p within {agree['max_abs_log10']:.1e} on {agree['sentences']:,} sentences "
                     f"(half with shuffled words).")
    return lines + ([""] + notes if notes else [])


def serve_table(res: dict, source: str) -> list[str]:
    hw = res.get("hardware", {})
    rows = []
    for name, r in res["results"].items():
        for row in r["typing"]:
            rows.append([name, f"typing, {row['clients']} clients", f"{row['requests']:,}", str(row["errors"]),
                         f"{row['requests_per_s']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}"])
        for row in r["length"]:
            rows.append([name, f"text of {row['tokens']:,} tokens + 1 word", "–", "–", "–", f"{row['p50_ms']:.2f}",
                         f"{row['p99_ms']:.2f}"])
    return md_table(f"**Serving** (`python bench/serve.py`: `seqlm serve` in its own process, clients on loopback on "
                  f"the same machine (one keep-alive connection each, on asyncio streams: the clients share the 2 cores "
                  f"with the server, so they must cost little), suggestion requests of people typing PTB validation "
                  f"sentences; with C clients every request waits behind up to C - 1 others, so latency under load is "
                  f"about C / (requests/s); from "
                  f"`{source}`; {hw.get('cpu')}, {hw.get('cores')} cores; server healthy after: "
                  f"{res.get('health_after', {}).get('status', '?')})",
                  ["model", "load", "requests", "errors", "requests/s", "p50 ms", "p99 ms"], rows)


def kenlm_api_table(res: dict, source: str) -> list[str]:
    """What a kenlm user calls, next to the kenlm module, and each format's bytes and perplexity (bench/kenlm_api.py)."""
    hw = res.get("hardware", {})
    out: list[str] = []
    for m in res["models"]:
        rows = [[r["what"], f"{r['seqlm_us']:.2f} µs/{r['unit']}", f"{r['kenlm_us']:.2f} µs/{r['unit']}",
                 f"{r['speed_vs_kenlm']:.2f}x", f"{r['speed_vs_kenlm_warm']:.2f}x" if "speed_vs_kenlm_warm" in r else "–"]
                for r in m["calls"].values()]
        if m is res["models"][0]:
            for r in res.get("processes", []):
                rows.append([f"`seqlm score MODEL --file F --per corpus` vs `query` on the trie binary: {r['file']} "
                             f"({r['tokens']:,} tokens), whole processes", f"{r['seqlm_score_s']:.3f} s",
                             f"{r['query_trie_s']:.3f} s (ARPA: {r['query_arpa_s']:.3f} s)",
                             f"{r['query_trie_s'] / r['seqlm_score_s']:.2f}x", "–"])
                if "seqlm_score_1t_s" in r:
                    rows.append(["the same, seqlm in one thread (`SEQLM_THREADS=1`)", f"{r['seqlm_score_1t_s']:.3f} s",
                                 f"{r['query_trie_s']:.3f} s", f"{r['query_trie_s'] / r['seqlm_score_1t_s']:.2f}x", "–"])
                if "seqlm_lines_s" in r:
                    rows.append(["a line printed per line: `seqlm score MODEL --file F` vs `query -v sentence`",
                                 f"{r['seqlm_lines_s']:.3f} s", f"{r['query_sentence_s']:.3f} s",
                                 f"{r['query_sentence_s'] / r['seqlm_lines_s']:.2f}x", "–"])
                if "seqlm_tokens_s" in r:
                    rows.append(["a line printed per word: `seqlm score MODEL --file F --per token` vs `query`",
                                 f"{r['seqlm_tokens_s']:.3f} s", f"{r['query_words_s']:.3f} s",
                                 f"{r['query_words_s'] / r['seqlm_tokens_s']:.2f}x", "–"])
        out += md_table(f"**The kenlm module's API, {m['model']}** (`python bench/kenlm_api.py`: {m['sentences']:,} "
                      f"test sentences, {m['tokens']:,} tokens; each pair timed alternately, best of {res['rounds']}, "
                      f"each run twice in a row: \"speed vs kenlm\" from the first runs, each after the other's (its "
                      f"memory partly out of cache), \"in a loop\" from the second, each right after its own; "
                      f"`seqlm.kenlm.Model` on the model folder, `kenlm.Model` on its ARPA file; largest difference in "
                      f"a sentence's log10 p {m['max_abs_log10_difference']:.1e}; from `{source}`; {hw.get('cpu')}, "
                      f"{hw.get('cores')} cores)", ["what a user calls", "seqlm", "kenlm", "speed vs kenlm", "in a loop"], rows)
        size_rows = [[f["format"], f"{f['bytes'] / 1e6:.1f} MB", f"{f['bytes_per_ngram']:.2f}",
                      number(f["perplexity"], 4) if f["perplexity"] else "–",
                      f"{f['vs_float64']:+.1e}" if f["vs_float64"] is not None else "–"] for f in m["formats"]]
        out += [""] + md_table(f"**Model bytes and test perplexity, {m['model']}** ({m['ngrams']:,} n-grams; KenLM's "
                             f"formats built by `build_binary` in the same run; perplexity next to the float64 tables "
                             f"seqlm's estimator makes, {m['float64_perplexity']:.4f})",
                             ["format", "bytes", "bytes per n-gram", "test perplexity", "vs float64"], size_rows) + [""]
    return out[:-1]


PRUNE_METHODS = {"count": "count pruning (`--prune`)", "entropy": "entropy, histories by counts (`seqlm train --max-ngrams`)",
                 "entropy-srilm": "entropy, SRILM's chain rule (`seqlm convert --max-ngrams`)"}


def prune_table(res: dict, source: str) -> list[str]:
    """Perplexity at equal sizes: count pruning against entropy pruning, per corpus (bench/prune.py)."""
    hw = res.get("hardware", {})
    out: list[str] = []
    for corpus in dict.fromkeys(r["corpus"] for r in res["rows"]):
        rows = [r for r in res["rows"] if r["corpus"] == corpus]
        full = next(r for r in rows if r["method"] == "none")
        counted = [r for r in rows if r["method"] == "count"]
        lines = []
        for c in counted:
            same = {r["method"]: r for r in rows if isinstance(r["setting"], dict)
                    and r["setting"].get("max_ngrams") == c["ngrams"]}
            cells = [f"{c['ngrams']:,}", f"{c['bytes'] / 1e6:.1f} MB", ",".join(map(str, c["setting"]))]
            best = min([c["test_perplexity"]] + [r["test_perplexity"] for r in same.values()])
            for method in PRUNE_METHODS:
                r = c if method == "count" else same.get(method)
                text = number(r["test_perplexity"]) if r else "–"
                cells.append(f"**{text}**" if r and r["test_perplexity"] == best else text)
            lines.append(cells)
        out += md_table(f"**Pruning to a size, {corpus}** (modified-KN {res['order']}-gram; unpruned: {full['ngrams']:,} "
                      f"n-grams, {full['bytes'] / 1e6:.1f} MB, test perplexity {number(full['test_perplexity'])}; "
                      f"each row one size, every method pruned to it; best in bold; `python bench/prune.py`, from "
                      f"`{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)",
                      ["n-grams", "bytes", "count thresholds"] + [f"test perplexity: {m}" for m in PRUNE_METHODS],
                      lines) + [""]
    return out[:-1]


def counts_table(res: dict, source: str) -> list[str]:
    """Counting shards and merging against counting once (bench/counts.py)."""
    hw = res.get("hardware", {})
    rows = [[f"`seqlm count`, {res['shards']} shards of {res['corpus']}'s training text, one after the other",
             f"{sum(res['count_seconds']):.1f} s (largest shard {max(res['count_seconds']):.1f} s)"],
            ["`seqlm train --counts` (merge and estimate)", f"{res['merge_estimate_seconds']:.1f} s"],
            ["`seqlm train --train` on the whole text", f"{res['whole_text_seconds']:.1f} s"],
            ["the two model folders' tries byte for byte equal", "yes" if res["same_trie"] else "**no**"]]
    return md_table(f"**Counts as a unit of work** (modified-KN {res['order']}-gram; whole processes; `python "
                  f"bench/counts.py`, from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)", ["what", "result"],
                  rows)


def cluster_table(res: dict, source: str) -> list[str]:
    """Estimation on a local cluster against one process, and the projection to 10B tokens (bench/cluster.py)."""
    hw, w = res.get("hardware", {}), res["workers"]
    rows = []
    for r in res["rows"]:
        c = r["cluster"]
        rows.append([f"{r['tokens']:,}", f"{r['single']['seconds']:.1f} s", f"{c['wall_s']:.1f} s",
                     f"{r['ratio']:.2f}x", f"{r['single']['peak_mb']:.0f} MB",
                     " / ".join(f"{m:.0f}" for m in c["worker_peak_rss_mb"]) + f" MB (share {r['worker_budget_mb']:.0f})", f"{c['blocks']} / {c['buckets'][0]}",
                     f"{sum(s['read_bytes'] + s['written_bytes'] for s in c['stages'].values()) / 1e9:.1f} GB",
                     "yes" if r["same_trie"] else "**no**"])
    lines = md_table(f"**5-gram estimation on a local cluster** (modified KN, `--memory {res['memory']}`, generated "
                   f"text; whole processes: `seqlm train --train FILE` against the same with `--cluster local:{w}`; "
                   f"peak RSS counts the mapped files a process touched: packing the trie maps the whole model, in the "
                   f"one process or in one worker; "
                   f"`python bench/cluster.py`, from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)",
                   ["tokens", "one process", f"local:{w}", "ratio (goal <= 1.5x)", "one process's peak RSS",
                    "workers' peak RSS",
                    "blocks / buckets per order", "scratch read + written", "same trie"], rows)
    p = res.get("projection")
    if p:
        a = p["assumptions"]
        prow = [[m, f"{v['hours']:.2f} h"] + [f"{v['terms_s'][k]:,} s" for k in v["terms_s"]] + [v["limit"]]
                for m, v in p["machines"].items()]
        terms = list(next(iter(p["machines"].values()))["terms_s"])
        lines += [""] + md_table(
            f"**Projected: a {a['tokens'] / 1e9:g}B-token 5-gram on a cluster** (from the {p['measured_tokens']:,}-token "
            f"run's stages above; assumed: {a['workers_per_machine']} workers per machine at this machine's per-core "
            f"rates, {a['nic_gb_s']} GB/s per machine and {a['storage_gb_s']} GB/s of shared storage in all, "
            f"{a['scheduler_ms_per_task']} ms of scheduler per task, {a['block_mb']} MB blocks; the n-grams grow as "
            f"tokens^b fitted between the two sizes (x{p['ngram_growth']:.0f}); shuffle {p['shuffle_tb']:.1f} TB)",
            ["machines", "wall"] + terms + ["limit"], prow)
    return lines


def neural_defaults_table(res: dict, source: str) -> list[str]:
    """A neural run without a recipe: fitted settings against the plain defaults (bench/neural_defaults.py)."""
    hw = res.get("hardware", {})
    names = {"kn5": "modified-KN 5-gram", "fitted": "LSTM, fitted to the data (no recipe, now)",
             "before": "LSTM, the plain defaults (no recipe, before)"}
    rows = []
    for r in res["rows"]:
        m = r.get("model") or {}
        shape = (f"{m['num_layers']}x{m['hidden_size']}{', tied' if m['tie_weights'] else ''}, "
                 f"{'adaptive ' + str(m['adaptive_cutoffs']) if m['adaptive_cutoffs'] else 'full softmax'}, "
                 f"dropout {m['dropout']}, {r['optimizer']} {r['schedule']}") if m else "order 5"
        rows.append([r["corpus"], names[r["run"]], shape, f"{r['parameters']:,}" if "parameters" in r else "",
                     f"{r['tokens_per_second']:,.0f}" if r.get("tokens_per_second") else "",
                     str(r["epochs"]) if "epochs" in r else "", number(r["valid_perplexity"]),
                     number(r["test_perplexity"])])
    return md_table(f"**A neural run on raw text without a recipe** (each neural run stopped by the same "
                  f"`--minutes {res['minutes']:g}`, then its best epoch evaluated; one vocabulary, every training type; "
                  f"`python bench/neural_defaults.py`, from `{source}`; {hw.get('cpu')}, {hw.get('cores')} cores)",
                  ["corpus", "run", "model", "parameters", "train tokens/s", "epochs completed", "valid ppl", "test ppl"], rows)


def interpolate_table(res: dict, source: str) -> list[str]:
    """One interpolated n-gram model against the token-by-token mixture (bench/interpolate.py)."""
    hw = res.get("hardware", {})
    rows = []
    for split, r in res["perplexity"].items():
        rows.append([f"PTB {split}"] + [number(x) for x in r["parts"]] + [number(r["token_mixture"]),
                                                                         number(r["one_model"])])
    weights = ", ".join(f"{p} {w:.3f}" for p, w in zip(res["parts"], res["weights"]))
    return md_table(f"**One model from two** (modified-KN {res['order']}-grams of {' and '.join(res['parts'])}, weights "
                  f"fitted on PTB valid: {weights}; the one model: {sum(res['ngrams']):,} n-grams over {res['vocab_size']:,} "
                  f"words, written in {res['seconds']:.1f} s; `python bench/interpolate.py`, from `{source}`; "
                  f"{hw.get('cpu')}, {hw.get('cores')} cores)",
                  ["perplexity on"] + [f"{p} 5-gram" for p in res["parts"]] + ["token-by-token mixture (each part scoring as it would alone)",
                                                                               "one model (`seqlm interpolate`)"], rows)


def asr_table(res: dict, source: str) -> list[str]:
    """CTC decoding with each language model (bench/asr.py)."""
    hw = res.get("hardware", {})
    rows = [[r["decoder"], f"{r['wer']:.4f}", f"{r['utterances_per_s']:.1f}"] for r in res["rows"]]
    lstm = f"; the LSTM: `{res['lstm']}`, test perplexity {number(res.get('lstm_test_perplexity'))}" if res.get("lstm") else ""
    return md_table(f"**CTC decoding** (`python bench/asr.py`: pyctcdecode's beam search, beam {res['beam']}, alpha "
                  f"{res['alpha']}, beta {res['beta']}, over synthetic emissions of {res['utterances']} PTB test "
                  f"sentences ({res['words']:,} words; {res['confuse']:.0%} of the letters confused, "
                  f"{res['noise']:.0%} noise); the KN5's best beams through seqlm equal the kenlm module's: "
                  f"{res['seqlm_kn5_beams_equal_kenlm']}{lstm}; from `{source}`; {hw.get('cpu')}, "
                  f"{hw.get('cores')} cores)", ["language model", "word error rate", "utterances/s"], rows)


def mixture_table(res: dict, source: str) -> list[str]:
    rows = [[f"`{p['model']}`", p.get("kind") or "–", f"{p['weight']:.3f}", number(p.get("valid_perplexity")),
             number(p.get("test_perplexity"))] for p in res["parts"]]
    m = res["metrics"]
    rows.append([f"**mixture** `{res['mixture']}`", "mixture", "1", number(m.get("valid_perplexity")),
                 number(m.get("test_perplexity"))])
    best = min((p.get("test_perplexity") or 1e9) for p in res["parts"])
    ratio = f"; the mixture's test perplexity is {m['test_perplexity'] / best:.3f} x its best part's" \
        if m.get("test_perplexity") else ""
    fit = res.get("fit", {})
    how = "given" if fit.get("given") else f"fitted by EM on {fit.get('valid_lines')} validation lines"
    return md_table(f"**Mixture** (`seqlm mix`: p = Σ λ_k p_k per token, weights {how}{ratio}; stream mode; from "
                  f"`{source}`)", ["model", "kind", "weight", "valid ppl", "test ppl"], rows)


def probe_table(res: dict, source: str) -> list[str]:
    ds = res["distances"]
    lines = [f"**Long-range recall** (`seqlm diagnose recall`: `KEY w_1 ... w_d = KEY`, accuracy of the right key "
             f"among {round(1 / res['chance'])}, chance {res['chance']:.3f}; {res['train_lines']} training lines, "
             f"{res.get('steps', '?')} updates per neural model; from `{source}`)", "",
             "| family | " + " | ".join(f"d={d}" for d in ds) + " |", "|---|" + "---|" * len(ds)]
    for fam, acc in res["accuracy"].items():
        lines.append(f"| {fam} | " + " | ".join(f"{acc[str(d)]:.2f}" if str(d) in acc else "–" for d in ds) + " |")
    return lines


def ablation_of(res: dict) -> str:
    return (res.get("config") or {}).get("meta", {}).get("ablation", "")



def render(results_dir: Path) -> str:
    """Every table the result files in ``results_dir`` make, in markdown (each file says its ``type``)."""
    blocks: list[list[str]] = []
    recipes, grads, adapted = [], [], []
    one_table = {"ngram-ptb": ngram_table, "train-throughput": throughput_table, "train-throughput-ddp": ddp_table,
                 "serve": serve_table, "ngram-scale": scale_table, "kenlm-api": kenlm_api_table, "asr": asr_table, "mix": mixture_table, "probe": probe_table,
                 "prune": prune_table, "counts": counts_table, "ngram-cluster": cluster_table, "units": units_table, "unit-bits": unit_bits_table, "subword-libs": subword_libs_table, "interpolate": interpolate_table,
                 "neural-defaults": neural_defaults_table}
    gathered = {"adapt": adapted, "train": recipes, "gradients": grads}
    for path, res in read_results(results_dir):
        rel = f"results/{path.name}"
        if res["type"] in one_table:
            blocks.append(one_table[res["type"]](res, rel))
        elif res["type"] in gathered:
            gathered[res["type"]].append((res, rel))
    if recipes:
        blocks.append(recipe_table(recipes))
        blocks += race_tables(recipes)
    for name in sorted(({ablation_of(r) for r, _ in recipes} | set(ABLATION_BASES)) - {"", "clipping"}):
        rows = [(r, src) for r, src in recipes if ablation_of(r) == name]
        base_name = ABLATION_BASES.get(name)
        base = next(((r, src) for r, src in recipes if r["recipe"] == base_name), None)
        on_base = [(r, src) for r, src in adapted if (r.get("base") or {}).get("recipe") == base_name]
        if rows or on_base:
            blocks.append(ablation_table(name, base, rows, on_base))
    if grads:
        blocks.append(gradients_table(grads))
    if not blocks:
        return "No results yet."
    return "\n\n".join("\n".join(b) for b in blocks)



ABLATION_BASES = {"awd-cpu": "lstm-adaptive", "nce-cpu": "lstm"}  # an ablation's base run (its recipe's name)
