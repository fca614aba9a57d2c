"""SH reduction: per-Gaussian degree truncation where the higher bands do not pay, and SH distillation.

Truncation (no cameras): a band's colour over the sphere has RMS ``|c_l| / sqrt(4 pi)`` (the real SH
basis is orthonormal), so cutting bands whose RMS colour change is below a tolerance changes no pixel by
more than a few times that tolerance on average. Cut bands become zeros, which the codec stores as one
shared codeword; a Gaussian with every higher band cut costs almost nothing for SH.

Distillation (with the training cameras): a Gaussian is seen from a few directions only, and there its
higher bands often add a nearly constant colour, which the sphere average calls energy. For each
Gaussian the lower bands are refitted (least squares over the directions it is seen from) to the colour
the full bands give there, so that the view-dependent colour is baked into DC and the first bands; the
lowest degree whose refit stays within the tolerance (RMS over those views) is kept.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.render.sh import sh_basis
from engine.scene import Camera, GaussianScene

_INV_SPHERE = 1.0 / math.sqrt(4.0 * math.pi)


def band_rms(sh: np.ndarray) -> np.ndarray:
    """(N, degree): RMS colour (averaged over the three channels) each band 1..degree adds."""
    n, k = sh.shape[:2]
    degree = int(round(math.sqrt(k))) - 1
    out = np.zeros((n, degree))
    for band in range(1, degree + 1):
        coeffs = sh[:, band * band : (band + 1) * (band + 1)].astype(np.float64)
        out[:, band - 1] = np.sqrt((coeffs**2).sum(axis=(1, 2)) / 3.0) * _INV_SPHERE
    return out


def truncate_degrees(scene: GaussianScene, tolerance: float) -> tuple[GaussianScene, np.ndarray]:
    """(scene with cut bands zeroed, (N,) int degree kept per Gaussian): from the top band down, a band
    is cut while the bands cut so far add up (in RMS) to at most ``tolerance``."""
    sh = scene.sh.detach().cpu().numpy().copy()
    rms = band_rms(sh)
    degree = rms.shape[1]
    kept = np.full(len(sh), degree, dtype=np.int64)
    cut_energy = np.zeros(len(sh))
    for band in range(degree, 0, -1):
        energy = cut_energy + rms[:, band - 1] ** 2
        cut = (kept == band) & (energy <= tolerance**2)
        cut_energy = np.where(cut, energy, cut_energy)
        kept[cut] = band - 1
        sh[cut, band * band :] = 0.0
    out = scene.detach().clone()
    out.sh = out.sh.new_tensor(sh)
    return out, kept


_CHUNK = 8192
_RIDGE = 1e-3  # pulls a refit towards the original bands where the views leave it undetermined


def _visible(means: torch.Tensor, cam: Camera) -> torch.Tensor:
    """(N,) bool: in front of ``cam`` and projecting inside its image."""
    R, t = (torch.as_tensor(a, dtype=torch.float64) for a in (cam.R, cam.t))
    p = means @ R.T + t
    z = p[:, 2].clamp_min(1e-9)
    u, v = cam.fx * p[:, 0] / z + cam.cx, cam.fy * p[:, 1] / z + cam.cy
    return (p[:, 2] > 1e-6) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)


def distill_degrees(scene: GaussianScene, cameras, tolerance: float) -> tuple[GaussianScene, np.ndarray]:
    """(scene with each Gaussian's SH refitted to the lowest degree that keeps its colour, seen from the
    ``cameras`` that see it, within ``tolerance`` RMS, the bands above zeroed; (N,) degree kept).
    A Gaussian no camera sees is truncated by its sphere RMS (``truncate_degrees``). Colours are
    compared before the renderer's clamp at 0."""
    degree = scene.sh_degree
    truncated, kept = truncate_degrees(scene, tolerance)
    if degree == 0 or not cameras or len(scene) == 0:
        return truncated, kept
    sh_all = scene.sh.detach().cpu().to(torch.float64)
    means_all = scene.means.detach().cpu().to(torch.float64)
    out = truncated.sh.detach().cpu().to(torch.float64).clone()
    centres = torch.as_tensor(np.stack([c.center for c in cameras]), dtype=torch.float64)
    full_k = (degree + 1) ** 2
    for s0 in range(0, len(scene), _CHUNK):
        sh, means = sh_all[s0 : s0 + _CHUNK], means_all[s0 : s0 + _CHUNK]
        seen = torch.stack([_visible(means, c) for c in cameras], dim=1).to(torch.float64)  # (n, V)
        views = seen.sum(1)
        dirs = means[:, None, :] - centres[None]
        dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = sh_basis(degree, dirs)  # (n, V, K)
        target = torch.einsum("nvk,nkc->nvc", basis, sh[:, :full_k])
        chunk_kept = torch.full((len(sh),), degree, dtype=torch.int64)
        chunk_sh = sh.clone()
        for low in range(degree - 1, -1, -1):  # from the highest cut down: the lowest passing degree wins
            k = (low + 1) ** 2
            b = basis[..., :k] * seen[..., None]
            gram = b.transpose(1, 2) @ basis[..., :k] + _RIDGE * torch.eye(k, dtype=torch.float64)
            rhs = b.transpose(1, 2) @ target + _RIDGE * sh[:, :k]
            fit = torch.linalg.solve(gram, rhs)  # (n, k, 3)
            err = torch.einsum("nvk,nkc->nvc", basis[..., :k], fit) - target
            rms = ((err**2).sum(-1) * seen).sum(1).div(3 * views.clamp_min(1)).sqrt()
            ok = (views > 0) & (rms <= tolerance)
            chunk_kept[ok] = low
            chunk_sh[ok, :k] = fit[ok]
            chunk_sh[ok, k:] = 0.0
        has_views = views > 0
        out[s0 : s0 + _CHUNK][has_views] = chunk_sh[has_views]
        kept[s0 : s0 + _CHUNK][has_views.numpy()] = chunk_kept[has_views].numpy()
    result = scene.detach().clone()
    result.sh = out.to(scene.sh.dtype)
    return result, kept


__all__ = ["band_rms", "truncate_degrees", "distill_degrees"]
