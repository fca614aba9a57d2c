"""Camera pose refinement: learn a small rotation and translation per training photo with the scene.

Estimated poses are off by a fraction of a degree; a Gaussian scene fitted to slightly wrong cameras
blurs and doubles edges, worst with few photos. Each camera gets a correction applied in its own frame,

    viewmat = [exp([w]x) | d] @ viewmat_estimated

learned by Adam from the renderer's pose gradient. One camera (the anchor) stays fixed so the scene
cannot drift as a whole with every camera following it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from engine.scene import Camera


def _skew(w: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=w.dtype, device=w.device)
    return torch.stack([
        torch.stack([zero, -w[2], w[1]]),
        torch.stack([w[2], zero, -w[0]]),
        torch.stack([-w[1], w[0], zero]),
    ])


class PoseRefinement:
    """Per-camera pose corrections and their optimiser."""

    def __init__(self, cameras: Sequence[Camera], lr_rotation: float, lr_translation: float, device,
                 anchor: int | None = 0):
        self.base = torch.stack([c.viewmat(device, torch.float32) for c in cameras])  # (n,4,4)
        n = len(cameras)
        self.rotation = torch.zeros(n, 3, device=device, requires_grad=True)  # axis * angle, radians
        self.translation = torch.zeros(n, 3, device=device, requires_grad=True)  # camera frame, scene units
        self.anchor = anchor
        self.base_lrs = (float(lr_rotation), float(lr_translation))
        self.optimizer = torch.optim.Adam(
            [{"params": [self.rotation], "lr": lr_rotation}, {"params": [self.translation], "lr": lr_translation}],
            eps=1e-15,
        )

    def __len__(self) -> int:
        return self.base.shape[0]

    def viewmat(self, index: int) -> torch.Tensor:
        """The corrected world->camera matrix of camera ``index``, on the autograd graph."""
        if index == self.anchor:
            return self.base[index]
        rotation = torch.linalg.matrix_exp(_skew(self.rotation[index]))
        top = torch.cat([rotation, self.translation[index].unsqueeze(1)], dim=1)
        bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], device=top.device, dtype=top.dtype)
        return torch.cat([top, bottom]) @ self.base[index]

    def set_lr_scale(self, scale: float) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = lr * scale

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def correction_degrees(self) -> np.ndarray:
        """(n,) rotation of each correction, in degrees."""
        return np.degrees(self.rotation.detach().norm(dim=1).cpu().numpy())

    def refined(self, cameras: Sequence[Camera]) -> list[Camera]:
        """``cameras`` with the learned corrections applied (composed in float64, the rotation
        re-orthonormalised); the anchor comes back unchanged."""
        out = []
        with torch.no_grad():
            for i, cam in enumerate(cameras):
                if i == self.anchor:
                    out.append(cam)
                    continue
                correction = np.eye(4)
                correction[:3, :3] = torch.linalg.matrix_exp(_skew(self.rotation[i].double())).cpu().numpy()
                correction[:3, 3] = self.translation[i].double().cpu().numpy()
                m = correction @ cam.world_to_camera
                u, _, vt = np.linalg.svd(m[:3, :3])
                out.append(replace(cam, R=u @ vt, t=m[:3, 3].copy()))
        return out


__all__ = ["PoseRefinement"]
