"""Photo-set checks that warn: blur, near-duplicates, mixed sizes.

Thresholds were chosen on real sets (llff_fern: 20 hand-held views of one scene):
- Sharpness is the variance of the Laplacian on a grey copy with a fixed 512 px long edge (so that it
  does not depend on resolution). Across fern's views it stays within 0.74-1.24x of the set's median,
  while a Gaussian blur of only 1.5 px divides it by ~100. A view below 0.3x the median is therefore
  far outside the natural spread; judging against the set's own median, not an absolute number, keeps
  the check fair for scenes with little texture.
- Near-duplicates compare 64x64 grey thumbnails by normalised cross-correlation: fern's most similar
  pair of distinct views scores 0.960, a copy shifted by 0.5% of the width and re-encoded scores 0.989;
  0.98 separates the two.
"""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_EDGE = 512
BLUR_RATIO = 0.3
THUMBNAIL_SIZE = 64
DUPLICATE_NCC = 0.98


def grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def _resize_long_edge(image: np.ndarray, long_edge: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = long_edge / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def sharpness(grey_image: np.ndarray) -> float:
    """Variance of the Laplacian at a fixed working size (higher = sharper)."""
    small = _resize_long_edge(grey_image, SHARPNESS_EDGE)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def thumbnail(grey_image: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-norm 64x64 thumbnail (flattened) for normalised cross-correlation."""
    t = cv2.resize(grey_image, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA).astype(np.float64)
    t = t.ravel() - t.mean()
    norm = np.linalg.norm(t)
    return t / norm if norm > 0 else t


def blurry_indices(scores, ratio: float = BLUR_RATIO) -> list[int]:
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return []
    median = float(np.median(scores))
    return [int(i) for i in np.flatnonzero(scores < ratio * median)]


def near_duplicate_pairs(thumbnails, threshold: float = DUPLICATE_NCC) -> list[tuple[int, int, float]]:
    """(i, j, score) with i < j for every pair whose thumbnails correlate at ``threshold`` or more."""
    if len(thumbnails) < 2:
        return []
    t = np.asarray(thumbnails, dtype=np.float64)
    ncc = t @ t.T
    i, j = np.nonzero(np.triu(ncc >= threshold, k=1))
    return [(int(a), int(b), float(ncc[a, b])) for a, b in zip(i, j)]


def size_mix_warnings(sizes: list[tuple[int, int]]) -> list[str]:
    """Warnings for sets mixing aspect ratios or resolutions (sizes are upright width, height)."""
    warnings = []
    if len(sizes) < 2:
        return warnings
    # Portrait and landscape shots of one camera share a ratio once the long side is on top.
    ratios = sorted({round(max(w, h) / min(w, h), 2) for w, h in sizes})
    if ratios[-1] / ratios[0] > 1.01:
        warnings.append(
            f"the photos have different aspect ratios ({', '.join(f'{r:g}:1' for r in ratios)}): "
            "they probably come from different cameras or crops; each gets its own lens calibration"
        )
    long_edges = sorted({max(w, h) for w, h in sizes})
    if len(long_edges) > 1 and long_edges[-1] / long_edges[0] > 1.01:
        warnings.append(
            f"the photos have different resolutions (long edge {long_edges[0]} to {long_edges[-1]} px): "
            "zoomed or cropped shots are harder to match; use one camera setting where you can"
        )
    return warnings
