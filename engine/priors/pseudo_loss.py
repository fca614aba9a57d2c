"""PseudoViewLoss: train on repaired renders of pseudo views as down-weighted pseudo ground truth."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from engine.errors import InputError
from engine.metrics import ssim_loss_value
from engine.scene import Camera
from engine.train.hooks import Loss, StepContext
from engine.train.views import TrainingViews, image_tensor, resize_view


class PseudoViewLoss(Loss):
    """Every ``every``-th step, render one pseudo camera (in a shuffled round robin) at the step's
    resolution and compare it with its repaired image: ``(1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM)``,
    the L1 weighted per pixel by ``confidence`` (one value or an (H,W) map per view, default 1).
    ``resolution`` renders the pseudo views at that fraction of the step's resolution: their repaired targets
    carry little detail beyond half size, and a quarter of the pixels costs a quarter of the render.

    ``cameras`` and ``images`` should be at the training size; larger ones are scaled down to the largest
    training photo side in ``setup``. ``last_camera`` is the camera the last call rendered.
    """

    name = "pseudo"

    def __init__(self, cameras: Sequence[Camera], images: Sequence, *, weight: float = 0.2, every: int = 2,
                 confidence: Sequence | None = None, ssim_lambda: float = 0.2, seed: int = 0,
                 resolution: float = 1.0):
        if len(cameras) == 0:
            raise InputError("the pseudo-view loss needs at least one pseudo view")
        if len(cameras) != len(images):
            raise InputError(f"{len(cameras)} pseudo cameras but {len(images)} repaired images")
        if every < 1:
            raise InputError(f"the pseudo-view loss runs every k-th step with k >= 1, got {every}")
        if not 0 < resolution <= 1:
            raise InputError(f"the pseudo views' resolution is a fraction in (0, 1], got {resolution}")
        if confidence is not None and len(confidence) != len(cameras):
            raise InputError(f"{len(cameras)} pseudo cameras but {len(confidence)} confidences")
        self.cameras = list(cameras)
        self.images = [image_tensor(im, cam, i) for i, (im, cam) in enumerate(zip(images, self.cameras))]
        self.confidence = [torch.as_tensor(1.0 if c is None else np.asarray(c, dtype=np.float32))
                           for c in (confidence if confidence is not None else [None] * len(cameras))]
        self.weight, self.every, self.ssim_lambda, self.resolution = weight, every, ssim_lambda, resolution
        self._rng = np.random.default_rng(seed)
        self._order: list[int] = []
        self._levels: dict[float, dict[int, tuple]] = {}
        self.device = torch.device("cpu")
        self.last_camera: Camera | None = None

    def setup(self, views: TrainingViews, extent: float, device) -> None:
        self.device = torch.device(device)
        side = max(max(c.width, c.height) for c in views.cameras)
        for i, cam in enumerate(self.cameras):
            if max(cam.width, cam.height) > side:
                self.images[i], self.cameras[i] = resize_view(self.images[i], cam, side / max(cam.width, cam.height))
                conf = self.confidence[i]
                if conf.ndim == 2:
                    self.confidence[i] = resize_view(conf[..., None], cam, side / max(cam.width, cam.height))[0][..., 0]
        self._levels.clear()

    def _view(self, index: int, factor: float) -> tuple[torch.Tensor, torch.Tensor, Camera]:
        level = self._levels.setdefault(factor, {})
        if index not in level:
            image, cam = resize_view(self.images[index], self.cameras[index], factor)
            conf = self.confidence[index]
            if conf.ndim == 2:
                conf = resize_view(conf[..., None], self.cameras[index], factor)[0][..., 0]
            level[index] = (image.to(self.device), conf.to(self.device), cam)
        return level[index]

    def __call__(self, ctx: StepContext) -> torch.Tensor | None:
        if ctx.step % self.every:
            return None
        if not self._order:
            self._order = list(self._rng.permutation(len(self.cameras)))
        target, conf, cam = self._view(int(self._order.pop()), float(ctx.factor) * self.resolution)
        self.last_camera = cam
        rgb = ctx.render(cam).rgb
        diff = (rgb - target).abs()
        l1 = (diff * (conf[..., None] if conf.ndim == 2 else conf)).mean()
        if self.ssim_lambda <= 0:
            return l1
        return (1 - self.ssim_lambda) * l1 + self.ssim_lambda * (1 - ssim_loss_value(rgb, target))


__all__ = ["PseudoViewLoss"]
