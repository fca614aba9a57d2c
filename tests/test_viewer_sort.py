"""Viewer pieces that need no GL: depth sort, sort worker, camera conventions, navigation, picking."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from app.viewer import splat_data
from app.viewer.depth_sort import (
    SortJob,
    SortWorker,
    back_to_front_order,
    counting_sort_u16,
    gather_rows,
    sort_and_gather,
)
from app.viewer.frustums import frustum_corners, frustum_lines, pick_frustum
from engine.camera_projection import opencv_to_gl_clip, project_points, side_planes
from app.viewer.navigation import ViewState
from engine.scene import Camera, quat_to_rotmat
from tests.factories import orbit_cameras, random_scene


# ----------------------------------------------------------------------------- sorting
@pytest.mark.parametrize("high", [7, 65536])
def test_counting_sort_matches_stable_argsort(high):
    keys = np.random.default_rng(high).integers(0, high, size=20_000).astype(np.uint16)
    np.testing.assert_array_equal(counting_sort_u16(keys), np.argsort(keys, kind="stable"))


def test_counting_sort_edge_cases():
    assert counting_sort_u16(np.zeros(0, np.uint16)).shape == (0,)
    keys = np.array([65535, 0, 65535, 0], np.uint16)
    np.testing.assert_array_equal(counting_sort_u16(keys), [1, 3, 0, 2])


def test_back_to_front_order_is_the_quantised_stable_sort():
    g = np.random.default_rng(1)
    means = g.normal(size=(5000, 3)).astype(np.float32)
    means[::7, 2] = means[1, 2]  # ties: stability decides their order
    order = back_to_front_order(means, np.eye(3), np.zeros(3))  # depth = z exactly
    z = means[:, 2].astype(np.float64)
    keys = ((z.max() - z) * (65535 / (z.max() - z.min()))).astype(np.uint16)  # farthest -> key 0
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))


def test_back_to_front_order_sorts_far_to_near_for_any_view():
    means = np.random.default_rng(8).normal(size=(5000, 3)).astype(np.float32)
    cam = orbit_cameras(3, radius=5)[2]
    order = back_to_front_order(means, cam.R, cam.t)
    z = means.astype(np.float64) @ cam.R[2] + cam.t[2]
    step = (z.max() - z.min()) / 65535
    assert (np.diff(z[order]) <= step * 1.01).all()  # never nearer-then-farther beyond one key step


def test_back_to_front_order_leaves_hidden_splats_out():
    means = np.random.default_rng(2).normal(size=(100, 3)).astype(np.float32)
    visible = np.arange(100) % 3 != 0
    order = back_to_front_order(means, np.eye(3), np.zeros(3), visible)
    assert sorted(order.tolist()) == np.flatnonzero(visible).tolist()


def test_sort_and_gather_rows_and_highlight():
    scene = random_scene(300, sh_degree=0, seed=3)
    rows = splat_data.pack_rows(scene)
    highlight = (np.arange(300) % 2).astype(np.float32)
    cam = orbit_cameras(1)[0]
    result = sort_and_gather(
        SortJob(7, lambda: rows, cam.R, cam.t, highlight=highlight, highlight_column=splat_data.COL_HIGHLIGHT)
    )
    order = back_to_front_order(rows[:, :3], cam.R, cam.t)
    assert result.generation == 7
    np.testing.assert_array_equal(result.rows[:, 14], order.astype(np.float32))
    np.testing.assert_array_equal(result.rows[:, splat_data.COL_HIGHLIGHT], highlight[order])
    np.testing.assert_array_equal(gather_rows(rows, order)[:, :13], result.rows[:, :13])


def _importance_by_numpy(rows: np.ndarray, cam: Camera, near: float) -> np.ndarray:
    """Opacity x projected-area estimate (covariance trace / depth^2); splats nearer than ``near`` -1."""
    z = rows[:, :3].astype(np.float64) @ cam.R[2] + cam.t[2]
    score = rows[:, 3] * (rows[:, 4] + rows[:, 7] + rows[:, 9]) / np.maximum(z, 1e-9) ** 2
    return np.where(z > near, score, -1.0)


def test_level_of_detail_order_keeps_the_most_important_splats_back_to_front():
    scene = random_scene(3000, sh_degree=0, seed=5)
    rows = splat_data.pack_rows(scene)
    rows[:, 0:3] *= 3.0  # spread out so that some splats sit behind the near plane
    highlight = (np.arange(3000) % 5 == 0).astype(np.float32)
    cam = orbit_cameras(1, radius=4.0)[0]
    near = 1.0
    job = SortJob(1, rows, cam.R, cam.t, highlight=highlight, highlight_column=splat_data.COL_HIGHLIGHT,
                  pad_multiple=64, lod_budget=400, near=near)
    result = sort_and_gather(job)
    full = sort_and_gather(SortJob(1, rows, cam.R, cam.t, pad_multiple=64))
    assert result.count == 3000 and result.lod_count == 400
    assert result.lod_rows.shape == (448, splat_data.ROW_WIDTH) and not result.lod_rows[400:].any()
    np.testing.assert_array_equal(result.rows[:, :13], full.rows[:, :13])  # the full order is unchanged
    chosen = result.lod_rows[:400, 14].astype(np.int64)
    importance = _importance_by_numpy(rows, cam, near)
    expected = np.argsort(-importance, kind="stable")[:400]
    # the same splats (up to float ties at the cut) as ranking every splat in float64
    assert len(np.intersect1d(chosen, expected)) >= 398
    assert importance[chosen].min() >= np.sort(importance)[-400] * 0.999 > 0
    # still back to front: the reduced order is the full order with the others left out
    position = np.empty(3000, np.int64)
    position[result.rows[:3000, 14].astype(np.int64)] = np.arange(3000)
    assert (np.diff(position[chosen]) > 0).all()
    np.testing.assert_array_equal(result.lod_rows[:400, splat_data.COL_HIGHLIGHT], highlight[chosen])


def test_level_of_detail_never_chooses_splats_outside_the_side_planes():
    rows = splat_data.pack_rows(random_scene(2000, sh_degree=0, seed=7))
    planes = np.array([[1.0, 0.0, 0.0, 0.0]])  # keep x >= 0 (less a splat's 3.33-sigma radius)
    result = sort_and_gather(SortJob(1, rows, np.eye(3), np.array([0, 0, 10.0]), lod_budget=300, planes=planes))
    chosen = result.lod_rows[:300, 14].astype(np.int64)
    radius = 3.33 * np.sqrt(rows[:, 4] + rows[:, 7] + rows[:, 9])
    assert (rows[chosen, 0] >= -radius[chosen]).all()
    assert (rows[:, 0] < -radius).sum() > 500  # many were out


def test_level_of_detail_budget_at_or_above_the_count_gives_no_reduced_order():
    rows = splat_data.pack_rows(random_scene(200, sh_degree=0, seed=6))
    for budget in (0, 200, 500):
        result = sort_and_gather(SortJob(1, rows, np.eye(3), np.array([0, 0, 5.0]), lod_budget=budget))
        assert result.lod_rows is None and result.lod_count == 0 and result.count == 200


def test_most_important_slots_are_ascending_and_exact():
    from app.viewer.depth_sort import most_important_slots

    importance = np.random.default_rng(4).permutation(1000).astype(np.float32)
    slots = most_important_slots(importance, 10)
    np.testing.assert_array_equal(slots, np.sort(np.argsort(-importance)[:10]))
    assert most_important_slots(importance, 0).shape == (0,)
    np.testing.assert_array_equal(most_important_slots(importance, 5000), np.arange(1000))


def test_sort_worker_never_blocks_the_caller_and_runs_the_latest_job():
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow_sort(job):
        started.set()
        release.wait(5)
        return sort_and_gather(job)

    worker = SortWorker(lambda r: done.append(r.generation), slow_sort)
    try:
        rows = splat_data.pack_rows(random_scene(50, sh_degree=0))
        worker.submit(SortJob(1, rows, np.eye(3), np.zeros(3)))
        assert started.wait(5)
        worker.submit(SortJob(2, rows, np.eye(3), np.zeros(3)))
        worker.submit(SortJob(3, rows, np.eye(3), np.zeros(3)))  # replaces 2 before it ran
        assert done == []  # submitting never waits for the sort: the first is still blocked in it
        assert not worker.idle
        release.set()
        assert worker.wait_idle(5)
        assert done == [1, 3]
    finally:
        release.set()
        worker.stop()


def test_pack_rows_covariance_matches_rotation_and_scale():
    scene = random_scene(20, sh_degree=1, seed=4)
    rows = splat_data.pack_rows(scene)
    R = quat_to_rotmat(scene.quats.double().numpy())
    S = np.exp(scene.log_scales.double().numpy())
    cov = R @ (S[:, :, None] ** 2 * np.eye(3)) @ R.transpose(0, 2, 1)
    expect = cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    np.testing.assert_allclose(rows[:, 4:10], expect, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(rows[:, 3], torch.sigmoid(scene.opacity_logits).numpy(), rtol=1e-6)
    tex = splat_data.sh_texture(scene, 16384)
    assert tex.shape == (1, 4096, 3)
    np.testing.assert_array_equal(tex.reshape(-1, 16, 3)[:20, 1:4], scene.sh[:, 1:4].numpy())
    assert splat_data.sh_texture(scene.with_sh_degree(0), 16384) is None


# ----------------------------------------------------------------------------- conventions
def _camera(width=320, height=200):
    cam = orbit_cameras(1, width=width, image_height=height, fov_deg=70)[0]
    cam.cx, cam.cy = 150.5, 90.25  # off-centre principal point
    return cam


def test_opencv_to_gl_clip_lands_on_engine_pixels():
    cam = _camera()
    near, far = 0.1, 50.0
    pts = np.random.default_rng(5).uniform(-1, 1, size=(50, 3))
    uv, z = project_points(pts, cam)
    pc = pts @ cam.R.T + cam.t
    clip = np.hstack([pc, np.ones((50, 1))]) @ opencv_to_gl_clip(cam, near, far).T
    ndc = clip[:, :3] / clip[:, 3:]
    np.testing.assert_allclose(ndc[:, 0], 2 * uv[:, 0] / cam.width - 1, atol=1e-9)
    np.testing.assert_allclose(ndc[:, 1], 1 - 2 * uv[:, 1] / cam.height, atol=1e-9)
    m = opencv_to_gl_clip(cam, near, far)
    for depth, expected in ((near, -1.0), (far, 1.0)):
        c = m @ np.array([0, 0, depth, 1.0])
        assert c[2] / c[3] == pytest.approx(expected)


def test_side_planes_separate_inside_from_outside():
    cam = _camera()
    planes = side_planes(cam)[:, :3]
    g = np.random.default_rng(6)
    pix = np.column_stack([g.uniform(-100, 420, 500), g.uniform(-100, 300, 500)])
    depth = g.uniform(0.5, 5, 500)
    pc = np.column_stack([(pix[:, 0] - cam.cx) / cam.fx, (pix[:, 1] - cam.cy) / cam.fy, np.ones(500)]) * depth[:, None]
    inside = (pix[:, 0] >= 0) & (pix[:, 0] <= cam.width) & (pix[:, 1] >= 0) & (pix[:, 1] <= cam.height)
    dist = pc @ planes.T
    assert ((dist >= -1e-9).all(axis=1) == inside).all()


# ----------------------------------------------------------------------------- navigation
def test_view_state_becomes_exactly_a_camera_at_any_size():
    cam = _camera()
    view = ViewState()
    view.set_camera(cam)
    same = view.camera(cam.width, cam.height)
    np.testing.assert_allclose(same.R, cam.R, atol=1e-12)
    np.testing.assert_allclose(same.t, cam.t, atol=1e-12)
    assert (same.fx, same.fy, same.cx, same.cy) == pytest.approx((cam.fx, cam.fy, cam.cx, cam.cy))
    bigger = view.camera(640, 300)
    ref = cam.resized(640, 300)
    assert (bigger.fx, bigger.fy, bigger.cx, bigger.cy) == pytest.approx((ref.fx, ref.fy, ref.cx, ref.cy))


def test_orbit_pan_zoom_fly_move_the_view_as_expected():
    view = ViewState()
    view.frame(np.array([1.0, 2.0, 3.0]), 2.0, 400, 300)
    cam = view.camera(400, 300)
    uv, _ = project_points(view.pivot[None], cam)
    assert uv[0] == pytest.approx([200, 150])  # framing looks at the centre
    dist = np.linalg.norm(view.center - view.pivot)

    view.orbit(50, -20)
    assert np.linalg.norm(view.center - view.pivot) == pytest.approx(dist)
    uv, _ = project_points(view.pivot[None], view.camera(400, 300))
    assert uv[0] == pytest.approx([200, 150], abs=1e-6)  # the pivot stays in the middle
    assert np.allclose(view.R @ view.R.T, np.eye(3), atol=1e-9)

    # panning drags a point at the pivot's depth along with the mouse
    before = view.camera(400, 300)
    point = view.pivot.copy()
    view.pan(30, -10, before.fy)
    uv, _ = project_points(point[None], view.camera(400, 300))
    assert uv[0] == pytest.approx([230, 140], abs=1e-6)

    view.zoom(2)
    assert np.linalg.norm(view.center - view.pivot) == pytest.approx(dist * 0.85**2)

    c0 = view.center.copy()
    view.fly(1, 0, 0, seconds=1.0)
    np.testing.assert_allclose(view.center - c0, view.R[2] * 0.5 * view.scene_radius, atol=1e-9)


# ----------------------------------------------------------------------------- frustums
def test_pick_frustum_hits_the_clicked_camera_only():
    cams = orbit_cameras(6, radius=4, height=0.5, width=64, image_height=48)
    viewer_cam = Camera.look_at([0, 0, 12], [0, 0, 0], up=(0, 1, 0), fx=300, fy=300, cx=200, cy=150, width=400, height=300)
    depth = 0.8
    assert frustum_lines(cams, depth).shape == (6 * 16, 3)
    for i, cam in enumerate(cams):
        corners, _ = project_points(frustum_corners(cam, depth)[1:], viewer_cam)
        x, y = corners.mean(axis=0)  # middle of its image rectangle
        assert pick_frustum(cams, depth, viewer_cam, x, y) == i
        eye, _ = project_points(cam.center[None], viewer_cam)
        assert pick_frustum(cams, depth, viewer_cam, *eye[0]) == i  # on the apex, where edges meet
    assert pick_frustum(cams, depth, viewer_cam, 200, 150) is None  # the empty middle
    assert pick_frustum([], depth, viewer_cam, 10, 10) is None
