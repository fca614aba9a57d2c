"""Pixel-aligned initialisation per view (after CoherentGS): one Gaussian per (subsampled) pixel of each
view's depth map, placed on the pixel's ray at its depth, coloured by the photo and as large as the
pixel footprint there, so that every view starts fully covered by a surface at the prior's depth.

``engine.priors.depth.dense_points`` fuses the maps into one point cloud instead; this keeps each
view's own pixel grid (no fusion, no neighbour-distance sizes).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from engine.errors import InputError
from engine.scene import GaussianScene

from .cross_view import pixel_rays


def _photo_at(image, width: int, height: int) -> np.ndarray:
    arr = np.asarray(image)
    arr = arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)
    if arr.shape[:2] != (height, width):
        arr = cv2.resize(arr, (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(arr, 0.0, 1.0)


def view_points(depth_map, image, *, stride: int, min_confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points, colours and footprints (world size of one ``stride`` step at the point's depth)
    of the confident pixels on a ``stride`` grid of one depth map (pixels at the grid cells' centres)."""
    cam = depth_map.camera
    depth = np.asarray(depth_map.depth, dtype=np.float64)
    conf = np.asarray(depth_map.confidence, dtype=np.float64)
    h, w = depth.shape
    photo = _photo_at(image, w, h)
    rays = pixel_rays(cam, h, w, "cpu", torch.float64).numpy()
    first = stride // 2
    rows, cols = slice(first, None, stride), slice(first, None, stride)
    z = depth[rows, cols]
    keep = np.isfinite(z) & (z > 0) & (conf[rows, cols] >= min_confidence)
    z = z[keep]
    p_cam = rays[rows, cols][keep] * z[:, None]
    xyz = (p_cam - cam.t) @ cam.R  # R^T (p - t)
    colour = photo[rows, cols][keep]
    footprint = z * stride / np.sqrt(cam.fx * cam.fy)
    return xyz, colour, footprint


def coherent_init(
    depth_maps: Sequence,
    images: Sequence,
    *,
    stride: int = 4,
    min_confidence: float = 0.5,
    size: float = 0.5,
    opacity: float = 0.3,
    sh_degree: int = 3,
    max_points: int | None = None,
    seed: int = 0,
) -> GaussianScene:
    """Isotropic Gaussians on every ``stride``-th pixel of each view whose prior depth is confident;
    ``images[i]`` is the photo of ``depth_maps[i]`` (any size: resized to the map). Each Gaussian's
    scale is ``size`` times its pixel footprint (0.5: neighbours overlap at their 1-sigma edges).

    With ``max_points``, the stride grows until the grid fits (a coarser grid of larger Gaussians still
    covers every view; a random subset would leave holes), then a random subset (``seed``) trims the
    last few hundred."""
    if len(depth_maps) != len(images):
        raise InputError(f"{len(depth_maps)} depth maps but {len(images)} photos for the coherent initialisation")
    if stride < 1:
        raise InputError(f"the pixel stride must be at least 1, got {stride}")
    while True:
        parts = [view_points(m, img, stride=stride, min_confidence=min_confidence) for m, img in zip(depth_maps, images)]
        count = sum(len(p[0]) for p in parts)
        if max_points is None or count <= max_points * 1.1 or count == 0:
            break
        stride += 1
    if count == 0:
        raise InputError(
            f"no depth-map pixel has confidence >= {min_confidence}",
            hint="lower the confidence threshold or initialise from points / at random",
        )
    xyz = np.concatenate([p[0] for p in parts])
    rgb = np.concatenate([p[1] for p in parts])
    scale = size * np.concatenate([p[2] for p in parts])
    if max_points is not None and len(xyz) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(xyz), max_points, replace=False))
        xyz, rgb, scale = xyz[pick], rgb[pick], scale[pick]
    return GaussianScene.from_points(xyz, rgb, sh_degree=sh_degree, scale=scale, opacity=opacity)


__all__ = ["coherent_init", "view_points"]
