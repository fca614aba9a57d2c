"""Differentiable Gaussian rasterization: ``render(scene, camera, ...)`` over three backends.

- ``gsplat``: gsplat's fused CUDA kernels (scenes on CUDA).
- ``cpu``: torch projection + numba tile kernels (multi-threaded, bounded memory).
- ``reference``: plain torch, readable, the oracle for tests.
"""

from engine.render.api import RenderMeta, RenderResult, available_backends, render

__all__ = ["render", "RenderResult", "RenderMeta", "available_backends"]
