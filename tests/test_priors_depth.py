"""Depth priors on synthetic scenes whose depth is known: textured planes seen by known cameras."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from engine.errors import Cancelled, FormatError, InputError, ModelError
from engine.events import CancelToken, Progress, Warning as WarningEvent
from engine.priors.depth import DepthMap, MonocularDepth, MultiViewDepth, dense_points
from engine.priors.fuse import confirmations, lift
from engine.priors.sparse import triangulate
from engine.priors.stereo import pair_depth
from engine.scene import Camera, SceneError


# ----------------------------------------------------------------------------- synthetic scene
def noise_texture(seed: int, size: int, sigma: float = 1.5) -> np.ndarray:
    """Blurred noise, about one texel per image pixel where it is used (finer would alias)."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), sigma)


class Plane:
    def __init__(self, centre, normal, half: float, texture: np.ndarray):
        self.centre = np.asarray(centre, float)
        self.normal = np.asarray(normal, float) / np.linalg.norm(normal)
        self.e1 = np.cross((0, 1.0, 0), self.normal)
        self.e1 /= np.linalg.norm(self.e1)
        self.e2 = np.cross(self.normal, self.e1)
        self.half = half
        self.texture = texture


def render(cam: Camera, planes, channel: str = "texture"):
    """Ray-traced image (uint8 RGB) and camera-space depth; ``channel`` picks the texture attribute."""
    h, w = cam.height, cam.width
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1) @ cam.R  # camera z = 1
    best = np.full((h, w), np.inf)
    image = np.zeros((h, w, 3), np.float32)
    for p in planes:
        with np.errstate(divide="ignore", invalid="ignore"):
            s = ((p.centre - cam.center) @ p.normal) / (rays @ p.normal)
        hit = cam.center + s[..., None] * rays
        a, b = (hit - p.centre) @ p.e1, (hit - p.centre) @ p.e2
        front = (s > 0) & (np.abs(a) < p.half) & (np.abs(b) < p.half) & (s < best)
        tex = getattr(p, channel)
        size = tex.shape[0]
        mx = ((a / (2 * p.half) + 0.5) * size - 0.5).astype(np.float32)
        my = ((b / (2 * p.half) + 0.5) * size - 0.5).astype(np.float32)
        colour = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        image[front] = colour[front]
        best[front] = s[front]
    depth = np.where(np.isfinite(best), best, 0).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), depth


def camera(eye, target, width=256, height=192, fov_deg=60.0, name=""):
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return Camera.look_at(eye, target, up=(0, -1, 0), fx=f, fy=f, cx=width / 2, cy=height / 2,
                          width=width, height=height, name=name)


class PlaneScene:
    """A textured back plane (one square patch of it flat grey) 4 units away and a small textured
    square 2.5 units away in front of it, seen by three cameras about 0.4 apart (disparities 20-40 px)."""

    def __init__(self):
        back = noise_texture(0, 512)
        flat = np.zeros_like(back)
        back[150:350, 300:500] = 128
        flat[150:350, 300:500] = 255
        front = noise_texture(1, 96)
        self.planes = [Plane((0, 0, 4), (0, 0, -1), 4, back), Plane((-0.4, 0.2, 2.5), (0, 0.2, -1), 0.5, front)]
        self.planes[0].flat = flat
        self.planes[1].flat = np.zeros_like(front)
        self.cameras = [camera((-0.4, 0, 0), (0, 0, 4), name="a"), camera((0.05, 0.1, 0), (0, 0, 4), name="b"),
                        camera((0.4, -0.05, 0.1), (0.1, 0, 4), name="c")]
        rendered = [render(c, self.planes) for c in self.cameras]
        self.images = [r[0] for r in rendered]
        self.depths = [r[1] for r in rendered]
        self.flat = [render(c, self.planes, "flat")[0][..., 0] > 127 for c in self.cameras]

    def truth(self, i: int) -> DepthMap:
        return DepthMap(self.depths[i], np.ones_like(self.depths[i]), self.cameras[i], "metric", "truth")

    def seen_elsewhere(self, i: int, others=None) -> np.ndarray:
        """Pixels of view i whose surface point one of ``others`` (default: every other view) sees:
        inside its image and not occluded there."""
        points = lift(self.truth(i), np.ones(self.depths[i].shape, bool))
        others = [j for j in range(len(self.cameras)) if j != i] if others is None else others
        seen = confirmations(points, [self.truth(j) for j in others]) > 0
        return seen.reshape(self.depths[i].shape)


@pytest.fixture(scope="module")
def scene():
    return PlaneScene()


@pytest.fixture(scope="module")
def sift_maps(scene):
    events = []
    prior = MultiViewDepth(features="sift")
    maps = prior.estimate(scene.cameras, scene.images, emit=events.append)
    return maps, events, prior


def relative_error(m: DepthMap, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.abs(m.depth[mask] / truth[mask] - 1)


# ----------------------------------------------------------------------------- stereo and multi-view
def test_rectified_pair_recovers_the_planes_depth(scene):
    est = pair_depth(scene.images[0], scene.cameras[0], scene.images[1], scene.cameras[1])
    confident = est.confidence > 0.5
    assert confident.mean() > 0.3  # textured and seen by both: about half the image
    err = relative_error(DepthMap(est.depth, est.confidence, scene.cameras[0], "metric", "t"), scene.depths[0], confident)
    # SGBM's 1/16-px steps plus its window's bias are ~0.1-0.2 px at 20-40 px disparity: 0.3-0.8 %.
    assert np.median(err) < 0.01
    assert np.mean(err > 0.05) < 0.03
    # Where view b cannot see what view a sees (behind the front square, or outside b's image) there
    # is nothing to match: the left-right check leaves next to no confidence.
    hidden = ~scene.seen_elsewhere(0, [1]) & ~scene.flat[0]
    shown = scene.seen_elsewhere(0, [1]) & ~scene.flat[0]
    assert hidden.sum() > 2000
    assert est.confidence[hidden].mean() < 0.1 * est.confidence[shown].mean()


def test_multiview_depth_matches_the_planes_and_knows_where_it_cannot(scene, sift_maps):
    maps, _, _ = sift_maps
    assert len(maps) == 3
    for i, m in enumerate(maps):
        assert m.kind == "metric" and "SGBM" in m.source and "SIFT" in m.source
        assert (m.camera.width, m.camera.height) == (256, 192)
        confident = m.confidence > 0.5
        truth = scene.depths[i]
        err = relative_error(m, truth, confident)
        assert np.median(err) < 0.01  # measured 0.27-0.40 %
        assert np.mean(err > 0.05) < 0.02  # measured 0.3-0.6 %
        measurable = scene.seen_elsewhere(i) & ~scene.flat[i]
        assert confident[measurable].mean() > 0.5
        # No texture: nothing to match, whatever SGBM's smoothness term filled in. (The patch's rim,
        # within a matching window of the texture around it, is measurable and left out.)
        inner_flat = cv2.erode(scene.flat[i].astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert inner_flat.sum() > 2000
        # measured: 0 but for under 1 % of the pixels (rim ones, the highest 0.12)
        assert np.mean(m.confidence[inner_flat] > 0) < 0.01
        assert not confident[inner_flat].any()


def test_multiview_reports_progress_per_view_and_pair(sift_maps):
    _, events, prior = sift_maps
    progress = [e for e in events if isinstance(e, Progress)]
    assert all(e.stage == "depth" for e in progress)
    messages = [e.message for e in progress]
    assert sum("stereo for view" in m for m in messages) == 3
    assert sum("matching pair" in m for m in messages) == 3
    assert progress[-1].done == progress[-1].total
    assert len(prior.sparse_points) > 20


def test_learned_matches_triangulate_onto_the_planes(scene):
    prior = MultiViewDepth(features="aliked", feature_long_edge=384, max_keypoints=256)
    maps = prior.estimate(scene.cameras[:2], scene.images[:2])
    points = prior.sparse_points
    assert len(points) > 50
    # every sparse point lies on one of the two planes (their depth in view a is known per pixel)
    m = DepthMap(scene.depths[0], np.ones_like(scene.depths[0]), scene.cameras[0], "metric", "truth")
    from engine.camera_projection import project_points

    pix, z = project_points(points.xyz, scene.cameras[0])
    truth = scene.depths[0][np.floor(pix[:, 1]).astype(int).clip(0, 191), np.floor(pix[:, 0]).astype(int).clip(0, 255)]
    err = np.abs(z / truth - 1)
    assert np.median(err) < 0.01 and np.mean(err > 0.05) < 0.05
    assert "ALIKED" in maps[0].source and m.camera is scene.cameras[0]


def test_missing_learned_weights_fall_back_to_sift_with_a_warning(scene, tmp_path):
    events = []
    maps = MultiViewDepth(features="aliked", weights_dir=tmp_path).estimate(
        scene.cameras[:2], scene.images[:2], emit=events.append)
    warnings = [e.message for e in events if isinstance(e, WarningEvent)]
    assert any("SIFT" in w and str(tmp_path) in w for w in warnings)
    assert "SIFT" in maps[0].source and (maps[0].confidence > 0.5).mean() > 0.2


def test_cancel_stops_between_views(scene):
    token = CancelToken()
    seen = []

    def emit(event):
        if isinstance(event, Progress):
            seen.append(event.message)
            if "stereo for view 1" in event.message:
                token.cancel()

    with pytest.raises(Cancelled):
        MultiViewDepth(features="sift").estimate(scene.cameras, scene.images, emit=emit, cancel=token)
    assert sum("stereo for view" in m for m in seen) == 1


def test_forward_motion_is_swept_instead_of_rectified(scene):
    ahead = camera((-0.4, 0, 0.8), (0, 0, 4), name="ahead")  # the epipole near the image centre
    image, truth_ahead = render(ahead, scene.planes)
    maps = MultiViewDepth(features="sift").estimate([scene.cameras[0], ahead], [scene.images[0], image])
    for m, truth in zip(maps, [scene.depths[0], truth_ahead]):
        assert "plane sweep" in m.source and "SGBM" not in m.source
        confident = m.confidence > 0.5
        assert confident.mean() > 0.2  # measured 0.33 and 0.50: nothing near the epipole (no parallax)
        err = relative_error(m, truth, confident)
        assert np.median(err) < 0.01  # measured 0.13-0.18 %: 64 planes refined by a parabola
        assert np.mean(err > 0.05) < 0.1  # measured 2.5-4 %: windows across the front square's edges


def test_views_without_common_matches_get_empty_maps_and_a_warning(scene):
    unrelated = render(scene.cameras[1], [Plane((0, 0, 4), (0, 0, -1), 4, noise_texture(7, 512))])[0]
    events = []
    maps = MultiViewDepth(features="sift").estimate(scene.cameras[:2], [scene.images[0], unrelated],
                                                    emit=events.append)
    assert all(not m.valid.any() for m in maps)
    warnings = [e.message for e in events if isinstance(e, WarningEvent)]
    assert len(warnings) == 2 and all("too few matches" in w for w in warnings)


def test_too_few_views_is_an_input_error(scene):
    with pytest.raises(InputError, match="two views"):
        MultiViewDepth(features="sift").estimate(scene.cameras[:1], scene.images[:1])


def test_triangulation_rejects_points_behind_and_off_the_rays(scene):
    a, b = scene.cameras[0], scene.cameras[1]
    world = np.array([[0.1, 0.2, 4.0], [-0.5, 0.1, 3.0], [0.3, -0.2, -2.0]])
    from engine.camera_projection import project_points

    uv_a, uv_b = project_points(world, a)[0], project_points(world, b)[0]
    uv_b_noisy = uv_b.copy()
    uv_b_noisy[1, 1] += 6.0  # off the epipolar line: no point reprojects within 1.5 px
    xyz, ok = triangulate(a, b, uv_a, uv_b_noisy)
    assert ok.tolist() == [True, False, False]
    assert np.abs(xyz[0] - world[0]).max() < 1e-6 * 4


# ----------------------------------------------------------------------------- dense points
def test_dense_points_land_on_the_planes(scene, sift_maps):
    maps, _, _ = sift_maps
    cloud = dense_points(maps, scene.images, max_points=5000, min_confidence=0.5)
    assert len(cloud) == 5000
    assert (cloud.track_length >= 2).all()
    # distance along view a's ray to the true surface there
    from engine.camera_projection import project_points

    pix, z = project_points(cloud.xyz, scene.cameras[0])
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < 256) & (pix[:, 1] >= 0) & (pix[:, 1] < 192)
    truth = scene.depths[0][np.floor(pix[inside, 1]).astype(int), np.floor(pix[inside, 0]).astype(int)]
    err = np.abs(z[inside] / truth - 1)
    assert inside.mean() > 0.5
    # a point in front of the front square's edge projects onto the back plane: allow a few percent
    assert np.median(err) < 0.01 and np.mean(err > 0.05) < 0.03
    # colours come from the photos: the mean of a noise texture is mid-grey, never black
    assert 0.3 < cloud.rgb.mean() < 0.7


def test_dense_points_without_overlap_keep_the_confident_points(scene, sift_maps):
    maps, _, _ = sift_maps
    cloud = dense_points(maps[:1], scene.images[:1], max_points=10**9, min_confidence=0.5)
    assert len(cloud) == int(((maps[0].confidence >= 0.5) & (maps[0].depth > 0)).sum())


def test_dense_points_refuse_relative_maps(scene):
    cam = scene.cameras[0]
    rel = DepthMap(np.ones((192, 256)), np.ones((192, 256)), cam, "relative", "mono")
    with pytest.raises(InputError, match="relative"):
        dense_points([rel], scene.images[:1], max_points=10, min_confidence=0.1)


# ----------------------------------------------------------------------------- the map and its file
def test_depth_map_round_trips_through_its_file(scene, tmp_path):
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 5, (192, 256)).astype(np.float32)
    depth[:10] = 0
    conf = rng.uniform(0, 1, (192, 256)).astype(np.float32)
    m = DepthMap(depth, conf, scene.cameras[1], "metric", "multi-view stereo")
    path = m.save(tmp_path / "depth" / "view_b.npz")
    assert [p.name for p in path.parent.iterdir()] == ["view_b.npz"]  # no temporary file left
    back = DepthMap.load(path)
    assert np.array_equal(back.depth, m.depth) and np.array_equal(back.confidence, m.confidence)
    assert (back.confidence[:10] == 0).all()  # unknown depth has no confidence
    assert back.kind == "metric" and back.source == "multi-view stereo" and back.camera.name == "b"
    assert back.quantity == "depth"
    assert np.allclose(back.camera.R, m.camera.R) and np.allclose(back.camera.K, m.camera.K)
    relative = DepthMap(depth, conf, scene.cameras[1], "relative", "a metric-trained monocular model", "depth")
    assert DepthMap.load(relative.save(tmp_path / "rel.npz")).quantity == "depth"


def test_depth_maps_say_whether_they_hold_depth_or_inverse_depth(scene, tmp_path):
    cam = scene.cameras[0]
    d = np.full((cam.height, cam.width), 2.0, np.float32)
    assert DepthMap(d, d, cam, "metric", "stereo").quantity == "depth"
    assert DepthMap(d, d, cam, "relative", "monocular").quantity == "inverse"  # what such models mostly give
    with pytest.raises(SceneError, match="not inverse depth"):
        DepthMap(d, d, cam, "metric", "stereo", "inverse")
    with pytest.raises(SceneError, match="quantity"):
        DepthMap(d, d, cam, "relative", "monocular", "disparity!")
    # a file written before the field (version 1) is read as its kind implied then
    path = DepthMap(d, d, cam, "relative", "monocular", "depth").save(tmp_path / "v1.npz")
    with np.load(path) as f:
        old = {k: f[k] for k in f.files if k != "quantity"}
    old["version"] = np.int32(1)
    np.savez(path, **old)
    assert DepthMap.load(path).quantity == "inverse"
    assert DepthMap(d, d, cam, "relative", "m", "depth").resized(cam.width // 2, cam.height // 2).quantity == "depth"


def test_a_corrupt_depth_file_is_a_format_error(tmp_path):
    bad = tmp_path / "view.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FormatError, match="view.npz"):
        DepthMap.load(bad)
    with pytest.raises(FormatError, match="does not exist"):
        DepthMap.load(tmp_path / "missing.npz")


def test_resizing_never_blends_depths_across_an_edge(scene):
    depth = np.zeros((192, 256), np.float32)
    depth[:, :101] = 2.0  # an object's edge between two pixels of the half-size map...
    depth[:, 101:201] = 4.0  # ...the wall behind it, then a hole
    m = DepthMap(depth, (depth > 0).astype(np.float32), scene.cameras[0], "metric", "t")
    for width, height in ((128, 96), (100, 75), (512, 384)):
        r = m.resized(width, height)
        assert set(np.unique(r.depth)) == {0.0, 2.0, 4.0} and r.depth.shape == (height, width)
        assert (r.confidence[r.depth == 0] == 0).all() and r.confidence.max() == 1.0
    half = m.resized(128, 96)
    assert half.camera.width == 128 and math.isclose(half.camera.fx, scene.cameras[0].fx / 2)
    assert math.isclose(half.confidence[0, 100], 0.5)  # half of what it covers is the hole


def test_a_map_that_does_not_fit_its_camera_is_refused(scene):
    from engine.scene import SceneError

    with pytest.raises(SceneError, match="do not match"):
        DepthMap(np.ones((10, 10)), np.ones((10, 10)), scene.cameras[0], "metric", "t")


# ----------------------------------------------------------------------------- monocular
def _tiny_depth_anything(folder):
    """A randomly initialised Depth Anything with tiny sizes, saved in the transformers layout."""
    import json

    import torch
    from transformers import AutoModelForDepthEstimation, DepthAnythingConfig, Dinov2Config

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    AutoModelForDepthEstimation.from_config(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 56, "width": 56}, "ensure_multiple_of": 14, "image_mean": [0.5, 0.5, 0.5],
         "image_std": [0.5, 0.5, 0.5]}))
    return folder


def test_monocular_depth_from_a_local_folder(scene, tmp_path):
    folder = _tiny_depth_anything(tmp_path / "tiny-da")
    prior = MonocularDepth(folder, long_edge=128)
    events = []
    maps = prior.estimate(scene.cameras[:2], scene.images[:2], emit=events.append)
    assert len(maps) == 2
    for m in maps:
        assert m.kind == "relative" and "depth_anything" in m.source
        assert m.quantity == "inverse"  # a relative Depth Anything predicts disparity
        assert m.depth.shape == (96, 128) and (m.camera.width, m.camera.height) == (128, 96)
        assert np.isfinite(m.depth).all() and (m.confidence == 1).all()
    # the model's output is a function of the photo: two different photos give two different maps
    assert not np.allclose(maps[0].depth, maps[1].depth)
    assert sum(isinstance(e, Progress) for e in events) == 3


def test_a_missing_or_broken_monocular_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as missing:
        MonocularDepth(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value) and "config.json" in str(missing.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        MonocularDepth(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "depth_anything"')  # truncated
    with pytest.raises(ModelError, match="cannot be loaded") as err:
        MonocularDepth(broken)
    assert "broken" in str(err.value)
    no_weights = tmp_path / "no-weights"
    _tiny_depth_anything(no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="cannot be loaded"):
        MonocularDepth(no_weights)


# ----------------------------------------------------------------------------- real photos
@pytest.mark.slow
def test_fern_three_views_agree_with_a_reference_triangulation(dataset, tmp_path):
    """llff_fern, the LLFF 3-view split at 252 px: the MVS depth against points that pycolmap
    triangulates (SIFT, the dataset's cameras) from the 3 views and 5 more."""
    from engine.priors.reference import dataset_names, depth_agreement, llff_split, load_views, reference_points

    folder = dataset("llff_fern")
    names = dataset_names(folder)
    train, held_out = llff_split(names, 3)
    reference = reference_points(folder, sorted(set(train) | set(held_out) | set(names[4::8])), tmp_path)
    cams, images = load_views(folder, train)
    prior = MultiViewDepth(long_edge=252)
    maps = prior.estimate(cams, images)
    print(f"\nfern 3 views at 252 px: {prior.seconds['total'] / 3:.1f} s per view ({prior.seconds})")
    for name, m in zip(train, maps):
        agreement = depth_agreement(m, reference[name])
        print(name, agreement)
        assert agreement.compared >= 100
        # 252 px: disparities of 4-32 px between these views, so SGBM's ~0.25 px is 1-6 %; measured
        # medians 1.0-1.5 %, 4-9 % of the points off by more than 5 %, 37-69 % of them covered
        assert agreement.median_relative_error < 0.03
        assert agreement.share_over_5pct < 0.2
        assert agreement.coverage > 0.25
    cloud = dense_points(maps, images, max_points=50_000, min_confidence=0.5)
    assert len(cloud) > 10_000


def test_a_monocular_models_config_says_whether_it_predicts_depth_or_disparity():
    from types import SimpleNamespace

    from engine.priors.monocular import predicted_quantity

    assert predicted_quantity(SimpleNamespace(model_type="depth_anything", depth_estimation_type="relative")) == "inverse"
    assert predicted_quantity(SimpleNamespace(model_type="depth_anything", depth_estimation_type="metric")) == "depth"
    assert predicted_quantity(SimpleNamespace(model_type="dpt")) == "inverse"
    assert predicted_quantity(SimpleNamespace(model_type="zoedepth")) == "depth"


def test_triangulated_points_lie_on_the_planes_with_their_colours(scene):
    from engine.camera_projection import project_points
    from engine.priors.multiview import triangulated_points
    from engine.stages.init import TRIANGULATED_FOR_RANGE

    steps = []
    # images at twice the cameras' size: the points are placed with the cameras and coloured by pixel scale
    big = [cv2.resize(im, (512, 384), interpolation=cv2.INTER_NEAREST) for im in scene.images]
    points, label = triangulated_points(scene.cameras, big, step=steps.append)
    assert label == "SIFT" and len(points) > TRIANGULATED_FOR_RANGE  # enough to bound the random fill's depths
    pix, z = project_points(points.xyz, scene.cameras[0])
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < 256) & (pix[:, 1] >= 0) & (pix[:, 1] < 192) & (z > 0)
    rows, cols = np.floor(pix[inside, 1]).astype(int), np.floor(pix[inside, 0]).astype(int)
    err = np.abs(z[inside] / scene.depths[0][rows, cols] - 1)
    assert inside.mean() > 0.5 and np.median(err) < 0.01 and np.mean(err > 0.05) < 0.05
    # each point has the photo's colour where it lies (the texture differs from pixel to pixel, so
    # colours read at the unscaled pixel of the big copies would not match)
    rgb = points.rgb[inside]
    photo = scene.images[0][rows, cols] / 255.0
    assert np.median(np.abs(rgb - photo).mean(1)) < 0.5 * np.median(np.abs(rgb - photo[::-1]).mean(1))
    assert sum("finding features" in s for s in steps) == 3 and sum("matching pair" in s for s in steps) == 3


def test_triangulated_points_fall_back_to_sift_when_the_learned_weights_are_missing(scene, tmp_path):
    from engine.priors.multiview import triangulated_points

    warnings = []
    points, label = triangulated_points(scene.cameras, scene.images, features="aliked", weights_dir=tmp_path,
                                        warn=warnings.append)
    assert label == "SIFT" and len(points) > 0
    assert len(warnings) == 1 and "SIFT" in warnings[0] and str(tmp_path) in warnings[0]


def test_triangulated_points_stop_on_cancel_and_need_two_views(scene):
    from engine.priors.multiview import triangulated_points

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        triangulated_points(scene.cameras, scene.images, cancel=token)
    points, label = triangulated_points(scene.cameras[:1], scene.images[:1])
    assert len(points) == 0 and label == "none"
