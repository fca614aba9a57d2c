"""SH reduction: per-Gaussian degree truncation where the higher bands do not pay.

A band's colour over the sphere has RMS ``|c_l| / sqrt(4 pi)`` (the real SH basis is orthonormal),
so cutting bands whose RMS colour change is below a tolerance changes no pixel by more than a few
times that tolerance on average. Cut bands become zeros, which the codec stores as one shared
codeword; a Gaussian with every higher band cut costs almost nothing for SH.
"""

from __future__ import annotations

import math

import numpy as np

from engine.scene import GaussianScene

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


__all__ = ["band_rms", "truncate_degrees"]
