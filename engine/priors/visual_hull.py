"""The visual hull of an object photographed on a uniform background: the space no photo sees as
background. From a few views it is loose (a cone per view, intersected), but it always holds the object,
so starting points drawn inside it are never in the empty space around the object, where few-view
training otherwise grows floaters that only the unseen views show.

- ``foreground_mask``: the pixels of a photo that differ from the background colour, grown by a margin
  so that an edge blurred into the background is kept (the hull must not cut into the object);
- ``inside_hull``: which world points every view sees on its foreground. A point outside a view's
  photo is carved too: an object on a plain background is whole in every photo, so what a photo does
  not hold is not the object (and without that the hull of a few views runs out of the frusta);
- ``hull_points``: random points inside the hull, on rays through one view's foreground.

Use it only where the background was detected with confidence (engine.train.background): on a real
scene's photos the "background" pixels are part of the scene and the hull would carve it away.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..camera_projection import project_points
from ..errors import InputError
from ..scene import Camera

NEAR = 12 / 255  # as engine.train.background: a pixel within this of the background colour is background
MARGIN = 0.01  # the mask is grown by this share of the photo's long edge (at least 1 px)


def foreground_mask(image: np.ndarray, background, *, near: float = NEAR, margin: float = MARGIN) -> np.ndarray:
    """(H,W) bool: the pixels of ``image`` (H,W,3: uint8, or floats in 0..1) farther than ``near`` from
    ``background`` (an RGB triple in 0..1) in some channel, grown by ``margin`` of the long edge."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise InputError(f"a foreground mask needs an RGB image, got shape {image.shape}")
    scale = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
    image = image.astype(np.float32) / scale
    mask = (np.abs(image[..., :3] - np.asarray(background, np.float32)) > near).any(axis=2)
    grow = max(1, int(round(margin * max(mask.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def inside_hull(points: np.ndarray, cameras: Sequence[Camera], masks: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) bool: every view holds the point in its photo, on its foreground."""
    if len(cameras) != len(masks):
        raise InputError(f"{len(cameras)} cameras but {len(masks)} masks")
    keep = np.ones(len(points), bool)
    for cam, mask in zip(cameras, masks):
        pix, z = project_points(points, cam)
        h, w = mask.shape
        with np.errstate(invalid="ignore"):
            inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
        u = np.floor(np.nan_to_num(pix[:, 0])).astype(np.int64).clip(0, w - 1)
        v = np.floor(np.nan_to_num(pix[:, 1])).astype(np.int64).clip(0, h - 1)
        keep &= inside & mask[v, u]
    return keep


def hull_points(cameras: Sequence[Camera], masks: Sequence[np.ndarray], count: int,
                depth_range: tuple[float, float], *, seed: int = 0, max_rounds: int = 20) -> np.ndarray:
    """Up to ``count`` world points (N,3) inside the hull: on rays through random foreground pixels of
    the views in turn, inverse depth uniform in ``depth_range`` (from each camera), kept where every
    other view agrees. Fewer when the hull is a sliver of that range (``max_rounds`` draws of ``count``)."""
    near, far = depth_range
    if not 0 < near <= far:
        raise InputError(f"depth range {near}..{far} must satisfy 0 < near <= far")
    fg = [np.argwhere(m) for m in masks]
    if count < 1 or not any(len(f) for f in fg):
        return np.zeros((0, 3))
    rng = np.random.default_rng(seed)
    views = [k for k, f in enumerate(fg) if len(f)]
    out, have = [], 0
    for _ in range(max_rounds):
        which = rng.choice(views, size=count)
        for k in views:
            n = int((which == k).sum())
            if not n:
                continue
            cam = cameras[k]
            pix = fg[k][rng.integers(0, len(fg[k]), n)] + rng.random((n, 2))  # (row, col) inside the pixel
            z = 1 / rng.uniform(1 / far, 1 / near, n)
            p = np.stack([(pix[:, 1] - cam.cx) / cam.fx * z, (pix[:, 0] - cam.cy) / cam.fy * z, z], 1)
            world = (p - cam.t) @ cam.R  # R^T (p - t)
            world = world[inside_hull(world, cameras, masks)]
            out.append(world)
            have += len(world)
        if have >= count:
            break
    return np.concatenate(out)[:count]


__all__ = ["foreground_mask", "hull_points", "inside_hull"]
