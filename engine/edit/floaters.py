"""Floaters: the stray Gaussians a reconstruction leaves in empty space.

A Gaussian is a floater when it is far from everything (its k-th nearest neighbour is many times
farther than is typical for the scene), or isolated and faint (a looser distance limit, with low
opacity). Distances come from scipy's cKDTree on the centres of the Gaussians still shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FloaterOptions:
    neighbours: int = 8  # k: the k-th neighbour's distance measures how alone a Gaussian is
    isolation: float = 4.0  # isolated: k-th neighbour distance above this many times the median
    max_opacity: float = 0.2  # ... and opacity below this
    far: float = 12.0  # far from everything: k-th neighbour distance above this many times the median

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "FloaterOptions":
        return cls(**{k: type(getattr(cls, k))(v) for k, v in data.items() if k in cls.__dataclass_fields__})


def find_floaters(means: np.ndarray, opacity_logits: np.ndarray, candidates: np.ndarray,
                  options: FloaterOptions = FloaterOptions()) -> np.ndarray:
    """Mask (N,) of floaters among the ``candidates`` (mask): what a cleanup would remove."""
    from scipy.spatial import cKDTree

    index = np.flatnonzero(candidates)
    out = np.zeros(len(means), dtype=bool)
    if len(index) <= options.neighbours:
        return out
    pts = means[index].astype(np.float64)
    d, _ = cKDTree(pts).query(pts, k=options.neighbours + 1)
    kth = d[:, -1]
    typical = float(np.median(kth))
    if typical <= 0:
        positive = kth[kth > 0]
        typical = float(np.median(positive)) if len(positive) else 0.0
    if typical <= 0:
        return out
    opacity = 1.0 / (1.0 + np.exp(-opacity_logits[index].astype(np.float64)))
    faint_and_alone = (kth > options.isolation * typical) & (opacity < options.max_opacity)
    far = kth > options.far * typical
    out[index[faint_and_alone | far]] = True
    return out
