"""Losses against a per-view depth prior: Pearson depth correlation (any kind of map) and a
confidence-weighted metric depth L1 (maps in scene units).

Monocular ("relative") maps are an unknown affine function of depth or of inverse depth, so the only
thing they can be trusted for is the shape of the depth, not its values: the correlation loss is
``1 - Pearson(render, prior)``, which ignores any scale and shift of either side (FSGS, DNGaussian).
Each map says what it holds (``DepthMap.quantity``): relative monocular networks predict inverse depth
(disparity), so such a map is correlated with the rendered inverse depth, a depth map with the
rendered depth (Pearson is not invariant to taking the inverse).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..hooks import Loss, StepContext
from .depth_maps import DepthPriorViews

MIN_ALPHA = 0.5  # pixels the render covers less than this have no meaningful depth
MIN_DEPTH = 1e-6


def weighted_pearson(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of ``a`` and ``b`` along the last dimension with weights ``w`` (same shape);
    0 where either side is constant over the weighted samples."""
    total = w.sum(-1, keepdim=True).clamp_min(1e-12)
    da = a - (w * a).sum(-1, keepdim=True) / total
    db = b - (w * b).sum(-1, keepdim=True) / total
    cov = (w * da * db).sum(-1)
    var_a = (w * da * da).sum(-1)
    var_b = (w * db * db).sum(-1)
    # Each variance is relative to its own scale, so the floor does not depend on the depth units.
    floor = 1e-10 * ((w * (a * a)).sum(-1) * (w * (b * b)).sum(-1)).clamp_min(1e-30)
    return cov / torch.sqrt(var_a * var_b + floor)


def _patches(x: torch.Tensor, size: int, offset: tuple[int, int]) -> torch.Tensor:
    """Non-overlapping ``size`` x ``size`` patches of ``x`` (H,W) starting at ``offset``: (P, size*size)."""
    oy, ox = offset
    h = (x.shape[0] - oy) // size * size
    w = (x.shape[1] - ox) // size * size
    x = x[oy:oy + h, ox:ox + w]
    return x.reshape(h // size, size, w // size, size).permute(0, 2, 1, 3).reshape(-1, size * size)


def correlation_loss(
    rendered: torch.Tensor, prior: torch.Tensor, weights: torch.Tensor, *, patch: int | None = None,
    offset: tuple[int, int] = (0, 0), min_valid: float = 0.5,
) -> torch.Tensor | None:
    """``1 - Pearson`` of two (H,W) maps over the pixels with weight > 0: over the whole image, or the
    mean over ``patch``-sized patches that are at least ``min_valid`` covered (weighted by coverage).
    None when no patch (or image) has enough valid pixels."""
    if patch is None:
        a, b, w = rendered.reshape(1, -1), prior.reshape(1, -1), weights.reshape(1, -1)
    else:
        a, b, w = (_patches(x, patch, offset) for x in (rendered, prior, weights))
    coverage = (w > 0).float().mean(-1)
    use = coverage >= (min_valid if patch is not None else 0.0)
    use &= (w > 0).sum(-1) >= 16  # a correlation of a handful of pixels is noise
    if not bool(use.any()):
        return None
    corr = weighted_pearson(a[use], b[use], w[use])
    share = coverage[use]
    return 1.0 - (corr * share).sum() / share.sum()


class _DepthPriorLoss(Loss):
    """``view_weights`` (one per map, e.g. the depth guard's, engine.priors.quality) scale each view's
    term; a view of weight 0 sits its steps out."""

    def __init__(self, depth_maps: Sequence, *, weight: float, min_confidence: float,
                 view_weights: Sequence[float] | None = None):
        self.weight = float(weight)
        self.min_confidence = float(min_confidence)
        self.priors = DepthPriorViews(depth_maps, view_weights)

    def setup(self, views, extent: float, device) -> None:
        self.priors.setup(views, device)

    def _inputs(self, ctx: StepContext):
        """(rendered depth, prior depth, weights) at this step's size; weights are the prior's
        confidence where it passes the threshold and the render covers the pixel, else 0."""
        rendered = ctx.result.depth
        h, w = rendered.shape
        prior, conf = self.priors.at(ctx.index, h, w)
        covered = (ctx.result.alpha.detach() > MIN_ALPHA) & (rendered.detach() > MIN_DEPTH)
        weights = torch.where((conf > self.min_confidence) & covered, conf, torch.zeros_like(conf))
        return rendered, prior, weights


class DepthCorrelationLoss(_DepthPriorLoss):
    """``1 - Pearson(rendered, prior)`` where the prior is confident: scale and shift invariant.

    ``patch`` (pixels) correlates local patches (their placement shifts every step so that no pixel
    always sits on a border) instead of the whole image; ``against`` is "depth", "inverse" or "auto"
    (what the map holds: its ``quantity``).
    """

    def __init__(self, depth_maps: Sequence, *, weight: float = 0.05, patch: int | None = None,
                 min_confidence: float = 0.3, against: str = "auto", name: str = "depth_corr",
                 view_weights: Sequence[float] | None = None):
        super().__init__(depth_maps, weight=weight, min_confidence=min_confidence, view_weights=view_weights)
        if against not in ("auto", "depth", "inverse"):
            raise ValueError(f"against must be auto, depth or inverse, got {against!r}")
        if patch is not None and patch < 4:
            raise ValueError(f"a correlation patch needs at least 4x4 pixels, got {patch}")
        self.patch = patch
        self.against = against
        self.name = name

    def uses_inverse(self, index: int) -> bool:
        if self.against != "auto":
            return self.against == "inverse"
        return self.priors.quantity(index) == "inverse"

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        view_weight = self.priors.weight(ctx.index)
        if view_weight <= 0:
            return None
        rendered, prior, weights = self._inputs(ctx)
        if self.uses_inverse(ctx.index):
            rendered = 1.0 / rendered.clamp_min(MIN_DEPTH)
        offset = (0, 0) if self.patch is None else ((ctx.step * 7) % self.patch, (ctx.step * 3) % self.patch)
        loss = correlation_loss(rendered, prior, weights, patch=self.patch, offset=offset)
        return None if loss is None else view_weight * loss


class MetricDepthLoss(_DepthPriorLoss):
    """Confidence-weighted L1 of the rendered depth against a metric prior, relative to the prior's
    depth (``|d - p| / p``: unitless, so one weight suits any scene scale). Views whose map is not
    metric are skipped."""

    def __init__(self, depth_maps: Sequence, *, weight: float = 0.1, min_confidence: float = 0.3,
                 name: str = "depth_l1", view_weights: Sequence[float] | None = None):
        super().__init__(depth_maps, weight=weight, min_confidence=min_confidence, view_weights=view_weights)
        self.name = name

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        view_weight = self.priors.weight(ctx.index)
        if view_weight <= 0 or self.priors.kind(ctx.index) != "metric":
            return None
        rendered, prior, weights = self._inputs(ctx)
        weights = torch.where(prior > MIN_DEPTH, weights, torch.zeros_like(weights))
        total = weights.sum()
        if float(total) <= 0:
            return None
        error = (rendered - prior).abs() / prior.clamp_min(MIN_DEPTH)
        return view_weight * (weights * error).sum() / total


__all__ = ["DepthCorrelationLoss", "MetricDepthLoss", "correlation_loss", "weighted_pearson"]
