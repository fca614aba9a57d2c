"""Identity features trained through the renderer (as Gaussian Grouping), the optional second path.

Each Gaussian gets a logit per object; the renderer composites them like colour, and a per-pixel
cross-entropy pulls the rendered logits towards each view's objects. The per-view targets come from
the vote-based grouping: every region of a view takes the object most of its voters belong to. The
Gaussian's object is then the argmax of its own logits (Gaussians no gradient reached keep their
vote-based id). Costs one render and backward per step, so it is off by default; see
benchmarks/grouping_bench.py for how it compares with the votes alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..events import CancelToken
from ..render import render
from ..scene import Camera, GaussianScene

MIN_REGION_SHARE = 0.5  # a region takes an object only when most of its vote weight is that object's


def region_targets(regions: np.ndarray, labels: np.ndarray, weights: np.ndarray, ids: np.ndarray,
                   groups: int) -> np.ndarray:
    """(H, W) object id per pixel of one view (-1: none) from its regions and that view's votes."""
    n_regions = int(regions.max()) + 1
    voters = (labels >= 0) & (ids >= 0) & (weights > 0)
    if n_regions <= 0 or not voters.any():
        return np.full(regions.shape, -1, np.int64)
    key = labels[voters].astype(np.int64) * groups + ids[voters]
    table = np.bincount(key, weights=weights[voters], minlength=n_regions * groups).reshape(n_regions, groups)
    total = table.sum(1)
    best = table.argmax(1)
    share = np.where(total > 0, table[np.arange(n_regions), best] / np.maximum(total, 1e-12), 0.0)
    mapping = np.where(share > MIN_REGION_SHARE, best, -1)
    return np.where(regions >= 0, mapping[np.maximum(regions, 0)], -1)


def train_identity(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    targets: Sequence[np.ndarray],
    fallback_ids: np.ndarray,
    groups: int,
    steps: int = 200,
    lr: float = 0.05,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """(object ids (N,), identity logits (N, groups)) trained for ``steps`` renders over the views."""
    scene = scene.detach()
    logits = torch.zeros(len(scene), groups, dtype=scene.dtype, device=scene.device, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=lr)
    target_tensors = [torch.as_tensor(t, dtype=torch.long, device=scene.device) for t in targets]
    reached = torch.zeros(len(scene), dtype=torch.bool, device=scene.device)
    for step in range(steps):
        if cancel is not None:
            cancel.raise_if_cancelled()
        v = step % len(cameras)
        target = target_tensors[v]
        known = target >= 0
        if not bool(known.any()):
            continue
        out = render(scene, cameras[v], background=(0.0, 0.0, 0.0), features=logits)
        # the rendered logits are blended with weights summing to alpha: where alpha < 1 they shrink,
        # which only softens the loss there
        loss = torch.nn.functional.cross_entropy(out.features[known], target[known])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        reached |= logits.grad.abs().sum(1) > 0
        optimiser.step()
    ids = logits.detach().argmax(1).cpu().numpy().astype(np.int32)
    ids = np.where(reached.cpu().numpy(), ids, fallback_ids).astype(np.int32)
    return ids, logits.detach()
