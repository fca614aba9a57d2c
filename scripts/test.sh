#!/usr/bin/env bash
# Set up (first time only), then run the whole test suite. OpenGL tests need an X server: when
# there is no display, the suite runs under Xvfb (Mesa llvmpipe).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.venv/numba-cache}"
# Whole files to each worker, in the collection order (tests/conftest.py puts the slow files first).
cmd=(.venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@")
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "${cmd[@]}"
fi
exec "${cmd[@]}"
