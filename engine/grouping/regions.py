"""Class-agnostic image regions from a photo and the scene's rendered depth: the offline mask source.

Regions come from graph-based segmentation (Felzenszwalb & Huttenlocher 2004) on the pixel grid, with
an edge weight that adds the colour difference of two neighbouring pixels to the jump of the rendered
depth between them (relative to the depth, so it means the same near and far). A colour edge alone
splits a region only when it is strong; an occlusion edge (a depth jump) always does. Pixels the
scene does not cover (rendered alpha below ``min_alpha``) get no region (-1).

Written by hand because OpenCV's graph segmentation lives in the contrib build, which is not a
dependency, and scikit-image is not either; the union-find merge is compiled with numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numba
import numpy as np

from .masks import NO_REGION, ViewCues


@numba.njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@numba.njit(cache=True)
def _segment_graph(n, a, b, w, order, k, min_size, valid):
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    internal = np.zeros(n, np.float64)  # largest edge inside each component's spanning tree
    for e in order:
        i, j = a[e], b[e]
        if not (valid[i] and valid[j]):
            continue
        ri, rj = _find(parent, i), _find(parent, j)
        if ri == rj:
            continue
        if w[e] <= min(internal[ri] + k / size[ri], internal[rj] + k / size[rj]):
            if size[ri] < size[rj]:
                ri, rj = rj, ri
            parent[rj] = ri
            size[ri] += size[rj]
            internal[ri] = max(internal[ri], internal[rj], w[e])
    # components below min_size join their neighbour across the weakest edge (edges are in order)
    for e in order:
        i, j = a[e], b[e]
        if not (valid[i] and valid[j]):
            continue
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj and (size[ri] < min_size or size[rj] < min_size):
            if size[ri] < size[rj]:
                ri, rj = rj, ri
            parent[rj] = ri
            size[ri] += size[rj]
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = _find(parent, i) if valid[i] else -1
    return out


def _grid_edges(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel index pairs of the 8-neighbour grid (each pair once)."""
    idx = np.arange(h * w).reshape(h, w)
    pairs = [
        (idx[:, :-1], idx[:, 1:]),  # right
        (idx[:-1, :], idx[1:, :]),  # down
        (idx[:-1, :-1], idx[1:, 1:]),  # down-right
        (idx[:-1, 1:], idx[1:, :-1]),  # down-left
    ]
    a = np.concatenate([p[0].ravel() for p in pairs])
    b = np.concatenate([p[1].ravel() for p in pairs])
    return a, b


def _relabel(labels: np.ndarray) -> np.ndarray:
    out = np.full(labels.shape, NO_REGION, np.int32)
    valid = labels >= 0
    _, out[valid] = np.unique(labels[valid], return_inverse=True)
    return out


@dataclass
class RegionMaskSource:
    """Graph-based regions of colour (Lab, smoothed) and rendered depth; see the module docstring.

    ``scale`` is Felzenszwalb's k for a 100k-pixel image (larger: fewer, bigger regions), scaled with
    the image area so a region means the same at any resolution; ``depth_weight`` converts a relative
    depth jump beyond ``depth_tolerance`` into colour units. The tolerance keeps a slanted floor whole:
    its depth grows a little from pixel to pixel, an occlusion jumps by more.
    """

    scale: float = 1.0
    depth_weight: float = 6.0
    depth_tolerance: float = 0.03
    min_region_fraction: float = 0.002
    min_alpha: float = 0.5
    blur_sigma: float = 0.8
    name: str = "regions"

    def regions(self, image: np.ndarray, cues: ViewCues) -> np.ndarray:
        h, w = image.shape[:2]
        rgb = np.asarray(image, np.float32)
        if rgb.max() > 1.5:
            rgb = rgb / 255.0
        if self.blur_sigma > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), self.blur_sigma)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab) / np.float32(100.0)  # L in [0, 1], a/b about [-1, 1]
        flat = lab.reshape(-1, 3).astype(np.float64)
        a, b = _grid_edges(h, w)
        weight = np.linalg.norm(flat[a] - flat[b], axis=1)
        valid = np.ones(h * w, bool)
        if cues.depth is not None:
            depth = np.asarray(cues.depth, np.float64).ravel()
            near = np.maximum(np.minimum(depth[a], depth[b]), 1e-6)
            jump = np.abs(depth[a] - depth[b]) / near
            weight += self.depth_weight * np.maximum(jump - self.depth_tolerance, 0.0)
        if cues.alpha is not None:
            valid = np.asarray(cues.alpha).ravel() >= self.min_alpha
        order = np.argsort(weight, kind="stable")
        k = self.scale * (h * w) / 100_000.0
        min_size = max(4, int(self.min_region_fraction * h * w))
        labels = _segment_graph(h * w, a, b, weight, order, k, min_size, valid)
        return _relabel(labels.reshape(h, w))
