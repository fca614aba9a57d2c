#!/usr/bin/env bash
# The whole GPU check as one command, for a CUDA machine that has torch but neither gsplat nor a network:
# install the gsplat wheel carried in .whl/, build its CUDA kernels for this GPU only, then run the
# gsplat-vs-reference tests and benchmarks/gpu_check.py (agreement table and timings). Logs go to $OUT.
#
# Prepare on a machine with a network, in the repository root:
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl gsplat==1.5.3
# (gsplat's own needs - ninja, numpy, jaxtyping, rich - and numba must already be on the GPU machine.)
# Then run it there, e.g. `bash benchmarks/gpu_check.sh` with .whl carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/handful-site \
    .whl/gsplat-*.whl || { echo "no gsplat wheel in .whl/ (see the top of this script)"; exit 3; }
export PYTHONPATH=/tmp/handful-site:$PWD PYTHONUNBUFFERED=1
# Hopper (H100/H200) is 9.0; building for one architecture keeps the first-use compile to minutes.
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
    2>&1 | tee "$OUT/device.log" || exit 2
start=$SECONDS
python3 -c "from gsplat.cuda._backend import _C; assert _C is not None, 'gsplat kernels did not build'" \
    2>&1 | tee "$OUT/build.log" || exit 2
echo "gsplat kernels ready in $((SECONDS - start)) s" | tee -a "$OUT/build.log"
status=0
python3 -m pytest tests/test_render_gsplat.py -m gpu -p no:cacheprovider -q 2>&1 | tee "$OUT/pytest.log" || status=1
python3 benchmarks/gpu_check.py 2>&1 | tee "$OUT/gpu_check.log" || status=1
exit $status
