"""Step-dependent settings: learning-rate decay, SH degree and training resolution."""

from __future__ import annotations

import math


def exponential_lr(step: int, total: int, lr_start: float, lr_end: float) -> float:
    """Log-linear interpolation from ``lr_start`` at step 0 to ``lr_end`` at ``total``."""
    if total <= 0 or lr_start <= 0 or lr_end <= 0:
        return lr_start
    t = min(max(step / total, 0.0), 1.0)
    return math.exp((1 - t) * math.log(lr_start) + t * math.log(lr_end))


def sh_degree_at(step: int, max_degree: int, interval: int) -> int:
    """One more SH band every ``interval`` steps, up to ``max_degree``."""
    if interval <= 0:
        return max_degree
    return min(max_degree, step // interval)


def resolution_levels(start: float) -> list[float]:
    """Scale factors from ``start`` up to 1, doubling: 0.25 -> [0.25, 0.5, 1.0]."""
    levels = []
    s = float(start)
    while s < 1.0 - 1e-9:
        levels.append(s)
        s *= 2
    levels.append(1.0)
    return levels


def resolution_at(step: int, total: int, start: float, full_at: float) -> float:
    """Training resolution factor at ``step``: the levels of ``resolution_levels(start)`` are spread
    evenly over the first ``full_at`` fraction of the run, then full resolution."""
    levels = resolution_levels(start)
    if len(levels) == 1:
        return 1.0
    end = full_at * total
    if step >= end:
        return 1.0
    per_level = end / (len(levels) - 1)
    return levels[min(int(step // per_level), len(levels) - 1)]


__all__ = ["exponential_lr", "sh_degree_at", "resolution_levels", "resolution_at"]
