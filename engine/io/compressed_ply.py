"""PlayCanvas compressed .ply (SuperSplat, splat-transform and most web viewers read it).

Layout, after PlayCanvas's public splat-transform/engine code (a binary little-endian PLY):

- ``element chunk`` (one per 256 splats, float32): min/max x y z, min/max scale_x..z (log scale,
  clamped to +-20), and optionally min/max r g b of the base colour 0.5 + C0 * f_dc.
- ``element vertex`` (uint32 each): packed_position 11-10-11 bits of x, y, z normalised between
  the chunk's min and max; packed_rotation = 2-bit index of the largest of (w, x, y, z), then the
  other three as 10-bit unorm of q * sqrt(2)/2 + 0.5 (largest made positive); packed_scale 11-10-11
  of log scale between the chunk's min and max; packed_color RGBA 8888 (R in the top byte), RGB
  normalised between the chunk's colour min and max, A = sigmoid(opacity).
- optional ``element sh`` (uchar f_rest_0..K): q = floor((f / 8 + 0.5) * 256) clamped to 0..255,
  channel-major like 3DGS .ply; read back as 0 -> -4, 255 -> 4, else ((q + 0.5) / 256 - 0.5) * 8.

Splats are written in 3D Morton order (10 bits per axis over the scene bounds, buckets of more than
256 equal codes re-sorted within their own bounds), so each chunk of 256 is spatially compact. Axes
are the .ply ones (RDF), the same as the engine's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from engine.compress import codec
from engine.compress.codec import SQRT1_2, from_smallest_three, from_unorm, normalize_quats, smallest_three, unorm
from engine.errors import FormatError
from engine.io.atomic import atomic_write_bytes
from engine.io.reading import read_bytes
from engine.scene import SH_C0, GaussianScene

FORMAT_NAME = "compressed_ply"
EXTENSIONS = (".compressed.ply",)
CHUNK_SIZE = 256
SCALE_LIMIT = 20.0

CHUNK_PROPERTIES = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)  # fmt: skip
CHUNK_COLOR_PROPERTIES = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
VERTEX_PROPERTIES = ("packed_position", "packed_rotation", "packed_scale", "packed_color")

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "<i2", "int16": "<i2", "ushort": "<u2", "uint16": "<u2",
    "int": "<i4", "int32": "<i4", "uint": "<u4", "uint32": "<u4",
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
}  # fmt: skip
_MAX_HEADER = 1 << 16


# ===================================================================== header


def _parse_header(path: Path | None, data: bytes) -> tuple[int, list[tuple[str, int, np.dtype]]]:
    """(offset of the body, [(element name, count, row dtype)]). A hand-rolled parser because the
    header is a few lines and plyfile's generic reader is ~10x slower on million-row elements."""
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if not data.startswith(b"ply"):
        raise FormatError("is not a PLY file (it does not start with 'ply')", path, "choose a .ply splat file")
    if end < 0:
        if len(data) < _MAX_HEADER:
            raise FormatError("is truncated inside its PLY header", path, "export or download it again")
        raise FormatError("has no 'end_header' in its first 64 KiB", path)
    body = data.find(b"\n", end) + 1
    if body == 0:
        raise FormatError("is truncated inside its PLY header", path)
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    fmt = None
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1] if len(words) > 1 else ""
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and len(words) == 3 and elements and words[1] in _PLY_TYPES:
            elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
        else:
            raise FormatError(f"has a PLY header line {number} that a compressed .ply cannot have: {line!r}", path)
    if fmt != "binary_little_endian":
        raise FormatError(f"is a {fmt or 'formatless'} PLY; a compressed .ply is binary_little_endian", path)
    return body, [(name, count, np.dtype(props)) for name, count, props in elements]


def sniff(head: bytes) -> bool:
    """True when the first bytes are a PLY header with PlayCanvas's chunk and packed vertex layout."""
    if not head.startswith(b"ply"):
        return False
    end = head.find(b"end_header")
    text = head if end < 0 else head[:end]
    return b"element chunk" in text and b"packed_position" in text


# ===================================================================== reading


def read(path: str | Path) -> GaussianScene:
    path = Path(path)
    data = read_bytes(path, "a .ply file")
    arrays = _element_arrays(path, data)
    return _decode(path, arrays)


def _element_arrays(path: Path, data: bytes) -> dict[str, np.ndarray]:
    offset, elements = _parse_header(path, data)
    _check_counts(path, {name: count for name, count, _ in elements})
    need = offset + sum(count * dtype.itemsize for _, count, dtype in elements)
    if len(data) < need:
        raise FormatError(
            f"is truncated: its header declares {need:,} bytes but the file has {len(data):,}",
            path,
            "export or download it again",
        )
    if len(data) > need:
        raise FormatError(
            f"has {len(data) - need:,} bytes more than its header declares (an element count is wrong)", path
        )
    arrays = {}
    for name, count, dtype in elements:
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
    return arrays


def _check_counts(path: Path, counts: dict[str, int]) -> None:
    """Element counts that contradict each other (checked before sizes: the clearer message)."""
    n = counts.get("vertex")
    if n is None:
        return
    if "chunk" in counts and counts["chunk"] != math.ceil(n / CHUNK_SIZE):
        raise FormatError(
            f"has {counts['chunk']:,} chunks for {n:,} splats; {math.ceil(n / CHUNK_SIZE):,} are needed "
            "(256 per chunk)",
            path,
            "the file is corrupt; export it again",
        )
    if "sh" in counts and counts["sh"] != n:
        raise FormatError(
            f"has {counts['sh']:,} SH rows for {n:,} splats", path, "the file is corrupt; export it again"
        )


def _require(path: Path, arrays: dict[str, np.ndarray], element: str, names, kind: str) -> None:
    if element not in arrays:
        raise FormatError(f"has no '{element}' element, so it is not a PlayCanvas compressed .ply", path,
                          "open it as a plain .ply")  # fmt: skip
    fields = arrays[element].dtype.fields
    for name in names:
        if name not in fields or fields[name][0].kind + str(fields[name][0].itemsize) != kind:
            raise FormatError(f"lacks the {kind} property '{name}' of element '{element}'", path)


def _decode(path: Path, arrays: dict[str, np.ndarray]) -> GaussianScene:
    _require(path, arrays, "chunk", CHUNK_PROPERTIES, "f4")
    _require(path, arrays, "vertex", VERTEX_PROPERTIES, "u4")
    chunk, vertex = arrays["chunk"], arrays["vertex"]
    n = len(vertex)
    ci = np.arange(n) // CHUNK_SIZE

    def lerp(prefix_min: str, prefix_max: str, axes, t: np.ndarray) -> np.ndarray:
        lo = np.stack([chunk[prefix_min + a] for a in axes], axis=1).astype(np.float64)[ci]
        hi = np.stack([chunk[prefix_max + a] for a in axes], axis=1).astype(np.float64)[ci]
        return lo * (1.0 - t) + hi * t

    means = lerp("min_", "max_", "xyz", _unpack_111011(vertex["packed_position"]))
    log_scales = lerp("min_scale_", "max_scale_", "xyz", _unpack_111011(vertex["packed_scale"]))
    color = vertex["packed_color"]
    rgba = np.stack([(color >> s) & 0xFF for s in (24, 16, 8, 0)], axis=1).astype(np.float64) / 255.0
    if all(name in chunk.dtype.fields for name in CHUNK_COLOR_PROPERTIES):
        rgb = lerp("min_", "max_", "rgb", rgba[:, :3])
    else:  # files from before per-chunk colour ranges store the colour itself
        rgb = rgba[:, :3]
    # alpha 0 or 1 would be opacity -inf/+inf: keep it half a step inside
    alpha = np.clip(rgba[:, 3], 0.5 / 255.0, 254.5 / 255.0)
    logits = np.log(alpha / (1.0 - alpha))
    quats = _unpack_rotation(vertex["packed_rotation"])

    rest = _decode_sh(path, arrays.get("sh"), n)
    sh = np.empty((n, 1 + rest.shape[1], 3), dtype=np.float32)
    sh[:, 0] = (rgb - 0.5) / SH_C0
    sh[:, 1:] = rest
    return GaussianScene.from_numpy(means, quats, log_scales, logits, sh)


def _decode_sh(path: Path, sh: np.ndarray | None, n: int) -> np.ndarray:
    if sh is None:
        return np.zeros((n, 0, 3), dtype=np.float32)
    names = sh.dtype.names
    count = len(names)
    if count % 3 or count // 3 + 1 not in (4, 9, 16):
        raise FormatError(f"has {count} SH properties; 9, 24 or 45 (SH degree 1-3) are expected", path)
    expected = [f"f_rest_{i}" for i in range(count)]
    if list(names) != expected or any(sh.dtype.fields[k][0] != np.uint8 for k in names):
        raise FormatError("has an 'sh' element that is not uchar f_rest_0..f_rest_N in order", path)
    q = sh.view(np.uint8).reshape(n, count)
    unit = (np.arange(256, dtype=np.float32) + 0.5) / 256
    unit[0], unit[255] = 0.0, 1.0
    table = (unit - 0.5) * 8
    k = count // 3
    return table[q].reshape(n, 3, k).transpose(0, 2, 1)  # channel-major -> (N, K, 3)


def _unpack_111011(packed: np.ndarray) -> np.ndarray:
    return np.stack(
        [((packed >> 21) & 0x7FF) / 2047.0, ((packed >> 11) & 0x3FF) / 1023.0, (packed & 0x7FF) / 2047.0], axis=1
    )


def _unpack_rotation(packed: np.ndarray) -> np.ndarray:
    abc = (np.stack([from_unorm((packed >> s) & 0x3FF, 10) for s in (20, 10, 0)], axis=1) - 0.5) / SQRT1_2
    return from_smallest_three(packed >> 30, abc)  # (w, x, y, z): the index counts rot_0..rot_3


# ===================================================================== writing


def morton_order(means: np.ndarray) -> np.ndarray:
    """The order in which ``write`` stores splats (see ``engine.compress.codec.morton_order``); runs
    of equal codes are split at the chunk size, so chunks stay compact in dense regions."""
    return codec.morton_order(means, CHUNK_SIZE)


def write(scene: GaussianScene, path: str | Path) -> None:
    """Write ``scene`` as a PlayCanvas compressed .ply (Morton-ordered, chunks of 256) atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode(scene))


def encode(scene: GaussianScene) -> bytes:
    n = len(scene)
    means = scene.means.detach().cpu().numpy().astype(np.float64)
    order = morton_order(means)
    means = means[order]
    log_scales = scene.log_scales.detach().cpu().numpy().astype(np.float64)[order]
    quats = scene.quats.detach().cpu().numpy().astype(np.float64)[order]
    logits = scene.opacity_logits.detach().cpu().numpy().astype(np.float64)[order]
    sh = scene.sh.detach().cpu().numpy()
    colors = 0.5 + SH_C0 * sh[order, 0].astype(np.float64)

    num_chunks = math.ceil(n / CHUNK_SIZE)
    pos_lo, pos_hi, pos_t = _chunk_normalise(means, num_chunks)
    scale_lo, scale_hi, scale_t = _chunk_normalise(log_scales, num_chunks, limit=SCALE_LIMIT)
    col_lo, col_hi, col_t = _chunk_normalise(colors, num_chunks)

    chunk = np.empty(num_chunks, dtype=[(name, "<f4") for name in CHUNK_PROPERTIES + CHUNK_COLOR_PROPERTIES])
    for i, axis in enumerate("xyz"):
        chunk[f"min_{axis}"], chunk[f"max_{axis}"] = pos_lo[:, i], pos_hi[:, i]
        chunk[f"min_scale_{axis}"], chunk[f"max_scale_{axis}"] = scale_lo[:, i], scale_hi[:, i]
    for i, channel in enumerate("rgb"):
        chunk[f"min_{channel}"], chunk[f"max_{channel}"] = col_lo[:, i], col_hi[:, i]

    vertex = np.empty(n, dtype=[(name, "<u4") for name in VERTEX_PROPERTIES])
    vertex["packed_position"] = _pack_111011(pos_t)
    vertex["packed_scale"] = _pack_111011(scale_t)
    alpha = 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))
    rgba = unorm(np.concatenate([col_t, alpha[:, None]], axis=1), 8)
    vertex["packed_color"] = (rgba[:, 0] << 24) | (rgba[:, 1] << 16) | (rgba[:, 2] << 8) | rgba[:, 3]
    vertex["packed_rotation"] = _pack_rotation(quats)

    k = sh.shape[1] - 1
    lines = [
        "ply",
        "format binary_little_endian 1.0",
        "comment Generated by Handful",
        f"element chunk {num_chunks}",
        *(f"property float {name}" for name in chunk.dtype.names),
        f"element vertex {n}",
        *(f"property uint {name}" for name in VERTEX_PROPERTIES),
    ]
    parts = [chunk.tobytes(), vertex.tobytes()]
    if k:
        lines.append(f"element sh {n}")
        lines.extend(f"property uchar f_rest_{i}" for i in range(3 * k))
        parts.append(_quantize_sh_rest(sh[:, 1:])[order].tobytes())
    lines.append("end_header\n")
    return "\n".join(lines).encode("ascii") + b"".join(parts)


def _quantize_sh_rest(rest: np.ndarray) -> np.ndarray:
    """(N, K, 3) SH bands 1+ to channel-major uchar: floor((f / 8 + 0.5) * 256) = floor(32 f + 128)."""
    n, k = rest.shape[:2]
    q = rest.astype(np.float32)  # a copy, worked on in place
    q *= np.float32(32.0)
    q += np.float32(128.0)
    np.floor(q, out=q)
    np.clip(q, 0, 255, out=q)
    return q.astype(np.uint8).transpose(0, 2, 1).reshape(n, 3 * k)


def _chunk_normalise(values: np.ndarray, num_chunks: int, limit: float | None = None):
    """Per-chunk min/max (float32, as stored) and each value's position in [0, 1] between them."""
    n = len(values)
    padded = np.empty((num_chunks * CHUNK_SIZE, values.shape[1]))
    padded[:n] = values
    padded[n:] = values[-1] if n else 0.0  # the last chunk is filled with copies of its last splat
    blocks = padded.reshape(num_chunks, CHUNK_SIZE, values.shape[1])
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)
    if limit is not None:
        lo, hi = np.clip(lo, -limit, limit), np.clip(hi, -limit, limit)
    lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    ci = np.arange(n) // CHUNK_SIZE
    lo_v, hi_v = lo.astype(np.float64)[ci], hi.astype(np.float64)[ci]
    span = hi_v - lo_v
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(span < 1e-5, 0.0, (values - lo_v) / span)
    t = np.where(values <= lo_v, 0.0, np.where(values >= hi_v, 1.0, t))
    return lo, hi, t


def _pack_111011(t: np.ndarray) -> np.ndarray:
    return (unorm(t[:, 0], 11) << 21) | (unorm(t[:, 1], 10) << 11) | unorm(t[:, 2], 11)


def _pack_rotation(quats: np.ndarray) -> np.ndarray:
    largest, others = smallest_three(normalize_quats(quats))
    packed = largest.astype(np.uint32)
    for k in range(3):
        packed = (packed << 10) | unorm(others[:, k] * SQRT1_2 + 0.5, 10)
    return packed


__all__ = ["FORMAT_NAME", "EXTENSIONS", "CHUNK_SIZE", "read", "write", "encode", "sniff", "morton_order"]
