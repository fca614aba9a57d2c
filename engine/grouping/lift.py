"""Lifting one view's 2D regions to the Gaussians, without retraining (as in FlashSplat).

Each Gaussian's vote for a region is the sum over the region's pixels of its blending weight there,
alpha x transmittance. The renderer composites per-Gaussian feature channels with exactly those
weights, so with features all ones the gradient of ``sum_p m(p) * feature(p)`` with respect to a
Gaussian's feature is ``sum_p m(p) * alpha_i(p) * T_i(p)``: one backward pass through the public
``render()`` gives every Gaussian's contribution to a pixel weighting ``m``.

Rather than one channel per region (the renderer's cost grows with the channel count), three
channels carry the moments of the region id under each Gaussian's footprint: weights 1, id and id^2.
A Gaussian whose footprint lies inside one region has zero variance and its mean is that region's id;
a Gaussian straddling regions takes the region under its centre, with half the weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..render import render
from ..scene import Camera, GaussianScene
from .masks import NO_REGION, MaskSource, ViewCues

# a Gaussian whose region-id variance is below this covers (almost) one region only: for two regions
# one id apart it means under 5 % of its weight lies in the other
PURE_VARIANCE = 0.05
# votes below this (in pixels of full coverage) are noise: barely visible Gaussians
MIN_VOTE = 1e-3


@dataclass
class ViewVotes:
    labels: np.ndarray  # (N,) int32 region id in this view, NO_REGION where the Gaussian has no vote
    weights: np.ndarray  # (N,) float32 the vote's weight (alpha x transmittance summed over the region)
    regions: np.ndarray  # (H, W) int32 the view's label image
    alpha: np.ndarray  # (H, W) rendered alpha


def view_votes(scene: GaussianScene, camera: Camera, image: np.ndarray, source: MaskSource) -> ViewVotes:
    """Render ``scene`` from ``camera``, segment ``image`` with ``source`` and lift its regions."""
    scene = scene.detach()
    n = len(scene)
    ones = torch.ones(n, 3, dtype=scene.dtype, device=scene.device, requires_grad=True)
    out = render(scene, camera, background=(0.0, 0.0, 0.0), features=ones)
    alpha = out.alpha.detach().cpu().numpy()
    cues = ViewCues(depth=out.depth.detach().cpu().numpy(), alpha=alpha)
    regions = np.asarray(source.regions(image, cues), np.int32)
    if regions.shape != alpha.shape:
        raise ValueError(f"mask source {source.name!r} returned regions of shape {regions.shape}, expected {alpha.shape}")

    ids = torch.as_tensor(regions, dtype=torch.float64)
    inside = (ids >= 0).to(torch.float64)
    ids = ids.clamp_min(0)
    weighting = torch.stack([inside, inside * ids, inside * ids * ids], dim=-1).to(scene.device, scene.dtype)
    (out.features * weighting).sum().backward()
    moments = ones.grad.detach().double().cpu().numpy()

    total = moments[:, 0]
    voted = total > MIN_VOTE
    mean = np.where(voted, moments[:, 1] / np.maximum(total, 1e-12), 0.0)
    variance = np.where(voted, moments[:, 2] / np.maximum(total, 1e-12) - mean**2, 0.0)
    pure = voted & (variance < PURE_VARIANCE)

    labels = np.full(n, NO_REGION, np.int32)
    weights = np.zeros(n, np.float32)
    labels[pure] = np.rint(mean[pure]).astype(np.int32)
    weights[pure] = total[pure]

    mixed = voted & ~pure
    if mixed.any():
        centre = out.meta.means2d.detach().cpu().numpy()[mixed]
        h, w = regions.shape
        col = np.clip(np.floor(centre[:, 0]).astype(np.int64), 0, w - 1)
        row = np.clip(np.floor(centre[:, 1]).astype(np.int64), 0, h - 1)
        labels[mixed] = regions[row, col]
        weights[mixed] = 0.5 * total[mixed]
    weights[labels == NO_REGION] = 0.0
    return ViewVotes(labels, weights, regions, alpha)
