#!/usr/bin/env bash
# Extra commands for the GPU check (issue 16). ../shared/gpu/pack.sh packs a CUDA build; copy this file
# beside it as the pack's extra.sh, and device-check.sh runs it last, in the pack's proj/ folder (where
# pack.sh put tools/bench/*.py and data/), with $BIN (the executables) and $OUT (the logs) set:
#
#   bash ../shared/gpu/pack.sh build-cuda gpupack && cp tools/bench/gpu_extra.sh gpupack/extra.sh
#
# Its output lands in $OUT/extra.log. The CUDA tests (every tests/**/cuda/test_*.cpp, the new
# backward fixture, trader and `attnlab train --device cuda` ones included) already run in
# device-check.sh itself; this adds what needs both sides in one run.
set -u
cd "$(dirname "$0")/x/proj" 2>/dev/null || true  # device-check.sh runs us there already
OUT=${OUT:-/tmp/gpu-out}
echo "== attnlab vs PyTorch eager, GQATrader training step (seed config), same GPU, one run"
python3 tools/bench/compare_train.py --attnlab "$BIN/attnlab" --out "$OUT/train_compare.json"
echo "rc=$?"
