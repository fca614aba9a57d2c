"""3DGS .ply: exact round trips, cross-checks with plyfile and gsply, and every kind of bad file.

Tolerance: .ply stores float32, so scenes (float32 tensors) round-trip bit for bit.
"""

from __future__ import annotations

import math

import gsply
import numpy as np
import plyfile
import pytest
import torch

from engine.errors import FormatError
from engine.io import load_scene, ply, save_scene
from engine.scene import GaussianScene
from tests.factories import assert_scenes_close, extreme_scene, random_scene


def _vertex_array(scene: GaussianScene, dtype="f4", normals=True, extra=None, order=None):
    """A plyfile-ready structured array built independently of engine.io.ply (from the spec)."""
    n, k = len(scene), scene.sh.shape[1]
    s = {name: t.numpy().astype(np.float64) for name, t in scene.tensors().items()}
    cols = {"x": s["means"][:, 0], "y": s["means"][:, 1], "z": s["means"][:, 2]}
    if normals:
        cols.update(nx=np.zeros(n), ny=np.zeros(n), nz=np.zeros(n))
    for c in range(3):
        cols[f"f_dc_{c}"] = s["sh"][:, 0, c]
    for c in range(3):
        for j in range(k - 1):
            cols[f"f_rest_{c * (k - 1) + j}"] = s["sh"][:, 1 + j, c]
    cols["opacity"] = s["opacity_logits"]
    for i in range(3):
        cols[f"scale_{i}"] = s["log_scales"][:, i]
    for i in range(4):
        cols[f"rot_{i}"] = s["quats"][:, i]
    cols.update(extra or {})
    names = order or list(cols)
    arr = np.empty(n, dtype=[(name, cols[name].dtype if name in (extra or {}) else dtype) for name in names])
    for name in names:
        arr[name] = cols[name]
    return arr


def _write_plyfile(path, arr, text=False, byte_order="<", comments=()):
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")], text=text, byte_order=byte_order,
                    comments=list(comments)).write(str(path))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact_for_every_sh_degree(tmp_path, degree):
    scene = random_scene(300, sh_degree=degree, seed=degree)
    save_scene(scene, tmp_path / "s.ply")
    back = load_scene(tmp_path / "s.ply")
    assert back.sh_degree == degree
    assert_scenes_close(scene, back)  # atol=rtol=0: bit exact
    assert back.group_ids is None and back.features is None


def test_round_trip_extreme_values_and_groups_and_features(tmp_path):
    scene = extreme_scene()
    assert_scenes_close(scene, _round_trip(scene, tmp_path / "extreme.ply"))
    rich = random_scene(200, sh_degree=1, with_groups=True, feature_dim=6, seed=3)
    rich.group_ids[:3] = torch.tensor([-1, 2**31 - 1, 0], dtype=torch.int32)
    back = _round_trip(rich, tmp_path / "rich.ply")
    assert_scenes_close(rich, back)
    assert back.group_ids.dtype == torch.int32 and torch.equal(back.group_ids, rich.group_ids)
    assert torch.equal(back.features, rich.features)
    header = ply.read_header(tmp_path / "rich.ply")
    props = {p.name: p.type_code for p in header.element("vertex").properties}
    assert props["group_id"] == "i4" and props["feat_5"] == "f4"


def _round_trip(scene, path):
    save_scene(scene, path)
    return load_scene(path)


def test_empty_scene_round_trips(tmp_path):
    back = _round_trip(GaussianScene.empty(sh_degree=2), tmp_path / "empty.ply")
    assert len(back) == 0 and back.sh_degree == 2


def test_written_layout_is_the_reference_one(tmp_path):
    scene = random_scene(40, sh_degree=3, seed=5)
    path = tmp_path / "s.ply"
    save_scene(scene, path)
    data = plyfile.PlyData.read(str(path))
    assert data.header.startswith("ply\nformat binary_little_endian 1.0")
    vertex = data["vertex"]
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(45)]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert [p.name for p in vertex.properties] == expected
    assert all(p.val_dtype == "f4" for p in vertex.properties)
    # Header length + 62 float32 per splat, nothing else.
    assert path.stat().st_size == len(data.header) + 1 + 40 * 62 * 4
    # Channel-major f_rest: index c*15+j holds sh[:, 1+j, c].
    sh = scene.sh.numpy()
    for c in range(3):
        for j in range(15):
            np.testing.assert_array_equal(vertex[f"f_rest_{c * 15 + j}"], sh[:, 1 + j, c])
    np.testing.assert_array_equal(vertex["rot_0"], scene.quats[:, 0].numpy())
    np.testing.assert_array_equal(vertex["nx"], 0)


# ----------------------------------------------------------------------------- other writers


@pytest.mark.parametrize(
    "text,byte_order", [(False, "<"), (False, ">"), (True, "=")], ids=["binary_le", "binary_be", "ascii"]
)
def test_reads_plyfile_output_in_every_encoding(tmp_path, text, byte_order):
    scene = random_scene(120, sh_degree=2, seed=7)
    path = tmp_path / "plyfile.ply"
    _write_plyfile(path, _vertex_array(scene), text=text, byte_order=byte_order, comments=["made by plyfile"])
    back = load_scene(path)
    # plyfile writes ascii floats with enough digits to restore float32 exactly.
    assert_scenes_close(scene, back)


def test_reads_reordered_extra_float64_properties_without_normals(tmp_path):
    scene = random_scene(80, sh_degree=1, seed=8)
    n = len(scene)
    extra = {"red": np.full(n, 7, np.uint8), "confidence": np.linspace(0, 1, n).astype(np.float64)}
    arr = _vertex_array(scene, dtype="f8", normals=False, extra=extra)
    names = list(arr.dtype.names)
    rng = np.random.default_rng(0)
    order = [names[i] for i in rng.permutation(len(names))]
    arr = _vertex_array(scene, dtype="f8", normals=False, extra=extra, order=order)
    path = tmp_path / "shuffled.ply"
    _write_plyfile(path, arr, byte_order=">")
    back = load_scene(path)
    assert_scenes_close(scene, back)


def test_reads_file_with_elements_before_and_after_the_vertices(tmp_path):
    scene = random_scene(30, sh_degree=0, seed=9)
    before = np.array([(1.0, 2), (3.0, 4)], dtype=[("a", "f8"), ("b", "u2")])
    after = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "O")])
    after[0]["vertex_indices"] = np.array([0, 1, 2], dtype=np.int32)
    path = tmp_path / "multi.ply"
    plyfile.PlyData([
        plyfile.PlyElement.describe(before, "camera"),
        plyfile.PlyElement.describe(_vertex_array(scene), "vertex"),
        plyfile.PlyElement.describe(after, "face"),
    ]).write(str(path))
    assert_scenes_close(scene, load_scene(path))


def test_gsply_reads_what_we_write_and_we_read_what_gsply_writes(tmp_path):
    scene = random_scene(150, sh_degree=3, seed=11)
    ours = tmp_path / "ours.ply"
    save_scene(scene, ours)
    data = gsply.plyread(str(ours))
    np.testing.assert_array_equal(data.means, scene.means.numpy())
    np.testing.assert_array_equal(data.scales, scene.log_scales.numpy())
    np.testing.assert_array_equal(data.quats, scene.quats.numpy())
    np.testing.assert_array_equal(data.opacities, scene.opacity_logits.numpy())
    np.testing.assert_array_equal(data.sh0, scene.sh[:, 0].numpy())
    np.testing.assert_array_equal(data.shN, scene.sh[:, 1:].numpy())

    theirs = tmp_path / "gsply.ply"
    gsply.plywrite(str(theirs), scene.means.numpy(), scene.log_scales.numpy(), scene.quats.numpy(),
                   scene.opacity_logits.numpy(), scene.sh[:, 0].numpy(), scene.sh[:, 1:].numpy())
    assert_scenes_close(scene, load_scene(theirs))


# ----------------------------------------------------------------------------- bad files


def _good_file(tmp_path, n=20, degree=1):
    path = tmp_path / "good.ply"
    save_scene(random_scene(n, sh_degree=degree, seed=1), path)
    return path


def test_truncated_file_names_counts(tmp_path):
    path = _good_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(FormatError, match=r"promises 20 splats.*room for 19 splats") as info:
        load_scene(path)
    assert str(path) in str(info.value) and "truncated" in str(info.value)


def test_header_that_lies_about_the_count(tmp_path):
    path = _good_file(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"element vertex 20\n", b"element vertex 2000\n"))
    with pytest.raises(FormatError, match="promises 2,000 splats"):
        load_scene(path)
    path.write_bytes(path.read_bytes().replace(b"element vertex 2000\n", b"element vertex 15\n"))
    with pytest.raises(FormatError, match=r"says 15 splats.*room for 5 more splats.*vertex count is wrong"):
        load_scene(path)
    # A trailing newline after the binary data is tolerated.
    path.write_bytes(path.read_bytes().replace(b"element vertex 15\n", b"element vertex 20\n") + b"\n")
    assert len(load_scene(path)) == 20


def test_zero_length_and_wrong_magic_and_missing_end_header(tmp_path):
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        load_scene(empty)
    with pytest.raises(FormatError, match="empty"):
        ply.read(empty)
    wrong = tmp_path / "wrong.ply"
    wrong.write_bytes(b"PK\x03\x04 not a ply at all" * 10)
    with pytest.raises(FormatError, match="wrong.ply"):
        load_scene(wrong)
    with pytest.raises(FormatError, match="does not start with 'ply'"):
        ply.read(wrong)
    cut = tmp_path / "cut.ply"
    cut.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n")
    with pytest.raises(FormatError, match="no end_header"):
        load_scene(cut)


def test_bad_header_lines(tmp_path):
    cases = {
        b"format binary_middle_endian 1.0": "unknown PLY format",
        b"element vertex lots": "bad element line",
        b"element vertex 1\nproperty float128 x": "bad property",
        b"property float x": "property before any element",
        b"banana": "unexpected PLY header line",
    }
    for i, (line, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.ply"
        fmt = b"" if line.startswith(b"format") else b"format ascii 1.0\n"
        path.write_bytes(b"ply\n" + fmt + line + b"\nend_header\n")
        with pytest.raises(FormatError, match=message):
            load_scene(path)


def test_missing_required_properties_are_listed(tmp_path):
    pts = np.zeros(5, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1")])
    path = tmp_path / "cloud.ply"
    _write_plyfile(path, pts)
    with pytest.raises(FormatError, match=r"lacks the properties f_dc_0.*rot_3.*point cloud"):
        load_scene(path)
    scene = random_scene(5, sh_degree=0)
    arr = _vertex_array(scene)
    no_x = arr[[n for n in arr.dtype.names if n != "x"]]
    path2 = tmp_path / "nox.ply"
    _write_plyfile(path2, np.array(no_x.tolist(), dtype=[(n, "f4") for n in no_x.dtype.names]))
    with pytest.raises(FormatError, match=r"nox.ply: the vertex element lacks the properties x"):
        load_scene(path2)


def test_f_rest_counts_that_are_not_an_sh_degree(tmp_path):
    scene = random_scene(5, sh_degree=1)
    arr = _vertex_array(scene)
    names = [n for n in arr.dtype.names if n != "f_rest_8"]
    path = tmp_path / "rest8.ply"
    _write_plyfile(path, np.array(arr[names].tolist(), dtype=[(n, "f4") for n in names]))
    with pytest.raises(FormatError, match="8 f_rest properties"):
        load_scene(path)
    names = [n for n in arr.dtype.names if n != "f_rest_3"] + ["f_rest_9"]
    gap = np.zeros(5, dtype=[(n, "f4") for n in names])
    path = tmp_path / "gap.ply"
    _write_plyfile(path, gap)
    with pytest.raises(FormatError, match="without gaps"):
        load_scene(path)


def test_list_property_in_vertex_element_is_rejected(tmp_path):
    path = tmp_path / "list.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty list uchar int idx\nend_header\n1 5\n")
    with pytest.raises(FormatError, match="list properties"):
        load_scene(path)


def test_nan_rows_are_counted_or_dropped(tmp_path):
    scene = random_scene(50, sh_degree=2, seed=4)
    arr = _vertex_array(scene)
    arr["x"][3] = np.nan
    arr["f_rest_20"][7] = np.inf
    arr["opacity"][7] = np.nan  # same row twice: counted once
    arr["rot_2"][40] = -np.inf
    path = tmp_path / "nan.ply"
    _write_plyfile(path, arr)
    with pytest.raises(FormatError, match=r"nan.ply: 3 of 50 splats have NaN or infinite values.*--drop-invalid"):
        load_scene(path)
    kept = load_scene(path, drop_invalid=True)
    keep = np.setdiff1d(np.arange(50), [3, 7, 40])
    assert_scenes_close(scene.subset(keep), kept)


def test_ascii_garbage_and_short_ascii(tmp_path):
    scene = random_scene(4, sh_degree=0)
    path = tmp_path / "a.ply"
    _write_plyfile(path, _vertex_array(scene), text=True)
    text = path.read_bytes()
    lines = text.splitlines(keepends=True)
    (tmp_path / "short.ply").write_bytes(b"".join(lines[:-2]))
    with pytest.raises(FormatError, match="only 2 vertex lines"):
        load_scene(tmp_path / "short.ply")
    bad = b"".join(lines[:-1]) + b"1 2 banana" + b" 0" * 14 + b"\n"
    (tmp_path / "garbage.ply").write_bytes(bad)
    with pytest.raises(FormatError, match="not a number"):
        load_scene(tmp_path / "garbage.ply")


def test_sniff_and_header_with_many_comments(tmp_path):
    assert ply.sniff(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n")
    assert not ply.sniff(b"ply\nformat binary_little_endian 1.0\nelement chunk 1\nend_header\n")
    assert not ply.sniff(b"NGSP....")
    scene = random_scene(10, sh_degree=0)
    path = tmp_path / "comments.ply"
    _write_plyfile(path, _vertex_array(scene), comments=[f"comment number {i} " + "x" * 60 for i in range(200)])
    assert path.stat().st_size > 10_000
    assert_scenes_close(scene, load_scene(path))
    assert ply.bytes_per_splat(path) == 17 * 4


def test_large_file_loads_with_one_vectorised_pass(tmp_path):
    # Not a timing test (see benchmarks/io_bench.py): checks that 100k splats load and match.
    scene = random_scene(100_000, sh_degree=3, seed=2)
    save_scene(scene, tmp_path / "big.ply")
    back = load_scene(tmp_path / "big.ply")
    assert_scenes_close(scene, back)
    assert math.isclose((tmp_path / "big.ply").stat().st_size / len(scene), 248, rel_tol=1e-3)
