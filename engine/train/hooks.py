"""Extension points of ``train()``: extra loss terms and per-step hooks.

Priors (depth, cross-view consistency, pseudo views) and regularisers (dropout, floater limits) plug in
here as objects handed to ``train(losses=..., hooks=...)`` instead of growing ``TrainConfig`` and the loop
with special cases.

A ``Loss`` returns an unweighted scalar for the step (or ``None`` to sit the step out); the loop adds
``weight * value`` to the photometric loss and records the value under ``"loss/<name>"`` in the history.
A ``Hook`` may replace the scene a step renders (``transform_scene``: it must keep the number and order of
the Gaussians, since the densification strategy reads per-Gaussian screen gradients) and sees every
finished step (``after_step``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from engine.scene import Camera, GaussianScene

from .views import TrainingViews


@dataclass
class StepContext:
    step: int  # 0-based
    total: int
    index: int  # the training view of this step
    camera: Camera  # its camera at this step's resolution
    target: torch.Tensor  # (H,W,3) its photo at this resolution, on the training device
    result: object  # this step's engine.render.RenderResult
    rgb: torch.Tensor  # the render compared with ``target`` (after exposure correction)
    scene: GaussianScene  # what was rendered (after every hook's transform_scene)
    params: dict[str, torch.Tensor]  # the trainable tensors
    background: torch.Tensor  # (3,)
    extent: float
    sh_degree: int  # SH bands active this step
    backend: str
    views: TrainingViews
    factor: float = 1.0  # this step's resolution, a fraction of the training size
    lr_means: float = 0.0  # this step's position learning rate (the schedule's, times the scene extent)
    _render: Callable | None = None

    def render(self, camera: Camera, scene: GaussianScene | None = None, **kwargs):
        """Render ``scene`` (default: this step's) from ``camera`` with this step's SH degree, background
        and backend; differentiable like the step's own render."""
        options = {"sh_degree": self.sh_degree, "background": self.background, "backend": self.backend}
        options.update(kwargs)
        return self._render(self.scene if scene is None else scene, camera, **options)


class Loss:
    """An extra loss term; subclass and override ``__call__`` (and ``setup`` when it needs the views)."""

    name: str = "loss"
    weight: float = 1.0

    def setup(self, views: TrainingViews, extent: float, device) -> None:
        """Called once before the first step."""

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        raise NotImplementedError


class Hook:
    """Per-step behaviour that is not a loss term; every method is optional."""

    def setup(self, views: TrainingViews, extent: float, device) -> None:
        """Called once before the first step."""

    def transform_scene(self, scene: GaussianScene, step: int, total: int, generator: torch.Generator) -> GaussianScene:
        """The scene this step renders (differentiably derived from ``scene``)."""
        return scene

    def after_step(self, ctx: StepContext) -> None:
        """Called after the optimiser and densification steps."""


class OpacityPenalty(Loss):
    """mean(opacity): fewer, more decisive splats (TrainConfig.opacity_reg is its weight)."""

    name = "opacity"

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        return torch.sigmoid(ctx.params["opacity_logits"]).mean()


class ScalePenalty(Loss):
    """mean(scale): against large blurry splats (TrainConfig.scale_reg is its weight)."""

    name = "scale"

    def __init__(self, weight: float):
        self.weight = weight

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        return torch.exp(ctx.params["log_scales"]).mean()


__all__ = ["StepContext", "Loss", "Hook", "OpacityPenalty", "ScalePenalty"]
