"""Dense depth of one view from one neighbour: rectify the pair (OpenCV), semi-global matching
(``cv2.StereoSGBM``) both ways, and a confidence per pixel from left-right consistency and texture.

OpenCV puts pixel centres at integers while the engine's cameras (COLMAP) put them at +0.5, so the
intrinsics given to OpenCV are shifted by half a pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..scene import Camera

MAX_DISPARITIES = 256  # SGBM's cost grows with the range; beyond this the pair is too wide anyway
LR_TOLERANCE = 1.5  # px: a disparity that the other direction does not confirm within this is dropped
SGBM_BLOCK = 5  # px: SGBM's matching window
TEXTURE_WINDOW = 7  # px: the window whose grey-level spread says whether matching had anything to go by
TEXTURE_FULL = 6.0  # grey levels (of 255): a window this varied is fully trusted; flat ones fade to 0
# The epipole closer to the image centre than this (in image half-diagonals) means forward motion:
# rectification would stretch the image beyond use (the plane sweep takes such pairs).
MIN_EPIPOLE_DISTANCE = 2.0


@dataclass
class PairDepth:
    depth: np.ndarray  # (H,W) float32 in the first view, 0 where unknown
    confidence: np.ndarray  # (H,W) float32 in [0,1]
    focal_baseline: float  # px x scene units: disparity (px) = focal_baseline / depth, the pair's precision
    method: str = "rectified SGBM"

    def relative_tolerance(self, pixels: float = 1.0) -> np.ndarray:
        """The relative depth error that ``pixels`` of matching error makes at each pixel."""
        return (pixels * self.depth / self.focal_baseline).astype(np.float32)


def opencv_intrinsics(camera: Camera) -> np.ndarray:
    K = camera.K.copy()
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    return K


def relative_pose(a: Camera, b: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(R, T) taking view a's camera coordinates to view b's."""
    R = b.R @ a.R.T
    return R, b.t - R @ a.t


def epipole_distance(a: Camera, b: Camera) -> float:
    """Where b's centre appears in a's image, in half-diagonals from the centre (inf: behind or at
    infinity, i.e. sideways motion)."""
    c = a.R @ b.center + a.t
    if abs(c[2]) < 1e-9 * max(1e-12, float(np.linalg.norm(c))):
        return float("inf")
    u = a.fx * c[0] / c[2] + a.cx - a.width / 2
    v = a.fy * c[1] / c[2] + a.cy - a.height / 2
    return float(np.hypot(u, v) / (0.5 * np.hypot(a.width, a.height)))


def can_rectify(a: Camera, b: Camera) -> bool:
    return epipole_distance(a, b) >= MIN_EPIPOLE_DISTANCE


def texture_confidence(grey: np.ndarray) -> np.ndarray:
    """1 where a window around the pixel varies by TEXTURE_FULL grey levels (std), fading to 0 where it
    is flat: matching there is a guess, however smooth SGBM's answer looks."""
    g = grey.astype(np.float32)
    k = (TEXTURE_WINDOW, TEXTURE_WINDOW)
    mean = cv2.blur(g, k, borderType=cv2.BORDER_REFLECT)
    var = np.maximum(cv2.blur(g * g, k, borderType=cv2.BORDER_REFLECT) - mean * mean, 0)
    return np.clip(np.sqrt(var) / TEXTURE_FULL, 0, 1).astype(np.float32)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _matcher(min_disparity: int, num_disparities: int, block: int = SGBM_BLOCK):
    return cv2.StereoSGBM_create(
        minDisparity=min_disparity, numDisparities=num_disparities, blockSize=block,
        P1=8 * block * block, P2=32 * block * block, disp12MaxDiff=-1, uniquenessRatio=10,
        speckleWindowSize=64, speckleRange=2, preFilterCap=31, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )


def _disparities(left: np.ndarray, right: np.ndarray, lo: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-view disparity (NaN where unknown) and its left-right discrepancy in pixels."""
    sgbm = _matcher(lo, count)
    d_left = sgbm.compute(left, right).astype(np.float32) / 16.0
    # The right view's disparities: the same matcher on the mirrored pair (SGBM only searches leftwards).
    d_right = sgbm.compute(right[:, ::-1].copy(), left[:, ::-1].copy()).astype(np.float32)[:, ::-1] / 16.0
    d_left[d_left < lo] = np.nan
    d_right[d_right < lo] = np.nan
    h, w = left.shape
    cols = np.arange(w, dtype=np.float32)[None, :] - np.nan_to_num(d_left, nan=1e9)
    inside = (cols >= 0) & (cols <= w - 1)
    cols = np.clip(np.rint(cols), 0, w - 1).astype(np.int64)
    other = np.take_along_axis(d_right, cols, axis=1)
    diff = np.where(inside, np.abs(d_left - other), np.nan)
    return d_left, diff


def pair_depth(image_a: np.ndarray, cam_a: Camera, image_b: np.ndarray, cam_b: Camera,
               disparity_hint: np.ndarray | None = None) -> PairDepth | None:
    """Depth of view a from view b (images RGB uint8 at the cameras' sizes).

    ``disparity_hint``: world points (N,3) both views see (sparse triangulated matches), which set
    SGBM's search range; without them the range is the first quarter of the image width.
    None when the pair cannot be rectified (forward motion) or its disparities do not fit in the
    rectified image (a wide, strongly converging pair)."""
    if not can_rectify(cam_a, cam_b):
        return None
    K1, K2 = opencv_intrinsics(cam_a), opencv_intrinsics(cam_b)
    R, T = relative_pose(cam_a, cam_b)
    size = (cam_a.width, cam_a.height)
    R1, R2, P1, P2, _Q, _r1, _r2 = cv2.stereoRectify(
        K1, np.zeros(5), K2, np.zeros(5), size, R, T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY, alpha=1, newImageSize=size)
    vertical = abs(P2[1, 3]) > abs(P2[0, 3])
    shift = P2[1, 3] if vertical else P2[0, 3]  # focal x baseline, signed
    map_a = cv2.initUndistortRectifyMap(K1, None, R1, P1, size, cv2.CV_32FC1)
    map_b = cv2.initUndistortRectifyMap(K2, None, R2, P2, size, cv2.CV_32FC1)
    grey_a, grey_b = _grey(image_a), _grey(image_b)
    rect_a = cv2.remap(grey_a, *map_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rect_b = cv2.remap(grey_b, *map_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside_a = cv2.remap(np.ones_like(grey_a), *map_a, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Texture is measured on the photo itself (its edges mirrored), not on the rectified copy whose
    # black surround would count as texture; SGBM's windows need a block's width inside the photo.
    texture = cv2.remap(texture_confidence(grey_a), *map_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    texture *= cv2.erode(inside_a, np.ones((SGBM_BLOCK + 2, SGBM_BLOCK + 2), np.uint8)) > 0

    # SGBM wants rows as epipolar lines and the second view to the right: transpose and mirror to get there.
    def canonical(img):
        img = img.T if vertical else img
        return img[:, ::-1] if shift > 0 else img

    def back(img):
        img = img[:, ::-1] if shift > 0 else img
        return img.T if vertical else img

    left, right = np.ascontiguousarray(canonical(rect_a)), np.ascontiguousarray(canonical(rect_b))
    rect_points = None if disparity_hint is None else (disparity_hint @ cam_a.R.T + cam_a.t) @ R1.T
    lo, count = _search_range(rect_points, shift, left.shape[1])
    if lo + count >= left.shape[1] - SGBM_BLOCK:  # a wide, converging pair: rectification is of no use
        return None
    d_canon, diff_canon = _disparities(left, right, lo, count)
    disparity = back(d_canon)
    lr = back(diff_canon)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_rect = np.clip(1 - lr / LR_TOLERANCE, 0, 1) * texture
        conf_rect = np.where(np.isfinite(conf_rect) & (disparity > 0), conf_rect, 0).astype(np.float32)
        z_rect = np.where(conf_rect > 0, abs(shift) / disparity, 0).astype(np.float32)
    return _to_view(z_rect, conf_rect, K1, R1, P1, cam_a, abs(shift))


def _search_range(rect_points: np.ndarray | None, shift: float, width: int) -> tuple[int, int]:
    """SGBM's (minDisparity, numDisparities): the sparse points' disparities (points in the rectified
    frame) with a margin."""
    z = np.zeros(0) if rect_points is None else rect_points[:, 2]
    z = z[z > 0]
    if len(z) >= 8:
        d = abs(shift) / z
        lo = int(np.floor(np.percentile(d, 1) * 0.7))
        hi = int(np.ceil(np.percentile(d, 99) * 1.3)) + 4
    else:
        lo, hi = 0, width // 4
    lo = max(0, lo)
    count = int(np.clip(16 * int(np.ceil(max(hi - lo, 16) / 16)), 16, MAX_DISPARITIES))
    return lo, count


def _to_view(z_rect: np.ndarray, conf_rect: np.ndarray, K1, R1, P1, cam: Camera, focal_baseline: float) -> PairDepth:
    """Rectified depth back onto view a's pixels: each pixel's ray turned into the rectified frame
    (a pure rotation), its rectified depth looked up (nearest, never blended across an edge)."""
    h, w = cam.height, cam.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K1).T  # z = 1 in view a
    turned = rays @ R1.T
    pix = turned @ P1[:, :3].T
    with np.errstate(divide="ignore", invalid="ignore"):
        map_x = (pix[..., 0] / pix[..., 2]).astype(np.float32)
        map_y = (pix[..., 1] / pix[..., 2]).astype(np.float32)
    z = cv2.remap(z_rect, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    conf = cv2.remap(conf_rect, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(z > 0, z / turned[..., 2], 0).astype(np.float32)
    conf = np.where(depth > 0, conf, 0).astype(np.float32)
    return PairDepth(depth, conf, focal_baseline)
