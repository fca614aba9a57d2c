"""Pseudo views: cameras where no photo was taken, on paths between the photos and slightly around them.

Sparse-view training fits the few photos and leaves everything else unconstrained; rendering the scene
from these cameras, repairing the renders with an image prior and training on the repairs (GaussianObject,
LM-Gaussian) constrains the space between the photos. The cameras keep the photos' intrinsics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from engine.errors import InputError
from engine.scene import Camera

# Interpolated cameras sit at t in [T_MIN, 1 - T_MIN] between two photos: not on a photo itself.
T_MIN = 0.2
# Cameras around a photo move by this fraction of the distance to its nearest other photo (or of the
# distance to the scene centre when there is only one photo), turning to keep the centre in view.
AROUND_OFFSET = 0.25
AROUND_ROLL_DEG = 2.0


def scene_centre(cameras: Sequence[Camera]) -> np.ndarray:
    """The point the cameras look at: closest (least squares) to every optical axis; for
    forward-facing captures (nearly parallel axes) a point ahead of the mean centre, at twice the
    cameras' spread (or 1 unit) along the mean viewing direction."""
    from engine.train.init import focus_point

    focus = focus_point(cameras) if len(cameras) >= 2 else None
    if focus is not None:
        return focus
    centres = np.array([c.center for c in cameras])
    forward = np.mean([c.R[2] for c in cameras], axis=0)
    forward /= max(np.linalg.norm(forward), 1e-12)
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(cameras) > 1 else 0.0
    return centres.mean(0) + forward * (2 * spread if spread > 0 else 1.0)


def _neighbour_pairs(centres: np.ndarray) -> list[tuple[int, int]]:
    """Each camera with its two nearest others (paths along the capture, not across the object)."""
    n = len(centres)
    d = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    np.fill_diagonal(d, np.inf)
    pairs = set()
    for i in range(n):
        for j in np.argsort(d[i])[: min(2, n - 1)]:
            pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def _camera_at(template: Camera, rotation: np.ndarray, centre: np.ndarray, name: str) -> Camera:
    return replace(template, R=rotation, t=-rotation @ centre, name=name, image_path=None)


def _between(a: Camera, b: Camera, t: float, name: str) -> Camera:
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a.R, b.R])))
    rotation = slerp([t]).as_matrix()[0]
    return _camera_at(a, rotation, (1 - t) * a.center + t * b.center, name)


def _around(cam: Camera, offset: np.ndarray, roll_deg: float, focus: np.ndarray, name: str) -> Camera:
    """``cam`` moved by ``offset`` and turned by the rotation that keeps ``focus`` where it was in the
    image (an orbit about the focus), plus a small roll about the new optical axis."""
    centre = cam.center + offset
    before = focus - cam.center
    after = focus - centre
    turn, _ = Rotation.align_vectors([after], [before])  # world rotation taking `before` onto `after`
    rotation = cam.R @ turn.inv().as_matrix()
    roll = Rotation.from_rotvec(np.radians(roll_deg) * np.array([0.0, 0.0, 1.0])).as_matrix()
    return _camera_at(cam, roll @ rotation, centre, name)


def pseudo_cameras(
    train_cameras: Sequence[Camera],
    count: int,
    *,
    seed: int,
    centre: np.ndarray | None = None,
) -> list[Camera]:
    """``count`` cameras without photos: about half on paths between neighbouring photos (rotation by
    slerp, centre on the straight line), the rest slightly around the photos, turned toward the scene
    centre (``centre``, default :func:`scene_centre`). Same intrinsics and size as the photo each one
    comes from; the same inputs and ``seed`` give the same cameras."""
    cams = list(train_cameras)
    if not cams:
        raise InputError("pseudo views need at least one posed photo")
    if count < 0:
        raise InputError(f"the number of pseudo views must be positive, got {count}")
    rng = np.random.default_rng(seed)
    focus = scene_centre(cams) if centre is None else np.asarray(centre, dtype=np.float64).reshape(3)
    centres = np.array([c.center for c in cams])
    pairs = _neighbour_pairs(centres) if len(cams) >= 2 else []
    n_between = (count + 1) // 2 if pairs else 0

    out: list[Camera] = []
    for k in range(n_between):
        i, j = pairs[k % len(pairs)] if k < len(pairs) else pairs[int(rng.integers(len(pairs)))]
        t = float(rng.uniform(T_MIN, 1 - T_MIN))
        out.append(_between(cams[i], cams[j], t, f"pseudo_{len(out):03d}"))

    if len(cams) >= 2:
        d = np.linalg.norm(centres[:, None] - centres[None], axis=2)
        np.fill_diagonal(d, np.inf)
        step = d.min(axis=1)
    else:
        step = np.array([np.linalg.norm(focus - centres[0])])
    for k in range(count - n_between):
        i = k % len(cams)
        direction = rng.normal(size=3)
        direction /= max(np.linalg.norm(direction), 1e-12)
        offset = direction * AROUND_OFFSET * float(step[i]) * float(rng.uniform(0.5, 1.0))
        roll = float(rng.uniform(-AROUND_ROLL_DEG, AROUND_ROLL_DEG))
        out.append(_around(cams[i], offset, roll, focus, f"pseudo_{len(out):03d}"))
    return out


__all__ = ["pseudo_cameras", "scene_centre"]
