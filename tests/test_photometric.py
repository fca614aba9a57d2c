"""The fused CPU training loss against its definition in torch's ops (engine.metrics' SSIM)."""

from __future__ import annotations

import math

import pytest
import torch

from engine.train.photometric import photometric_loss, torch_loss


def _images(dtype, h=37, w=53, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(h, w, 3, generator=g, dtype=dtype)
    target = (0.7 * pred + 0.3 * torch.rand(h, w, 3, generator=g, dtype=dtype)).clamp(0, 1)
    return pred, target


def _loss_and_grad(pred, target, ssim_lambda, fused=True):
    pred = pred.detach().clone().requires_grad_(True)
    if fused:
        loss, mse = photometric_loss(pred, target, ssim_lambda)
    else:
        with torch_loss():
            loss, mse = photometric_loss(pred, target, ssim_lambda)
    loss.backward()
    return float(loss), mse, pred.grad


@pytest.mark.parametrize("ssim_lambda", [0.0, 0.2, 1.0])
def test_fused_loss_and_gradient_match_torch_in_float64(ssim_lambda):
    pred, target = _images(torch.float64)
    loss, mse, grad = _loss_and_grad(pred, target, ssim_lambda)
    ref_loss, ref_mse, ref_grad = _loss_and_grad(pred, target, ssim_lambda, fused=False)
    assert loss == pytest.approx(ref_loss, abs=1e-13)
    assert mse == pytest.approx(ref_mse, abs=1e-13)
    assert float(grad.abs().max()) > 0
    # measured ~3e-19 against gradients of ~4e-4
    assert float((grad - ref_grad).abs().max()) < 1e-15


def test_fused_loss_in_float32_is_close_to_float64():
    """Training runs in float32: the blurs' rounding (measured ~3e-8 on the loss, 1.5e-10 on gradients
    of ~4e-4) stays far below what training notices."""
    pred, target = _images(torch.float64, 60, 70, seed=3)
    loss64, _, grad64 = _loss_and_grad(pred, target, 0.2)
    loss32, _, grad32 = _loss_and_grad(pred.float(), target.float(), 0.2)
    assert loss32 == pytest.approx(loss64, abs=1e-5)
    assert float((grad32.double() - grad64).abs().max()) < 1e-8


def test_a_nan_render_gives_a_nan_loss():
    """Training stops on a non-finite loss: the fused kernels must not optimise NaN away."""
    pred, target = _images(torch.float32)
    pred[3, 4, 1] = float("nan")
    loss, _ = photometric_loss(pred, target, 0.2)
    assert math.isnan(float(loss))
