"""DropGaussian: random Gaussian dropout during training (Park et al., CVPR 2025).

Each step a fraction ``p`` of the Gaussians is left out of the render (opacity 0) and the opacity of
the kept ones is divided by ``1 - p``, so the expected opacity of every Gaussian is what it was. The
Gaussians behind a dropped one then get gradients from the photos, which is what keeps a scene fitted
to a few photos from hiding everything behind a few front splats.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from engine.scene import GaussianScene

from ..hooks import Hook

# The scene stores opacity as a logit, so a compensated opacity must stay below 1. The renderer clamps
# every pixel's alpha at 0.999 anyway; the ceiling sits just above it.
MAX_OPACITY = 1.0 - 1e-4
# A dropped Gaussian's logit: sigmoid(-30) ~ 1e-13, far below the renderer's 1/255 alpha cut, finite
# (render() rejects non-finite parameters) and without a gradient.
DROPPED_LOGIT = -30.0


def drop_rate(step: int, total: int, max_rate: float, ramp: bool) -> float:
    """The drop rate at ``step``: ``max_rate`` throughout, or growing linearly from 0 to it (the paper's
    progressive schedule) when ``ramp``."""
    if not ramp or total <= 1:
        return max_rate
    return max_rate * min(step / (total - 1), 1.0)


def compensated_logits(opacity_logits: torch.Tensor, keep: torch.Tensor, rate: float) -> torch.Tensor:
    """Logits of ``sigmoid(x) / (1 - rate)`` where ``keep``, ``DROPPED_LOGIT`` elsewhere.

    Differentiable with respect to the kept logits (the dropped ones get no gradient). The compensated
    opacity saturates at ``MAX_OPACITY`` for Gaussians more opaque than ``(1 - rate) * MAX_OPACITY``.
    """
    log_opacity = torch.nn.functional.logsigmoid(opacity_logits) - math.log1p(-rate)
    log_opacity = log_opacity.clamp(max=math.log(MAX_OPACITY))
    kept = log_opacity - torch.log1p(-torch.exp(log_opacity))
    return torch.where(keep, kept, torch.full_like(kept, DROPPED_LOGIT))


class DropGaussian(Hook):
    """Drop each Gaussian with probability ``rate`` at every step (ramped from 0 when ``ramp``)."""

    def __init__(self, rate: float = 0.1, *, ramp: bool = True):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"the drop rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.ramp = bool(ramp)
        self.last_rate = 0.0
        self.last_kept = None  # (N,) bool of the last step, for tests and diagnostics

    def transform_scene(self, scene: GaussianScene, step: int, total: int, generator) -> GaussianScene:
        rate = drop_rate(step, total, self.rate, self.ramp)
        self.last_rate = rate
        if rate <= 0.0 or len(scene) == 0:
            self.last_kept = None
            return scene
        u = torch.rand(len(scene), generator=generator, device=scene.device)
        keep = u >= rate
        self.last_kept = keep
        return replace(scene, opacity_logits=compensated_logits(scene.opacity_logits, keep, rate))


__all__ = ["DropGaussian", "drop_rate", "compensated_logits", "MAX_OPACITY", "DROPPED_LOGIT"]
