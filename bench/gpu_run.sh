#!/usr/bin/env bash
# One batched GPU session: install, GPU tests, benches (this tree; the committed tree from
# .base/site for before/after).  From the repository root:
#   OUT=/tmp/out bash bench/gpu_run.sh tests sm80 softmax attention gemm fp4 paged overhead compile profile
# (`verify` = tests sm80 softmax attention compile: the check before calling GPU work done, ~4 min)
# .whl/ holds the xdsl 0.74.0, immutabledict and ordered-set wheels; .base/site a copy of
# the committed tilec laid out as installed (tilec/, tilec/{backends,dialects,passes}).
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
what=" ${*:-tests softmax examples attention} "
[[ "$what" == *" verify "* ]] && what="$what tests sm80 softmax attention compile "
has() { [[ "$what" == *" $1 "* ]]; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || echo "editable install failed"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader
export TILEC_CACHE_DIR=/tmp/tilec-cache
if has tests; then
  echo "=== GPU tests (sm_90a path, compute-sanitizer included)"
  timeout 400 python3 -m pytest -q -p no:cacheprovider -m gpu -n 8 tests 2>&1 | grep -v "Host Frame" | tail -30
fi
if has sm80; then
  echo "=== GPU tests on the sm_80 path (TILEC_TARGET=sm_80)"
  TILEC_TARGET=sm_80 timeout 300 python3 -m pytest -q -p no:cacheprovider -m gpu -n 8 tests 2>&1 | tail -15
fi
if has sanitize; then
  echo "=== compute-sanitizer memcheck on the examples (first reports)"
  timeout 200 compute-sanitizer --tool memcheck python3 tests/gpu_sanitize_examples.py 2>&1 | grep -v "Host Frame" | head -40
fi
if has softmax; then echo "=== bench/softmax.py"; timeout 200 python3 bench/softmax.py --reps 20; fi
if has examples; then echo "=== bench/gpu_examples.py"; timeout 120 python3 bench/gpu_examples.py; fi
if has attention; then echo "=== bench/attention.py"; timeout 300 python3 bench/attention.py --reps 3; fi
if has overhead; then echo "=== bench/launch_overhead.py"; timeout 60 python3 bench/launch_overhead.py; fi
if has gemm; then echo "=== bench/gemm.py"; timeout 300 python3 bench/gemm.py; fi
if has fp4; then echo "=== bench/fp4.py"; timeout 200 python3 bench/fp4.py --reps 10; fi
if has paged; then echo "=== bench/paged_attention.py"; timeout 200 python3 bench/paged_attention.py --reps 10; fi
if has compile; then echo "=== bench/compile_time.py"; timeout 200 python3 bench/compile_time.py; fi
if has profile; then
  echo "=== ncu: where FP4Linear's M = 1 warps wait (bench/ncu_top_stalls.py)"
  timeout 200 ncu --section SourceCounters -k regex:w4a16 --launch-skip 2 --launch-count 1 -o /tmp/w4a16_rep \
    python3 bench/fp4_profile.py >/dev/null 2>&1
  ncu --import /tmp/w4a16_rep.ncu-rep --page source --csv --print-source sass > "$OUT/w4a16_sass.csv" 2>/dev/null
  python3 bench/ncu_top_stalls.py "$OUT/w4a16_sass.csv" --top 12
fi
if has base; then
  echo "=== baseline (committed tree)"
  PYTHONPATH=$PWD/.base/site:/tmp/site timeout 150 python3 bench/softmax.py --reps 5
  PYTHONPATH=$PWD/.base/site:/tmp/site timeout 120 python3 bench/gpu_examples.py
fi
echo "=== done"
