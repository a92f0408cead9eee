#!/usr/bin/env bash
# GPU session, part 1 (a few minutes): install, the GPU tests, the training-throughput benchmark at 2x650,
# and the step time of the long recipes (for planning their budgets).  Run from the repository root on a
# CUDA machine with the PTB files in .data/ptb; results go to $OUT (default: gpu-out/).
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SEQLM_DATA=$PWD/.data PYTHONPATH=$PWD/src
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "pip install -e failed: using PYTHONPATH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cudnn', torch.backends.cudnn.version())"
timeout 180 python3 -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider > "$OUT/gpu-tests.log" 2>&1
tail -4 "$OUT/gpu-tests.log"
timeout 200 python3 bench/train_throughput.py --device cuda --sizes 650 > "$OUT/throughput.json" 2> "$OUT/throughput.log"
grep -v "^  " "$OUT/throughput.log" | tail -14
timeout 150 python3 bench/step_time.py recipes/ptb/record-h100.toml recipes/ptb/zaremba-medium.toml \
    recipes/ptb/tied-variational-medium.toml recipes/ptb/zaremba-large.toml > "$OUT/step-time.json" 2> "$OUT/step-time.log"
tail -5 "$OUT/step-time.log"
