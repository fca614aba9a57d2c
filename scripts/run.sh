#!/usr/bin/env bash
# Set up (first time only), then open the Handful window; on a machine without a display,
# reconstruct the bundled sample with the command line instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python -m app "$@"
fi
echo "No display found: reconstructing the bundled sample into out/sample with the command line (Preview: about a minute on an idle 2-core machine)."
exec .venv/bin/python -m engine reconstruct resources/sample/images -o out/sample --preset preview "$@"
