"""Limits on Gaussian size and on large faint splats, the usual floaters of a few-view fit.

Sizes are measured on screen, in the view of this step (``3 * largest scale * fx / depth`` pixels, the
splat's 3-sigma radius), because the scene extent that densification uses is the spread of the camera
centres, which for a forward-facing capture (LLFF) is a small fraction of the scene's depth: a world
limit in extents would squash the far background. A world limit can be added with
``max_scale_fraction`` for captures around an object.
"""

from __future__ import annotations

import torch

from ..hooks import Loss, StepContext


class FloaterLoss(Loss):
    """``mean(relu(size / limit - 1))`` over the Gaussians this view sees, with ``limit`` =
    ``max_screen_fraction`` of the image's longer side; plus the mean opacity of the faint
    (opacity < ``faint_opacity``) splats larger than ``faint_screen_fraction``, which pushes them to
    transparency so that densification removes or relocates them; plus, when ``max_scale_fraction`` is
    given, ``mean(relu(scale / (fraction * extent) - 1))`` over every Gaussian."""

    def __init__(self, *, weight: float = 0.1, max_screen_fraction: float = 0.1, faint_opacity: float = 0.1,
                 faint_screen_fraction: float = 0.02, max_scale_fraction: float | None = None,
                 name: str = "floaters"):
        self.weight = float(weight)
        self.max_screen_fraction = float(max_screen_fraction)
        self.faint_opacity = float(faint_opacity)
        self.faint_screen_fraction = float(faint_screen_fraction)
        self.max_scale_fraction = max_scale_fraction
        self.extent = 1.0
        self.name = name

    def setup(self, views, extent: float, device) -> None:
        self.extent = float(extent)

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        largest = ctx.params["log_scales"].max(dim=1).values.exp()
        opacity = torch.sigmoid(ctx.params["opacity_logits"])
        meta = ctx.result.meta
        seen = meta.visible & (meta.depths > 0)
        loss = largest.new_zeros(())
        if bool(seen.any()):
            side = max(ctx.camera.width, ctx.camera.height)
            focal = max(ctx.camera.fx, ctx.camera.fy)
            size = 3 * largest[seen] * focal / meta.depths[seen].detach() / side  # fraction of the image
            loss = loss + torch.relu(size / self.max_screen_fraction - 1).mean()
            faint = (opacity[seen] < self.faint_opacity) & (size.detach() > self.faint_screen_fraction)
            loss = loss + (opacity[seen] * faint).sum() / seen.sum()
        if self.max_scale_fraction is not None:
            loss = loss + torch.relu(largest / (self.max_scale_fraction * self.extent) - 1).mean()
        return loss


__all__ = ["FloaterLoss"]
