"""Where the bulk of a splat scene is: bounds that far-away floaters and faint haze do not stretch.

Trained scenes keep a few Gaussians far outside the subject (background, sky, optimiser strays);
plain min/max bounds, or even plain percentiles when strays are more than a percent of the splats,
then frame a dot. Weighting each mean by its opacity counts what is actually seen.
"""

from __future__ import annotations

import numpy as np

from .scene import GaussianScene

BULK_COVERAGE = 0.9  # the share of the (opacity-weighted) splats, per axis, that the bounds keep
MAX_POINTS = 200_000  # percentiles of an even subsample are as good and far cheaper on big scenes


def weighted_bounds(points: np.ndarray, weights: np.ndarray | None = None,
                    coverage: float = BULK_COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis low and high percentiles of ``points`` (N, 3) holding ``coverage`` of the total weight
    between them (each point counts by its weight; None: all alike)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(3), np.zeros(3)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if not np.isfinite(weights).all() or weights.sum() <= 0:
            weights = None
    tail = 50.0 * (1.0 - coverage)
    qs = [tail, 100.0 - tail]
    if weights is None:
        lo, hi = np.percentile(points, qs, axis=0)
    else:
        lo, hi = np.percentile(points, qs, axis=0, weights=weights, method="inverted_cdf")
    return lo, hi


def bulk_bounds(scene: GaussianScene, coverage: float = BULK_COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of the opacity-weighted bulk of ``scene`` (see ``weighted_bounds``)."""
    n = len(scene)
    if n == 0:
        return np.zeros(3), np.zeros(3)
    step = max(1, n // MAX_POINTS)
    means = scene.means[::step].detach().cpu().double().numpy()
    opacity = scene.opacities[::step].detach().cpu().double().numpy()
    keep = np.isfinite(means).all(axis=1)
    return weighted_bounds(means[keep], opacity[keep], coverage)


def bounding_sphere(lo: np.ndarray, hi: np.ndarray, min_radius: float = 1e-3) -> tuple[np.ndarray, float]:
    """Centre and radius of the sphere through the corners of the box ``lo``..``hi``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return (lo + hi) / 2, max(float(np.linalg.norm(hi - lo)) / 2, min_radius)


__all__ = ["BULK_COVERAGE", "weighted_bounds", "bulk_bounds", "bounding_sphere"]
