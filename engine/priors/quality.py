"""How far each view's depth map can be trusted, measured from the maps themselves: the guard that
decides, per view, how much the dense start and the depth terms of training lean on it.

A pixel counts when its confidence reaches ``min_confidence`` and another view's map, where the
pixel's 3D point lands, claims the same depth (``fuse.confirmations``): seen consistently by two views,
the test the dense start already applies to its points. A pixel that no other map sees cannot be
checked and does not count.

- ``confident``: the share of the view's pixels with a confident depth;
- ``confirmed``: the share with a confident depth that another view confirms;
- ``reach``: the share of the image's cells (``GRID`` along the long edge) holding a confirmed pixel,
  i.e. how much of the photo a start from those pixels puts Gaussians in front of. Pixel shares
  undersell a map whose confident pixels are spread over the whole photo (texture everywhere, flat
  patches in between), and oversell one whose pixels are clustered on one object.

The ``reach`` is the view's weight: its share of the dense start's budget (the rest is the random fill
that plain training starts from) and the factor on its depth terms. No cut-off is tuned: a view is
dropped (weight 0) only when none of its cells holds a confirmed pixel, i.e. the prior says nothing
testable about it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from .fuse import confirmations, lift

# Cells along the long edge: the depth correlation's 16 px patches at the 256 px Preview training size,
# the scale the depth terms and a start's Gaussians act on (a splat is several pixels across there).
GRID = 16
MIN_CONFIDENCE = 0.5  # as dense_points: the pixels the start is made of


@dataclass(frozen=True)
class ViewQuality:
    name: str
    confident: float
    confirmed: float
    reach: float

    @property
    def weight(self) -> float:
        return self.reach

    @property
    def dropped(self) -> bool:
        return self.reach <= 0

    def as_dict(self) -> dict:
        return {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()},
                "weight": round(self.weight, 4), "depth_terms": "dropped" if self.dropped else "kept"}


def _cell_index(h: int, w: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """The cell row of each pixel row and the cell column of each pixel column."""
    side = max(h, w) / grid
    rows = np.minimum((np.arange(h) / side).astype(np.int64), int(np.ceil(h / side)) - 1)
    cols = np.minimum((np.arange(w) / side).astype(np.int64), int(np.ceil(w / side)) - 1)
    return rows, cols


def reached_cells(mask: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Which of the ``grid``-along-the-long-edge cells of ``mask`` (H,W bool) hold a True pixel."""
    rows, cols = _cell_index(*mask.shape, grid)
    cells = np.zeros((rows[-1] + 1, cols[-1] + 1), bool)
    r, c = np.nonzero(mask)
    cells[rows[r], cols[c]] = True
    return cells


def cell_reach(mask: np.ndarray, grid: int = GRID) -> float:
    """The share of ``grid``-along-the-long-edge cells of ``mask`` (H,W bool) with a True pixel."""
    return float(reached_cells(mask, grid).mean())


def in_unreached_cells(points: np.ndarray, depth_maps: Sequence, *, min_confidence: float = MIN_CONFIDENCE,
                       grid: int = GRID) -> np.ndarray:
    """For each world point (N,3), whether some view sees it in a cell its confirmed depth does not
    reach: where a start from the maps leaves that photo without Gaussians."""
    from ..camera_projection import project_points

    hole = np.zeros(len(points), bool)
    for k, m in enumerate(depth_maps):
        cam = m.camera
        cells = reached_cells(confirmed_mask(depth_maps, k, min_confidence=min_confidence), grid)
        rows, cols = _cell_index(cam.height, cam.width, grid)
        pix, z = project_points(points, cam)
        with np.errstate(invalid="ignore"):
            inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < cam.width) & (pix[:, 1] >= 0) & (pix[:, 1] < cam.height)
        u = np.floor(np.nan_to_num(pix[:, 0])).astype(np.int64).clip(0, cam.width - 1)
        v = np.floor(np.nan_to_num(pix[:, 1])).astype(np.int64).clip(0, cam.height - 1)
        hole |= inside & ~cells[rows[v], cols[u]]
    return hole


def _depth_range(depth_maps: Sequence, masks: Sequence[np.ndarray]) -> tuple[float, float] | None:
    known = np.concatenate([m.depth[mask].astype(np.float64) for m, mask in zip(depth_maps, masks)])
    if not len(known):
        return None
    near, far = np.percentile(known, [1, 99])
    return (float(near), float(far)) if 0 < near <= far else None


def confirmed_depth_range(depth_maps: Sequence, *, min_confidence: float = MIN_CONFIDENCE) -> tuple[float, float] | None:
    """The 1st and 99th percentiles of the confirmed depths of all maps (a few wrong matches aside, the
    distances the scene is known to lie at); None when no depth is confirmed."""
    return _depth_range(depth_maps, [confirmed_mask(depth_maps, k, min_confidence=min_confidence)
                                     for k in range(len(depth_maps))])


def points_in_unreached_cells(depth_maps: Sequence, count: int, *, seed: int = 0,
                              min_confidence: float = MIN_CONFIDENCE, grid: int = GRID) -> np.ndarray | None:
    """``count`` world points (N,3) on rays through the cells of each view that its confirmed depth does
    not reach, at depths within the range the confirmed depths cover (inverse depth uniform between
    their 1st and 99th percentiles): inside the training frusta, at the distance the scene is known to
    be, where the dense start leaves the photo empty. A draw at an arbitrary range instead (the
    cameras' spread) puts much of the fill in front of the scene, floaters the few views cannot remove.
    Views split ``count`` in proportion to their unreached cells. None when no map has a confirmed pixel
    (no range to draw from) or no cell is unreached."""
    masks = [confirmed_mask(depth_maps, k, min_confidence=min_confidence) for k in range(len(depth_maps))]
    depth_range = _depth_range(depth_maps, masks)
    if count < 1 or depth_range is None:
        return None
    near, far = depth_range
    holes = [~reached_cells(mask, grid) for mask in masks]
    sizes = np.array([h.sum() for h in holes], np.float64)
    if not sizes.sum():
        return None
    rng = np.random.default_rng(seed)
    per_view = rng.multinomial(count, sizes / sizes.sum())
    out = []
    for m, hole, k in zip(depth_maps, holes, per_view):
        if not k:
            continue
        cam = m.camera
        side = max(cam.height, cam.width) / grid
        cell = np.argwhere(hole)[rng.integers(0, int(hole.sum()), k)]
        u = np.minimum((cell[:, 1] + rng.random(k)) * side, cam.width - 1e-3)
        v = np.minimum((cell[:, 0] + rng.random(k)) * side, cam.height - 1e-3)
        z = 1 / rng.uniform(1 / far, 1 / near, k)
        p = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], 1)
        out.append((p - cam.t) @ cam.R)  # R^T (p - t)
    return np.concatenate(out)


def confirmed_mask(depth_maps: Sequence, k: int, *, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """Pixels of map ``k`` with a confident depth that at least one other map confirms."""
    m = depth_maps[k]
    mask = (m.confidence >= min_confidence) & (m.depth > 0)
    # another map confirms with the depths it claims (confidence > 0), not with what it left unsure
    others = [SimpleNamespace(camera=o.camera, depth=np.where(o.confidence > 0, o.depth, 0))
              for j, o in enumerate(depth_maps) if j != k and o.kind == "metric"]
    if m.kind != "metric" or not others or not mask.any():
        return np.zeros_like(mask)  # relative maps have no scale to reproject with: nothing is confirmed
    out = np.zeros_like(mask)
    out[mask] = confirmations(lift(m, mask), others) > 0
    return out


def view_quality(depth_maps: Sequence, *, min_confidence: float = MIN_CONFIDENCE, grid: int = GRID) -> list[ViewQuality]:
    """Each map's confident / confirmed shares and reach (see the module's doc), in the maps' order.
    Relative (monocular) maps cannot be checked against each other, so their weight is their own
    confident reach: the guard then keeps what the model itself is sure of."""
    out = []
    for k, m in enumerate(depth_maps):
        confident = (m.confidence >= min_confidence) & (m.depth != 0)
        checked = confirmed_mask(depth_maps, k, min_confidence=min_confidence) if m.kind == "metric" else confident
        out.append(ViewQuality(m.camera.name, float(confident.mean()), float(checked.mean()), cell_reach(checked, grid)))
    return out


__all__ = ["GRID", "ViewQuality", "cell_reach", "confirmed_depth_range", "confirmed_mask", "in_unreached_cells", "points_in_unreached_cells", "reached_cells", "view_quality"]
