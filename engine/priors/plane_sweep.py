"""Depth of one view from one neighbour by a plane sweep, for pairs that rectification cannot take
(one camera moving towards the other: the epipole in or near the image).

Planes parallel to view a's image at depths spaced evenly in inverse depth; for each, view b is
warped onto view a through the plane's homography and compared with it by zero-mean normalised
cross-correlation over a window. The best plane wins, refined by a parabola through its neighbours;
a pixel whose best score is weak or has a rival elsewhere in the sweep gets no confidence. OpenCV
does the warps and box filters; no library offers a plane sweep with known cameras.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..scene import Camera
from .stereo import PairDepth, _grey, opencv_intrinsics, relative_pose, texture_confidence

PLANES = 64
WINDOW = 7  # px: the correlation window
MIN_SCORE = 0.6  # ZNCC below this is no match; the confidence reaches 1 at FULL_SCORE
FULL_SCORE = 0.9
RIVAL_MARGIN = 0.05  # a score this close to the best, two planes or more away, makes the pixel ambiguous
DEPTH_MARGIN = (0.7, 1.4)  # the sweep spans the sparse points' depths widened by these factors


def _homography(K_a, K_b, R, T, inverse_depth: float) -> np.ndarray:
    """Pixels of a to pixels of b for points on the plane z_a = 1 / inverse_depth."""
    n = np.array([[0.0, 0.0, 1.0]])
    return K_b @ (R + T.reshape(3, 1) @ n * inverse_depth) @ np.linalg.inv(K_a)


def _zncc(a: np.ndarray, b: np.ndarray, mean_a: np.ndarray, std_a: np.ndarray) -> np.ndarray:
    k = (WINDOW, WINDOW)
    mean_b = cv2.blur(b, k)
    var_b = np.maximum(cv2.blur(b * b, k) - mean_b * mean_b, 0)
    cov = cv2.blur(a * b, k) - mean_a * mean_b
    return cov / np.maximum(std_a * np.sqrt(var_b), 1e-3)


def _pixel_parallax(K_a, K_b, R, T, size, rho_near: float, rho_far: float) -> float:
    """Median pixel motion in b per unit inverse depth over a grid of a's pixels: the sweep's
    counterpart of rectified stereo's focal x baseline."""
    w, h = size
    u, v = np.meshgrid(np.linspace(0, w - 1, 8), np.linspace(0, h - 1, 6))
    p = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    moved = []
    for rho in (rho_near, rho_far):
        q = _homography(K_a, K_b, R, T, rho) @ p
        moved.append(q[:2] / q[2])
    return float(np.median(np.linalg.norm(moved[0] - moved[1], axis=0)) / abs(rho_near - rho_far))


def sweep_depth(image_a: np.ndarray, cam_a: Camera, image_b: np.ndarray, cam_b: Camera,
                hint_points: np.ndarray | None, planes: int = PLANES) -> PairDepth | None:
    """Depth of view a from view b; ``hint_points`` (world, (N,3)) set the depth range. None
    without enough of them (a sweep over every depth would be mostly wrong)."""
    if hint_points is None or len(hint_points) < 8:
        return None
    z = (hint_points @ cam_a.R.T + cam_a.t)[:, 2]
    z = z[z > 0]
    if len(z) < 8:
        return None
    z_near, z_far = np.percentile(z, 1) * DEPTH_MARGIN[0], np.percentile(z, 99) * DEPTH_MARGIN[1]
    rhos = np.linspace(1 / z_near, 1 / z_far, planes)
    K_a, K_b = opencv_intrinsics(cam_a), opencv_intrinsics(cam_b)
    R, T = relative_pose(cam_a, cam_b)
    size = (cam_a.width, cam_a.height)
    a = _grey(image_a).astype(np.float32)
    b = _grey(image_b).astype(np.float32)
    k = (WINDOW, WINDOW)
    mean_a = cv2.blur(a, k)
    std_a = np.sqrt(np.maximum(cv2.blur(a * a, k) - mean_a * mean_a, 0))
    ones = np.ones_like(b)
    scores = np.full((planes, cam_a.height, cam_a.width), -1.0, np.float32)
    for i, rho in enumerate(rhos):
        H = _homography(K_a, K_b, R, T, rho)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpPerspective(b, H, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        inside = cv2.warpPerspective(ones, H, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        score = _zncc(a, warped, mean_a, std_a)
        scores[i] = np.where(cv2.erode(inside, np.ones(k, np.uint8)) > 0.99, score, -1)
    best = np.argmax(scores, axis=0)
    top = np.take_along_axis(scores, best[None], 0)[0]
    # a rival: the best score two planes or more away from the winner
    index = np.arange(planes)[:, None, None]
    rival = np.where(np.abs(index - best[None]) >= 2, scores, -1).max(axis=0)
    lo = np.take_along_axis(scores, np.clip(best - 1, 0, planes - 1)[None], 0)[0]
    hi = np.take_along_axis(scores, np.clip(best + 1, 0, planes - 1)[None], 0)[0]
    curve = lo - 2 * top + hi
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where((best > 0) & (best < planes - 1) & (curve < 0), 0.5 * (lo - hi) / curve, 0)
    rho = np.interp(best + np.clip(offset, -0.5, 0.5), np.arange(planes), rhos)
    inner = (best > 0) & (best < planes - 1)  # a best plane at the end of the sweep is no answer
    conf = np.clip((top - MIN_SCORE) / (FULL_SCORE - MIN_SCORE), 0, 1) * texture_confidence(_grey(image_a))
    conf = np.where(inner & (rival < top - RIVAL_MARGIN) & (rho > 0), conf, 0).astype(np.float32)
    depth = np.where(conf > 0, 1 / np.maximum(rho, 1e-12), 0).astype(np.float32)
    parallax = _pixel_parallax(K_a, K_b, R, T, size, rhos[0], rhos[-1])
    # disparity = parallax * inverse depth, as focal x baseline / depth in rectified stereo
    return PairDepth(depth, conf, parallax, "plane sweep")
