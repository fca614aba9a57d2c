"""The depth-prior interface and the working copies of the views that every backend starts from."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import InputError
from ..events import CancelToken, EventSink, null_sink
from ..scene import Camera
from .depth_map import DepthMap

WORKING_LONG_EDGE = 384  # px: SGBM and the monocular models run on copies this size (a few seconds a view)


class DepthPrior:
    """A way to get a depth map per training view: ``MultiViewDepth`` (the default, offline) or
    ``MonocularDepth(folder)``."""

    name: str = "depth"

    def estimate(self, cameras: Sequence[Camera], images: Sequence, *, emit: EventSink = null_sink,
                 cancel: CancelToken | None = None) -> list[DepthMap]:
        raise NotImplementedError


def as_rgb8(image) -> np.ndarray:
    """(H,W,3) uint8 RGB from a uint8 or [0,1] float array or tensor (grey is repeated, alpha dropped)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InputError(f"an image must be (H, W, 3), got shape {a.shape}")
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def working_views(cameras: Sequence[Camera], images: Sequence, long_edge: int | None) -> tuple[list[Camera], list[np.ndarray]]:
    """Cameras scaled so that the long edge is at most ``long_edge``, and their images (uint8 RGB)
    resized to match them exactly."""
    if len(cameras) != len(images):
        raise InputError(f"{len(cameras)} cameras but {len(images)} images")
    cams, out = [], []
    for cam, image in zip(cameras, images):
        rgb = as_rgb8(image)
        if long_edge and max(cam.width, cam.height) > long_edge:
            cam = cam.scaled(long_edge / max(cam.width, cam.height))
        if rgb.shape[:2] != (cam.height, cam.width):
            shrinking = rgb.shape[0] > cam.height
            rgb = cv2.resize(rgb, (cam.width, cam.height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        cams.append(cam)
        out.append(rgb)
    return cams, out


def check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()
