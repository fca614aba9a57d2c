"""2D masks per training view behind one interface, and the choice of backend.

A ``MaskSource`` turns one photo (plus what the scene renders from that camera) into a label image:
(H, W) int32, one id per region, ``NO_REGION`` (-1) where it has none. Regions are class-agnostic and
need not agree between views; lifting and association make them objects.

Backends: ``regions`` (default, offline: ``engine.grouping.regions``) and ``sam`` (Segment Anything
from a local checkpoint folder: ``engine.grouping.sam``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import InputError

NO_REGION = -1
MASK_BACKENDS = ("regions", "sam")


@dataclass
class ViewCues:
    """What the scene renders from the view's camera, at the photo's size."""

    depth: np.ndarray | None = None  # (H, W) expected depth, 0 where nothing is drawn
    alpha: np.ndarray | None = None  # (H, W) accumulated opacity


class MaskSource(Protocol):
    name: str

    def regions(self, image: np.ndarray, cues: ViewCues) -> np.ndarray:
        """(H, W) int32 region ids for an (H, W, 3) RGB image (uint8 or float in [0, 1])."""
        ...


def paint_masks(masks: np.ndarray, scores: np.ndarray, shape: tuple[int, int], min_pixels: int = 1) -> np.ndarray:
    """Label image from overlapping boolean masks (M, H, W): larger masks first, so smaller (more
    specific) ones paint over them; masks left with fewer than ``min_pixels`` pixels vanish."""
    labels = np.full(shape, NO_REGION, np.int32)
    if len(masks) == 0:
        return labels
    area = masks.reshape(len(masks), -1).sum(1)
    order = np.lexsort((-np.asarray(scores, float), -area))
    for new_id, m in enumerate(order):
        labels[masks[m]] = new_id
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    for i in ids[counts < min_pixels]:
        labels[labels == i] = NO_REGION
    out = np.full(shape, NO_REGION, np.int32)
    keep = labels >= 0
    _, out[keep] = np.unique(labels[keep], return_inverse=True)
    return out


def make_mask_source(
    backend: str = "regions",
    model_dir: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> MaskSource:
    """The mask source for ``backend``; a SAM folder that cannot be loaded falls back to regions with a
    warning through ``warn`` (without ``warn`` the error is raised)."""
    if backend not in MASK_BACKENDS:
        raise InputError(f"unknown mask source {backend!r}", hint=f"choose one of {', '.join(MASK_BACKENDS)}")
    from .regions import RegionMaskSource

    if backend == "regions":
        return RegionMaskSource()
    from .sam import SamMaskSource

    try:
        return SamMaskSource.load(model_dir)
    except InputError as e:
        if warn is None:
            raise
        warn(f"{e}; grouping uses image regions instead")
        return RegionMaskSource()


__all__ = ["NO_REGION", "MASK_BACKENDS", "ViewCues", "MaskSource", "paint_masks", "make_mask_source"]
