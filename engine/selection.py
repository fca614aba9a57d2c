"""Screen-space selection of Gaussians: project centres through a camera and test them against a box.

The app's box-select tool calls this with the viewer's current camera; all projection maths lives here
so the GUI never re-implements camera conventions (OpenCV: x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np
import torch

from .scene import Camera, GaussianScene

# Points closer than this (in camera z) are behind or at the eye and never selected.
MIN_DEPTH = 1e-6


def project_points(means: torch.Tensor | np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N,2) and camera-space depth (N,) of world points ``means`` (N,3).

    Pixel coordinates follow COLMAP's pixel-centre convention: the top-left pixel covers [0,1)x[0,1).
    Points with depth <= 0 get non-finite pixel coordinates.
    """
    if isinstance(means, torch.Tensor):
        means = means.detach().cpu().numpy()
    pts = np.asarray(means, dtype=np.float64).reshape(-1, 3)
    cam = pts @ camera.R.T + camera.t
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(z > MIN_DEPTH, 1.0 / z, np.nan)
    u = camera.fx * cam[:, 0] * inv_z + camera.cx
    v = camera.fy * cam[:, 1] * inv_z + camera.cy
    return np.stack([u, v], axis=1), z


def box_select(
    scene: GaussianScene | torch.Tensor | np.ndarray,
    camera: Camera,
    box: tuple[float, float, float, float],
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask (N,) of Gaussians whose centre projects inside ``box`` = (x0, y0, x1, y1) pixels.

    The box may be given with corners in any order. Only points in front of the camera count, and
    with ``visible`` (a boolean mask) only those still shown (deleted splats are never re-selected).
    """
    means = scene.means if isinstance(scene, GaussianScene) else scene
    uv, z = project_points(means, camera)
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    with np.errstate(invalid="ignore"):
        inside = (z > MIN_DEPTH) & (uv[:, 0] >= x0) & (uv[:, 0] <= x1) & (uv[:, 1] >= y0) & (uv[:, 1] <= y1)
    if visible is not None:
        inside &= np.asarray(visible, dtype=bool)
    return inside


__all__ = ["project_points", "box_select", "MIN_DEPTH"]
