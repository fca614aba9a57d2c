"""Niantic .spz: round trips within the quantisation bounds, axis convention, versions 2-4,
interoperability with gsply, and bad files."""

from __future__ import annotations

import gzip
import math
import struct

import gsply
import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics

from engine.errors import FormatError, InputError
from engine.io import spz
from engine.scene import GaussianScene, quat_to_rotmat
from tests.factories import extreme_scene, random_scene

# ---------------------------------------------------------------- bounds from the quantisation
POSITION_STEP = 2.0**-12  # 12 fractional bits
POSITION_BOUND = POSITION_STEP / 2 + 1e-6  # rounding to the nearest step, float32 slack
LOG_SCALE_BOUND = 1 / 32 + 1e-6  # u8 = (log s + 10) * 16, rounded
ALPHA_BOUND = 0.5 / 255 + 1e-6  # u8 = sigmoid * 255, rounded
DC_BOUND = 0.5 / (0.15 * 255) + 1e-6  # u8 = dc * 0.15 * 255 + 127.5, rounded
SH1_BOUND = (0.5 + 4) / 128 + 1e-6  # round to 1/128, then to the centre of an 8-wide bucket (5 bits)
SH_REST_BOUND = (0.5 + 8) / 128 + 1e-6  # 16-wide buckets (4 bits)
# v3+: three components of 9-bit magnitude scaled by 1/sqrt(2): each off by <= 0.5/511/sqrt(2);
# the rebuilt largest one (>= 1/2) moves by at most sqrt(3) times that; angle = 2 * |dq|.
_COMPONENT = 0.5 / 511 * math.sqrt(0.5)
ROTATION_BOUND_DEG = math.degrees(2 * (math.sqrt(3) * _COMPONENT) * (1 + math.sqrt(3)))
# v2: x, y, z as u8 (step 1/127.5, error <= 0.5/127.5 each); w rebuilt. For w >= 0.5 the error
# in w is at most |xyz| * |dxyz| / w <= sqrt(3) * 0.5/127.5 * 0.866 / 0.5.
_V2_XYZ = math.sqrt(3) * 0.5 / 127.5
V2_ROTATION_BOUND_DEG = math.degrees(2 * math.hypot(_V2_XYZ, _V2_XYZ * 0.866 / 0.5))
FLIP = np.array([1.0, -1.0, -1.0])


def clamp_sh_rest_as_stored(sh_rest: torch.Tensor) -> torch.Tensor:
    """SH bands 1+ clamped to [-1, 127/128] in the file's RUB axes (some coefficients change sign)."""
    flip = torch.as_tensor(spz._SH_REST_FLIP[: sh_rest.shape[1], None], dtype=sh_rest.dtype)
    return (sh_rest * flip).clamp(-1, 127 / 128) * flip


def rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    qa = a.double() / a.double().norm(dim=1, keepdim=True)
    qb = b.double() / b.double().norm(dim=1, keepdim=True)
    return torch.rad2deg(2 * torch.acos((qa * qb).sum(1).abs().clamp(max=1)))


def assert_within_bounds(original: GaussianScene, decoded: GaussianScene, version: int) -> None:
    assert len(decoded) == len(original)
    assert decoded.sh_degree == original.sh_degree
    assert (decoded.means - original.means).abs().max() <= POSITION_BOUND
    assert (decoded.log_scales - original.log_scales).abs().max() <= LOG_SCALE_BOUND
    assert (decoded.opacities - original.opacities).abs().max() <= ALPHA_BOUND
    assert (decoded.sh[:, 0] - original.sh[:, 0]).abs().max() <= DC_BOUND
    if original.sh_degree:
        # the format holds [-1, 127/128] (in RUB); compare with the clamped original
        clamped = clamp_sh_rest_as_stored(original.sh[:, 1:])
        assert (decoded.sh[:, 1:4] - clamped[:, :3]).abs().max() <= SH1_BOUND
        if original.sh_degree > 1:
            assert (decoded.sh[:, 4:] - clamped[:, 3:]).abs().max() <= SH_REST_BOUND
    angles = rotation_error_deg(original.quats, decoded.quats)
    if version >= 3:
        assert angles.max() <= ROTATION_BOUND_DEG
    else:
        w = (original.quats[:, 0] / original.quats.norm(dim=1)).abs()
        assert angles[w >= 0.5].max() <= V2_ROTATION_BOUND_DEG


@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip_within_quantisation_bounds(tmp_path, version, degree):
    scene = random_scene(600, sh_degree=degree, seed=version * 10 + degree)
    path = tmp_path / "scene.spz"
    spz.write(scene, path, version=version)
    info = spz.read_info(path)
    assert (info.version, info.num_points, info.sh_degree, info.fractional_bits) == (version, 600, degree, 12)
    assert_within_bounds(scene, spz.read(path), version)


def test_exact_bytes_of_one_known_splat(tmp_path):
    scene = GaussianScene.from_numpy(
        means=[[1.0, 2.0, -0.5]],
        quats=[[1.0, 0.0, 0.0, 0.0]],
        log_scales=[[0.0, -10.0, 5.9375]],
        opacity_logits=[0.0],
        sh=np.array([[[0.0, 1.0, -1.0]]]),
    )
    path = tmp_path / "one.spz"
    spz.write(scene, path, version=3)
    raw = gzip.decompress(path.read_bytes())
    assert struct.unpack_from("<IIIBBBB", raw) == (0x5053474E, 3, 1, 0, 12, 0, 0)
    body = raw[16:]
    # RDF (1, 2, -0.5) is RUB (1, -2, 0.5): 4096, -8192, 2048 as 24-bit little-endian
    assert body[0:9] == bytes([0x00, 0x10, 0x00, 0x00, 0xE0, 0xFF, 0x00, 0x08, 0x00])
    assert body[9] == 128  # sigmoid(0) * 255 = 127.5 rounds to even
    assert list(body[10:13]) == [128, 166, 89]  # 127.5 + {0, 38.25, -38.25}
    assert list(body[13:16]) == [160, 0, 255]  # (log s + 10) * 16
    # identity: w (index 3) is the largest, the others zero
    assert struct.unpack_from("<I", body, 16)[0] == 3 << 30


def test_axes_are_rub_in_the_file(tmp_path):
    """Another SPZ tool (gsply, which converts nothing) sees y and z flipped, the same rotation
    turned about x, and SH that give the same colour in the turned direction."""
    scene = random_scene(300, sh_degree=3, seed=5)
    path = tmp_path / "axes.spz"
    spz.write(scene, path)
    ours = spz.read(path)
    theirs = gsply.read_spz(path)
    np.testing.assert_allclose(np.asarray(theirs.means) * FLIP, ours.means.numpy(), atol=1e-6)

    rot_ours = quat_to_rotmat(ours.quats.double().numpy())
    rot_theirs = quat_to_rotmat(np.asarray(theirs.quats, dtype=np.float64))
    turn = np.diag(FLIP)
    np.testing.assert_allclose(turn @ rot_ours @ turn, rot_theirs, atol=1e-5)

    dirs = torch.nn.functional.normalize(torch.randn(len(ours), 3, dtype=torch.float64), dim=1)
    sh_theirs = np.concatenate([np.asarray(theirs.sh0)[:, None], np.asarray(theirs.shN)], axis=1)
    colour_ours = _spherical_harmonics(3, dirs, ours.sh.double())
    colour_theirs = _spherical_harmonics(3, dirs * torch.as_tensor(FLIP), torch.as_tensor(sh_theirs).double())
    torch.testing.assert_close(colour_ours, colour_theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("version", [3, 4])
def test_gsply_writes_what_we_read(tmp_path, version):
    scene = random_scene(400, sh_degree=2, seed=version)
    data = gsply.GSData(
        means=scene.means.numpy() * FLIP.astype(np.float32),
        scales=scene.log_scales.numpy(),
        quats=(scene.normalized_quats * torch.tensor([1.0, 1.0, -1.0, -1.0])).numpy(),
        opacities=scene.opacity_logits.numpy(),
        sh0=scene.sh[:, 0].numpy(),
        shN=(scene.sh[:, 1:] * torch.as_tensor(spz._SH_REST_FLIP[:8, None], dtype=torch.float32)).numpy(),
    )
    path = tmp_path / "gsply.spz"
    gsply.write_spz(path, data, version=version)
    decoded = spz.read(path)
    # gsply rounds SH without buckets (error <= 0.5/128), all else as we do
    assert (decoded.means - scene.means).abs().max() <= POSITION_BOUND
    assert (decoded.log_scales - scene.log_scales).abs().max() <= LOG_SCALE_BOUND
    assert (decoded.opacities - scene.opacities).abs().max() <= ALPHA_BOUND
    assert (decoded.sh[:, 0] - scene.sh[:, 0]).abs().max() <= DC_BOUND
    assert (decoded.sh[:, 1:] - clamp_sh_rest_as_stored(scene.sh[:, 1:])).abs().max() <= 0.5 / 128 + 1e-6
    assert rotation_error_deg(scene.quats, decoded.quats).max() <= ROTATION_BOUND_DEG


def test_gsply_reads_what_we_write_in_every_version_it_knows(tmp_path):
    scene = random_scene(200, sh_degree=1, seed=3)
    for version in (3, 4):
        path = tmp_path / f"v{version}.spz"
        spz.write(scene, path, version=version)
        theirs = gsply.read_spz(path)
        ours = spz.read(path)
        np.testing.assert_allclose(np.asarray(theirs.means) * FLIP, ours.means.numpy(), atol=1e-6)
        np.testing.assert_allclose(np.asarray(theirs.scales), ours.log_scales.numpy(), atol=1e-6)
        np.testing.assert_allclose(np.asarray(theirs.sh0), ours.sh[:, 0].numpy(), atol=1e-5)


def test_extreme_values_clamp_instead_of_wrapping(tmp_path):
    scene = extreme_scene()
    path = tmp_path / "extreme.spz"
    spz.write(scene, path)
    got = spz.read(path)
    assert all(torch.isfinite(t).all() for t in got.tensors().values())
    # RDF (1e4, -1e4, 5e3) is RUB (1e4, 1e4, -5e3), beyond the 24-bit range [-2048, 2048 - 2^-12]:
    # each coordinate sticks to the edge on its own side
    top = ((1 << 23) - 1) / 4096
    torch.testing.assert_close(got.means[1], torch.tensor([top, -top, 2048.0]))
    assert (got.means[[0, 2, 3]] - scene.means[[0, 2, 3]]).abs().max() <= POSITION_BOUND
    assert got.log_scales.min() >= -10 and got.log_scales.max() <= 255 / 16 - 10
    assert got.log_scales[0].tolist() == [-10.0, -10.0, -10.0] and got.log_scales[1].tolist() == [5.0, 5.0, 5.0]
    assert got.opacity_logits[0] < -5 and got.opacity_logits[1] > 5  # sigmoid 0 and 1 stay finite
    # SH +1 and -1 land exactly on the ends of [-1, 127/128] (on the side each lands in RUB)
    torch.testing.assert_close(got.sh[1:3, 1:], clamp_sh_rest_as_stored(scene.sh[1:3, 1:]), atol=1e-7, rtol=0)
    assert rotation_error_deg(scene.quats, got.quats).max() <= ROTATION_BOUND_DEG


def test_v4_layout_streams_and_flags(tmp_path):
    for degree, streams in ((0, 5), (2, 6)):
        path = tmp_path / f"d{degree}.spz"
        spz.write(random_scene(50, sh_degree=degree), path, antialiased=True)
        data = path.read_bytes()
        magic, version, n, deg, frac, flags, num_streams, toc = struct.unpack_from("<IIIBBBBI", data)
        fields = (magic, version, n, deg, frac, flags, num_streams, toc)
        assert fields == (0x5053474E, 4, 50, degree, 12, 1, streams, 32)
        assert data[20:32] == bytes(12)
        toc_entries = [struct.unpack_from("<QQ", data, 32 + 16 * i) for i in range(streams)]
        assert [u for _, u in toc_entries][:5] == [450, 50, 150, 150, 200]
        assert 32 + 16 * streams + sum(c for c, _ in toc_entries) == len(data)
        assert spz.read_info(path).antialiased


def test_empty_scene_round_trips(tmp_path):
    for version in (3, 4):
        path = tmp_path / f"empty{version}.spz"
        spz.write(GaussianScene.empty(sh_degree=1), path, version=version)
        got = spz.read(path)
        assert len(got) == 0 and got.sh_degree == 1


def test_sniff(tmp_path):
    for version in (2, 3, 4):
        path = tmp_path / f"v{version}.spz"
        spz.write(random_scene(10), path, version=version)
        assert spz.sniff(path.read_bytes()[:4096])
    assert not spz.sniff(b"ply\nformat binary_little_endian 1.0\n")
    assert not spz.sniff(gzip.compress(b"not a splat file"))
    assert not spz.sniff(b"")


# ---------------------------------------------------------------- bad input


def _v3_bytes(scene, header_patch=None) -> bytes:
    import io

    buf = io.BytesIO()
    raw = bytearray(gzip.decompress(_written(scene, 3)))
    if header_patch:
        header_patch(raw)
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(bytes(raw))
    return buf.getvalue()


def _written(scene, version) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.spz"
        spz.write(scene, path, version=version)
        return path.read_bytes()


def _read_bad(tmp_path, data: bytes, *fragments: str) -> FormatError:
    path = tmp_path / "bad.spz"
    path.write_bytes(data)
    with pytest.raises(FormatError) as info:
        spz.read(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_bad_files_name_the_file_and_the_problem(tmp_path):
    scene = random_scene(40, sh_degree=1)
    v4 = _written(scene, 4)
    _read_bad(tmp_path, b"", "empty")
    _read_bad(tmp_path, b"PK\x03\x04 something else", "not an .spz file")
    _read_bad(tmp_path, gzip.compress(b"XXXX" + bytes(40)), "magic")
    _read_bad(tmp_path, b"NGSP" + struct.pack("<I", 5) + v4[8:], "version 5")
    _read_bad(tmp_path, _v3_bytes(scene, lambda r: r.__setitem__(slice(4, 8), struct.pack("<I", 1))), "version 1")
    _read_bad(tmp_path, v4[:20], "truncated")
    _read_bad(tmp_path, v4[:-7], "truncated")
    _read_bad(tmp_path, _written(scene, 3)[:-30], "truncated")
    # counts that lie, both ways, in both containers
    _read_bad(tmp_path, v4[:8] + struct.pack("<I", 41) + v4[12:], "41 splats")
    _read_bad(tmp_path, v4[:8] + struct.pack("<I", 39) + v4[12:], "39 splats")
    _read_bad(tmp_path, _v3_bytes(scene, lambda r: r.__setitem__(slice(8, 12), struct.pack("<I", 41))), "41 splats")
    _read_bad(tmp_path, _v3_bytes(scene, lambda r: r.__setitem__(slice(8, 12), struct.pack("<I", 39))), "39 splats")
    _read_bad(tmp_path, v4[:15] + bytes([3]) + v4[16:], "streams")
    bad_frame = bytearray(v4)
    bad_frame[32 + 16 * 6 : 32 + 16 * 6 + 4] = b"ZZZZ"  # the first stream's zstd magic
    _read_bad(tmp_path, bytes(bad_frame), "corrupt positions stream")
    bad_data = bytearray(v4)
    bad_data[-12:-8] = bytes(4)  # inside the last (SH) stream; our frames carry a checksum
    _read_bad(tmp_path, bytes(bad_data), "corrupt sh stream")
    _read_bad(tmp_path, v4 + b"extra", "unexpected bytes")
    with pytest.raises(FormatError, match="not found"):
        spz.read(tmp_path / "missing.spz")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "out.spz"
    path.write_bytes(b"previous")

    class Boom(RuntimeError):
        pass

    def explode(*args, **kwargs):
        raise Boom("disk full")

    monkeypatch.setattr(spz, "zstd_compress", explode)
    with pytest.raises(Boom):
        spz.write(random_scene(20), path)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.spz"]


def test_bad_options_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="version 1"):
        spz.write(random_scene(5), tmp_path / "x.spz", version=1)
    with pytest.raises(InputError, match="sh1_bits"):
        spz.write(random_scene(5), tmp_path / "x.spz", sh1_bits=9)
    assert not (tmp_path / "x.spz").exists()


def test_degree_4_files_keep_bands_0_to_3(tmp_path):
    """The format allows SH degree 4; the engine keeps degree 3 and drops band 4 on reading."""
    scene = random_scene(30, sh_degree=3, seed=2)
    raw = bytearray(gzip.decompress(_written(scene, 3)))
    n = 30
    head, body = raw[:16], raw[16:]
    fixed = 9 * n + n + 3 * n + 3 * n + 4 * n
    sh3 = np.frombuffer(bytes(body[fixed:]), dtype=np.uint8).reshape(n, 15, 3)
    band4 = np.random.default_rng(0).integers(0, 256, size=(n, 9, 3), dtype=np.uint8)
    head[12] = 4
    path = tmp_path / "degree4.spz"
    path.write_bytes(gzip.compress(bytes(head) + bytes(body[:fixed]) + np.concatenate([sh3, band4], 1).tobytes()))
    assert spz.read_info(path).sh_degree == 4
    got = spz.read(path)
    reference = tmp_path / "degree3.spz"
    spz.write(scene, reference, version=3)
    expected = spz.read(reference)
    assert got.sh_degree == 3
    torch.testing.assert_close(got.sh, expected.sh, atol=0, rtol=0)
    torch.testing.assert_close(got.means, expected.means, atol=0, rtol=0)
