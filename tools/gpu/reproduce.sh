#!/usr/bin/env bash
# GPU session, part 2: the published recurrent recipes, all at once on one GPU (each its own process), each
# stopped after MINUTES of training (default 8) and then evaluated.  A later command continues them with
# RESUME=1 (same machine, still warm).  Results: results/<recipe>.json and a tarball of the run logs in $OUT.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT" logs results
export PYTHONUNBUFFERED=1 SEQLM_DATA=$PWD/.data PYTHONPATH=$PWD/src
MINUTES=${MINUTES:-8}
RECIPES=${RECIPES:-"zaremba-medium seed-lstm seed-gru seed-rnn_tanh seed-lstm-fc tied-variational-medium"}
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
[ -n "${TESTS:-}" ] && timeout 150 python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$OUT/gpu-tests.log" 2>&1 &
for r in $RECIPES; do
    timeout -s INT $(( ${MINUTES%.*} * 60 + 100 )) python3 -m seqlm train "recipes/ptb/$r.toml" --out "runs/$r" \
        --results "results/$r.json" --set train.max_minutes="$MINUTES" --set train.log_every=200 \
        ${RESUME:+--resume} >> "logs/$r.log" 2>&1 &
done
wait
for r in $RECIPES; do echo "== $r"; grep -E "epoch [0-9]+:|error" "logs/$r.log" | tail -3; done
tail -3 "$OUT/gpu-tests.log" 2>/dev/null
tar czf "$OUT/reproduce.tar.gz" results/*.json logs runs/*/metrics.jsonl runs/*/steps.jsonl runs/*/summary.json 2>/dev/null
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("results/*.json")):
    s = json.load(open(f))
    if "metrics" in s:
        print(f, s["metrics"], s.get("epochs_completed"), s.get("stop"), s.get("wall_seconds"))
PY
