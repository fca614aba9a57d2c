"""Per-image colour correction: a learnable 3x3 matrix and bias for each training image, applied to
the render before the loss so that exposure and white-balance differences between photos are not
baked into the Gaussians' colours. Novel views are rendered without it."""

from __future__ import annotations

import torch

from .params import adam


class ExposureCorrection:
    def __init__(self, num_images: int, lr: float = 1e-3, device="cpu"):
        affine = torch.zeros(num_images, 3, 4, device=device)
        affine[:, :, :3] = torch.eye(3, device=device)
        self.affine = torch.nn.Parameter(affine)
        self.optimizer = adam([self.affine], lr)

    def apply(self, rgb: torch.Tensor, index: int) -> torch.Tensor:
        a = self.affine[index]
        return rgb @ a[:, :3].T + a[:, 3]

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


__all__ = ["ExposureCorrection"]
