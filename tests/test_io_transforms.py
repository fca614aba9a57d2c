import json
import math

import cv2
import numpy as np
import pytest

from engine.errors import FormatError
from engine.io import colmap, transforms
from engine.scene import Camera, CameraRig


def _orbit_rig(n=5, distortion=None, shared=True) -> CameraRig:
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = np.array([3 * math.cos(a), 3 * math.sin(a), 1.0 + 0.1 * i])
        cams.append(
            Camera.look_at(
                eye, np.zeros(3), up=(0, 0, 1), fx=300.0 if shared else 300.0 + i, fy=301.0, cx=160.5, cy=119.5,
                width=320, height=240, name=f"images/frame_{i:03d}.png", distortion=distortion,
            )
        )
    return CameraRig(cams)


def _assert_same(a: CameraRig, b: CameraRig, atol=1e-9):
    assert [c.name for c in a] == [c.name for c in b]
    for ca, cb in zip(a, b):
        np.testing.assert_allclose(ca.R, cb.R, atol=atol)
        np.testing.assert_allclose(ca.t, cb.t, atol=atol)
        np.testing.assert_allclose(ca.K, cb.K, atol=atol)
        assert (ca.width, ca.height) == (cb.width, cb.height)
        if ca.distortion is None:
            assert cb.distortion is None
        else:
            np.testing.assert_allclose(ca.distortion, cb.distortion, atol=atol)


def test_lego_matches_its_colmap_ground_truth(dataset):
    root = dataset("nerf_synthetic_lego")
    rig = transforms.read(root / "transforms_train.json")
    truth = colmap.read(root / "gt_colmap_text").by_name()
    assert len(rig) == 100
    for cam in rig:
        # names gain the extension Blender leaves out: "./train/r_0" -> "train/r_0.png"
        ref = truth[cam.name]
        assert cam.image_path.is_file()
        assert (cam.width, cam.height) == (400, 400)  # from the PNG: the file has no w/h
        np.testing.assert_allclose(cam.R, ref.R, atol=1e-4)
        np.testing.assert_allclose(cam.t, ref.t, atol=1e-4)
        np.testing.assert_allclose(cam.K, ref.K, atol=1e-4)
    # the OpenGL -> OpenCV flip: every lego camera looks at the object near the origin
    for cam in rig:
        assert (cam.R @ np.zeros(3) + cam.t)[2] > 0


@pytest.mark.parametrize("shared", [True, False])
def test_round_trip(tmp_path, shared):
    rig = _orbit_rig(shared=shared, distortion=[0.05, -0.01, 0.001, 0.0005, 0.002])
    path = transforms.write(rig, tmp_path / "transforms.json")
    data = json.loads(path.read_text())
    assert ("fl_x" in data) == shared
    assert data["frames"][0]["file_path"] == "images/frame_000.png"
    _assert_same(rig, transforms.read(path))


def test_round_trip_keeps_image_paths_relative(tmp_path):
    rig = _orbit_rig(n=3)
    (tmp_path / "images").mkdir()
    for cam in rig:
        cam.image_path = tmp_path / cam.name
        cv2.imwrite(str(cam.image_path), np.zeros((240, 320, 3), np.uint8))
    path = transforms.write(rig, tmp_path / "transforms.json")
    back = transforms.read(path)
    _assert_same(rig, back)
    assert [c.image_path for c in back] == [c.image_path for c in rig]


def test_blender_style_without_extension_and_size(tmp_path):
    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "r_0.png"), np.zeros((60, 80, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "train" / "r_1.jpg"), np.zeros((60, 80, 3), np.uint8))
    c2w = np.eye(4)
    c2w[:3, 3] = [0, 0, 4]  # OpenGL: the camera at z=4 looks down -z, towards the origin
    data = {
        "camera_angle_x": 2 * math.atan(0.5),
        "frames": [
            {"file_path": "./train/r_0", "transform_matrix": c2w.tolist()},
            {"file_path": "./train/r_1", "transform_matrix": c2w.tolist(), "fl_x": 99.0, "cx": 41.0},
        ],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    rig = transforms.read(tmp_path / "transforms.json")
    assert [c.name for c in rig] == ["train/r_0.png", "train/r_1.jpg"]
    a, b = rig
    assert (a.width, a.height) == (80, 60)
    assert a.fx == pytest.approx(80.0) and a.fy == pytest.approx(80.0)  # tan(fov/2) = 0.5 -> f = w
    assert (a.cx, a.cy) == (40.0, 30.0)
    assert (b.fx, b.cx) == (99.0, 41.0)  # per-frame overrides
    assert a.camera_id != b.camera_id
    np.testing.assert_allclose(a.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(a.t, [0, 0, 4], atol=1e-12)  # the origin is 4 units in front


def test_bad_files(tmp_path):
    path = tmp_path / "transforms.json"
    path.write_text('{"frames": [\n  {"file_path": "a.png",\n}')
    with pytest.raises(FormatError, match="line 3") as info:
        transforms.read(path)
    assert info.value.path == path
    path.write_text(json.dumps({"fl_x": 100, "w": 10, "h": 10, "frames": [{"file_path": "a.png"}]}))
    with pytest.raises(FormatError, match="transform_matrix"):
        transforms.read(path)
    scaled = (np.eye(4) * 2).tolist()
    path.write_text(json.dumps({"fl_x": 100, "w": 10, "h": 10,
                                "frames": [{"file_path": "a.png", "transform_matrix": scaled}]}))
    with pytest.raises(FormatError, match="rigid"):
        transforms.read(path)
    path.write_text(json.dumps({"camera_angle_x": 0.7, "frames": [{"file_path": "gone", "transform_matrix": np.eye(4).tolist()}]}))
    with pytest.raises(FormatError, match="no image size"):
        transforms.read(path)
    path.write_text(json.dumps({"fl_x": 100, "w": 10, "h": 10, "camera_model": "OPENCV_FISHEYE",
                                "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}))
    with pytest.raises(FormatError, match="OPENCV_FISHEYE"):
        transforms.read(path)
    with pytest.raises(FormatError, match="does not exist"):
        transforms.read(tmp_path / "missing.json")
