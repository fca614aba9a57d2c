"""Edge-aware smoothness of the rendered depth: neighbouring pixels should have similar depth unless
the photo has an edge between them (Monodepth's disparity smoothness, used by sparse-view 3DGS)."""

from __future__ import annotations

import torch

from ..hooks import Loss, StepContext
from .depth_losses import MIN_ALPHA, MIN_DEPTH


def _neighbours(x: torch.Tensor):
    """The vertical and the horizontal neighbour pairs of an (H,W,...) map."""
    return (x[1:], x[:-1]), (x[:, 1:], x[:, :-1])


def edge_aware_smoothness(depth: torch.Tensor, photo: torch.Tensor, covered: torch.Tensor,
                          edge_sharpness: float = 10.0) -> torch.Tensor | None:
    """Mean ``|grad(disparity)| * exp(-edge_sharpness * |grad(photo)|)`` over horizontal and vertical
    pixel pairs that are both ``covered``.

    The disparity (inverse depth) is divided by its mean first, so the loss does not change with the
    scene's units or its distance from the camera. None when fewer than two pixels are covered.
    """
    if int(covered.sum()) < 2:
        return None
    disparity = torch.where(covered, 1.0 / depth.clamp_min(MIN_DEPTH), torch.zeros_like(depth))
    disparity = disparity / (disparity.sum() / covered.sum()).detach().clamp_min(1e-12)
    total = disparity.new_zeros(())
    pairs = 0
    for (d0, d1), (i0, i1), (c0, c1) in zip(_neighbours(disparity), _neighbours(photo.detach()), _neighbours(covered)):
        both = (c0 & c1).float()
        weight = torch.exp(-edge_sharpness * (i0 - i1).abs().mean(-1))
        total = total + ((d0 - d1).abs() * weight * both).sum()
        pairs += int(both.sum())
    return total / max(pairs, 1)


class DepthSmoothnessLoss(Loss):
    """Edge-aware depth smoothness of this step's render, edges from this step's photo."""

    def __init__(self, *, weight: float = 0.1, edge_sharpness: float = 10.0, name: str = "depth_smooth"):
        self.weight = float(weight)
        self.edge_sharpness = float(edge_sharpness)
        self.name = name

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        depth = ctx.result.depth
        covered = (ctx.result.alpha.detach() > MIN_ALPHA) & (depth.detach() > MIN_DEPTH)
        return edge_aware_smoothness(depth, ctx.target, covered, self.edge_sharpness)


__all__ = ["DepthSmoothnessLoss", "edge_aware_smoothness"]
