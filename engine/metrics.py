"""Image-quality metrics: PSNR and SSIM as the 3DGS papers compute them, and a per-view evaluation.

Images are (H,W,3) or (B,H,W,3) tensors / arrays with values in [0, 1] (uint8 arrays are scaled).
SSIM uses an 11x11 Gaussian window with sigma 1.5, constants (0.01, 0.03) for a data range of 1 and
zero padding at the borders ("same" size map, averaged over every pixel), which is what the 3DGS
training loss and its metrics script use.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def as_image_tensor(image, device=None) -> torch.Tensor:
    """(H,W,3) float tensor in [0, 1] from a uint8/float array or tensor."""
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8:
            image = torch.from_numpy(image.astype(np.float32) / 255.0)
        else:
            image = torch.from_numpy(np.asarray(image, dtype=np.float32))
    elif image.dtype == torch.uint8:
        image = image.float() / 255.0
    return image.to(device=device, dtype=torch.float32) if device is not None else image.float()


def psnr(pred, target) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (mean over all pixels and channels)."""
    pred = as_image_tensor(pred).detach()
    target = as_image_tensor(target).to(pred.device)
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    mse = float(torch.mean((pred - target) ** 2))
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def gaussian_kernel_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device=None, dtype=torch.float32):
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) with zero padding, same size out (two 1D convolutions
    cost 2*11 instead of 121 multiply-adds per pixel)."""
    c = x.shape[1]
    pad = kernel.numel() // 2
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(x, kx, padding=(0, pad), groups=c)
    return F.conv2d(x, ky, padding=(pad, 0), groups=c)


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of (B,C,H,W) tensors, differentiable."""
    kernel = gaussian_kernel_1d(device=pred.device, dtype=pred.dtype)
    b, c = pred.shape[:2]
    # One blur call on the five stacked maps keeps the convolution count low.
    stacked = torch.cat([pred, target, pred * pred, target * target, pred * target], dim=1)
    mu_p, mu_t, e_pp, e_tt, e_pt = _blur(stacked, kernel).split(c, dim=1)
    var_p = e_pp - mu_p * mu_p
    var_t = e_tt - mu_t * mu_t
    cov = e_pt - mu_p * mu_t
    num = (2 * mu_p * mu_t + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_p * mu_p + mu_t * mu_t + SSIM_C1) * (var_p + var_t + SSIM_C2)
    return num / den


def _to_bchw(image: torch.Tensor) -> torch.Tensor:
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an (H,W,C) or (B,H,W,C) image, got shape {tuple(image.shape)}")
    return image.permute(0, 3, 1, 2)


def ssim_loss_value(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of (H,W,3)/(B,H,W,3) tensors as a differentiable scalar (training uses 1 - this)."""
    return ssim_map(_to_bchw(pred), _to_bchw(target)).mean()


def ssim(pred, target) -> float:
    """Structural similarity (mean of the SSIM map) for images in [0, 1]."""
    p = as_image_tensor(pred)
    t = as_image_tensor(target).to(p.device)
    if p.shape != t.shape:
        raise ValueError(f"image shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
    with torch.no_grad():
        return float(ssim_loss_value(p.detach(), t))


def evaluate(
    scene,
    cameras: Sequence,
    images: Sequence,
    *,
    background=(0.0, 0.0, 0.0),
    backend: str = "auto",
    sh_degree: int | None = None,
) -> dict:
    """Render ``scene`` from each camera and compare with its image.

    Returns ``{"psnr": mean, "ssim": mean, "views": [{"name", "psnr", "ssim"}, ...]}``.
    """
    from engine.render import render  # imported here so metrics stay usable without a renderer

    if len(cameras) != len(images):
        raise ValueError(f"{len(cameras)} cameras but {len(images)} images")
    if sh_degree is None:
        sh_degree = scene.sh_degree
    views = []
    with torch.no_grad():
        for cam, img in zip(cameras, images):
            target = as_image_tensor(img)
            if target.shape[:2] != (cam.height, cam.width):
                raise ValueError(
                    f"image for camera {cam.name!r} is {target.shape[1]}x{target.shape[0]}, "
                    f"camera expects {cam.width}x{cam.height}"
                )
            out = render(scene, cam, sh_degree=sh_degree, background=background, backend=backend)
            rgb = out.rgb.detach().float().clamp(0, 1).cpu()
            views.append({"name": cam.name, "psnr": psnr(rgb, target), "ssim": ssim(rgb, target)})
    mean = lambda key: float(np.mean([v[key] for v in views])) if views else float("nan")  # noqa: E731
    return {"psnr": mean("psnr"), "ssim": mean("ssim"), "views": views}


__all__ = ["psnr", "psnr_from_mse", "ssim", "ssim_map", "ssim_loss_value", "evaluate", "as_image_tensor"]
