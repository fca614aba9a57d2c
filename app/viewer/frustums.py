"""Input cameras drawn as wire frustums, and picking one under the mouse."""

from __future__ import annotations

import numpy as np

from engine.camera_projection import project_points

# eye->corner edges and the image rectangle, as vertex pairs over [eye, c0, c1, c2, c3]
_EDGES = [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)]


def frustum_corners(camera: Camera, depth: float) -> np.ndarray:
    """(5,3) world points: the eye and the image corners at ``depth`` along the optical axis."""
    w, h = camera.width, camera.height
    pix = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    cam = np.stack([(pix[:, 0] - camera.cx) / camera.fx, (pix[:, 1] - camera.cy) / camera.fy, np.ones(4)], -1) * depth
    world = (cam - camera.t) @ camera.R  # R^T (x - t), row-wise
    return np.vstack([camera.center, world])


def frustum_depth(cameras: list[Camera], scene_radius: float) -> float:
    """A frustum size that reads well: a third of the typical spacing between cameras."""
    if len(cameras) > 1:
        centers = np.array([c.center for c in cameras])
        d = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
        np.fill_diagonal(d, np.inf)
        spacing = float(np.median(d.min(axis=1)))
        if np.isfinite(spacing) and spacing > 0:
            return 0.35 * spacing
    return 0.1 * scene_radius


def frustum_lines(cameras: list[Camera], depth: float) -> np.ndarray:
    """(len(cameras)*16, 3) float32 segment endpoints for GL_LINES."""
    if not cameras:
        return np.zeros((0, 3), dtype=np.float32)
    segs = []
    for cam in cameras:
        pts = frustum_corners(cam, depth)
        segs.extend(pts[[a, b]] for a, b in _EDGES)
    return np.concatenate(segs).astype(np.float32)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    s = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
    return np.linalg.norm(a + s[:, None] * ab - p, axis=1)


def pick_frustum(cameras: list[Camera], depth: float, view: Camera, x: float, y: float, tolerance_px: float = 6.0) -> int | None:
    """Index of the camera whose frustum lies under pixel (x, y) of ``view`` (on a drawn edge within
    ``tolerance_px`` or inside its image rectangle), the nearest one when several do; None if none."""
    best, best_depth = None, np.inf
    click = np.array([[x, y]], dtype=np.float64)
    near = 1e-6
    for i, cam in enumerate(cameras):
        uv, z = project_points(frustum_corners(cam, depth), view)
        if (z <= near).any():
            continue  # partly behind the viewer: skip rather than draw wrapped-around edges
        a = uv[[e[0] for e in _EDGES]]
        b = uv[[e[1] for e in _EDGES]]
        hit = _segment_distance(np.repeat(click, len(a), 0), a, b).min() <= tolerance_px
        if not hit:
            rect = uv[1:]
            edges = np.roll(rect, -1, 0) - rect
            cross = edges[:, 0] * (y - rect[:, 1]) - edges[:, 1] * (x - rect[:, 0])
            hit = bool((cross >= 0).all() or (cross <= 0).all())
        if hit and z[0] < best_depth:
            best, best_depth = i, float(z[0])
    return best
