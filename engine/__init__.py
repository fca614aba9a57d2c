"""Handful's headless engine: scene model, formats, rendering, reconstruction. Never imports Qt."""

import os

# Idle OpenMP threads in torch otherwise spin and starve the numba render kernels that run between
# torch calls (measured: a training step 7-8x slower with torch at 2 threads). Must precede `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
