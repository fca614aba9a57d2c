"""The 3D Gaussian Splatting .ply format (the reference implementation's layout).

Written as binary_little_endian float32 with the properties
``x y z nx ny nz f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3`` (plus ``group_id`` and
``feat_0..`` when the scene has them). ``f_rest`` is channel-major: index ``c*(K-1)+j`` holds
``sh[:, 1+j, c]``. Opacity is a logit, scales are logs, rotations w,x,y,z (not normalised).

Reading parses the header (never assumes offsets) and accepts binary little/big endian and ascii,
comments, extra or reordered properties, any numeric property type, SH degree 0-3 and missing
normals. The vertex block is decoded with one numpy structured view, not per-vertex Python.

plyfile is installed, but it decodes every property into its own array, and gives errors that do not
say what is wrong with a splat file; this reader is a header parser plus one ``np.frombuffer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..scene import GaussianScene, SceneError, sh_coeffs_for_degree
from .atomic import atomic_write
from .reading import non_finite_hint

FORMAT_NAME = "ply"
EXTENSIONS = (".ply",)

MAX_HEADER_BYTES = 1 << 20
_END_HEADER = re.compile(rb"end_header[ \t]*\r?\n")

# PLY type names (both spellings of the spec) -> numpy type codes.
_PLY_TYPES = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}

# Normalised f_rest counts -> SH degree: 3 * ((d+1)^2 - 1).
_REST_TO_DEGREE = {3 * (sh_coeffs_for_degree(d) - 1): d for d in range(4)}


@dataclass
class PlyProperty:
    name: str
    type_code: str  # numpy code without byte order, e.g. "f4"
    is_list: bool = False


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty]

    @property
    def has_lists(self) -> bool:
        return any(p.is_list for p in self.properties)

    def dtype(self, byte_order: str) -> np.dtype:
        return np.dtype([(p.name, byte_order + p.type_code) for p in self.properties])


@dataclass
class PlyHeader:
    format: str  # "ascii" | "binary_little_endian" | "binary_big_endian"
    elements: list[PlyElement]
    comments: list[str]
    length: int  # bytes up to and including the end_header line

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def sniff(head: bytes) -> bool:
    """A PLY header that is not a PlayCanvas compressed ply (which has an ``element chunk``)."""
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        return False
    end = _END_HEADER.search(head)
    header = head[: end.end()] if end else head
    return b"element chunk " not in header


def read_header(path: str | Path, head: bytes | None = None) -> PlyHeader:
    """Parse the header of ``path`` (``head`` may hold the file's first bytes already)."""
    path = Path(path)
    if head is None or not _END_HEADER.search(head):
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES)
    return parse_header(head, path)


def parse_header(data: bytes, path: str | Path) -> PlyHeader:
    if not data:
        raise FormatError("the file is empty", path, "export the scene again")
    if not (data.startswith(b"ply\n") or data.startswith(b"ply\r\n")):
        raise FormatError("not a PLY file (it does not start with 'ply')", path)
    end = _END_HEADER.search(data)
    if end is None:
        raise FormatError(
            "the PLY header has no end_header line (the file is truncated or not a PLY file)", path
        )
    try:
        text = data[: end.start()].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("the PLY header contains non-ASCII bytes", path) from None

    fmt = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines()[1:], start=2):
        words = raw.split()
        if not words:
            continue
        key = words[0]
        if key in ("comment", "obj_info"):
            comments.append(raw.strip()[len(key):].strip())
        elif key == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise FormatError(
                    f"unknown PLY format on header line {number}: {raw.strip()!r}", path,
                    "expected ascii, binary_little_endian or binary_big_endian",
                )
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise FormatError(f"bad element line {number} in the PLY header: {raw.strip()!r}", path)
            elements.append(PlyElement(words[1], int(words[2]), []))
        elif key == "property":
            if not elements:
                raise FormatError(f"property before any element on PLY header line {number}", path)
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
                    raise FormatError(f"unknown list type on PLY header line {number}: {raw.strip()!r}", path)
                elements[-1].properties.append(PlyProperty(words[4], _PLY_TYPES[words[3]], is_list=True))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1].properties.append(PlyProperty(words[2], _PLY_TYPES[words[1]]))
            else:
                raise FormatError(f"bad property on PLY header line {number}: {raw.strip()!r}", path)
        else:
            raise FormatError(f"unexpected PLY header line {number}: {raw.strip()!r}", path)
    if fmt is None:
        raise FormatError("the PLY header has no format line", path)
    return PlyHeader(fmt, elements, comments, end.end())


# ------------------------------------------------------------------------------------------ reading


def _read_vertex_table(path: Path, header: PlyHeader) -> np.ndarray:
    """The vertex element as a structured array (native byte order for the fields we use)."""
    vertex = header.element("vertex")
    if vertex is None:
        raise FormatError("the PLY file has no vertex element, so it holds no splats", path)
    if vertex.has_lists:
        raise FormatError(
            "the vertex element has list properties, which a Gaussian splat file never has", path
        )
    index = header.elements.index(vertex)
    file_size = path.stat().st_size

    if header.format == "ascii":
        return _read_ascii_vertices(path, header, index)

    order = _FORMATS[header.format]
    offset = header.length
    for before in header.elements[:index]:
        if before.has_lists:
            raise FormatError(
                f"element {before.name!r} before the vertices has list properties; cannot locate the splats",
                path,
            )
        offset += before.count * before.dtype(order).itemsize
    dtype = vertex.dtype(order)
    need = offset + vertex.count * dtype.itemsize
    if file_size < need:
        have = max(0, (file_size - offset) // dtype.itemsize) if dtype.itemsize else 0
        raise FormatError(
            f"the header promises {vertex.count:,} splats ({need:,} bytes) but the file has only "
            f"{file_size:,} bytes, room for {have:,} splats",
            path,
            "the file is truncated: copy or export it again",
        )
    after = header.elements[index + 1:]
    if not any(e.has_lists for e in after):
        described = need + sum(e.count * e.dtype(order).itemsize for e in after)
        extra = file_size - described
        # A stray newline or padding is harmless; whole rows past the end mean the count is wrong.
        if dtype.itemsize and extra >= dtype.itemsize:
            raise FormatError(
                f"the header says {vertex.count:,} splats but the file has {extra:,} bytes more than the "
                f"header describes (room for {extra // dtype.itemsize:,} more splats)",
                path, "the header's vertex count is wrong: export the file again",
            )
    with open(path, "rb") as f:
        f.seek(offset)
        table = np.fromfile(f, dtype=dtype, count=vertex.count)
    if len(table) != vertex.count:  # the file changed under us
        raise FormatError(f"expected {vertex.count:,} splats but read {len(table):,}", path)
    return table


def _read_ascii_vertices(path: Path, header: PlyHeader, index: int) -> np.ndarray:
    vertex = header.elements[index]
    with open(path, "rb") as f:
        f.seek(header.length)
        body = f.read()
    lines = body.splitlines()
    skip = sum(e.count for e in header.elements[:index])
    rows = lines[skip: skip + vertex.count]
    if len(rows) < vertex.count:
        raise FormatError(
            f"the header promises {vertex.count:,} splats but the file has only {max(0, len(lines) - skip):,} "
            "vertex lines", path, "the file is truncated: copy or export it again",
        )
    width = len(vertex.properties)
    tokens = b" ".join(rows).split()
    if len(tokens) != width * vertex.count:
        raise FormatError(
            f"the ascii vertex lines hold {len(tokens):,} numbers, expected {vertex.count:,} x {width}", path
        )
    try:
        values = np.array(tokens, dtype=np.float64).reshape(vertex.count, width)
    except ValueError:
        raise FormatError("the ascii vertex lines contain something that is not a number", path) from None
    table = np.empty(vertex.count, dtype=vertex.dtype("="))
    for i, p in enumerate(vertex.properties):
        table[p.name] = values[:, i]
    return table


def _columns(table: np.ndarray, names: list[str]) -> np.ndarray:
    """(N, len(names)) contiguous float32 gathered from the structured table."""
    fields = table.dtype.fields
    if all(fields[n][0] == np.dtype("=f4") for n in names) and table.dtype.itemsize % 4 == 0 and all(
        fields[n][1] % 4 == 0 for n in names
    ):
        # Every needed field is a native float32 on a 4-byte grid: one gather over a float view.
        flat = table.view(np.float32).reshape(len(table), table.dtype.itemsize // 4)
        # np.take gives a C-contiguous result; flat[:, idx] does not, and would cost a second copy.
        return np.take(flat, [fields[n][1] // 4 for n in names], axis=1)
    out = np.empty((len(table), len(names)), dtype=np.float32)
    for i, n in enumerate(names):
        out[:, i] = table[n]
    return out


def _missing(names: set[str], wanted: list[str]) -> list[str]:
    return [w for w in wanted if w not in names]


def read(path: str | Path, drop_invalid: bool = False) -> GaussianScene:
    """Load a 3DGS .ply. Rows with NaN/inf are an error unless ``drop_invalid`` (then dropped)."""
    path = Path(path)
    header = read_header(path)
    vertex = header.element("vertex")
    table = _read_vertex_table(path, header)
    names = set(table.dtype.names or ())

    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = _missing(names, required)
    if missing:
        hint = (
            "this looks like a plain point cloud, not a Gaussian splat file"
            if not _missing(names, ["x", "y", "z"]) else "is this a Gaussian splat file?"
        )
        raise FormatError(f"the vertex element lacks the properties {', '.join(missing)}", path, hint)

    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n[7:]) if n[7:].isdigit() else -1)
    if rest and rest != [f"f_rest_{i}" for i in range(len(rest))]:
        raise FormatError("the f_rest_* properties are not numbered 0..M-1 without gaps", path)
    if len(rest) not in _REST_TO_DEGREE:
        raise FormatError(
            f"{len(rest)} f_rest properties do not match an SH degree 0-3 (expected 0, 9, 24 or 45)", path
        )
    degree = _REST_TO_DEGREE[len(rest)]
    k = sh_coeffs_for_degree(degree)
    n = vertex.count

    # Each array is gathered once, straight into its final layout (the scene keeps these buffers).
    # sh in (coefficient, channel) order: f_dc_c, then f_rest is channel-major in the file.
    sh_names = [f"f_dc_{c}" if j == 0 else f"f_rest_{c * (k - 1) + j - 1}" for j in range(k) for c in range(3)]
    arrays = {
        "means": _columns(table, ["x", "y", "z"]),
        "quats": _columns(table, ["rot_0", "rot_1", "rot_2", "rot_3"]),
        "log_scales": _columns(table, ["scale_0", "scale_1", "scale_2"]),
        "opacity_logits": _columns(table, ["opacity"]).reshape(n),
        "sh": _columns(table, sh_names).reshape(n, k, 3),
    }
    feats = [f"feat_{i}" for i in range(sum(1 for x in names if x.startswith("feat_")))]
    if feats and not _missing(names, feats):
        arrays["features"] = _columns(table, feats)
    invalid = np.zeros(n, dtype=bool)
    for values in arrays.values():
        invalid |= ~np.isfinite(values.reshape(n, int(np.prod(values.shape[1:])))).all(axis=1)
    if "group_id" in names:
        arrays["group_ids"] = table["group_id"].astype(np.int32)
    bad = int(invalid.sum())
    if bad:
        if not drop_invalid:
            raise FormatError(
                f"{bad:,} of {n:,} splats have NaN or infinite values", path,
                non_finite_hint(path),
            )
        arrays = {name: values[~invalid] for name, values in arrays.items()}
    try:
        return GaussianScene.from_numpy(**arrays)
    except SceneError as e:  # pragma: no cover - shapes are built above
        raise FormatError(str(e), path) from e


# ------------------------------------------------------------------------------------------ writing


def property_names(sh_degree: int, normals: bool = True, groups: bool = False, feature_dim: int = 0) -> list[str]:
    k = sh_coeffs_for_degree(sh_degree)
    names = ["x", "y", "z"]
    if normals:
        names += ["nx", "ny", "nz"]
    names += ["f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    if groups:
        names.append("group_id")
    names += [f"feat_{i}" for i in range(feature_dim)]
    return names


def encode_vertices(scene: GaussianScene, normals: bool = True) -> tuple[list[str], np.ndarray]:
    """Property names and an (N, P) little-endian float32 block (``group_id`` stored as int32 bits)."""
    s = {k: v.detach().cpu().numpy() for k, v in scene.tensors().items()}
    n, k = len(scene), scene.sh.shape[1]
    groups = scene.group_ids is not None
    feature_dim = 0 if scene.features is None else int(scene.features.shape[1])
    names = property_names(scene.sh_degree, normals, groups, feature_dim)
    block = np.empty((n, len(names)), dtype="<f4")
    col = 0

    def put(values):
        nonlocal col
        values = values.reshape(n, int(np.prod(values.shape[1:])))
        block[:, col: col + values.shape[1]] = values
        col += values.shape[1]

    put(s["means"])
    if normals:
        put(np.zeros((n, 3), np.float32))
    put(s["sh"][:, 0])
    put(s["sh"][:, 1:].transpose(0, 2, 1))  # channel-major f_rest
    put(s["opacity_logits"])
    put(s["log_scales"])
    put(s["quats"])
    if groups:
        block[:, col] = s["group_ids"].astype("<i4").view("<f4")
        col += 1
    if feature_dim:
        put(s["features"])
    assert col == len(names)
    return names, block


def header_bytes(names: list[str], count: int, comments: tuple[str, ...] = ()) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {count}")
    lines += [f"property {'int' if n == 'group_id' else 'float'} {n}" for n in names]
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write(scene: GaussianScene, path: str | Path, normals: bool = True, comments: tuple[str, ...] = ("Handful",)) -> None:
    """Write ``scene`` as a binary little-endian 3DGS .ply (atomic: never a partial file)."""
    names, block = encode_vertices(scene, normals=normals)
    with atomic_write(path) as f:
        f.write(header_bytes(names, len(scene), comments))
        f.write(np.ascontiguousarray(block).view(np.uint8).data)


def bytes_per_splat(path: str | Path) -> float | None:
    """Bytes each vertex row takes in a binary file (None for ascii), from the header alone."""
    header = read_header(path)
    vertex = header.element("vertex")
    if vertex is None or header.format == "ascii" or vertex.has_lists:
        return None
    return float(vertex.dtype("<").itemsize)


__all__ = [
    "FORMAT_NAME", "EXTENSIONS", "sniff", "read", "write", "read_header", "parse_header", "PlyHeader",
    "property_names", "encode_vertices", "header_bytes", "bytes_per_splat",
]
