"""Metric depth per view from the other photos and the known cameras (the default depth prior).

1. Sparse: learned matches between every pair of nearby views, triangulated with the cameras.
2. Dense: each view against its best neighbours (the ones it shares the most triangulated matches
   with): rectified SGBM with a left-right check (``stereo.py``), the search range from the pair's
   sparse points.
3. Each neighbour's map is scaled in confidence by the share of the view's sparse points it agrees
   with; the neighbours' maps are fused where they agree (``fuse_estimates``).
Everything runs on the CPU at a working size of ``long_edge`` pixels.
"""

from __future__ import annotations

import itertools
import time
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..events import CancelToken, EventSink, Progress, Warning as WarningEvent, null_sink
from ..scene import Camera, PointCloud
from .depth_map import DepthMap
from .prior import WORKING_LONG_EDGE, DepthPrior, as_rgb8, check_cancel, working_views
from .sparse import FEATURE_LONG_EDGE, MAX_KEYPOINTS, PairPoints, matcher_or_sift, pair_points
from .plane_sweep import sweep_depth
from .stereo import PairDepth, pair_depth

# Two estimates of a pixel agree within this relative depth, or within what MATCH_PIXELS of matching
# error makes of it in either pair (far surfaces seen by a short baseline are known only roughly).
FUSE_TOLERANCE = 0.02
MATCH_PIXELS = 1.0
SPARSE_TOLERANCE = 0.01  # relative, added to what MATCH_PIXELS makes: a triangulated match agrees then
MIN_SPARSE_CHECKS = 10  # fewer sparse points than this in a view say nothing about a neighbour's map
SPARSE_GOOD = 0.8  # a pair agreeing with this share of the view's sparse points is fully trusted
MAX_PAIR_NEIGHBOURS = 4  # with many views, each is matched with this many nearest ones


class MultiViewDepth(DepthPrior):
    name = "multiview"

    def __init__(self, long_edge: int = WORKING_LONG_EDGE, neighbours: int = 2, features: str = "aliked",
                 feature_long_edge: int = FEATURE_LONG_EDGE, max_keypoints: int = MAX_KEYPOINTS, weights_dir=None,
                 stage: str = "depth"):
        if features not in ("aliked", "disk", "sift"):
            raise InputError(f"unknown feature method {features!r} for the depth prior", hint="use aliked, disk or sift")
        self.long_edge = long_edge
        self.neighbours = max(1, int(neighbours))
        self.features = features
        self.feature_long_edge = feature_long_edge
        self.max_keypoints = max_keypoints
        self.weights_dir = weights_dir
        self.stage = stage
        self.sparse_points: PointCloud | None = None  # the last estimate's triangulated matches
        self.seconds: dict[str, float] = {}  # the last estimate's time per step

    def estimate(self, cameras: Sequence[Camera], images: Sequence, *, emit: EventSink = null_sink,
                 cancel: CancelToken | None = None) -> list[DepthMap]:
        if len(cameras) < 2:
            raise InputError(f"multi-view depth needs at least two views, got {len(cameras)}")
        started = time.perf_counter()
        cams, work = working_views(cameras, images, self.long_edge)
        originals = [as_rgb8(im) for im in images]
        n = len(cams)
        pairs = candidate_pairs(cams)
        total = n + len(pairs) + n
        done = 0

        def progress(message: str):
            emit(Progress(self.stage, done, total, message))

        matcher = self._matcher(emit)

        def step(message: str):
            nonlocal done
            progress(f"depth: {message}")
            done += 1

        sparse, feature_seconds = match_and_triangulate(cams, originals, matcher, self.feature_long_edge, pairs, step,
                                                        cancel)
        features_done = started + feature_seconds
        matching_done = time.perf_counter()
        self.sparse_points = _point_cloud(sparse.values(), work, cams)

        maps = []
        for i in range(n):
            check_cancel(cancel)
            progress(f"depth: stereo for view {i + 1} of {n}")
            estimates = self._pair_estimates(i, cams, work, sparse)
            methods = sorted({e.method for e in estimates}) or ["no pair"]
            source = f"multi-view stereo ({', '.join(methods)}; {matcher.label} matches triangulated)"
            if not estimates:
                emit(WarningEvent(f"no depth for view {cams[i].name or i + 1}: it shares too few matches with "
                                  "the other photos"))
                depth = np.zeros((cams[i].height, cams[i].width), np.float32)
                maps.append(DepthMap(depth, depth.copy(), cams[i], "metric", source))
            else:
                fused = fuse_estimates(estimates)
                maps.append(DepthMap(fused.depth, fused.confidence, cams[i], "metric", source))
            done += 1
        progress("depth: done")
        end = time.perf_counter()
        self.seconds = {"features": features_done - started, "matching": matching_done - features_done,
                        "stereo": end - matching_done, "total": end - started}
        return maps

    def _pair_estimates(self, i: int, cams, work, sparse: dict) -> list[PairDepth]:
        """View i's depth from each of its best neighbours, confidence scaled by the sparse check."""
        estimates = []
        for j in best_neighbours(i, sparse, self.neighbours):
            hint = sparse[(min(i, j), max(i, j))].xyz
            est = pair_depth(work[i], cams[i], work[j], cams[j], hint)
            if est is None:  # forward motion, or a wide converging pair: no use rectifying
                est = sweep_depth(work[i], cams[i], work[j], cams[j], hint)
            if est is not None:
                est.confidence *= sparse_agreement(est, view_sparse_points(i, cams[i], sparse))
                estimates.append(est)
        return estimates

    def _matcher(self, emit: EventSink):
        return matcher_or_sift(self.features, self.weights_dir, self.max_keypoints,
                               lambda message: emit(WarningEvent(message)), "depth prior")


def match_and_triangulate(cams: Sequence[Camera], images: Sequence[np.ndarray], matcher, feature_long_edge: int,
                          pairs: Sequence[tuple[int, int]], step, cancel: CancelToken | None):
    """Features in every view, then each pair's matches triangulated with the known cameras:
    {(i, j): PairPoints}. ``images`` are the photos (RGB8, any size; features are found on copies
    ``feature_long_edge`` long), ``cams`` the cameras the points are placed with. ``step(message)`` is
    called before each view and each pair; cancel is checked there. Also returns the seconds the
    features took."""
    found, scales = [], []
    started = time.perf_counter()
    for k, rgb in enumerate(images):
        check_cancel(cancel)
        step(f"finding features ({matcher.label}) in view {k + 1} of {len(images)}")
        found.append(matcher.extract(rgb, feature_long_edge))
        scales.append((cams[k].width / rgb.shape[1], cams[k].height / rgb.shape[0]))
    feature_seconds = time.perf_counter() - started
    sparse: dict[tuple[int, int], PairPoints] = {}
    for k, (i, j) in enumerate(pairs):
        check_cancel(cancel)
        step(f"matching pair {k + 1} of {len(pairs)}")
        sparse[(i, j)] = pair_points(found, cams, scales, i, j, matcher)
    return sparse, feature_seconds


def triangulated_points(cameras: Sequence[Camera], images: Sequence, *, features: str = "sift",
                        feature_long_edge: int = FEATURE_LONG_EDGE, max_keypoints: int = MAX_KEYPOINTS,
                        weights_dir=None, step=lambda message: None, warn=lambda message: None,
                        cancel: CancelToken | None = None) -> tuple[PointCloud, str]:
    """Step 1 alone: nearby views' matches triangulated with the known cameras, coloured from the
    photos, and the matcher's label. For a start where the cameras came without points (a
    transforms.json, an empty points3D.txt): without them random points must guess the scene's depth."""
    if len(cameras) < 2:
        return PointCloud(np.zeros((0, 3)), np.zeros((0, 3))), "none"
    originals = [as_rgb8(im) for im in images]
    matcher = matcher_or_sift(features, weights_dir, max_keypoints, warn, "starting points")
    sparse, _ = match_and_triangulate(list(cameras), originals, matcher, feature_long_edge, candidate_pairs(cameras),
                                      step, cancel)
    return _point_cloud(sparse.values(), originals, list(cameras)), matcher.label


def candidate_pairs(cams: Sequence[Camera]) -> list[tuple[int, int]]:
    """Pairs of views to match: all of them for a few views, else each with its nearest ones."""
    n = len(cams)
    if n <= MAX_PAIR_NEIGHBOURS + 1:
        return list(itertools.combinations(range(n), 2))
    centres = np.array([c.center for c in cams])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    pairs = set()
    for i in range(n):
        for j in np.argsort(dist[i])[1:MAX_PAIR_NEIGHBOURS + 1]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def best_neighbours(i: int, sparse: dict, count: int) -> list[int]:
    """The views that share the most triangulated matches with view i (at least MIN_SPARSE_CHECKS)."""
    shared = []
    for (a, b), points in sparse.items():
        if i in (a, b) and len(points.xyz) >= MIN_SPARSE_CHECKS:
            shared.append((len(points.xyz), b if a == i else a))
    shared.sort(key=lambda s: (-s[0], s[1]))
    return [j for _, j in shared[:count]]


def view_sparse_points(i: int, cam: Camera, sparse: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N,2) of view i where a match was triangulated, and the depths (N,) there."""
    uv, z = [np.zeros((0, 2))], [np.zeros(0)]
    for (a, b), points in sparse.items():
        if i in (a, b):
            uv.append(points.uv_i if a == i else points.uv_j)
            z.append((points.xyz @ cam.R.T + cam.t)[:, 2])
    return np.concatenate(uv), np.concatenate(z)


def sparse_agreement(est: PairDepth, sparse: tuple[np.ndarray, np.ndarray]) -> float:
    """A factor for the pair's confidence: the share of the view's sparse points where the map has a
    depth and agrees with them, over SPARSE_GOOD (1 when too few to tell). A pair whose stereo went
    wrong (repeated texture, a bad search range) scores low."""
    uv, z = sparse
    h, w = est.depth.shape
    cols = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, h - 1)
    dense = est.depth[rows, cols]
    known = dense > 0
    if known.sum() < MIN_SPARSE_CHECKS:
        return 1.0
    tolerance = SPARSE_TOLERANCE + est.relative_tolerance(MATCH_PIXELS)[rows, cols][known]
    share = float(np.mean(np.abs(dense[known] / z[known] - 1) <= tolerance))
    return min(1.0, share / SPARSE_GOOD)


def fuse_estimates(estimates: Sequence[PairDepth]) -> PairDepth:
    """One depth per pixel from several neighbours' estimates: the estimate the most confidence agrees
    with (within FUSE_TOLERANCE) wins, its agreeing estimates are averaged, and the confidence is the
    agreeing confidence minus the disagreeing one, over the number of neighbours. A surface only one
    of two neighbours sees (occlusion) keeps half its confidence; contradicting neighbours cancel."""
    D = np.stack([e.depth for e in estimates])
    C = np.stack([e.confidence for e in estimates])
    k = len(estimates)
    if k == 1:
        return estimates[0]
    valid = C > 0
    tol = np.maximum(FUSE_TOLERANCE, np.stack([e.relative_tolerance(MATCH_PIXELS) for e in estimates]))
    with np.errstate(divide="ignore", invalid="ignore"):
        # [ref, other, H, W]
        same = np.abs(D[:, None] - D[None]) <= np.maximum(tol[:, None], tol[None]) * D[:, None]
    same &= valid[:, None] & valid[None]
    support = np.where(valid, (same * C[None]).sum(axis=1), -1)  # [ref, H, W]
    best = np.argmax(support, axis=0)
    agree = np.take_along_axis(same, best[None, None], axis=0)[0]  # [other, H, W]
    weight = C * agree
    total = weight.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(total > 0, (weight * D).sum(axis=0) / total, 0)
    against = (C * (valid & ~agree)).sum(axis=0)
    conf = np.clip((total - against) / k, 0, 1)
    conf = np.where(total > 0, conf, 0)
    return PairDepth(depth.astype(np.float32), conf.astype(np.float32),
                     max(e.focal_baseline for e in estimates), "+".join(sorted({e.method for e in estimates})))


def _point_cloud(pairs, images: Sequence[np.ndarray], cams: Sequence[Camera]) -> PointCloud:
    """The pairs' points, coloured from view i (``images`` at any size: pixels are scaled from the cameras')."""
    xyz, rgb = [np.zeros((0, 3))], [np.zeros((0, 3))]
    for p in pairs:
        img = images[p.i]
        h, w = img.shape[:2]
        sx, sy = w / cams[p.i].width, h / cams[p.i].height
        cols = np.clip(np.floor(p.uv_i[:, 0] * sx).astype(np.int64), 0, w - 1)
        rows = np.clip(np.floor(p.uv_i[:, 1] * sy).astype(np.int64), 0, h - 1)
        xyz.append(p.xyz)
        rgb.append(img[rows, cols] / 255.0)
    return PointCloud(np.concatenate(xyz), np.concatenate(rgb))
