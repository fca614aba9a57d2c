"""The training loss (1 - l) L1 + l (1 - SSIM) and the MSE, fused into two compiled passes on the CPU.

Why not torch's ops: on the CPU the SSIM of one 200x200 image (five blurred maps, some 30 element-wise
ops and their backward) cost about as much as rasterising it. Here the forward keeps what the
backward needs and the backward is written out (zero-padded separable 11x11 blurs with a symmetric
kernel are their own adjoint). ``engine.metrics.ssim_map`` stays the definition and these gradients
are tested against its autograd. GPU tensors, and any run inside ``torch_loss()``, use torch's ops.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from numba import njit, prange

from engine.metrics import SSIM_C1, SSIM_C2, gaussian_kernel_1d, ssim_loss_value
from engine.render.cpu_kernels import like

_fused = [True]


@contextlib.contextmanager
def torch_loss():
    """Compute the loss with torch's ops inside the block (the benchmarks' baseline)."""
    previous = _fused[0]
    _fused[0] = False
    try:
        yield
    finally:
        _fused[0] = previous


# No 'nnan'/'ninf': a NaN render must reach the loss so that training sees it diverge.
_FAST = {"contract", "reassoc", "nsz", "arcp"}


@njit(inline="always")
def _blur_horizontal(src, dst, row, kernel):
    """dst = blur of the (H, W) plane src along x with zero padding (row: scratch of W + taps - 1).
    The blurs work row by row on 1D views so that their inner loops vectorise."""
    H, W = src.shape
    n = kernel.shape[0]
    r = n // 2
    for y in range(H):  # horizontal, into dst
        s, d = src[y], dst[y]
        for x in range(W):
            row[r + x] = s[x]
        for x in range(W):
            d[x] = row[x] * kernel[0]
        for j in range(1, n):
            k = kernel[j]
            for x in range(W):
                d[x] += k * row[x + j]


@njit(inline="always")
def _blur_vertical(src, dst, kernel):
    """dst = blur of src along y with zero padding (src and dst distinct (H, W) planes)."""
    H, W = src.shape
    n = kernel.shape[0]
    r = n // 2
    for y in range(H):
        d = dst[y]
        for x in range(W):
            d[x] = 0.0
        for j in range(n):
            yy = y + j - r
            if 0 <= yy < H:
                k = kernel[j]
                s = src[yy]
                for x in range(W):
                    d[x] += k * s[x]


@njit(inline="always")
def _blur(src, dst, tmp, row, kernel):
    """dst = the separable zero-padded blur of src (tmp: scratch plane)."""
    _blur_horizontal(src, tmp, row, kernel)
    _blur_vertical(tmp, dst, kernel)


@njit(parallel=True, fastmath=_FAST, error_model="numpy", cache=True)
def _forward(pred, target, kernel, c1, c2, state):
    """Per channel (axis 0 of the (C, H, W) planes): SSIM map terms into ``state`` (C, 7, H, W):
    mu_p, mu_t, A = 2 mu_p mu_t + c1, B = 2 cov + c2, Cc = mu_p^2 + mu_t^2 + c1,
    D = var_p + var_t + c2 and the SSIM map; returns (sum |p - t|, sum (p - t)^2, sum SSIM)."""
    C, H, W = pred.shape
    two = like(pred, 2.0)
    sums = np.zeros((C, 3))
    for c in prange(C):
        p, t, s = pred[c], target[c], state[c]
        prod = np.empty((H, W), dtype=pred.dtype)
        tmp = np.empty((H, W), dtype=pred.dtype)
        row = np.zeros(W + kernel.shape[0] - 1, dtype=pred.dtype)
        moments = np.empty((3, H, W), dtype=pred.dtype)  # E[p^2], E[t^2], E[p t]
        _blur(p, s[0], tmp, row, kernel)
        _blur(t, s[1], tmp, row, kernel)
        for m in range(3):
            a, b = (p, p) if m == 0 else ((t, t) if m == 1 else (p, t))
            for y in range(H):
                ar, br, pr = a[y], b[y], prod[y]
                for x in range(W):
                    pr[x] = ar[x] * br[x]
            _blur(prod, moments[m], tmp, row, kernel)
        l1 = sq = ss = 0.0
        for y in range(H):
            mp, mt, e_pp, e_tt, e_pt = s[0, y], s[1, y], moments[0, y], moments[1, y], moments[2, y]
            sa, sb, scc, sd, sm, py, ty = s[2, y], s[3, y], s[4, y], s[5, y], s[6, y], p[y], t[y]
            for x in range(W):
                a = two * mp[x] * mt[x] + c1
                b = two * (e_pt[x] - mp[x] * mt[x]) + c2
                cc = mp[x] * mp[x] + mt[x] * mt[x] + c1
                d = (e_pp[x] - mp[x] * mp[x]) + (e_tt[x] - mt[x] * mt[x]) + c2
                m = a * b / (cc * d)
                sa[x], sb[x], scc[x], sd[x], sm[x] = a, b, cc, d, m
                diff = py[x] - ty[x]
                l1 += abs(diff)
                sq += diff * diff
                ss += m
        sums[c, 0], sums[c, 1], sums[c, 2] = l1, sq, ss
    return sums[:, 0].sum(), sums[:, 1].sum(), sums[:, 2].sum()


@njit(parallel=True, fastmath=_FAST, error_model="numpy", cache=True)
def _backward(pred, target, kernel, state, w_l1, w_ssim, grad):
    """grad (C, H, W) = w_l1 sign(p - t) + w_ssim d(sum SSIM)/dp, from the forward's ``state``."""
    C, H, W = pred.shape
    zero, one, two = like(pred, 0.0), like(pred, 1.0), like(pred, 2.0)
    for c in prange(C):
        p, t, s = pred[c], target[c], state[c]
        local = np.empty((3, H, W), dtype=pred.dtype)  # d SSIM / d mu_p, d E[p^2], d E[p t] per pixel
        tmp = np.empty((H, W), dtype=pred.dtype)
        row = np.zeros(W + kernel.shape[0] - 1, dtype=pred.dtype)
        for y in range(H):
            mp, mt, sa, sb, scc, sd, sm = s[0, y], s[1, y], s[2, y], s[3, y], s[4, y], s[5, y], s[6, y]
            g_mu, g_pp, g_pt = local[0, y], local[1, y], local[2, y]
            for x in range(W):
                inv = one / (scc[x] * sd[x])
                g_mu[x] = two * mt[x] * (sb[x] - sa[x]) * inv + two * mp[x] * sm[x] * (one / sd[x] - one / scc[x])
                g_pp[x] = -sm[x] / sd[x]
                g_pt[x] = two * sa[x] * inv
        # the blur is its own adjoint (symmetric kernel, zero padding): blur each map back
        for m in range(3):
            _blur(local[m], s[m], tmp, row, kernel)
        for y in range(H):
            py, ty, b_mu, b_pp, b_pt, gr = p[y], t[y], s[0, y], s[1, y], s[2, y], grad[c, y]
            for x in range(W):
                diff = py[x] - ty[x]
                sign = one if diff > zero else (-one if diff < zero else zero)
                gr[x] = w_l1 * sign + w_ssim * (b_mu[x] + two * py[x] * b_pp[x] + ty[x] * b_pt[x])


class _FusedLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred, target, ssim_lambda: float):
        dtype = pred.dtype
        p = pred.detach().permute(2, 0, 1).contiguous().numpy()
        t = target.detach().to(dtype).permute(2, 0, 1).contiguous().numpy()
        kernel = gaussian_kernel_1d(dtype=dtype).numpy()
        state = np.empty((p.shape[0], 7) + p.shape[1:], dtype=p.dtype)
        l1, sq, ss = _forward(p, t, kernel, p.dtype.type(SSIM_C1), p.dtype.type(SSIM_C2), state)
        n = p.size
        ctx.arrays, ctx.weights, ctx.dtype = (p, t, kernel, state), ((1 - ssim_lambda) / n, -ssim_lambda / n), dtype
        loss = (1 - ssim_lambda) * l1 / n + ssim_lambda * (1 - ss / n)
        mse = torch.tensor(sq / n, dtype=dtype)
        ctx.mark_non_differentiable(mse)
        return torch.tensor(loss, dtype=dtype), mse

    @staticmethod
    def backward(ctx, grad_loss, _grad_mse):
        p, t, kernel, state = ctx.arrays
        w_l1, w_ssim = ctx.weights
        grad = np.empty_like(p)
        _backward(p, t, kernel, state, p.dtype.type(w_l1), p.dtype.type(w_ssim), grad)
        g = torch.from_numpy(grad).permute(1, 2, 0) * grad_loss
        return g, None, None


def photometric_loss(rgb: torch.Tensor, target: torch.Tensor, ssim_lambda: float) -> tuple[torch.Tensor, float]:
    """((1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM) of (H,W,3) images, their MSE as a float)."""
    if _fused[0] and rgb.device.type == "cpu" and rgb.ndim == 3 and rgb.dtype in (torch.float32, torch.float64):
        loss, mse = _FusedLoss.apply(rgb, target, float(ssim_lambda))
        return loss, float(mse)
    loss = (1 - ssim_lambda) * (rgb - target).abs().mean()
    if ssim_lambda > 0:
        loss = loss + ssim_lambda * (1 - ssim_loss_value(rgb, target))
    return loss, float(torch.mean((rgb.detach() - target) ** 2))


__all__ = ["photometric_loss", "torch_loss"]
