"""Depth maps to one coloured point cloud for initialisation: confident pixels lifted to 3D, kept
where another view's map sees the same surface there."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..camera_projection import project_points
from ..errors import InputError
from ..scene import PointCloud
from .depth_map import DepthMap
from .prior import working_views

CONSISTENCY_TOLERANCE = 0.03  # relative depth within which another view's map confirms a point
DEFAULT_SEED = 0


def lift(depth_map: DepthMap, mask: np.ndarray) -> np.ndarray:
    """World points (N,3) of the map's pixels in ``mask`` (row-major order)."""
    cam = depth_map.camera
    rows, cols = np.nonzero(mask)
    z = depth_map.depth[rows, cols].astype(np.float64)
    x = (cols + 0.5 - cam.cx) / cam.fx * z
    y = (rows + 0.5 - cam.cy) / cam.fy * z
    return (np.stack([x, y, z], 1) - cam.t) @ cam.R  # R^T (p - t), row-wise


def confirmations(points: np.ndarray, others: Sequence[DepthMap], tolerance: float = CONSISTENCY_TOLERANCE) -> np.ndarray:
    """How many of ``others`` have a depth within ``tolerance`` (relative) of each point where it projects."""
    count = np.zeros(len(points), np.int64)
    for other in others:
        cam = other.camera
        pix, z = project_points(points, cam)
        with np.errstate(invalid="ignore"):
            inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < cam.width) & (pix[:, 1] >= 0) & (pix[:, 1] < cam.height)
        cols = np.floor(np.nan_to_num(pix[:, 0])).astype(np.int64).clip(0, cam.width - 1)
        rows = np.floor(np.nan_to_num(pix[:, 1])).astype(np.int64).clip(0, cam.height - 1)
        seen = other.depth[rows, cols]
        with np.errstate(invalid="ignore", divide="ignore"):
            count += inside & (seen > 0) & (np.abs(seen / z - 1) <= tolerance)
    return count


def dense_points(depth_maps: Sequence[DepthMap], images: Sequence, *, max_points: int = 200_000,
                 min_confidence: float = 0.5, tolerance: float = CONSISTENCY_TOLERANCE,
                 seed: int = DEFAULT_SEED) -> PointCloud:
    """Confident pixels of every map lifted into the world with the photo's colour there.

    With two or more maps, a point is kept only where at least one other map confirms it within
    ``tolerance`` relative depth (seen
    consistently by two views); when no point at all passes that (e.g. the views hardly overlap), the
    confident points are kept as they are. At most ``max_points``, drawn at random (``seed``) in
    proportion to confidence. ``track_length`` holds the number of views that agree on each point."""
    if len(depth_maps) != len(images):
        raise InputError(f"{len(depth_maps)} depth maps but {len(images)} images")
    if any(m.kind != "metric" for m in depth_maps):
        raise InputError("relative (monocular) depth maps have no scale and cannot be fused into points",
                         hint="use the multi-view depth prior for the initial points")
    _, rgbs = working_views([m.camera for m in depth_maps], images, None)
    xyz, rgb, conf, views = [np.zeros((0, 3))], [np.zeros((0, 3))], [np.zeros(0)], [np.zeros(0, np.int64)]
    for k, (m, image) in enumerate(zip(depth_maps, rgbs)):
        mask = (m.confidence >= min_confidence) & (m.depth > 0)
        xyz.append(lift(m, mask))
        rgb.append(image[mask] / 255.0)
        conf.append(m.confidence[mask].astype(np.float64))
        others = [o for o_k, o in enumerate(depth_maps) if o_k != k]
        views.append(1 + confirmations(xyz[-1], others, tolerance))
    xyz, rgb, conf, views = (np.concatenate(a) for a in (xyz, rgb, conf, views))
    if len(depth_maps) >= 2 and (views >= 2).any():
        keep = views >= 2
        xyz, rgb, conf, views = xyz[keep], rgb[keep], conf[keep], views[keep]
    if len(xyz) > max_points:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(xyz), size=max_points, replace=False, p=conf / conf.sum())
        pick.sort()
        xyz, rgb, views = xyz[pick], rgb[pick], views[pick]
    return PointCloud(xyz, rgb, track_length=views)
