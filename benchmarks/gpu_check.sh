#!/usr/bin/env bash
# charrnn on an NVIDIA GPU, as one device command (make gpu-check; DEVELOPERS.md, "On the lent GPU"):
#
#     bash benchmarks/gpu_check.sh [test] [speed] [quality]     # default: all three, about 9 minutes
#
# test: the tests marked cuda (pytest -m cuda; the rest is CI's, on the CPU), capped at 150 s so that the
# benchmark still runs; speed and quality: benchmarks/gpu_bench.py's parts (1-2 and about 5.5 minutes).
# Each part leaves its log, and the benchmark its RESULTS-gpu.json and RESULTS.md, in $OUT (default
# benchmarks/runs/gpu) as it ends, so a command stopped at its limit still returns what was done; a failing
# part does not stop the next. It runs the machine's own python3 ($GPU_PYTHON) and CUDA build of torch on
# this source tree: nothing is installed there, and wheels the image lacks travel in .whl/ (make gpu-wheels),
# unpacked under /tmp. Without CUDA it says so in one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${GPU_PYTHON:-python3}
OUT=${OUT:-benchmarks/runs/gpu}
SITE=/tmp/charrnn-site
parts=("$@")
status=0
[ ${#parts[@]} -eq 0 ] && parts=(test speed quality)

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu-check: no CUDA GPU here ($PY finds no torch with CUDA); nothing to run"
    exit 0
fi
mkdir -p "$OUT"
export PYTHONPATH="$PWD:$SITE" PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || echo "gpu-check: wheels not installed"
fi

run_tests() {
    local opts=(-m cuda -v -rA --durations=20 -p no:cacheprovider --junitxml="$OUT/gpu-test.xml")
    # The cuda tests are independent and mostly wait on subprocesses: spread them where xdist is there. A test that
    # hangs fails alone, with its stack, where pytest-timeout is there; the cap sends SIGINT first, so pytest still
    # reports what ran.
    "$PY" -c "import xdist" 2>/dev/null && opts+=(-n 8)
    "$PY" -c "import pytest_timeout" 2>/dev/null && opts+=(--timeout 120)
    timeout -s INT -k 15 150 "$PY" -m pytest "${opts[@]}"
}

for part in "${parts[@]}"; do
    echo "gpu-check: $part, $(date +%T)"
    case $part in
        test) run_tests 2>&1 | tee "$OUT/gpu-test.log" ;;
        speed | quality) "$PY" benchmarks/gpu_bench.py "$part" --copy-to "$OUT" 2>&1 | tee "$OUT/gpu-bench-$part.log" ;;
        *) echo "gpu-check: parts are test, speed and quality, not $part"; exit 2 ;;
    esac
    code=$?
    [ $code -ne 0 ] && status=$code && echo "gpu-check: $part failed (exit $code)"
done
echo "gpu-check: done, $(date +%T)"
exit $status
