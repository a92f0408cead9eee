"""Why the bounded-memory estimator sorts with NumPy rather than an out-of-core engine (DuckDB).

The core of n-gram counting is a group-by over one int64 key per training position, giving sorted unique
keys with counts and one suffix rank each.  This times, on the same keys (the 3-gram keys of a generated
corpus, as ngram/external.py builds them):

* ``numpy``: what external.py does: chunks of 4M positions sorted (``argsort``, two threads) and reduced,
  then the chunks' sorted runs merged (a stable sort of runs) and reduced again;
* ``duckdb``: ``SELECT key, count(*), any_value(suffix) ... GROUP BY key ORDER BY key`` with 2 threads,
  timed twice: the query alone on a table already inside DuckDB, and with getting the NumPy arrays in
  (without pandas or pyarrow, which seqlm does not depend on, arrays go in as list parameters).

    python bench/groupby.py [--tokens 10M] [--results results/groupby.json]

Prints one JSON object (last line).  DuckDB is optional: without it the row says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def keys_of_corpus(tokens: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    import corpus as gen
    from seqlm.models.ngram.external_count import line_positions as _line_pos
    from seqlm.text.bulk import tokenize_file
    from seqlm.text.tokenize import Tokenizer

    text = work / "corpus.txt"
    gen.write(text, tokens, 200_000, 0)
    tf = tokenize_file(text, work, Tokenizer())
    ids = np.fromfile(tf.ids, dtype=np.int32)
    V = len(tf.vocab)
    end = np.flatnonzero(_line_pos(ids) >= 2)
    # order-3 keys with the 2-gram "rank" taken as the pair itself (the same sizes and spread)
    pair = ids[end - 2].astype(np.int64) * V + ids[end - 1]
    _, rank = np.unique(pair, return_inverse=True)
    return rank.astype(np.int64) * V + ids[end], ids[end - 1].astype(np.int64)


def numpy_groupby(keys: np.ndarray, suffix: np.ndarray, chunk: int = 1 << 22) -> int:
    from seqlm.models.ngram.external_count import sort_groups as _sort_groups

    def local(s):
        perm, sk, _, first = _sort_groups(keys[s:s + chunk])
        return sk[first], np.diff(np.append(first, len(sk))), suffix[s:s + chunk][perm[first]]

    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(local, range(0, len(keys), chunk)))
    k = np.concatenate([p[0] for p in parts])
    c = np.concatenate([p[1] for p in parts])
    x = np.concatenate([p[2] for p in parts])
    perm, sk, _, first = _sort_groups(k)
    counts = np.add.reduceat(c[perm], first)
    assert counts.sum() == len(keys) and len(x[perm[first]]) == len(first)
    return len(first)


def duckdb_groupby(keys: np.ndarray, suffix: np.ndarray) -> dict:
    try:
        import duckdb
    except ImportError:
        return {"skipped": "duckdb is not installed (pip install duckdb)"}
    con = duckdb.connect(config={"threads": 2})
    query = "SELECT k, count(*) AS c, any_value(s) AS s FROM {} GROUP BY k ORDER BY k"
    t0 = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT unnest($1) AS k, unnest($2) AS s", [keys, suffix])
    t1 = time.perf_counter()
    r = con.execute(query.format("t")).fetchnumpy()
    t2 = time.perf_counter()
    return {"ingest_seconds": t1 - t0, "query_seconds": t2 - t1, "total_seconds": t2 - t0, "unique": len(r["k"]),
            "version": duckdb.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="10M")
    ap.add_argument("--results", help="also write the JSON here (e.g. results/groupby.json)")
    args = ap.parse_args()
    import corpus as gen
    from seqlm.io.records import hardware

    with tempfile.TemporaryDirectory() as tmp:
        keys, suffix = keys_of_corpus(gen.size(args.tokens), Path(tmp))
    t0 = time.perf_counter()
    unique = numpy_groupby(keys, suffix)
    numpy_seconds = time.perf_counter() - t0
    duck = duckdb_groupby(keys, suffix)
    if "unique" in duck and duck["unique"] != unique:
        raise SystemExit(f"duckdb found {duck['unique']} keys, numpy {unique}")
    out = {"type": "groupby", "benchmark": "groupby", "positions": len(keys), "unique": unique, "hardware": hardware(),
           "numpy_seconds": numpy_seconds, "duckdb": duck}
    if args.results:
        from seqlm.io.files import write_json

        write_json(args.results, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
