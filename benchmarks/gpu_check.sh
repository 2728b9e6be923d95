#!/usr/bin/env bash
# The prepared GPU check (see benchmarks/gpu_check.py): under 8 minutes on one GPU,
# one JSON of results.  Without CUDA it fails at once, in one line, exit 2.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]    # default: $OUT on the device machine, else runs/gpu_check
#
# GPU_CHECK_SECONDS (default 470) is the hard limit of the whole run: the sections
# share 450 s of it, and `timeout` ends anything that overstays.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
OUT_DIR=${1:-${OUT:-runs/gpu_check}}
LIMIT=${GPU_CHECK_SECONDS:-470}
BUDGET=$(( LIMIT > 40 ? LIMIT - 20 : 20 ))
export PYTHONUNBUFFERED=1
timeout --kill-after=10 "$LIMIT" "$PY" benchmarks/gpu_check.py --out "$OUT_DIR/gpu_check.json" --budget "$BUDGET"
rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "gpu_check: error: stopped at the ${LIMIT} s limit; sections finished so far are in $OUT_DIR/gpu_check.json" >&2
fi
exit "$rc"
