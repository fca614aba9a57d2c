"""Cross-view photometric consistency: the photo of a neighbouring training view, warped into this
step's view through this step's rendered depth, should look like this step's photo.

The photo loss alone is satisfied by any geometry that reproduces each photo from its own camera; the
warp only matches where the rendered depth puts each pixel on the surface both cameras saw, so its
gradient (through the sampling positions) moves the geometry, not the colours. Pixels that land
outside the neighbour's image, behind the camera, or behind what the neighbour sees (occluded) are
masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.metrics import ssim_map
from engine.scene import Camera

from ..hooks import Loss, StepContext
from .depth_losses import MIN_ALPHA, MIN_DEPTH


@dataclass
class Warp:
    image: torch.Tensor  # (H,W,3) the other photo sampled at each pixel's position in it
    valid: torch.Tensor  # (H,W) bool: inside the other image, in front of both cameras, not occluded
    depth_in_other: torch.Tensor  # (H,W) each pixel's point's depth in the other camera
    grid: torch.Tensor  # (H,W,2) grid_sample coordinates of each pixel in the other image


def _relative_pose(camera: Camera, other: Camera, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """R, t taking this camera's frame to the other's: x_other = R x + t (composed in float64)."""
    R = other.R @ camera.R.T
    t = other.t - R @ camera.t
    return torch.as_tensor(R, device=device, dtype=dtype), torch.as_tensor(t, device=device, dtype=dtype)


def pixel_rays(camera: Camera, height: int, width: int, device, dtype=torch.float32) -> torch.Tensor:
    """(H,W,3) camera-space directions with z = 1 through the pixel centres of an image of that size
    (COLMAP convention: pixel (0, 0)'s centre is at (0.5, 0.5))."""
    cam = camera if (camera.width, camera.height) == (width, height) else camera.resized(width, height)
    u = (torch.arange(width, device=device, dtype=dtype) + 0.5 - cam.cx) / cam.fx
    v = (torch.arange(height, device=device, dtype=dtype) + 0.5 - cam.cy) / cam.fy
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv, torch.ones_like(uu)], -1)


def warp_photo(
    depth: torch.Tensor, camera: Camera, other_photo: torch.Tensor, other: Camera, *,
    other_depth: torch.Tensor | None = None, occlusion_tolerance: float = 0.05,
) -> Warp:
    """Sample ``other_photo`` (h,w,3), taken by ``other``, at the pixel where each pixel of ``camera``'s
    view lands when placed at ``depth`` (H,W) along its ray.

    ``other`` may be at any resolution (its intrinsics are scaled to ``other_photo``'s size). With
    ``other_depth`` (any size; the other view's rendered depth) a pixel whose point lies more than
    ``occlusion_tolerance`` (relative) behind the surface the other view sees is occluded there.
    Differentiable with respect to ``depth``.
    """
    H, W = depth.shape
    h, w = other_photo.shape[:2]
    device, dtype = depth.device, depth.dtype
    other = other if (other.width, other.height) == (w, h) else other.resized(w, h)
    points = pixel_rays(camera, H, W, device, dtype) * depth[..., None]
    R, t = _relative_pose(camera, other, device, dtype)
    q = points @ R.T + t
    z = q[..., 2]
    in_front = (depth > MIN_DEPTH) & (z > MIN_DEPTH)
    zs = torch.where(in_front, z, torch.ones_like(z))
    u = other.fx * q[..., 0] / zs + other.cx
    v = other.fy * q[..., 1] / zs + other.cy
    # grid_sample with align_corners=False puts -1 and 1 on the image's outer edges, which is exactly
    # the pixel-centre convention: u in [0, w] maps to [-1, 1].
    grid = torch.stack([2 * u / w - 1, 2 * v / h - 1], -1)
    # Bilinear sampling needs the four neighbouring pixel centres, so keep points between the outer centres.
    inside = (u >= 0.5) & (u <= w - 0.5) & (v >= 0.5) & (v <= h - 0.5)
    valid = in_front & inside
    image = F.grid_sample(other_photo.permute(2, 0, 1)[None].to(dtype), grid[None], mode="bilinear",
                          padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
    if other_depth is not None:
        seen = F.grid_sample(other_depth[None, None].to(dtype), grid[None].detach(), mode="nearest",
                             padding_mode="border", align_corners=False)[0, 0]
        valid = valid & (seen > MIN_DEPTH) & (z.detach() <= seen * (1 + occlusion_tolerance))
    return Warp(image, valid, z, grid)


def nearest_views(cameras: list[Camera], count: int) -> list[list[int]]:
    """For each camera, the ``count`` other cameras nearest to it (camera centres; ties by viewing
    direction), nearest first."""
    centres = np.array([c.center for c in cameras])
    axes = np.array([c.R[2] for c in cameras])
    out = []
    for i in range(len(cameras)):
        dist = np.linalg.norm(centres - centres[i], axis=1)
        turn = 1.0 - axes @ axes[i]
        order = [j for j in np.lexsort((turn, dist)) if j != i]
        out.append([int(j) for j in order[:count]])
    return out


class CrossViewLoss(Loss):
    """Photometric consistency of this step's photo with its ``neighbours`` nearest training photos
    (one per step, in turn) warped through the rendered depth: ``(1 - l) * L1 + l * (1 - SSIM)`` over
    the valid pixels, ``l = ssim_lambda``.

    Occlusion uses each neighbour's depth as it was rendered at its own latest training step (no extra
    render); until a neighbour has been rendered once, its pixels are only masked by the image bounds.
    """

    def __init__(self, *, weight: float = 0.1, neighbours: int = 2, ssim_lambda: float = 0.2,
                 occlusion_tolerance: float = 0.05, min_valid: float = 0.05, name: str = "cross_view"):
        self.weight = float(weight)
        self.neighbours = int(neighbours)
        self.ssim_lambda = float(ssim_lambda)
        self.occlusion_tolerance = float(occlusion_tolerance)
        self.min_valid = float(min_valid)
        self.name = name
        self._near: list[list[int]] = []
        self._turn: list[int] = []
        self._depths: dict[int, torch.Tensor] = {}

    def setup(self, views, extent: float, device) -> None:
        self._near = nearest_views(list(views.cameras), max(1, self.neighbours))
        self._turn = [0] * len(self._near)
        self._depths = {}

    def _neighbour_photo(self, ctx: StepContext, j: int) -> tuple[torch.Tensor, Camera]:
        image, camera = ctx.views.get(j, ctx.factor)  # at this step's resolution level
        return image.to(ctx.target.device), camera

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        depth = ctx.result.depth
        self._depths[ctx.index] = depth.detach()
        near = self._near[ctx.index] if ctx.index < len(self._near) else []
        if not near:
            return None
        j = near[self._turn[ctx.index] % len(near)]
        self._turn[ctx.index] += 1
        photo, camera = self._neighbour_photo(ctx, j)
        warp = warp_photo(depth, ctx.camera, photo, camera, other_depth=self._depths.get(j),
                          occlusion_tolerance=self.occlusion_tolerance)
        valid = warp.valid & (ctx.result.alpha.detach() > MIN_ALPHA)
        count = int(valid.sum())
        if count < self.min_valid * valid.numel():
            return None
        mask = valid.float()
        target = ctx.target
        loss = ((warp.image - target).abs().mean(-1) * mask).sum() / count
        if self.ssim_lambda > 0:
            ssim = ssim_map((warp.image * mask[..., None]).permute(2, 0, 1)[None],
                            (target * mask[..., None]).permute(2, 0, 1)[None])[0].mean(0)
            loss = (1 - self.ssim_lambda) * loss + self.ssim_lambda * ((1 - ssim) * mask).sum() / count
        return loss


__all__ = ["CrossViewLoss", "Warp", "warp_photo", "pixel_rays", "nearest_views"]
