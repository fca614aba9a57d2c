"""EWA projection of 3D Gaussians to screen space in plain torch (autograd gives its backward).

Conventions follow gsplat 1.5 (``ProjectionEWA3DGSFused.cu``, pinhole, ``antialiased=False``):
world->camera with R, t; Jacobian with tx/tz, ty/tz clamped at 1.3x the half-fov limits; 0.3 px added to
the 2D covariance diagonal; culled when depth is outside [near, far], det <= 0, opacity < 1/255 or the
bounding box is off screen; per-axis radii ceil(extend * sqrt(cov_ii)) with the opacity-aware extend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.render.sh import sh_to_rgb
from engine.scene import Camera, GaussianScene

EPS2D = 0.3
NEAR = 0.01
FAR = 1e10
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_EXTEND = 3.33
TILE = 16


@dataclass
class Projection:
    """Screen-space Gaussians for one camera. Rows are the Gaussians ``index`` selects from the scene:
    the visible ones here; all N (culled ones with radii 0) from ``cpu_projection.project_cpu``."""

    index: torch.Tensor  # (M,) long, visible Gaussians in scene order
    means2d: torch.Tensor  # (M,2) pixels
    conics: torch.Tensor  # (M,3) inverse 2D covariance a, b, c (upper triangle)
    opacities: torch.Tensor  # (M,)
    depths: torch.Tensor  # (M,) camera z
    radii: torch.Tensor  # (M,2) int32 pixels
    colors: torch.Tensor  # (M,3)
    features: torch.Tensor | None  # (M,F)
    means2d_full: torch.Tensor  # (N,2); means2d is gathered from it, so its .grad is the screen-space gradient
    radii_full: torch.Tensor  # (N,2) int32, 0 where culled
    depths_full: torch.Tensor  # (N,)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def camera_tensors(camera: Camera, device, dtype, viewmat: torch.Tensor | None = None):
    """World->camera rotation R, translation t and the camera centre, as tensors.

    ``viewmat`` (4,4), when given, replaces the camera's pose and stays on the autograd graph, so the
    render is differentiable with respect to it.
    """
    if viewmat is not None:
        R, t = viewmat[:3, :3], viewmat[:3, 3]
        return R, t, -(R.T @ t)
    R = torch.as_tensor(camera.R, device=device, dtype=dtype)
    t = torch.as_tensor(camera.t, device=device, dtype=dtype)
    center = torch.as_tensor(camera.center, device=device, dtype=dtype)
    return R, t, center


def _screen_space(means, quats, log_scales, R, t, camera: Camera):
    """Camera-space means, 2D means and dilated 2D covariances (cov00, cov01, cov11).

    cov2d = J R_cam (Rq S)(Rq S)^T R_cam^T J^T is formed as T T^T with T = J R_cam Rq S, written out
    per element: batched 3x3 matmuls are slow in torch on the CPU, (N,3) element-wise ops are not.
    """
    fx, fy, cx, cy = camera.fx, camera.fy, camera.cx, camera.cy
    W, H = camera.width, camera.height
    mc = means @ R.T + t
    x, y, z = mc.unbind(-1)
    # P[n, j, i] = (R_cam Rq)[n, i, j], all N products as one (3N,3)x(3,3) matmul.
    P = (quat_to_rotmat(quats).transpose(1, 2).reshape(-1, 3) @ R.T).reshape(-1, 3, 3)
    scales = torch.exp(log_scales)
    tan_x, tan_y = 0.5 * W / fx, 0.5 * H / fy
    lim_x_pos, lim_x_neg = (W - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_y_pos, lim_y_neg = (H - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    rz = 1.0 / z
    tx = z * torch.clamp(x * rz, -lim_x_neg, lim_x_pos)
    ty = z * torch.clamp(y * rz, -lim_y_neg, lim_y_pos)
    # Jacobian rows (fx/z, 0, -fx tx/z^2) and (0, fy/z, -fy ty/z^2).
    j00, j02 = fx * rz, -fx * tx * rz * rz
    j11, j12 = fy * rz, -fy * ty * rz * rz
    # Rows of T = J R_cam Rq S.
    T0 = (j00.unsqueeze(-1) * P[:, :, 0] + j02.unsqueeze(-1) * P[:, :, 2]) * scales
    T1 = (j11.unsqueeze(-1) * P[:, :, 1] + j12.unsqueeze(-1) * P[:, :, 2]) * scales
    c00 = (T0 * T0).sum(-1) + EPS2D
    c01 = (T0 * T1).sum(-1)
    c11 = (T1 * T1).sum(-1) + EPS2D
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)
    return mc, means2d, c00, c01, c11


def _radii_and_mask(z, means2d, c00, c01, c11, opac, camera: Camera):
    det = c00 * c11 - c01 * c01
    valid = (z >= NEAR) & (z <= FAR) & (det > 0) & (opac >= ALPHA_THRESHOLD)
    extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(MAX_EXTEND)
    rx = torch.ceil(extend * torch.sqrt(c00.clamp_min(0)))
    ry = torch.ceil(extend * torch.sqrt(c11.clamp_min(0)))
    valid &= (rx > 0) | (ry > 0)
    mx, my = means2d.unbind(-1)
    valid &= (mx + rx > 0) & (mx - rx < camera.width) & (my + ry > 0) & (my - ry < camera.height)
    valid &= torch.isfinite(rx) & torch.isfinite(ry)
    # Clamp so the int32 cast stays defined; 2^30 px still reaches any screen from any on-screen-ish mean.
    radii = torch.stack([rx, ry], -1).nan_to_num(0.0).clamp(0, 2.0**30).to(torch.int32)
    radii[~valid] = 0
    return valid, radii


def project(scene: GaussianScene, camera: Camera, sh_degree: int, features: torch.Tensor | None = None,
            viewmat: torch.Tensor | None = None) -> Projection:
    """Project every Gaussian, cull, and return differentiable screen-space data for the visible ones.

    ``viewmat`` (4,4) overrides the camera's pose (see ``camera_tensors``)."""
    device, dtype = scene.device, scene.dtype
    R, t, center = camera_tensors(camera, device, dtype, viewmat)
    N = len(scene)

    # Culling decides which rows exist, so it runs without autograd; the differentiable pass then
    # touches only visible Gaussians, so culled ones (behind the camera, z ~ 0) never put NaN in gradients.
    with torch.no_grad():
        mc, m2d, c00, c01, c11 = _screen_space(scene.means, scene.quats, scene.log_scales, R, t, camera)
        opac = torch.sigmoid(scene.opacity_logits)
        valid, radii_full = _radii_and_mask(mc[:, 2], m2d, c00, c01, c11, opac, camera)
        depths_full = mc[:, 2].clone()
    index = torch.nonzero(valid).squeeze(1)

    means = scene.means[index]
    tracked = torch.is_grad_enabled() and (
        any(getattr(scene, name).requires_grad for name in ("means", "quats", "log_scales"))
        or (viewmat is not None and viewmat.requires_grad)
    )
    if tracked:
        mc_v, m2d_v, c00, c01, c11 = _screen_space(means, scene.quats[index], scene.log_scales[index], R, t, camera)
    else:  # nothing to differentiate: reuse the culling pass
        mc_v, m2d_v, c00, c01, c11 = mc[index], m2d[index], c00[index], c01[index], c11[index]
    det = c00 * c11 - c01 * c01
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], -1)
    opacities = torch.sigmoid(scene.opacity_logits[index])
    colors = sh_to_rgb(scene.sh[index], means, center, sh_degree)

    means2d_full = torch.zeros(N, 2, device=device, dtype=dtype).index_copy(0, index, m2d_v)
    if means2d_full.requires_grad:
        means2d_full.retain_grad()
    return Projection(
        index=index,
        means2d=means2d_full[index],
        conics=conics,
        opacities=opacities,
        depths=mc_v[:, 2],
        radii=radii_full[index],
        colors=colors,
        features=None if features is None else features[index],
        means2d_full=means2d_full,
        radii_full=radii_full,
        depths_full=depths_full,
    )


def tile_grid(camera: Camera) -> tuple[int, int]:
    return math.ceil(camera.width / TILE), math.ceil(camera.height / TILE)
