"""The training photos and their cameras, at each resolution level the schedule asks for."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.errors import InputError
from engine.scene import Camera


def image_tensor(image, cam: Camera, index: int) -> torch.Tensor:
    """``image`` (H,W,3 uint8 or float) as a float32 tensor in [0, 1], checked against its camera."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    where = cam.image_path or cam.name or f"image {index}"
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"training image has shape {arr.shape}, expected (H, W, 3) RGB", path=where)
    if arr.shape[:2] != (cam.height, cam.width):
        raise InputError(
            f"image is {arr.shape[1]}x{arr.shape[0]} but its camera is {cam.width}x{cam.height}",
            path=where,
            hint="resize the image or scale the camera so they match",
        )
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    else:
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise InputError("image has non-finite pixel values", path=where)
        arr = np.clip(arr, 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(arr))


def resize_view(image: torch.Tensor, cam: Camera, factor: float) -> tuple[torch.Tensor, Camera]:
    """The image (H,W,C) and its camera scaled by ``factor`` (area-averaged)."""
    w = max(1, int(round(cam.width * factor)))
    h = max(1, int(round(cam.height * factor)))
    if (w, h) == (cam.width, cam.height):
        return image, cam
    small = cv2.resize(image.numpy(), (w, h), interpolation=cv2.INTER_AREA)
    if small.ndim == 2 and image.ndim == 3:
        small = small[..., None]
    return torch.from_numpy(np.ascontiguousarray(small)), cam.resized(w, h)


class TrainingViews:
    """Training images (CPU tensors) and cameras at each resolution level, made on first use.

    ``cameras`` are at training size (the images downscaled to ``max_side`` when given); ``get(i,
    factor)`` is view ``i`` at ``factor`` of that size.
    """

    def __init__(self, cameras, images, max_side: int | None = None):
        self.cameras: list[Camera] = []
        self.images: list[torch.Tensor] = []
        for i, (cam, img) in enumerate(zip(cameras, images)):
            t = image_tensor(img, cam, i)
            if max_side and max(cam.width, cam.height) > max_side:
                t, cam = resize_view(t, cam, max_side / max(cam.width, cam.height))
            self.cameras.append(cam)
            self.images.append(t)
        self._levels: dict[float, list] = {1.0: list(zip(self.images, self.cameras))}

    @property
    def count(self) -> int:
        return len(self.cameras)

    def get(self, index: int, factor: float = 1.0) -> tuple[torch.Tensor, Camera]:
        if factor not in self._levels:
            self._levels[factor] = [None] * len(self.images)
        level = self._levels[factor]
        if level[index] is None:
            level[index] = resize_view(self.images[index], self.cameras[index], factor)
        return level[index]


__all__ = ["TrainingViews", "image_tensor", "resize_view"]
