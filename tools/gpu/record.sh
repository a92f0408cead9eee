#!/usr/bin/env bash
# GPU session, part 3: the 10-minute record, alone on the GPU, timed as one whole command.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQLM_DATA=$PWD/.data PYTHONPATH=$PWD/src
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1
start=$(date +%s.%N)
timeout -s INT 595 python3 -m seqlm train recipes/ptb/record-h100.toml --out runs/record \
    --results "$OUT/record-h100.json" "$@" > "$OUT/record.log" 2>&1
echo "exit $? whole command $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s" | tee -a "$OUT/record.log"
grep -E "epoch [0-9]+:|error|training" "$OUT/record.log" | tail -30
cp runs/record/steps.jsonl runs/record/metrics.jsonl "$OUT/" 2>/dev/null
