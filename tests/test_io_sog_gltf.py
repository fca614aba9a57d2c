"""SOG and glTF (KHR_gaussian_splatting) exports, checked with implementations that are not ours:
PlayCanvas's splat-transform (npm, installed by scripts/setup.sh into .npm-tools/) and pygltflib."""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.compress import codec
from engine.io import detect_format, load_scene, save_scene
from engine.io import gltf, sog
from engine.render import render
from engine.scene import Camera, GaussianScene
from tests.factories import orbit_cameras, random_scene

ROOT = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = ROOT / ".npm-tools" / "node_modules" / ".bin" / "splat-transform"


def splat_transform():
    if shutil.which("node") is None:
        pytest.skip("node/npm is not installed: splat-transform interop needs it (scripts/setup.sh installs it)")
    if not SPLAT_TRANSFORM.exists():
        pytest.skip(f"splat-transform is not installed in {SPLAT_TRANSFORM.parent}: run scripts/setup.sh")
    return str(SPLAT_TRANSFORM)


@pytest.fixture
def exact_shapes(monkeypatch):
    """SOG written at the nearest step (no shape tolerance), for tests of the quantisation itself."""
    monkeypatch.setattr(sog, "SHAPE_TOLERANCE", 0.0)


def visible_scene(n, **kw):
    """A random scene whose every splat can reach a pixel (SOG leaves out the ones that cannot)."""
    scene = random_scene(n, **kw)
    scene.opacity_logits = scene.opacity_logits.clamp(min=-5.0)
    return scene


def _morton_sorted(scene):
    return scene.subset(torch.as_tensor(codec.morton_order(scene.means.numpy())))


def _log_step(scene):
    logm = np.sign(scene.means.numpy()) * np.log1p(np.abs(scene.means.numpy()))
    return (logm.max(0) - logm.min(0)) / 65535


def _assert_positions_within_sog_step(read, scene):
    # the position error of a 16-bit step in log space, mapped back: d|x| = (|x| + 1) d(log)
    ref = _morton_sorted(scene).means.numpy()
    bound = (np.abs(ref) + 1) * _log_step(scene) * 0.5 * 1.01 + 1e-6
    assert len(read) == len(scene)
    assert (np.abs(read.means.numpy() - ref) <= bound).all()


def test_sog_round_trips_within_its_quantisation(tmp_path, exact_shapes):
    scene = visible_scene(2000, sh_degree=2, extent=2.0)
    path = tmp_path / "scene.sog"
    save_scene(scene, path)
    assert detect_format(path) == "sog"
    back = load_scene(path)
    assert back.sh_degree == 2
    _assert_positions_within_sog_step(back, scene)
    ref = _morton_sorted(scene)
    dots = np.abs((back.quats.numpy() * ref.normalized_quats.numpy()).sum(1))
    assert dots.min() > 0.995  # 8-bit smallest-three
    alpha = np.abs((torch.sigmoid(back.opacity_logits) - torch.sigmoid(ref.opacity_logits)).numpy())
    assert alpha.max() <= 0.5 / 255 + 1e-4
    # 256-word codebooks for scales and DC: each value lands on its nearest word
    for got, want in ((back.log_scales.numpy(), ref.log_scales.numpy()), (back.sh[:, 0].numpy(), ref.sh[:, 0].numpy())):
        words = np.unique(got)
        assert len(words) <= 256
        nearest = np.abs(want.reshape(-1, 1) - words[None]).min(axis=1)
        assert np.allclose(np.abs(got - want).reshape(-1), nearest, atol=1e-6)


def test_sog_codebooks_are_an_even_grid_that_reaches_the_tails(tmp_path):
    scene = visible_scene(3000, sh_degree=0, extent=2.0)
    log_scales = scene.log_scales.clone()
    log_scales[:5] = 1.5  # a few large splats far out in the tail, which a fitted codebook left far from any word
    scene.log_scales = log_scales
    path = tmp_path / "scene.sog"
    save_scene(scene, path)
    back, ref = load_scene(path), _morton_sorted(scene)
    for key, got, want in (("scales", back.log_scales.numpy(), ref.log_scales.numpy()),
                           ("sh0", back.sh[:, 0].numpy(), ref.sh[:, 0].numpy())):
        step = (want.max() - want.min()) / (sog.GRID_LEVELS[key] - 1)
        on_grid = (np.unique(got).astype(np.float64) - want.min()) / step
        assert np.abs(on_grid - np.round(on_grid)).max() < 1e-3  # 6-digit rounding moves a word by < 1e-5
        assert np.abs(got - want).max() <= step / 2 * 1.001


def test_sog_folder_layout_writes_meta_json_last(tmp_path):
    meta = tmp_path / "out" / "meta.json"
    save_scene(visible_scene(300, sh_degree=0), meta, format="sog")
    names = sorted(p.name for p in meta.parent.iterdir())
    assert names == ["means_l.webp", "means_u.webp", "meta.json", "quats.webp", "scales.webp", "sh0.webp"]
    assert len(load_scene(meta)) == 300


def test_splat_transform_reads_our_sog_and_our_ply(tmp_path, exact_shapes):
    tool = splat_transform()
    scene = visible_scene(1500, sh_degree=3, extent=2.0)
    ours_sog, ours_ply = tmp_path / "ours.sog", tmp_path / "ours.ply"
    save_scene(scene, ours_sog)
    save_scene(scene, ours_ply)
    for src, dst in ((ours_sog, tmp_path / "from_sog.ply"), (ours_ply, tmp_path / "from_ply.ply")):
        run = subprocess.run([tool, "-w", str(src), str(dst)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
    from_sog = load_scene(tmp_path / "from_sog.ply")
    assert from_sog.sh_degree == 3
    _assert_positions_within_sog_step(from_sog, scene)
    mine = load_scene(ours_sog)  # the same decoding as splat-transform's, value for value
    assert np.abs(from_sog.sh.numpy() - mine.sh.numpy()).max() < 1e-5
    from_ply = load_scene(tmp_path / "from_ply.ply")
    assert len(from_ply) == len(scene)
    assert np.array_equal(from_ply.means.numpy(), scene.means.numpy())


def test_gltf_round_trip_and_pygltflib_reads_it(tmp_path):
    pygltflib = pytest.importorskip("pygltflib", reason="pygltflib is a dev dependency")
    scene = random_scene(400, sh_degree=3)
    for name in ("scene.glb", "scene.gltf"):
        path = tmp_path / name
        save_scene(scene, path)
        assert detect_format(path) == "gltf"
        back = load_scene(path)
        assert np.abs(back.means.numpy() - scene.means.numpy()).max() < 1e-6
        assert np.abs(back.sh.numpy() - scene.sh.numpy()).max() < 1e-6
        dots = np.abs((back.quats.numpy() * scene.normalized_quats.numpy()).sum(1))
        assert dots.min() > 1 - 1e-6
    doc = pygltflib.GLTF2().load(str(tmp_path / "scene.glb"))
    prim = doc.meshes[0].primitives[0]
    assert doc.extensionsUsed == ["KHR_gaussian_splatting"] and prim.mode == pygltflib.POINTS
    accessor = doc.accessors[prim.attributes.POSITION]
    assert accessor.count == 400 and accessor.type == "VEC3"
    blob = doc.binary_blob()
    view = doc.bufferViews[accessor.bufferView]
    pos = np.frombuffer(blob, "<f4", 400 * 3, view.byteOffset).reshape(400, 3)
    assert np.allclose(pos, scene.means.numpy() * [-1, -1, 1])  # Y-up: turned 180 degrees about z


def test_gltf_turn_keeps_the_rendered_image(tmp_path):
    """The scene as stored (turned about z, SH signs flipped) seen by the turned camera renders the
    same image: positions, rotations and every SH band are turned consistently."""
    scene = random_scene(150, sh_degree=3, extent=0.6)
    cam = orbit_cameras(1, width=40, image_height=30)[0]
    raw = gltf.encode(scene)
    path = tmp_path / "s.glb"
    path.write_bytes(raw)
    stored = load_scene(path)
    stored.means = stored.means * torch.tensor([-1.0, -1.0, 1.0])  # undo only the reader's position turn
    stored.quats = torch.as_tensor(gltf._turn_quats(stored.quats.double().numpy()), dtype=torch.float32)
    stored.sh[:, 1:] *= torch.as_tensor(gltf._SH_REST_TURN, dtype=torch.float32)[:, None]
    turn = np.diag([-1.0, -1.0, 1.0])
    turned_cam = Camera(R=cam.R @ turn, t=cam.t, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy,
                        width=cam.width, height=cam.height)
    a = render(scene, cam, background=(0, 0, 0), backend="reference").rgb
    b = render(stored, turned_cam, background=(0, 0, 0), backend="reference").rgb
    assert (a - b).abs().max() < 1e-4
    assert a.abs().max() > 0.1  # the view is not empty


def test_sog_leaves_out_sh_bands_that_add_less_than_the_tolerance(tmp_path):
    scene = visible_scene(1200, sh_degree=3, extent=2.0)
    sh = scene.sh.clone()
    sh[:, 9:] = 0.0  # band 3 carries nothing anywhere: the file stores two bands
    sh[:600, 1:] *= 1e-4  # half the splats: view-independent within the tolerance
    scene.sh = sh
    meta, _ = sog.encode(scene)
    assert meta["shN"]["bands"] == 2
    path = tmp_path / "s.sog"
    save_scene(scene, path)
    back, ref = load_scene(path), _morton_sorted(scene)
    assert back.sh_degree == 2
    quiet = (ref.sh[:, 1:9].double().pow(2).sum((1, 2)) / 3).sqrt() / math.sqrt(4 * math.pi) <= sog.SH_TOLERANCE
    assert quiet.sum() >= 600
    assert (back.sh[quiet, 1:] == 0).all()  # palette entry 0: all zeros
    assert (back.sh[~quiet, 1:].abs().sum((1, 2)) > 0).all()


def test_sog_coarser_codebook_grids_keep_half_a_step(tmp_path, monkeypatch):
    monkeypatch.setitem(sog.GRID_LEVELS, "scales", 64)
    scene = visible_scene(800, sh_degree=0, extent=2.0)
    path = tmp_path / "s.sog"
    save_scene(scene, path)
    back, ref = load_scene(path), _morton_sorted(scene)
    want = ref.log_scales.numpy()
    step = (want.max() - want.min()) / 63
    assert len(np.unique(back.log_scales.numpy())) <= 64
    assert np.abs(back.log_scales.numpy() - want).max() <= step / 2 * 1.001


def test_sog_leaves_out_splats_that_reach_no_pixel(tmp_path, exact_shapes):
    scene = visible_scene(1000, sh_degree=0, extent=2.0)
    logits = scene.opacity_logits.clone()
    logits[::10] = -8.0  # opacity 3e-4: below 1/255 everywhere, so no renderer draws it
    scene.opacity_logits = logits
    path = tmp_path / "s.sog"
    save_scene(scene, path)
    back = load_scene(path)
    assert len(back) == 900
    _assert_positions_within_sog_step(back, scene.subset(torch.sigmoid(logits) >= 1 / 255))


def _surface_scene(n=4000, seed=5):
    """Overlapping flat splats on a wavy sheet, turned at random within it, and round blobs among them."""
    g = np.random.default_rng(seed)
    xy = g.uniform(-1, 1, size=(n, 2))
    means = np.column_stack([xy, 0.05 * np.sin(3 * xy[:, 0])])
    half = g.uniform(0, np.pi, n) / 2
    quats = np.column_stack([np.cos(half), np.zeros(n), np.zeros(n), np.sin(half)])  # about z
    log_scales = np.column_stack([np.log(g.uniform(0.01, 0.04, n)), np.log(g.uniform(0.01, 0.04, n)),
                                  np.full(n, np.log(0.002))])
    log_scales[::2] = np.log(0.02) + g.uniform(0, 0.05, size=(n // 2, 3))  # blobs: their turn hardly shows
    quats[::2] = g.normal(size=(n // 2, 4))
    return GaussianScene.from_numpy(means, quats, log_scales, np.full(n, 2.0), g.normal(scale=0.3, size=(n, 1, 3)))


def test_sog_shape_tolerance_moves_each_splat_within_its_own_size_and_saves_bytes():
    from engine.scene import quat_to_rotmat

    scene, tolerance = _surface_scene(), 0.5
    exact_meta, exact = sog.encode(scene, shape_tolerance=0.0)
    loose_meta, loose = sog.encode(scene, shape_tolerance=tolerance)
    positions = lambda files: len(files["means_l.webp"]) + len(files["means_u.webp"])  # noqa: E731
    assert positions(loose) < 0.96 * positions(exact)  # measured 0.93
    assert len(loose["quats.webp"]) < 0.96 * len(exact["quats.webp"])

    def read(meta, files, name):
        folder = Path(tempfile.mkdtemp()) / name
        sog.write_bundle(meta, files, folder)
        return load_scene(folder)

    got, ref = read(loose_meta, loose, "loose.sog"), _morton_sorted(scene)
    sigma = np.exp(ref.log_scales.numpy().astype(np.float64))
    rot = quat_to_rotmat(ref.normalized_quats.numpy())
    inverse = np.einsum("nij,nj,nkj->nik", rot, 1 / sigma**2, rot)
    delta = got.means.numpy().astype(np.float64) - ref.means.numpy()
    mahalanobis = np.sqrt(np.einsum("ni,nij,nj->n", delta, inverse, delta))
    half_step = 0.5 * (np.abs(ref.means.numpy()) + 1) * _log_step(scene)
    rounding = (half_step * np.sqrt(np.einsum("nii->ni", inverse))).sum(axis=1)
    assert (mahalanobis <= tolerance + rounding * 1.01 + 1e-6).all()
    assert mahalanobis.max() > 0.5 * tolerance  # the slack is used
    dots = np.clip(np.abs((got.normalized_quats.numpy() * ref.normalized_quats.numpy()).sum(1)), 0, 1)
    angle = 2 * np.arccos(dots)
    allowed = tolerance * sigma.min(1) / (sigma.max(1) - sigma.min(1))
    assert (angle <= allowed + 4 * math.sqrt(3) * 0.5 * math.sqrt(2) / 255 * 1.05 + 1e-6).all()
