"""PlayCanvas compressed .ply: round trips within the per-chunk quantisation bounds, Morton order,
interoperability with gsply, old files without chunk colours, and bad files."""

from __future__ import annotations

import math

import gsply
import numpy as np
import pytest
import torch

from engine.errors import FormatError
from engine.io import compressed_ply as cp
from engine.scene import SH_C0, GaussianScene
from tests.factories import extreme_scene, random_scene

F32 = 1e-6  # float32 slack on stored chunk bounds and lerp
# rotation: three components as 10-bit unorm of q * sqrt(2)/2 + 0.5, each off by <= 0.5/1023 * sqrt(2);
# the rebuilt largest one (>= 1/2) moves by at most sqrt(3) times that; angle = 2 * |dq|.
_COMPONENT = 0.5 / 1023 * math.sqrt(2)
ROTATION_BOUND_DEG = math.degrees(2 * (math.sqrt(3) * _COMPONENT) * (1 + math.sqrt(3)))
ALPHA_BOUND = 0.5 / 255 + F32
SH_BOUND = 1 / 64 + F32  # bins of 8/256, read back at their centres (the two end bins at their ends)
SH_END_BOUND = 1 / 32 + F32


def chunk_ranges(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Per-splat (max - min) of its chunk of 256, as the writer sees them (values already sorted)."""
    n = len(values)
    out = np.empty_like(values)
    for start in range(0, n, cp.CHUNK_SIZE):
        block = values[start : start + cp.CHUNK_SIZE]
        lo, hi = block.min(0), block.max(0)
        if limit is not None:
            lo, hi = np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)
        out[start : start + cp.CHUNK_SIZE] = hi - lo
    return out


def assert_within_bounds(original: GaussianScene, decoded: GaussianScene) -> None:
    """``original`` in file order. Bounds: half a quantisation step of the chunk's range
    (11 bits for x and z, 10 for y; 8 for colour)."""
    steps = np.array([2047.0, 1023.0, 2047.0])
    pos_range = chunk_ranges(original.means.double().numpy())
    err = (decoded.means.double() - original.means.double()).abs().numpy()
    assert (err <= pos_range / steps / 2 + F32 * (1 + np.abs(original.means.numpy()))).all()

    log_scales = original.log_scales.double().numpy()
    scale_range = chunk_ranges(log_scales, limit=cp.SCALE_LIMIT)
    err = np.abs(decoded.log_scales.double().numpy() - np.clip(log_scales, -cp.SCALE_LIMIT, cp.SCALE_LIMIT))
    assert (err <= scale_range / steps / 2 + 1e-5).all()

    colour = 0.5 + SH_C0 * original.sh[:, 0].double().numpy()
    colour_err = np.abs(0.5 + SH_C0 * decoded.sh[:, 0].double().numpy() - colour)
    assert (colour_err <= chunk_ranges(colour) / 255 / 2 + F32).all()

    assert (decoded.opacities - original.opacities).abs().max() <= ALPHA_BOUND
    assert torch.rad2deg(_angle(original.quats, decoded.quats)).max() <= ROTATION_BOUND_DEG
    if original.sh_degree:
        rest = original.sh[:, 1:].clamp(-4, 4)
        err = (decoded.sh[:, 1:] - rest).abs()
        interior = rest.abs() < 4 - 1 / 32
        assert err[interior].max() <= SH_BOUND and err.max() <= SH_END_BOUND


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    qa = a.double() / a.double().norm(dim=1, keepdim=True)
    qb = b.double() / b.double().norm(dim=1, keepdim=True)
    return 2 * torch.acos((qa * qb).sum(1).abs().clamp(max=1))


def in_file_order(scene: GaussianScene) -> GaussianScene:
    return scene.subset(torch.as_tensor(cp.morton_order(scene.means.numpy())))


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_within_chunk_bounds(tmp_path, degree):
    scene = random_scene(1000, sh_degree=degree, seed=degree, extent=3.0)  # 4 chunks, the last partial
    path = tmp_path / "scene.compressed.ply"
    cp.write(scene, path)
    decoded = cp.read(path)
    assert len(decoded) == 1000 and decoded.sh_degree == degree
    assert_within_bounds(in_file_order(scene), decoded)


def test_header_matches_playcanvas_layout(tmp_path):
    path = tmp_path / "s.compressed.ply"
    cp.write(random_scene(300, sh_degree=1), path)
    data = path.read_bytes()
    header = data[: data.index(b"end_header\n")].decode().splitlines()
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element chunk 2" in header and "element vertex 300" in header and "element sh 300" in header
    props = [line.split()[1:] for line in header if line.startswith("property")]
    names = [name for _, name in props]
    assert names[:18] == list(cp.CHUNK_PROPERTIES + cp.CHUNK_COLOR_PROPERTIES)
    assert names[18:22] == list(cp.VERTEX_PROPERTIES)
    assert names[22:] == [f"f_rest_{i}" for i in range(9)]
    assert {t for t, _ in props[:18]} == {"float"} and {t for t, _ in props[18:22]} == {"uint"}
    assert {t for t, _ in props[22:]} == {"uchar"}
    body = len(data) - data.index(b"end_header\n") - len(b"end_header\n")
    assert body == 2 * 18 * 4 + 300 * 16 + 300 * 9


def test_morton_order_makes_compact_chunks():
    g = np.random.default_rng(0)
    means = g.uniform(-1, 1, size=(4096, 3))
    order = cp.morton_order(means)
    assert sorted(order.tolist()) == list(range(4096))

    def mean_chunk_diagonal(points):  # how far splats lie from the centre of their chunk
        blocks = points.reshape(-1, cp.CHUNK_SIZE, 3)
        return np.linalg.norm(blocks - blocks.mean(1, keepdims=True), axis=2).mean()

    # 16 chunks of 256 uniform points: a Morton chunk fills about a 16th of the cube
    assert mean_chunk_diagonal(means[order]) < 0.6 * mean_chunk_diagonal(means)
    # dense clusters (runs of > 256 equal top-level codes) are re-sorted inside their own bounds
    dense = np.concatenate([g.uniform(-1e-6, 1e-6, size=(2048, 3)), [[100.0, 100.0, 100.0]]])
    order = cp.morton_order(dense)
    assert mean_chunk_diagonal(dense[order][:2048]) < 0.6 * mean_chunk_diagonal(dense[:2048])
    # exponentially spaced points would peel off one per refinement: the depth is bounded
    peel = np.zeros((1500, 3))
    peel[:, 0] = 2.0 ** -np.arange(1500)
    assert sorted(cp.morton_order(peel).tolist()) == list(range(1500))


def test_gsply_reads_what_we_write(tmp_path):
    scene = random_scene(700, sh_degree=3, seed=4)
    path = tmp_path / "ours.compressed.ply"
    cp.write(scene, path)
    ours = cp.read(path)
    theirs = gsply.plyread(path)
    np.testing.assert_allclose(np.asarray(theirs.means), ours.means.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(theirs.scales), ours.log_scales.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(theirs.quats), ours.normalized_quats.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(theirs.sh0), ours.sh[:, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(theirs.shN), ours.sh[:, 1:].numpy(), atol=1e-6)
    interior = np.abs(np.asarray(theirs.opacities)) < 6  # alpha 0/255 is +-inf for gsply, clamped for us
    np.testing.assert_allclose(np.asarray(theirs.opacities)[interior], ours.opacity_logits.numpy()[interior], atol=1e-4)


def test_we_read_what_gsply_writes(tmp_path):
    scene = random_scene(600, sh_degree=2, seed=8)
    data = gsply.GSData(
        means=scene.means.numpy(),
        scales=scene.log_scales.numpy(),
        quats=scene.normalized_quats.numpy(),
        opacities=scene.opacity_logits.numpy(),
        sh0=scene.sh[:, 0].numpy(),
        shN=scene.sh[:, 1:].numpy(),
    )
    path = tmp_path / "theirs.compressed.ply"
    gsply.plywrite(path, data, compressed=True)
    decoded = cp.read(path)
    # gsply keeps the input order (no Morton sort), so compare splat by splat
    assert_within_bounds(scene, decoded)


def test_extreme_values_clamp_sanely(tmp_path):
    scene = extreme_scene()
    scene.sh[3, 1:] = torch.tensor([9.0, -9.0, 0.0])  # beyond the +-4 of the uchar SH
    scene.log_scales[3] = torch.tensor([25.0, -30.0, 0.0])  # beyond the +-20 of the chunk scale range
    path = tmp_path / "extreme.compressed.ply"
    cp.write(scene, path)
    got = cp.read(path)
    assert all(torch.isfinite(t).all() for t in got.tensors().values())
    ordered = in_file_order(scene)
    assert_within_bounds(ordered, got)
    row = int(torch.nonzero((ordered.log_scales[:, 0] == 25.0)).item())
    assert got.log_scales[row].tolist()[:2] == pytest.approx([20.0, -20.0])
    assert got.sh[row, 1:].tolist()[0] == [4.0, -4.0, 0.015625]
    extremes = ordered.opacity_logits.abs() == 20
    assert (got.opacity_logits[extremes].abs() > 5).all()
    assert torch.equal(got.opacity_logits[extremes].sign(), ordered.opacity_logits[extremes].sign())


def test_old_files_without_chunk_colours(tmp_path):
    """Files from before the per-chunk colour range keep the colour itself in packed_color."""
    chunk = np.array([(0, 0, 0, 2, 4, 6, -1, -2, -3, 1, 2, 3)], dtype=[(n, "<f4") for n in cp.CHUNK_PROPERTIES])
    vertex = np.zeros(1, dtype=[(n, "<u4") for n in cp.VERTEX_PROPERTIES])
    vertex["packed_position"] = (2047 << 21) | (0 << 11) | 1023  # x at max, y at min, z about half
    vertex["packed_scale"] = 0
    vertex["packed_color"] = (255 << 24) | (0 << 16) | (128 << 8) | 255
    vertex["packed_rotation"] = 0 << 30 | (511 << 20) | (511 << 10) | 511  # w largest, others ~0
    header = "\n".join(
        ["ply", "format binary_little_endian 1.0", "element chunk 1"]
        + [f"property float {n}" for n in cp.CHUNK_PROPERTIES]
        + ["element vertex 1"]
        + [f"property uint {n}" for n in cp.VERTEX_PROPERTIES]
        + ["end_header\n"]
    ).encode()
    path = tmp_path / "old.compressed.ply"
    path.write_bytes(header + chunk.tobytes() + vertex.tobytes())
    assert cp.sniff(path.read_bytes())
    got = cp.read(path)
    np.testing.assert_allclose(got.means[0].numpy(), [2.0, 0.0, 6 * 1023 / 2047], atol=1e-6)
    np.testing.assert_allclose(got.log_scales[0].numpy(), [-1, -2, -3], atol=1e-6)
    np.testing.assert_allclose(got.colors_dc[0].numpy(), [1.0, 0.0, 128 / 255], atol=1e-6)
    assert float(got.opacities[0]) == pytest.approx(254.5 / 255)
    assert float(_angle(got.quats[:1], torch.tensor([[1.0, 0, 0, 0]]))[0]) < math.radians(ROTATION_BOUND_DEG)


def test_empty_scene_round_trips(tmp_path):
    path = tmp_path / "empty.compressed.ply"
    cp.write(GaussianScene.empty(sh_degree=2), path)
    got = cp.read(path)
    assert len(got) == 0 and got.sh_degree == 2


def test_sniff(tmp_path):
    path = tmp_path / "s.compressed.ply"
    cp.write(random_scene(10, sh_degree=3), path)
    assert cp.sniff(path.read_bytes()[:4096])
    plain = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n"
    assert not cp.sniff(plain)
    assert not cp.sniff(b"NGSP")


# ---------------------------------------------------------------- bad input


def _read_bad(tmp_path, data: bytes, *fragments: str):
    path = tmp_path / "bad.compressed.ply"
    path.write_bytes(data)
    with pytest.raises(FormatError) as info:
        cp.read(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    path = tmp_path / "good.compressed.ply"
    cp.write(random_scene(600, sh_degree=1), path)
    good = path.read_bytes()
    _read_bad(tmp_path, b"", "empty")
    _read_bad(tmp_path, b"NGSP" + bytes(40), "not a PLY file")
    _read_bad(tmp_path, good[:-100], "truncated")
    _read_bad(tmp_path, good[:300], "truncated")
    _read_bad(tmp_path, good + b"\0" * 16, "more than its header declares")
    # counts that lie: fewer splats than the chunks hold, more splats than the chunks cover
    _read_bad(tmp_path, good.replace(b"element vertex 600", b"element vertex 500", 1), "3 chunks for 500 splats")
    _read_bad(tmp_path, good.replace(b"element vertex 600", b"element vertex 800", 1), "3 chunks for 800 splats")
    _read_bad(tmp_path, good.replace(b"element vertex 600", b"element vertex 599", 1))
    _read_bad(tmp_path, good.replace(b"binary_little_endian", b"ascii", 1), "ascii")
    _read_bad(tmp_path, good.replace(b"property uint packed_scale", b"property uint packed_scal3", 1), "packed_scale")
    plain = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n" + bytes(4)
    _read_bad(tmp_path, plain, "no 'chunk' element", "plain .ply")
    with pytest.raises(FormatError, match="not found"):
        cp.read(tmp_path / "missing.compressed.ply")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "out.compressed.ply"
    path.write_bytes(b"previous")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cp, "_pack_rotation", explode)
    with pytest.raises(RuntimeError):
        cp.write(random_scene(20), path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.compressed.ply"]
