"""Pose estimation: synthetic scenes with known cameras, cancellation, crash isolation, bad input.

The synthetic scene is the inside of a textured corner (floor and two walls) ray-cast with numpy
and textured with cv2.remap, so every photo is rendered in milliseconds from an exact camera.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import Cancelled, HandfulError, InputError, StageError
from engine.events import CancelToken, Progress, Warning
from engine.poses import align_similarity, estimate_poses, pose_errors
from engine.poses import estimate as estimate_module
from engine.poses.alignment import rotation_angle_deg
from engine.poses.attempts import verification_max_error
from engine.scene import Camera, CameraRig

WIDTH, HEIGHT, FOCAL = 640, 480, 560.0
TEXTURE_SIZE = 1024
CORNER_SIZE = 4.0  # the walls and floor span [0, 4] on their two axes


def _texture(seed: int) -> np.ndarray:
    """Blob-and-noise texture with detail at several scales (what SIFT needs)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE), np.float32)
    for sigma in (2, 6, 16):
        noise = rng.normal(size=(TEXTURE_SIZE, TEXTURE_SIZE)).astype(np.float32)
        img += cv2.GaussianBlur(noise, (0, 0), sigma) * sigma
    img = (img - img.min()) / (img.max() - img.min())
    out = (np.stack([img, np.roll(img, 97, 0), np.roll(img, 211, 1)], -1) * 255).astype(np.uint8)
    for _ in range(120):
        centre = tuple(int(v) for v in rng.integers(0, TEXTURE_SIZE, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(out, centre, int(rng.integers(4, 30)), colour, -1)
    return out


def _render_corner(camera: Camera, textures: list[np.ndarray]) -> np.ndarray:
    """Ray-casts the planes x=0, y=0, z=0 (each textured over [0, CORNER_SIZE]^2)."""
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    rays_cam = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1)
    rays = rays_cam @ camera.R  # camera -> world directions (R^T applied to row vectors)
    origin = camera.center
    image = np.zeros((camera.height, camera.width, 3), np.uint8)
    depth = np.full((camera.height, camera.width), np.inf)
    for axis, texture in enumerate(textures):
        with np.errstate(divide="ignore", invalid="ignore"):
            s = -origin[axis] / rays[..., axis]
        hit = origin + s[..., None] * rays
        others = [a for a in range(3) if a != axis]
        a, b = hit[..., others[0]], hit[..., others[1]]
        valid = (s > 0) & (a >= 0) & (a <= CORNER_SIZE) & (b >= 0) & (b <= CORNER_SIZE) & (s < depth)
        map_x = (a / CORNER_SIZE * (TEXTURE_SIZE - 1)).astype(np.float32)
        map_y = (b / CORNER_SIZE * (TEXTURE_SIZE - 1)).astype(np.float32)
        sampled = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        image[valid] = sampled[valid]
        depth[valid] = s[valid]
    return image


def _corner_cameras(count: int) -> list[Camera]:
    """Cameras on an arc looking into the corner from the open side (about 12 degrees apart)."""
    cams = []
    for i in range(count):
        angle = np.radians(45 + (i - (count - 1) / 2) * 12)
        eye = np.array([1.2 + 5.0 * np.cos(angle), 1.2 + 5.0 * np.sin(angle), 2.6 + 0.2 * i])
        cams.append(
            Camera.look_at(
                eye, (0.9, 0.9, 0.9), up=(0, 0, 1), fx=FOCAL, fy=FOCAL, cx=WIDTH / 2, cy=HEIGHT / 2,
                width=WIDTH, height=HEIGHT, name=f"view{i}.png",
            )
        )
    return cams


def _write_views(folder: Path, cameras: list[Camera], seed: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    textures = [_texture(seed + k) for k in range(3)]
    paths = []
    for cam in cameras:
        path = folder / cam.name
        cv2.imwrite(str(path), _render_corner(cam, textures))
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- alignment


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_align_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(12, 3))
    R, s, t = _random_rotation(rng), 2.7, np.array([1.0, -4.0, 0.5])
    dst = s * src @ R.T + t
    s_est, R_est, t_est = align_similarity(src, dst)
    assert s_est == pytest.approx(s, rel=1e-9)
    assert np.allclose(R_est, R, atol=1e-9)
    assert np.allclose(t_est, t, atol=1e-9)


def test_align_similarity_needs_two_pairs():
    with pytest.raises(InputError):
        align_similarity(np.zeros((1, 3)), np.zeros((1, 3)))


@pytest.mark.parametrize("degrees", [1e-7, 1e-4, 0.5, 3.0, 90.0, 179.5])
def test_rotation_angle_is_accurate_from_tiny_to_half_turn_angles(degrees):
    # arccos of (trace - 1) / 2 reads a 1e-7 degree turn as 0 or as 1e-6 (float rounding of the cosine).
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    R = cv2.Rodrigues(axis * np.radians(degrees))[0]
    assert rotation_angle_deg(R) == pytest.approx(degrees, rel=1e-9)
    assert rotation_angle_deg(R.T) == pytest.approx(degrees, rel=1e-9)


def test_pose_errors_zero_for_a_similar_rig_and_sees_a_rotation():
    cams = _corner_cameras(5)
    rng = np.random.default_rng(0)
    R, s, t = _random_rotation(rng), 0.3, np.array([2.0, 1.0, -1.0])
    # The same cameras in a world scaled, rotated and moved: x' = s R x + t.
    moved = [
        Camera(R=c.R @ R.T, t=s * c.t - c.R @ R.T @ t, fx=c.fx, fy=c.fy, cx=c.cx, cy=c.cy,
               width=c.width, height=c.height, name=c.name)
        for c in cams
    ]
    errors = pose_errors(CameraRig(moved), CameraRig(cams))
    assert errors["count"] == 5
    assert errors["median_rot_deg"] < 1e-6 and errors["max_center_rel"] < 1e-9
    assert errors["scale"] == pytest.approx(1 / s)
    # Turn one camera 3 degrees about its viewing axis: only its rotation error changes.
    turn = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(3.0)]))[0]
    bad = list(cams)
    bad[2] = Camera(R=turn @ cams[2].R, t=turn @ cams[2].t, fx=FOCAL, fy=FOCAL, cx=WIDTH / 2,
                    cy=HEIGHT / 2, width=WIDTH, height=HEIGHT, name=cams[2].name)
    errors = pose_errors(CameraRig(bad), CameraRig(cams))
    assert errors["max_rot_deg"] == pytest.approx(3.0, abs=0.05)
    assert errors["median_rot_deg"] < 0.05


# ----------------------------------------------------------------------------- solving


def test_match_verification_threshold_is_a_fixed_fraction_of_the_frame():
    assert verification_max_error(1600) == pytest.approx(4.0)  # COLMAP's default at the working size
    assert verification_max_error(640) == pytest.approx(1.6)
    assert verification_max_error(3200) == pytest.approx(4.0)  # never looser than COLMAP's default
    assert verification_max_error(200) == pytest.approx(1.0)  # never tighter than keypoints are located


def test_synthetic_corner_all_views_placed_accurately(tmp_path):
    cams = _corner_cameras(4)
    paths = _write_views(tmp_path / "photos", cams)
    events = []
    result = estimate_poses(paths, tmp_path / "work", emit=events.append, max_long_edge=480, timeout_s=300,
                            features="sift")
    assert result.registered == [c.name for c in cams] and result.unregistered == []
    assert [c.name for c in result.rig] == [p.name for p in paths]
    assert all(c.image_path == p for c, p in zip(result.rig, paths))
    assert all((c.width, c.height) == (WIDTH, HEIGHT) for c in result.rig)
    errors = pose_errors(result.rig, CameraRig(cams))
    assert errors["median_rot_deg"] < 0.5, errors
    assert errors["max_center_rel"] < 0.02, errors
    assert result.rig[0].fx == pytest.approx(FOCAL, rel=0.03)
    assert result.rig.points is not None and len(result.rig.points) > 200
    assert result.strategy and result.attempts[-1]["registered"] == 4
    # The consistency check confirms a right solution: every pair's verified matches agree with it.
    assert result.attempts[-1]["confirmed"] == 4 and result.choice["left_out"] == {}
    pairs = result.attempts[-1]["consistency"]["pairs"]
    assert len(pairs) == 6 and min(p["fraction"] for p in pairs.values()) > 0.9
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and all(e.stage == "poses" for e in progress)
    assert progress[-1].done == progress[-1].total
    assert not [e for e in events if isinstance(e, Warning)]


def test_result_cameras_are_scaled_back_to_the_given_image_size(tmp_path):
    cams = _corner_cameras(3)
    paths = _write_views(tmp_path / "photos", cams)
    # The worker sees 320 px wide copies; cameras must come back for the 640 px photos. The focal
    # hint is in the given photos' pixels (slightly off, as EXIF-derived focals are).
    hints = {p.name: FOCAL * 1.04 for p in paths}
    result = estimate_poses(paths, tmp_path / "work", max_long_edge=320, focal_px_hints=hints, timeout_s=300,
                            features="sift")
    assert len(result.registered) == 3
    assert not any(a["settings"]["focal_search"] for a in result.attempts)
    assert all((c.width, c.height) == (WIDTH, HEIGHT) for c in result.rig)
    assert result.rig[0].fx == pytest.approx(FOCAL, rel=0.05)
    assert result.rig[0].cx == pytest.approx(WIDTH / 2, rel=0.01)
    assert pose_errors(result.rig, CameraRig(cams))["median_rot_deg"] < 1.5


def test_the_same_photos_give_the_same_cameras_every_run(tmp_path):
    """Mapping is bounded by counted work, matches are verified with a seeded RANSAC and images are
    numbered in the given order (not in the order the extractor's threads finish them): two runs
    give identical matches and cameras, however busy the machine is."""
    paths = _write_views(tmp_path / "photos", _corner_cameras(3))
    hints = {p.name: FOCAL for p in paths}  # no focal search: the test stays short
    runs = [estimate_poses(paths, tmp_path / f"work{k}", max_long_edge=320, focal_px_hints=hints, timeout_s=300,
                           features="sift") for k in range(2)]
    first, second = ([(a["verified_matches"], a["verified_pairs"]) for a in r.attempts] for r in runs)
    assert first == second
    for one, other in zip(*(r.rig for r in runs)):
        assert one.name == other.name
        assert np.array_equal(one.R, other.R) and np.array_equal(one.t, other.t) and one.fx == other.fx


def test_unrelated_photos_raise_a_stage_error_that_says_what_to_do(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for seed in range(3):
        path = folder / f"unrelated{seed}.png"
        cv2.imwrite(str(path), cv2.resize(_texture(100 + seed), (320, 240)))
        paths.append(path)
    with pytest.raises(StageError) as info:
        estimate_poses(paths, tmp_path / "work", timeout_s=300, features="sift")
    text = str(info.value)
    assert "could be placed" in text and "of 3 photos" in text
    assert "overlap" in text


def test_too_few_missing_and_duplicate_photos_are_input_errors(tmp_path):
    paths = _write_views(tmp_path / "a", _corner_cameras(2))
    with pytest.raises(InputError, match="at least 2"):
        estimate_poses(paths[:1], tmp_path / "work")
    with pytest.raises(InputError, match="not found") as info:
        estimate_poses([paths[0], tmp_path / "nope.jpg"], tmp_path / "work")
    assert "nope.jpg" in str(info.value)
    twin = tmp_path / "b" / paths[0].name
    twin.parent.mkdir()
    twin.write_bytes(paths[0].read_bytes())
    with pytest.raises(InputError, match="share the file name"):
        estimate_poses([paths[0], twin], tmp_path / "work")
    with pytest.raises(InputError, match="matching"):
        estimate_poses(paths, tmp_path / "work", matching="vocabulary")
    with pytest.raises(InputError, match="unknown features"):
        estimate_poses(paths, tmp_path / "work", features="orb")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    with pytest.raises(HandfulError, match="cannot read"):
        estimate_poses([paths[0], broken], tmp_path / "work")


class _RecordingPopen(subprocess.Popen):
    started: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _RecordingPopen.started.append(self)


def _gone(process: subprocess.Popen) -> bool:
    if process.poll() is None:
        return False
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancel_mid_run_kills_the_worker_instead_of_waiting_for_it(tmp_path, monkeypatch):
    monkeypatch.setattr(estimate_module.subprocess, "Popen", _RecordingPopen)
    _RecordingPopen.started.clear()
    paths = _write_views(tmp_path / "photos", _corner_cameras(4))
    token = CancelToken()
    after_cancel = []

    def on_event(event):
        # Cancelling from the worker's first progress report, on the caller's thread, makes the
        # order certain whatever the load: the worker is mid-run when the cancel is seen.
        if token.cancelled:
            after_cancel.append(event)
        elif isinstance(event, Progress) and "features" in event.message:
            token.cancel()

    with pytest.raises(Cancelled):
        estimate_poses(paths, tmp_path / "work", emit=on_event, cancel=token, features="sift")
    assert len(_RecordingPopen.started) == 1
    worker = _RecordingPopen.started[0]
    # The cause of the early return: the worker was ended by a signal, not left to finish.
    assert worker.returncode is not None and worker.returncode < 0
    assert _gone(worker)
    assert after_cancel == []  # nothing more of the worker's output was read once the cancel was seen


def test_a_crashing_worker_becomes_a_stage_error_and_the_caller_lives_on(tmp_path, monkeypatch):
    # A child that reports progress and then aborts, as pycolmap does on some bad options.
    crash = (
        "import json, os, sys; "
        "print(json.dumps({'type': 'step', 'message': 'finding features'}), flush=True); "
        "os.abort()"
    )
    monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", crash])
    paths = _write_views(tmp_path / "photos", _corner_cameras(2))
    events = []
    with pytest.raises(StageError, match="stopped unexpectedly") as info:
        estimate_poses(paths, tmp_path / "work", emit=events.append)
    assert "worker.log" in str(info.value)
    assert any(isinstance(e, Progress) and "features" in e.message for e in events)
    # Reaching this line means the abort stayed in the child; its stderr was kept for the person.
    assert (tmp_path / "work" / "worker.log").is_file()


def test_timeout_stops_the_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", "import time; time.sleep(60)"])
    paths = _write_views(tmp_path / "photos", _corner_cameras(2))
    # the child sleeps a minute and would then exit cleanly: only the timeout gives this error
    with pytest.raises(StageError, match="longer than"):
        estimate_poses(paths, tmp_path / "work", timeout_s=1.5)


def test_a_photo_that_overlaps_nothing_is_left_out_with_a_warning(tmp_path):
    paths = _write_views(tmp_path / "photos", _corner_cameras(3))
    stray = tmp_path / "photos" / "stray.png"
    cv2.imwrite(str(stray), cv2.resize(_texture(77), (WIDTH, HEIGHT)))
    events = []
    result = estimate_poses([*paths, stray], tmp_path / "work", emit=events.append, max_long_edge=320, timeout_s=300,
                            features="sift")
    assert sorted(result.registered) == sorted(p.name for p in paths)
    assert result.unregistered == ["stray.png"]
    assert [c.name for c in result.rig] == [p.name for p in paths]
    warnings = [e for e in events if isinstance(e, Warning)]
    assert len(warnings) == 1 and "stray.png" in warnings[0].message and "1 of 4" in warnings[0].message
    assert list(result.left_out) == ["stray.png"] and "shares" in result.left_out["stray.png"]
    assert result.summary == f"placed 3 of 4 photos with SIFT features, {result.choice['verified_matches']:,} matches"
    assert len(result.attempts) >= 2  # the ladder went on looking for the stray photo
