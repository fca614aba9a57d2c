import numpy as np
import pycolmap
import pytest

from engine.errors import FormatError
from engine.io import colmap
from engine.scene import Camera, CameraRig, PointCloud, quat_to_rotmat

RNG_SEED = 7

MODELS = {
    "SIMPLE_PINHOLE": [600.0, 320.5, 240.25],
    "PINHOLE": [610.0, 605.0, 321.0, 239.0],
    "SIMPLE_RADIAL": [590.0, 320.0, 240.0, 0.031],
    "RADIAL": [595.0, 318.0, 242.0, -0.05, 0.012],
    "OPENCV": [600.0, 602.0, 319.0, 241.0, -0.1, 0.02, 0.001, -0.002],
}


def _random_quat(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def _pycolmap_reconstruction(rng, num_points=30) -> pycolmap.Reconstruction:
    rec = pycolmap.Reconstruction()
    for camera_id, (model, params) in enumerate(MODELS.items(), start=1):
        cam = pycolmap.Camera.create_from_model_name(camera_id, model, 1.0, 640, 480)
        cam.params = params
        rec.add_camera_with_trivial_rig(cam)
    image_ids = []
    for image_id in range(1, 8):
        camera_id = (image_id - 1) % len(MODELS) + 1
        qw, qx, qy, qz = _random_quat(rng)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(np.array([qx, qy, qz, qw])), rng.normal(size=3))
        points2d = [pycolmap.Point2D(rng.uniform(0, 640, size=2)) for _ in range(num_points)]
        image = pycolmap.Image(name=f"img_{image_id:02d}.jpg", camera_id=camera_id, image_id=image_id,
                               points2D=points2d)
        rec.add_image_with_trivial_frame(image, pose)
        image_ids.append(image_id)
    for p in range(num_points):
        track = pycolmap.Track()
        for image_id in image_ids[: 2 + p % 4]:
            track.add_element(image_id, p)
        rec.add_point3D(rng.normal(size=3), track, rng.integers(0, 256, size=3).astype(np.uint8))
    for point in rec.points3D.values():
        point.error = float(rng.uniform(0.1, 2))
    return rec


def _assert_matches_pycolmap(rig: CameraRig, rec: pycolmap.Reconstruction):
    assert len(rig) == rec.num_images()
    ours = rig.by_name()
    for image in rec.images.values():
        cam = ours[image.name]
        ref_cam = rec.cameras[image.camera_id]
        assert cam.camera_id == image.camera_id
        assert (cam.width, cam.height) == (ref_cam.width, ref_cam.height)
        np.testing.assert_allclose(cam.K, ref_cam.calibration_matrix(), rtol=0, atol=1e-9)
        pose = image.cam_from_world()
        np.testing.assert_allclose(cam.R, pose.rotation.matrix(), atol=1e-12)
        np.testing.assert_allclose(cam.t, pose.translation, atol=1e-12)
        p = list(ref_cam.params) + [0.0] * 8
        model = ref_cam.model.name
        expected = {
            "SIMPLE_RADIAL": [p[3], 0, 0, 0, 0],
            "RADIAL": [p[3], p[4], 0, 0, 0],
            "OPENCV": [p[4], p[5], p[6], p[7], 0],
            "FULL_OPENCV": p[4:9],
        }.get(model)
        if expected is None:
            assert cam.distortion is None
        else:
            np.testing.assert_allclose(cam.distortion, expected, atol=1e-15)
    ids = sorted(rec.points3D)
    assert len(rig.points) == len(ids)
    ref_xyz = np.array([rec.points3D[i].xyz for i in ids])
    ref_rgb = np.array([rec.points3D[i].color for i in ids]) / 255
    ref_err = np.array([rec.points3D[i].error for i in ids])
    ref_track = np.array([rec.points3D[i].track.length() for i in ids])
    np.testing.assert_allclose(rig.points.xyz, ref_xyz, atol=1e-12)
    np.testing.assert_allclose(rig.points.rgb, ref_rgb, atol=1e-12)
    np.testing.assert_allclose(rig.points.error, ref_err, atol=1e-12)
    np.testing.assert_array_equal(rig.points.track_length, ref_track)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_reads_what_pycolmap_writes(tmp_path, kind):
    rec = _pycolmap_reconstruction(np.random.default_rng(RNG_SEED))
    getattr(rec, f"write_{kind}")(str(tmp_path))
    rig = colmap.read(tmp_path)
    _assert_matches_pycolmap(rig, rec)
    # the same model through each single file and through a project folder with sparse/0
    ext = ".txt" if kind == "text" else ".bin"
    for stem in ("cameras", "images", "points3D"):
        assert [c.name for c in colmap.read(tmp_path / f"{stem}{ext}")] == [c.name for c in rig]
    # pycolmap reads what it wrote the same way
    _assert_matches_pycolmap(rig, pycolmap.Reconstruction(str(tmp_path)))


def test_project_folder_with_sparse_0_and_images(tmp_path):
    rec = _pycolmap_reconstruction(np.random.default_rng(1), num_points=3)
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    rec.write_binary(str(model))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "img_01.jpg").write_bytes(b"")
    rig = colmap.read(tmp_path)
    assert len(rig) == 7
    assert rig[0].image_path == tmp_path / "images" / "img_01.jpg"


def _our_rig(rng) -> CameraRig:
    cams = []
    for i in range(6):
        q = _random_quat(rng)
        distortion = None if i % 2 else [0.1 * i, -0.01, 0.002, -0.001, 0.0]
        cams.append(
            Camera.from_qvec(
                q, rng.normal(size=3), fx=500 + i, fy=505 + i, cx=319.5, cy=240.5, width=640, height=480,
                name=f"sub/view_{i}.png", camera_id=1 + i // 2,
                distortion=distortion,
            )
        )
    # the first two share camera id 1 but differ: the writer must give one of them its own id
    xyz = rng.normal(size=(25, 3))
    rgb = rng.integers(0, 256, size=(25, 3)) / 255
    return CameraRig(cams, PointCloud(xyz, rgb, error=rng.uniform(0, 1, 25), track_length=np.zeros(25, int)))


def _assert_same_rig(a: CameraRig, b: CameraRig):
    assert [c.name for c in a] == [c.name for c in b]
    for ca, cb in zip(a, b):
        np.testing.assert_allclose(ca.R, cb.R, atol=1e-12)
        np.testing.assert_allclose(ca.t, cb.t, atol=1e-12)
        np.testing.assert_allclose(ca.K, cb.K, atol=1e-12)
        assert (ca.width, ca.height) == (cb.width, cb.height)
        if ca.distortion is None:
            assert cb.distortion is None
        else:
            np.testing.assert_allclose(ca.distortion, cb.distortion, atol=1e-15)
    np.testing.assert_allclose(a.points.xyz, b.points.xyz, atol=1e-12)
    np.testing.assert_allclose(a.points.rgb, b.points.rgb, atol=1e-12)
    np.testing.assert_allclose(a.points.error, b.points.error, atol=1e-12)


@pytest.mark.parametrize("writer", ["write_text", "write_binary"])
def test_round_trip_and_pycolmap_reads_ours(tmp_path, writer):
    rig = _our_rig(np.random.default_rng(3))
    getattr(colmap, writer)(rig, tmp_path)
    back = colmap.read(tmp_path)
    _assert_same_rig(rig, back)
    # cameras 0 and 1 both said camera id 1 but differ: distinct intrinsics never share an id
    intrinsics_by_id = {}
    for c in back:
        intrinsics_by_id.setdefault(c.camera_id, set()).add((c.fx, c.fy))
    assert all(len(v) == 1 for v in intrinsics_by_id.values())
    assert back[0].camera_id == 1 and back[1].camera_id != 1
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert rec.num_images() == len(rig)
    _assert_matches_pycolmap(back, rec)


def test_round_trip_through_text_and_binary_is_exact(tmp_path):
    rig = _our_rig(np.random.default_rng(4))
    colmap.write_binary(rig, tmp_path / "bin")
    colmap.write_text(colmap.read(tmp_path / "bin"), tmp_path / "txt")
    _assert_same_rig(rig, colmap.read(tmp_path / "txt"))


def _count_data_lines(path):
    return sum(1 for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize(
    "name", ["llff_fern", "middlebury_templeSR", "nerf_synthetic_lego", "strecha_fountain_p11"]
)
def test_reads_dataset_ground_truth(dataset, name):
    folder = dataset(name) / "gt_colmap_text"
    rig = colmap.read(folder)
    images_lines = [
        line for line in (folder / "images.txt").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert len(rig) == len(images_lines) > 0
    assert len({c.camera_id for c in rig}) == _count_data_lines(folder / "cameras.txt")
    assert len(rig.points) == _count_data_lines(folder / "points3D.txt")
    first = images_lines[0].split()
    assert rig[0].name == first[9]
    np.testing.assert_allclose(rig[0].R, quat_to_rotmat(np.array(first[1:5], float)), atol=1e-12)
    # every image the model names is found beside it
    assert all(c.image_path is not None and c.image_path.is_file() for c in rig)
    rec = pycolmap.Reconstruction(str(folder))
    for image in rec.images.values():
        cam = rig.by_name()[image.name]
        np.testing.assert_allclose(cam.K, rec.cameras[image.camera_id].calibration_matrix(), atol=1e-9)
        np.testing.assert_allclose(cam.t, image.cam_from_world().translation, atol=1e-9)


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def text_model(tmp_path):
    colmap.write_text(_our_rig(np.random.default_rng(5)), tmp_path)
    return tmp_path


@pytest.fixture
def binary_model(tmp_path):
    colmap.write_binary(_our_rig(np.random.default_rng(6)), tmp_path)
    return tmp_path


@pytest.mark.parametrize("stem", ["cameras", "images", "points3D"])
def test_truncated_binary_names_file(binary_model, stem):
    path = binary_model / f"{stem}.bin"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5])
    with pytest.raises(FormatError, match="truncated") as info:
        colmap.read(binary_model)
    assert info.value.path == path


def test_trailing_bytes_are_reported(binary_model):
    path = binary_model / "cameras.bin"
    path.write_bytes(path.read_bytes() + b"\0\0\0")
    with pytest.raises(FormatError, match="unexpected bytes"):
        colmap.read(binary_model)


def test_absurd_count_is_reported_not_allocated(binary_model):
    path = binary_model / "points3D.bin"
    path.write_bytes((10**15).to_bytes(8, "little") + path.read_bytes()[8:])
    with pytest.raises(FormatError, match="claims"):
        colmap.read(binary_model)


def test_missing_images_file(text_model):
    (text_model / "images.txt").unlink()
    with pytest.raises(FormatError, match="no COLMAP model"):
        colmap.read(text_model)
    with pytest.raises(FormatError, match="does not exist"):
        colmap.read(text_model / "nowhere")


def test_garbage_line_names_file_and_line(text_model):
    path = text_model / "cameras.txt"
    lines = path.read_text().splitlines()
    lines.insert(4, "2 PINHOLE six hundred 480 1 2 3 4")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match="line 5") as info:
        colmap.read(text_model)
    assert info.value.path == path
    assert "cameras.txt" in str(info.value)


def test_garbage_points_line(text_model):
    path = text_model / "points3D.txt"
    path.write_text(path.read_text() + "99 1 2 3 255 0\n")
    n = len(path.read_text().splitlines())
    with pytest.raises(FormatError, match=f"line {n}"):
        colmap.read(text_model)


def test_unsupported_model_is_named(text_model):
    path = text_model / "cameras.txt"
    path.write_text("1 OPENCV_FISHEYE 640 480 500 500 320 240 0.1 0.01 0 0\n")
    with pytest.raises(FormatError, match="OPENCV_FISHEYE"):
        colmap.read(text_model)


def test_image_with_undefined_camera(text_model):
    path = text_model / "cameras.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n")  # only camera 1 left
    with pytest.raises(FormatError, match="does not define"):
        colmap.read(text_model)


def test_full_opencv_with_zero_rational_terms_is_read(tmp_path):
    (tmp_path / "cameras.txt").write_text("3 FULL_OPENCV 640 480 500 501 320 240 0.1 0.01 0.001 0.002 0.003 0 0 0\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 1 3 a.png\n\n")
    rig = colmap.read(tmp_path)
    np.testing.assert_allclose(rig[0].distortion, [0.1, 0.01, 0.001, 0.002, 0.003])
    (tmp_path / "cameras.txt").write_text("3 FULL_OPENCV 640 480 500 501 320 240 0.1 0.01 0.001 0.002 0.003 0.1 0 0\n")
    with pytest.raises(FormatError, match="FULL_OPENCV"):
        colmap.read(tmp_path)


def test_names_with_spaces_need_a_binary_model(tmp_path):
    rig = _our_rig(np.random.default_rng(8))
    rig.cameras[2].name = "holiday photo 3.jpg"
    with pytest.raises(FormatError, match="space"):
        colmap.write_text(rig, tmp_path)
    assert not (tmp_path / "images.txt").exists()
    colmap.write_binary(rig, tmp_path)
    assert colmap.read(tmp_path)[2].name == "holiday photo 3.jpg"
    rec = pycolmap.Reconstruction(str(tmp_path))
    assert rec.find_image_with_name("holiday photo 3.jpg") is not None


def test_images_file_without_point_lines_or_with_blank_comments(tmp_path):
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 640 480 500 500 320 240\n")
    (tmp_path / "images.txt").write_text(
        "# hand-written: no 2D point lines\n"
        "1 1 0 0 0 0 0 1 1 a.png\n"
        "2 1 0 0 0 0 0 2 1 b.png\n"
        "3 1 0 0 0 0 0 3 1 c.png\n"
        "100.5 200.5 -1 10 20 7 1 2 3 4 5 6\n"
        "4 1 0 0 0 0 0 4 1 d.png\n"
    )
    rig = colmap.read(tmp_path)
    assert [c.name for c in rig] == ["a.png", "b.png", "c.png", "d.png"]
    np.testing.assert_allclose([c.t[2] for c in rig], [1, 2, 3, 4])
