"""Initial Gaussians: from a sparse point cloud (SfM) or random points in the cameras' view."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine.errors import InputError
from engine.scene import Camera, GaussianScene, PointCloud, nearest_neighbour_scale


def init_from_points(
    points: PointCloud,
    *,
    sh_degree: int = 3,
    opacity: float = 0.1,
    max_points: int | None = None,
    seed: int = 0,
) -> GaussianScene:
    """Isotropic Gaussians at the points, coloured by them, sized by their 3 nearest neighbours."""
    if len(points) == 0:
        raise InputError("the point cloud is empty", hint="use random_init when reconstruction gives no points")
    xyz, rgb = points.xyz, points.rgb
    finite = np.isfinite(xyz).all(axis=1) & np.isfinite(rgb).all(axis=1)
    xyz, rgb = xyz[finite], rgb[finite]
    if max_points is not None and len(xyz) > max_points:
        keep = np.random.default_rng(seed).choice(len(xyz), max_points, replace=False)
        xyz, rgb = xyz[np.sort(keep)], rgb[np.sort(keep)]
    if rgb.max(initial=0) > 1.0:  # 0-255 colours
        rgb = rgb / 255.0
    return GaussianScene.from_points(xyz, rgb, sh_degree=sh_degree, opacity=opacity)


def _visible_counts(points: np.ndarray, cameras: Sequence[Camera], near: float) -> np.ndarray:
    counts = np.zeros(len(points), dtype=np.int32)
    for cam in cameras:
        p = points @ cam.R.T + cam.t
        z = p[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.fx * p[:, 0] / z + cam.cx
            v = cam.fy * p[:, 1] / z + cam.cy
        counts += (z > near) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    return counts


def focus_point(cameras: Sequence[Camera]) -> np.ndarray | None:
    """The point closest (least squares) to all optical axes, or None when the axes are nearly
    parallel (forward-facing captures) and the point is ill-defined."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for cam in cameras:
        d = cam.R[2]  # optical axis in world coordinates
        m = np.eye(3) - np.outer(d, d)
        a += m
        b += m @ cam.center
    eig = np.linalg.eigvalsh(a)
    if len(cameras) < 2 or eig[0] < 0.05 * len(cameras):
        return None
    return np.linalg.solve(a, b)


def random_init(
    cameras: Sequence[Camera],
    count: int = 20_000,
    *,
    sh_degree: int = 3,
    opacity: float = 0.1,
    seed: int = 0,
    depth_range: tuple[float, float] | None = None,
    min_view_fraction: float = 0.5,
) -> GaussianScene:
    """``count`` Gaussians at random points that the cameras see (used when SfM gives too few points,
    following "Does Gaussian Splatting need SFM initialization?").

    When the cameras look at a common centre (object captures), points fill the cube around that
    centre whose half-size is the frustum half-width there, keeping points seen by at least
    ``min_view_fraction`` of the cameras. Otherwise (forward-facing) points are spread along random
    pixel rays with inverse depth uniform in ``depth_range`` (when the scene's depths are known, e.g. from
    triangulated points; default 0.1-10 x the camera spread).
    Colours start grey with a little noise; sizes from the 3 nearest neighbours.
    """
    if not cameras:
        raise InputError("random initialisation needs at least one camera")
    if count < 1:
        raise InputError(f"random initialisation needs a positive count, got {count}")
    rng = np.random.default_rng(seed)
    centers = np.array([c.center for c in cameras])
    spread = float(np.linalg.norm(centers - centers.mean(0), axis=1).max()) if len(cameras) > 1 else 1.0
    spread = spread or 1.0
    focus = focus_point(cameras)
    points = np.zeros((0, 3))
    if focus is not None:
        dist = float(np.median(np.linalg.norm(centers - focus, axis=1)))
        half_fov = min(min(c.fov_x, c.fov_y) for c in cameras) / 2
        half = dist * math.tan(half_fov)
        need = max(1, int(math.ceil(min_view_fraction * len(cameras))))
        for _ in range(20):
            cand = focus + rng.uniform(-half, half, size=(max(2 * count, 1024), 3))
            cand = cand[_visible_counts(cand, cameras, near=1e-3 * dist) >= need]
            points = np.concatenate([points, cand])[:count]
            if len(points) >= count:
                break
    if len(points) < count:  # forward-facing, or the cube was mostly unseen
        near, far = depth_range if depth_range is not None else (0.1 * spread, 10 * spread)
        if not 0 < near < far:
            raise InputError(f"depth range {near}..{far} must satisfy 0 < near < far")
        m = count - len(points)
        which = rng.integers(0, len(cameras), size=m)
        inv_depth = rng.uniform(1 / far, 1 / near, size=m)
        extra = np.empty((m, 3))
        for i, cam in enumerate(cameras):
            sel = which == i
            k = int(sel.sum())
            if not k:
                continue
            u = rng.uniform(0, cam.width, size=k)
            v = rng.uniform(0, cam.height, size=k)
            z = 1 / inv_depth[sel]
            p_cam = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], axis=1)
            extra[sel] = (p_cam - cam.t) @ cam.R  # R^T (p - t)
        points = np.concatenate([points, extra])
    return grey_gaussians(points, sh_degree=sh_degree, opacity=opacity, rng=rng)


def grey_gaussians(points: np.ndarray, *, sh_degree: int = 3, opacity: float = 0.1, seed: int = 0,
                   rng: np.random.Generator | None = None) -> GaussianScene:
    """Gaussians at ``points`` (N,3) that know nothing but where they are: grey with a little noise,
    sized by their 3 nearest neighbours."""
    rng = rng if rng is not None else np.random.default_rng(seed)
    rgb = np.clip(0.5 + rng.normal(scale=0.05, size=(len(points), 3)), 0, 1)
    return GaussianScene.from_points(
        points, rgb, sh_degree=sh_degree, scale=nearest_neighbour_scale(points), opacity=opacity
    )


__all__ = ["focus_point", "grey_gaussians", "init_from_points", "random_init"]
