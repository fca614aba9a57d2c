"""Held-out cameras for scoring a job whose cameras Handful estimated, and test-time pose fitting.

Cameras estimated from photos live in their own frame (any similarity of the true one) with their own
intrinsics. To render a held-out photo from such a scene, its gt camera is carried into that frame:

- ``old``: the similarity fitted to the training camera centres only, gt intrinsics. With three nearly
  collinear forward-facing cameras the rotation about their line is barely constrained (fern: 0.65
  degrees off), and the scene was built for the estimated focal length, not the gt one (fern: 3.7 %
  longer, 9 px at the image edge). Kept to compare with earlier runs.
- ``aligned``: the similarity fitted to the training cameras' orientations and centres
  (``align_cameras``), with the intrinsics Handful estimated for the same lens (the photos share one
  camera). Where the job refined the training poses (``refined/``), those are what it is fitted to.
- ``fit``: each held-out camera after test-time pose fitting (``fit_pose``) against its photo with the
  scene held fixed, started from ``aligned``: the evaluation protocol of the pose-free sparse-view
  papers. It uses the held-out photo to choose 6 pose numbers per view, so it is scored beside, never
  instead of, the unfitted figure; the given-camera rows get the same fit, to compare like with like.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from engine.errors import HandfulError
from engine.io import colmap
from engine.poses.alignment import align_cameras, align_similarity, relative_rotation_deg, transform_cameras
from engine.scene import Camera, CameraRig
from engine.train.pose_refine import fit_pose


def estimated_training_cameras(out: Path, names: list[str], refined: bool) -> list[Camera]:
    """The job's cameras of ``names`` (those training refined when ``refined`` and it did)."""
    folder = out / "refined" if refined and (out / "refined" / "images.txt").is_file() else out / "sparse"
    estimated = colmap.read(folder).by_name()
    missing = [n for n in names if n not in estimated]
    if missing:
        raise HandfulError(f"only {len(names) - len(missing)} of {len(names)} photos got a camera")
    return [estimated[n] for n in names]


def old_alignment(gt_train: list[Camera], test: list[Camera], out: Path) -> list[Camera]:
    """The held-out cameras as the bench placed them before: centres-only fit, gt intrinsics."""
    est = estimated_training_cameras(out, [c.name for c in gt_train], refined=False)
    s, R, t = align_similarity([c.center for c in gt_train], [c.center for c in est])
    return transform_cameras(test, s, R, t)


def aligned(gt_train: list[Camera], test: list[Camera], out: Path) -> list[Camera]:
    """The held-out cameras in the estimated frame: orientation-and-centre fit, estimated intrinsics
    (resized to each held-out photo's size)."""
    est = estimated_training_cameras(out, [c.name for c in gt_train], refined=True)
    s, R, t = align_cameras(gt_train, est)
    lens = est[0]
    moved = []
    for cam in transform_cameras(test, s, R, t):
        sized = lens.resized(cam.width, cam.height)
        moved.append(dataclasses.replace(cam, fx=sized.fx, fy=sized.fy, cx=sized.cx, cy=sized.cy))
    return moved


def training_pose_errors(gt_train: list[Camera], out: Path) -> dict:
    """The job's training cameras against gt after the orientation-and-centre fit: rotation degrees,
    centre error in % of the gt centres' spread, and focal length error in %."""
    est = estimated_training_cameras(out, [c.name for c in gt_train], refined=True)
    s, R, t = align_cameras(est, gt_train)
    moved = transform_cameras(est, s, R, t)
    centres = np.array([c.center for c in gt_train])
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max())
    lens = est[0].resized(gt_train[0].width, gt_train[0].height)
    return {"rot_deg": float(np.median([relative_rotation_deg(a, b) for a, b in zip(moved, gt_train)])),
            "centre_pct": float(np.median([100 * np.linalg.norm(a.center - b.center) / spread
                                           for a, b in zip(moved, gt_train)])),
            "focal_pct": float(100 * (lens.fx / gt_train[0].fx - 1))}


def fitted(scene, cameras: list[Camera], images: list, train: list[Camera], background, steps: int) -> list[Camera]:
    """Each held-out camera fitted to its photo with ``scene`` fixed (``steps`` steps per view)."""
    length = CameraRig(train).scene_extent()
    return [fit_pose(scene, cam, image, background=background, length=length, steps=steps)
            for cam, image in zip(cameras, images)]
