"""Which Gaussians a selection tool covers: pure functions from a document's arrays to a mask (N,).

Screen tools (rect, lasso, brush, pick) project through ``engine.camera_projection``, the same maths
the viewer draws with; volume tools (sphere, box) and attribute tools (colour, opacity, size) work in
world space; grow and shrink use scipy's cKDTree.
"""

from __future__ import annotations

import numpy as np
import torch

from ..camera_projection import MIN_DEPTH, project_points, splat_alpha_at
from ..scene import SH_C0, Camera

# A splat counts under the cursor from this alpha on (the renderer skips alpha < 1/255 altogether).
PICK_MIN_ALPHA = 1.0 / 255.0
# With no footprint under the cursor (tiny splats), the nearest centre within this many pixels is taken.
PICK_CENTRE_TOLERANCE_PX = 6.0


def _in_front(uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    return (z > MIN_DEPTH) & np.isfinite(uv).all(axis=1)


def rect_mask(means: np.ndarray, camera: Camera, rect) -> np.ndarray:
    """Centres projecting inside rect = (x0, y0, x1, y1) image pixels (corners in any order)."""
    uv, z = project_points(means, camera)
    x0, x1 = sorted((float(rect[0]), float(rect[2])))
    y0, y1 = sorted((float(rect[1]), float(rect[3])))
    with np.errstate(invalid="ignore"):
        return _in_front(uv, z) & (uv[:, 0] >= x0) & (uv[:, 0] <= x1) & (uv[:, 1] >= y0) & (uv[:, 1] <= y1)


def lasso_mask(means: np.ndarray, camera: Camera, polygon) -> np.ndarray:
    """Centres projecting inside a closed polygon of image pixels: OpenCV fills the polygon at 1/16 px
    precision into an image-sized mask and each centre looks up its pixel."""
    import cv2

    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(means), dtype=bool)
    if len(poly) < 3:
        return inside
    shift = 4
    # pixel (i, j) covers [i, i+1) x [j, j+1); fillPoly marks pixels whose centre is inside the polygon
    raster = np.zeros((camera.height, camera.width), dtype=np.uint8)
    vertices = np.round((poly - 0.5) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(raster, [vertices], 1, lineType=cv2.LINE_8, shift=shift)
    uv, z = project_points(means, camera)
    with np.errstate(invalid="ignore"):
        front = _in_front(uv, z) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    cols = np.floor(uv[front, 0]).astype(np.int64)
    rows = np.floor(uv[front, 1]).astype(np.int64)
    inside[front] = raster[rows, cols] > 0
    return inside


def brush_mask(means: np.ndarray, camera: Camera, points, radius: float) -> np.ndarray:
    """Centres within ``radius`` pixels of a brush stroke (its points, joined by straight segments)."""
    from scipy.spatial import cKDTree

    stroke = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(stroke):
        return np.zeros(len(means), dtype=bool)
    # fill the gaps between stroke samples so that a fast drag leaves no holes
    dense = [stroke[:1]]
    for a, b in zip(stroke[:-1], stroke[1:]):
        steps = max(1, int(np.ceil(np.linalg.norm(b - a) / max(radius * 0.5, 1e-6))))
        dense.append(a + (b - a) * (np.arange(1, steps + 1)[:, None] / steps))
    dense = np.concatenate(dense)
    uv, z = project_points(means, camera)
    front = _in_front(uv, z)
    hit = np.zeros(len(means), dtype=bool)
    if front.any():
        d, _ = cKDTree(dense).query(uv[front], k=1)
        hit[front] = d <= radius
    return hit


def sphere_mask(means: np.ndarray, centre, radius: float) -> np.ndarray:
    return np.linalg.norm(means - np.asarray(centre, dtype=np.float64), axis=1) <= radius


def box_mask(means: np.ndarray, lo, hi) -> np.ndarray:
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return ((means >= lo) & (means <= hi)).all(axis=1)


def colour_mask(sh: np.ndarray, rgb, tolerance: float) -> np.ndarray:
    """Base (DC) colour within ``tolerance`` (Euclidean, RGB in [0, 1]) of ``rgb``."""
    colour = np.clip(0.5 + SH_C0 * sh[:, 0].astype(np.float64), 0, 1)
    return np.linalg.norm(colour - np.asarray(rgb, dtype=np.float64), axis=1) <= tolerance


def opacity_mask(opacity_logits: np.ndarray, low: float, high: float) -> np.ndarray:
    opacity = 1.0 / (1.0 + np.exp(-opacity_logits.astype(np.float64)))
    return (opacity >= low) & (opacity <= high)


def size_mask(log_scales: np.ndarray, low: float, high: float) -> np.ndarray:
    """Largest axis (world units, one sigma) within [low, high]."""
    size = np.exp(log_scales.astype(np.float64).max(axis=1))
    return (size >= low) & (size <= high)


def grow_mask(means: np.ndarray, selected: np.ndarray, selectable: np.ndarray, distance: float) -> np.ndarray:
    """The selection plus every selectable Gaussian within ``distance`` of a selected one."""
    from scipy.spatial import cKDTree

    out = selected.copy()
    if not selected.any():
        return out
    candidates = np.flatnonzero(selectable & ~selected)
    if len(candidates):
        d, _ = cKDTree(means[selected]).query(means[candidates], k=1, distance_upper_bound=distance)
        out[candidates[np.isfinite(d)]] = True
    return out


def shrink_mask(means: np.ndarray, selected: np.ndarray, selectable: np.ndarray, distance: float) -> np.ndarray:
    """The selection less every Gaussian within ``distance`` of an unselected selectable one (its rim)."""
    from scipy.spatial import cKDTree

    out = selected.copy()
    outside = selectable & ~selected
    if not selected.any() or not outside.any():
        return out
    inside = np.flatnonzero(selected)
    d, _ = cKDTree(means[outside]).query(means[inside], k=1, distance_upper_bound=distance)
    out[inside[np.isfinite(d)]] = False
    return out


def pick_splat(arrays: dict[str, np.ndarray], camera: Camera, x: float, y: float, candidates: np.ndarray) -> int | None:
    """Index of the Gaussian seen at pixel (x, y): among the ``candidates`` (a mask) whose footprint
    covers the pixel, the one that contributes most to its colour after front-to-back blending
    (alpha x transmittance, as the renderer composites); else the nearest centre within a few pixels."""
    everything = bool(candidates.all())  # the usual case: no copies of the whole scene's rows
    index = np.arange(len(candidates)) if everything else np.flatnonzero(candidates)
    if not len(index):
        return None
    means = arrays["means"] if everything else arrays["means"][index]
    log_scales = arrays["log_scales"] if everything else arrays["log_scales"][index]
    uv, z = project_points(means, camera)
    front = _in_front(uv, z)
    # A conservative screen radius first (3 sigma of the largest axis plus the 0.3 px dilation), so the
    # exact EWA footprint is only evaluated for Gaussians that can reach the pixel.
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.exp(log_scales.max(axis=1))
        reach = 3.5 * sigma * max(camera.fx, camera.fy) / np.maximum(z, MIN_DEPTH) + 3.0
        near = front & (np.abs(uv[:, 0] - x) <= reach) & (np.abs(uv[:, 1] - y) <= reach)
    near_index = np.flatnonzero(near)
    if len(near_index):
        sub = index[near_index]
        opacities = torch.sigmoid(torch.from_numpy(arrays["opacity_logits"][sub].astype(np.float64)))
        alpha, depth = splat_alpha_at(
            torch.from_numpy(arrays["means"][sub]), torch.from_numpy(arrays["quats"][sub]),
            torch.from_numpy(arrays["log_scales"][sub]), opacities, camera, x, y)
        hit = alpha >= PICK_MIN_ALPHA
        if hit.any():
            order = np.flatnonzero(hit)[np.argsort(depth[hit], kind="stable")]
            a = alpha[order]
            transmittance = np.concatenate([[1.0], np.cumprod(1.0 - a)[:-1]])
            return int(sub[order[int(np.argmax(a * transmittance))]])
    with np.errstate(invalid="ignore"):
        dist = np.where(front, np.hypot(uv[:, 0] - x, uv[:, 1] - y), np.inf)
    best = int(np.argmin(dist))
    return int(index[best]) if dist[best] <= PICK_CENTRE_TOLERANCE_PX else None
