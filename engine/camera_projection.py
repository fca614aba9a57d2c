"""World points to screen pixels: the one camera/projection module that picking, selection tools and the
viewer share (the viewer only adds the conversion of a matrix to a GL uniform).

Engine cameras are OpenCV/COLMAP: x right, y down, z forward, pixel (u, v) = (fx x/z + cx, fy y/z + cy)
with the centre of the top-left pixel at (0.5, 0.5). OpenGL wants clip coordinates whose NDC has y up
and the visible depth range in [-1, 1], and puts fragment centres of window pixel (i, j) at
(i + 0.5, j + 0.5) counted from the bottom-left. ``opencv_to_gl_clip`` takes OpenCV camera coordinates
straight to GL clip coordinates so that ndc_x = 2u/W - 1, ndc_y = 1 - 2v/H, w_clip = z: GL fragment
centres land exactly on the engine's pixel centres (image row r is GL row H-1-r).
"""

from __future__ import annotations

import numpy as np
import torch

from .scene import Camera

# Points closer than this (in camera z) are behind or at the eye: they get no pixel and are never picked.
MIN_DEPTH = 1e-6


def project_points(points: torch.Tensor | np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N,2) and camera-space depth (N,) of world points (N,3).

    Points with depth <= MIN_DEPTH get NaN pixel coordinates."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    # einsum rather than ``pts @ R.T``: BLAS spends ~5x the CPU on an (N,3)x(3,3) product (threads spinning)
    cam = np.einsum("ij,kj->ik", pts, camera.R) + camera.t
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_z = np.where(z > MIN_DEPTH, 1.0 / z, np.nan)
    u = camera.fx * cam[:, 0] * inv_z + camera.cx
    v = camera.fy * cam[:, 1] * inv_z + camera.cy
    return np.stack([u, v], axis=1), z


def opencv_to_gl_clip(camera: Camera, near: float, far: float) -> np.ndarray:
    """(4,4) float64 matrix: OpenCV camera coordinates (x, y, z, 1) -> GL clip coordinates."""
    w, h = camera.width, camera.height
    m = np.zeros((4, 4))
    m[0, 0] = 2 * camera.fx / w
    m[0, 2] = 2 * camera.cx / w - 1
    m[1, 1] = -2 * camera.fy / h
    m[1, 2] = 1 - 2 * camera.cy / h
    m[2, 2] = (far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = 1.0
    return m


def pixel_to_ndc_scale(camera: Camera) -> tuple[float, float]:
    """NDC change per pixel offset in image coordinates (y down) for the same mapping."""
    return 2.0 / camera.width, -2.0 / camera.height


def side_planes(camera: Camera) -> np.ndarray:
    """(4,4) rows (nx, ny, nz, 0): unit normals in OpenCV camera space of the planes through the
    eye and the four image borders, pointing inside, so a sphere (c, r) is outside when
    ``n . c < -r`` for any row."""
    fx, fy, cx, cy, w, h = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    planes = np.array(
        [
            [fx, 0, cx],  # u >= 0
            [-fx, 0, w - cx],  # u <= W
            [0, fy, cy],  # v >= 0
            [0, -fy, h - cy],  # v <= H
        ],
        dtype=np.float64,
    )
    planes /= np.linalg.norm(planes, axis=1, keepdims=True)
    return np.hstack([planes, np.zeros((4, 1))])


def widget_to_image_scale(camera: Camera, widget_width: int, widget_height: int) -> tuple[float, float]:
    """Image pixels per widget (logical) pixel: they differ on high-DPI screens."""
    return camera.width / max(1, widget_width), camera.height / max(1, widget_height)


def splat_alpha_at(
    means: torch.Tensor,
    quats: torch.Tensor,
    log_scales: torch.Tensor,
    opacities: torch.Tensor,
    camera: Camera,
    x: float,
    y: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each Gaussian's alpha at pixel (x, y) and its depth, with the renderer's EWA footprint.

    Uses the renderer's own screen-space maths (``engine.render.projection``), so what picking sees is
    what the viewer and the trainer draw: alpha = opacity * exp(-d^T Sigma2D^-1 d / 2)."""
    from .render.projection import _screen_space

    dtype = torch.float64
    R = torch.as_tensor(camera.R, dtype=dtype)
    t = torch.as_tensor(camera.t, dtype=dtype)
    with torch.no_grad():
        mc, m2d, c00, c01, c11 = _screen_space(means.to(dtype), quats.to(dtype), log_scales.to(dtype), R, t, camera)
        det = (c00 * c11 - c01 * c01).clamp_min(1e-30)
        dx, dy = x - m2d[:, 0], y - m2d[:, 1]
        power = -0.5 * (c11 * dx * dx - 2 * c01 * dx * dy + c00 * dy * dy) / det
        alpha = (opacities.to(dtype) * torch.exp(power.clamp_max(0))).clamp_max(0.999)
        z = mc[:, 2]
        alpha = torch.where(z > MIN_DEPTH, alpha, torch.zeros_like(alpha))
    return alpha.numpy(), z.numpy()


__all__ = [
    "MIN_DEPTH",
    "project_points",
    "opencv_to_gl_clip",
    "pixel_to_ndc_scale",
    "side_planes",
    "widget_to_image_scale",
    "splat_alpha_at",
]
