import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.metrics import psnr, ssim, ssim_loss_value, ssim_map


def ssim_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """Independent SSIM: a full 2D Gaussian window applied with scipy, zero padding."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for ch in range(a.shape[2]):
        p, t = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        f = lambda z: ndimage.correlate(z, w, mode="constant", cval=0.0)  # noqa: E731
        mp, mt = f(p), f(t)
        vp, vt, cov = f(p * p) - mp**2, f(t * t) - mt**2, f(p * t) - mp * mt
        m = ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp**2 + mt**2 + c1) * (vp + vt + c2))
        vals.append(m)
    return float(np.mean(vals))


def test_psnr_known_values():
    a = np.zeros((8, 8, 3), np.float32)
    b = np.full((8, 8, 3), 0.1, np.float32)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, a) == math.inf
    u8 = np.full((4, 4, 3), 255, np.uint8)
    assert psnr(u8, np.ones((4, 4, 3), np.float32)) == math.inf


def test_ssim_matches_independent_implementation():
    rng = np.random.default_rng(3)
    a = rng.uniform(size=(37, 29, 3)).astype(np.float32)
    a = ndimage.gaussian_filter(a, (1.5, 1.5, 0))
    b = np.clip(a + rng.normal(scale=0.05, size=a.shape), 0, 1).astype(np.float32)
    assert ssim(a, b) == pytest.approx(ssim_scipy(a, b), abs=1e-5)
    c = rng.uniform(size=(16, 20, 3)).astype(np.float32)
    d = rng.uniform(size=(16, 20, 3)).astype(np.float32)
    assert ssim(c, d) == pytest.approx(ssim_scipy(c, d), abs=1e-5)


def test_ssim_properties_and_hand_computed_case():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(24, 24, 3)).astype(np.float32)
    b = rng.uniform(size=(24, 24, 3)).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-7)
    assert ssim(a, b) < 0.2
    # Two constant images: away from the border the variances vanish and SSIM is the luminance term.
    ca, cb = 0.3, 0.6
    m = ssim_map(torch.full((1, 1, 31, 31), ca), torch.full((1, 1, 31, 31), cb))
    expect = (2 * ca * cb + 1e-4) / (ca**2 + cb**2 + 1e-4)
    assert float(m[0, 0, 15, 15]) == pytest.approx(expect, rel=1e-5)


def test_ssim_loss_is_differentiable():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.uniform(size=(16, 16, 3)).astype(np.float32))
    pred = torch.full((16, 16, 3), 0.5, requires_grad=True)
    (1 - ssim_loss_value(pred, target)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((4, 4, 3)), np.zeros((5, 4, 3)))
