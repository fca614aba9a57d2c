"""Importance of each Gaussian: its blending weight alpha x transmittance summed over every pixel of
the training views (LightGaussian / RDO-Gaussian style), and pruning by it.

Computed through the public ``render()`` API with no change to the kernels: render a constant
feature channel of ones; the feature image is ``sum_i w_i * 1`` per pixel, so the gradient of its sum
with respect to Gaussian i's feature is exactly ``sum over pixels of w_i`` (autograd does the
bookkeeping, and the normal render path stays untouched).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from engine.errors import InputError
from engine.render import render
from engine.scene import Camera, GaussianScene


def contributions(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    *,
    backend: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
) -> np.ndarray:
    """(N,) float64: each Gaussian's summed alpha x transmittance over all pixels of ``cameras``."""
    if not cameras:
        raise InputError("importance needs at least one camera", hint="pass the training cameras")
    scene = scene.detach()
    total = torch.zeros(len(scene), dtype=torch.float64)
    if len(scene) == 0:
        return total.numpy()
    for i, cam in enumerate(cameras):
        if cancel is not None:
            cancel.raise_if_cancelled()
        ones = torch.ones(len(scene), 1, dtype=scene.dtype, device=scene.device, requires_grad=True)
        out = render(scene, cam, background=(0.0, 0.0, 0.0), features=ones, backend=backend)
        out.features.sum().backward()
        total += ones.grad[:, 0].detach().cpu().double()
        if progress is not None:
            progress(i + 1, len(cameras))
    return total.numpy()


def contribution_proxy(scene: GaussianScene) -> np.ndarray:
    """Without cameras: opacity x projected area (sigmoid(logit) x the two largest scales), a view-free
    stand-in that ranks large, opaque splats first."""
    s = np.sort(scene.log_scales.detach().cpu().numpy().astype(np.float64), axis=1)
    alpha = 1.0 / (1.0 + np.exp(-scene.opacity_logits.detach().cpu().numpy().astype(np.float64)))
    return alpha * np.exp(s[:, 1] + s[:, 2])


def threshold_for_kept_share(importance: np.ndarray, share: float) -> float:
    """The largest threshold t such that the Gaussians with importance > t hold at least ``share`` of the
    total importance (share 1: nothing that contributes at all is removed)."""
    if not 0.0 < share <= 1.0:
        raise InputError(f"the kept share of importance must be in (0, 1], got {share}")
    imp = np.sort(np.asarray(importance, dtype=np.float64))  # ascending
    if len(imp) == 0 or imp[-1] <= 0:
        return 0.0
    removable = (1.0 - share) * imp.sum()
    below = np.cumsum(imp)  # below[j]: what removing the j+1 smallest costs
    j = int(np.searchsorted(below, removable, side="right"))  # how many may go
    return float(imp[j - 1]) if j > 0 else 0.0


def prune_mask(importance: np.ndarray, threshold: float) -> np.ndarray:
    """Keep-mask: exactly the Gaussians whose importance is above ``threshold``."""
    return np.asarray(importance) > threshold


__all__ = ["contributions", "contribution_proxy", "threshold_for_kept_share", "prune_mask"]
