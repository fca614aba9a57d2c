"""Aligning camera sets by orientations and centres (engine.poses.alignment.align_cameras)."""

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from engine.errors import InputError
from engine.poses.alignment import align_cameras, relative_rotation_deg, transform_cameras
from engine.scene import Camera


def _forward_facing(count: int = 3) -> list[Camera]:
    """Cameras on one straight line, all looking roughly along +z (a few forward-facing photos)."""
    cams = []
    for i in range(count):
        eye = np.array([0.4 * i, 0.0, 0.0])
        cams.append(Camera.look_at(eye, eye + np.array([0.05 * i, 0.02, 4.0]), up=(0, -1, 0), fx=50, fy=50,
                                   cx=32, cy=24, width=64, height=48, name=f"v{i}.png"))
    return cams


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return cv2.Rodrigues(axis * math.radians(degrees))[0]


def test_a_known_similarity_is_recovered_from_collinear_cameras():
    src = _forward_facing(3)
    R, s, t = _rotation([0.3, -1.0, 0.4], 37.0), 2.5, np.array([1.0, -2.0, 0.5])
    dst = transform_cameras(src, s, R, t)
    for a, b in zip(src, dst):  # the world change moved each camera rigidly with the world
        assert np.allclose(b.center, s * R @ a.center + t, atol=1e-12)
        assert np.allclose(b.R, a.R @ R.T, atol=1e-12)
    s_fit, R_fit, t_fit = align_cameras(src, dst)
    assert s_fit == pytest.approx(s, rel=1e-9)
    assert np.allclose(R_fit, R, atol=1e-9) and np.allclose(t_fit, t, atol=1e-9)
    back = transform_cameras(dst, *_inverse(s_fit, R_fit, t_fit))
    assert max(relative_rotation_deg(a, b) for a, b in zip(back, src)) < 1e-6


def test_the_rotation_about_the_centres_line_comes_from_the_orientations():
    # Exactly collinear centres: turning the world about their line leaves the centres where they were, so a
    # centres-only fit cannot see the 20-degree turn; the orientations can.
    src = _forward_facing(3)
    R = _rotation([1.0, 0.0, 0.0], 20.0)  # the centres lie on the x axis
    dst = transform_cameras(src, 1.0, R, np.zeros(3))
    assert np.allclose([c.center for c in dst], [c.center for c in src], atol=1e-12)  # no turn fits them too
    _, R_fit, _ = align_cameras(src, dst)
    assert np.allclose(R_fit, R, atol=1e-9)


def test_orientation_noise_gives_a_rotation_error_of_its_own_size():
    src = _forward_facing(3)
    R, s, t = _rotation([0.1, 0.7, -0.2], 60.0), 0.5, np.array([3.0, 0.0, -1.0])
    dst = transform_cameras(src, s, R, t)
    g = np.random.default_rng(1)
    turns = [_rotation(g.normal(size=3), 0.5) for _ in dst]
    noisy = [replace(c, R=q @ c.R, t=q @ c.t) for q, c in zip(turns, dst)]  # turned in place
    s_fit, R_fit, _ = align_cameras(src, noisy)
    turn = np.degrees(np.arccos(np.clip((np.trace(R_fit @ R.T) - 1) / 2, -1, 1)))
    # Three 0.5-degree errors average to less than one; the scale follows from the centres.
    assert turn < 0.5 and s_fit == pytest.approx(s, rel=1e-3)


def test_alignment_refuses_too_few_or_coincident_cameras():
    cams = _forward_facing(3)
    with pytest.raises(InputError, match="two or more"):
        align_cameras(cams[:1], cams[:1])
    with pytest.raises(InputError, match="two or more"):
        align_cameras(cams[:2], cams[:3])
    same = [replace(c, t=np.zeros(3)) for c in cams]
    with pytest.raises(InputError, match="one centre"):
        align_cameras(same, same)


def _inverse(s, R, t):
    return 1 / s, R.T, -R.T @ t / s
