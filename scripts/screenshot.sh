#!/usr/bin/env bash
# The README screenshot: reconstruct the bundled sample (once; reused afterwards) with the command
# line, then open the result in the Handful window under Xvfb and save docs/screenshot.png.
#   scripts/screenshot.sh [OUT.png] [WxH]       (defaults: docs/screenshot.png 1600x1000)
#   PRESET (default standard) and ITERATIONS (default 1500) set the training; about 6 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/screenshot.png}
SIZE=${2:-1600x1000}
PY=.venv/bin/python
JOB=out/screenshot-sample
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.venv/numba-cache}"
# keep the screenshot's window state and recent files out of the person's own settings
export HANDFUL_SETTINGS_DIR="${HANDFUL_SETTINGS_DIR:-$PWD/$JOB/settings}"

if [ ! -f "$JOB/scene.ply" ]; then
  echo "screenshot: reconstructing the bundled sample into $JOB (estimated cameras, ${PRESET:-standard} preset)"
  "$PY" -m engine reconstruct resources/sample/images -o "$JOB" --preset "${PRESET:-standard}" \
    --iterations "${ITERATIONS:-1500}"
fi

mkdir -p "$(dirname "$OUT")"
cmd=("$PY" -m app --screenshot "$OUT" --size "$SIZE" "$JOB/scene.ply")
if [ -z "${DISPLAY:-}" ]; then
  command -v xvfb-run >/dev/null || { echo "screenshot: needs a display or xvfb-run (apt-get install xvfb)" >&2; exit 2; }
  # Mesa's llvmpipe gives a GL 4.5 context under Xvfb; 24-bit colour for a faithful PNG
  xvfb-run -a -s "-screen 0 $(echo "$SIZE" | tr 'x' ' ' | awk '{print $1+64 "x" $2+64}')x24" "${cmd[@]}"
else
  "${cmd[@]}"
fi
echo "screenshot: wrote $OUT"
