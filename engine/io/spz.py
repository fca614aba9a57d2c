"""Niantic .spz splat files (versions 2 and 3: one gzip stream; version 4: zstd streams).

Layout (all little-endian), after Niantic's public specification (github.com/nianticlabs/spz):

- v2/v3: gzip( header16 | positions | alphas | colors | scales | rotations | sh ), header16 =
  magic "NGSP" u32, version u32, numPoints u32, shDegree u8, fractionalBits u8, flags u8, reserved u8.
- v4: header32 = magic, version, numPoints, shDegree, fractionalBits, flags, numStreams u8,
  tocByteOffset u32, 12 reserved bytes; extension records up to tocByteOffset; then a table of
  contents of numStreams x (compressedSize u64, uncompressedSize u64); then the non-empty attribute
  streams (same order as above), each its own zstd frame, ending exactly at the end of the file.

Per splat: position 3 x 24-bit signed fixed point; alpha u8 = sigmoid(opacity) * 255; colour u8 =
dc * 0.15 * 255 + 127.5; scale u8 = (log s + 10) * 16; rotation v3+ = 2-bit index of the largest
component (x, y, z, w order) and three 10-bit sign+magnitude values scaled by sqrt(2), v2 = x, y, z
as u8 with w >= 0 rebuilt; SH (coefficient-major, channel-minor) u8 = x * 128 + 128 rounded to
buckets of 2^(8-bits) (5 bits for band 1, 4 above).

Files store RUB axes (x right, y up, z back); the engine uses RDF (COLMAP), so y and z of positions,
rotations and the odd SH coefficients flip on the way in and out (a 180 degree turn about x).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.compress.codec import (
    SQRT1_2,
    from_smallest_three,
    normalize_quats,
    round_u8,
    smallest_three,
    zstd_compress,
    zstd_decompress,
)
from engine.errors import FormatError, InputError
from engine.io.atomic import atomic_write_bytes
from engine.io.reading import read_bytes
from engine.scene import MAX_SH_DEGREE, GaussianScene, sh_coeffs_for_degree

FORMAT_NAME = "spz"
EXTENSIONS = (".spz",)

MAGIC = 0x5053474E  # b"NGSP" read as little-endian u32
MAGIC_BYTES = b"NGSP"
READ_VERSIONS = (2, 3, 4)
WRITE_VERSIONS = (2, 3, 4)
DEFAULT_VERSION = 4
DEFAULT_FRACTIONAL_BITS = 12
MAX_FRACTIONAL_BITS = 23
FLAG_ANTIALIASED = 0x1
FLAG_HAS_EXTENSIONS = 0x2
COLOR_SCALE = 0.15
DEFAULT_SH1_BITS = 5
DEFAULT_SH_REST_BITS = 4
DEFAULT_ZSTD_LEVEL = 3  # zstd default: on SH-3 scenes as small as level 6-12 and 3-10x faster

_LEGACY_HEADER = struct.Struct("<IIIBBBB")
_V4_HEADER = struct.Struct("<IIIBBBBI12s")
_TOC_ENTRY = struct.Struct("<QQ")
_FILE_SH_DEGREE_MAX = 4  # the format allows band 4; the engine keeps bands 0-3
_FIXED_MAX = (1 << 23) - 1
_FIXED_MIN = -(1 << 23)

# RDF <-> RUB is a 180 degree turn about x: (x, y, z) -> (x, -y, -z). Each real SH basis
# function is a polynomial with a definite parity in y and z, so it just changes sign or not.
_AXIS_FLIP = np.array([1.0, -1.0, -1.0])
_SH_REST_FLIP = np.array(
    [-1, -1, 1]  # band 1: y, z, x
    + [-1, 1, 1, -1, 1]  # band 2: xy, yz, 3z^2-1, xz, x^2-y^2
    + [-1, 1, -1, -1, 1, -1, 1],  # band 3
    dtype=np.float64,
)


@dataclass(frozen=True)
class SpzInfo:
    """What the header of an .spz file says (read without decoding the splats)."""

    version: int
    num_points: int
    sh_degree: int
    fractional_bits: int
    antialiased: bool
    has_extensions: bool


# ===================================================================== sniffing


def sniff(head: bytes) -> bool:
    """True when the first bytes of a file look like .spz (v4 header, or gzip holding one)."""
    if head[:4] == MAGIC_BYTES:
        return True
    if head[:2] != b"\x1f\x8b":
        return False
    try:
        inner = zlib.decompressobj(wbits=31).decompress(head, 4)
    except zlib.error:
        return False
    return inner[:4] == MAGIC_BYTES


# ===================================================================== reading


def read(path: str | Path) -> GaussianScene:
    """Read a version 2, 3 or 4 .spz file into an RDF GaussianScene."""
    path = Path(path)
    info, sections = _read_sections(path)
    return _decode(info, sections)


def read_info(path: str | Path) -> SpzInfo:
    """The header of an .spz file (version, count, SH degree, flags)."""
    path = Path(path)
    data = _read_bytes(path, limit=4096)  # the header, or enough gzip to inflate it
    if data[:4] == MAGIC_BYTES:
        return _parse_v4_header(path, data)[0]
    raw = _gunzip(path, data, limit=_LEGACY_HEADER.size)
    return _parse_legacy_header(path, raw)


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    return read_bytes(path, "an .spz file", limit)


def _gunzip(path: Path, data: bytes, limit: int = -1) -> bytes:
    if data[:2] != b"\x1f\x8b":
        raise FormatError(
            "is not an .spz file (neither the NGSP header of version 4 nor a gzip stream)",
            path,
            "choose a .spz splat file",
        )
    try:
        if limit > 0:
            return zlib.decompressobj(wbits=31).decompress(data, limit)
        return gzip.decompress(data)
    except EOFError:
        raise FormatError("is truncated (the gzip stream ends early)", path, "export or download it again") from None
    except (zlib.error, gzip.BadGzipFile) as e:
        raise FormatError(f"has a corrupt gzip stream ({e})", path, "export or download it again") from None


def _check_header_fields(path: Path, version: int, magic: int, sh_degree: int, fractional_bits: int) -> None:
    if magic != MAGIC:
        raise FormatError("is not an .spz file (the NGSP magic number is missing)", path, "choose a .spz splat file")
    if version not in READ_VERSIONS:
        raise FormatError(
            f"is .spz version {version}; versions {', '.join(map(str, READ_VERSIONS))} can be read",
            path,
            "convert it with Niantic's spz tools or re-export it",
        )
    if sh_degree > _FILE_SH_DEGREE_MAX:
        raise FormatError(f"claims spherical-harmonic degree {sh_degree} (at most 4 exists)", path)
    if fractional_bits > MAX_FRACTIONAL_BITS:
        raise FormatError(f"claims {fractional_bits} fractional position bits (at most 23)", path)


def _parse_legacy_header(path: Path, raw: bytes) -> SpzInfo:
    if len(raw) < _LEGACY_HEADER.size:
        raise FormatError(f"is truncated: {len(raw)} bytes where the 16-byte header should be", path)
    magic, version, n, degree, frac, flags, _ = _LEGACY_HEADER.unpack_from(raw)
    _check_header_fields(path, version, magic, degree, frac)
    if version == 4:
        raise FormatError("says version 4 inside a gzip stream (version 4 files are not gzipped)", path)
    return SpzInfo(version, n, degree, frac, bool(flags & FLAG_ANTIALIASED), bool(flags & FLAG_HAS_EXTENSIONS))


def _parse_v4_header(path: Path, data: bytes) -> tuple[SpzInfo, int, int]:
    if len(data) < _V4_HEADER.size:
        raise FormatError(f"is truncated: {len(data)} bytes where the 32-byte header should be", path)
    magic, version, n, degree, frac, flags, num_streams, toc_offset, _ = _V4_HEADER.unpack_from(data)
    _check_header_fields(path, version, magic, degree, frac)
    if version != 4:
        raise FormatError(f"has an uncompressed NGSP header with version {version} (only version 4 uses one)", path)
    if toc_offset < _V4_HEADER.size:
        raise FormatError(f"has a table of contents at byte {toc_offset}, inside the header", path)
    info = SpzInfo(version, n, degree, frac, bool(flags & FLAG_ANTIALIASED), bool(flags & FLAG_HAS_EXTENSIONS))
    return info, num_streams, toc_offset


def _section_sizes(info: SpzInfo) -> list[tuple[str, int]]:
    n = info.num_points
    sh_dim = sh_coeffs_for_degree(info.sh_degree) - 1
    return [
        ("positions", 9 * n),
        ("alphas", n),
        ("colors", 3 * n),
        ("scales", 3 * n),
        ("rotations", (4 if info.version >= 3 else 3) * n),
        ("sh", 3 * sh_dim * n),
    ]


def _read_sections(path: Path) -> tuple[SpzInfo, dict[str, np.ndarray]]:
    data = _read_bytes(path)
    if data[:4] == MAGIC_BYTES:
        return _read_v4_sections(path, data)
    raw = _gunzip(path, data)
    info = _parse_legacy_header(path, raw)
    sizes = _section_sizes(info)
    need = _LEGACY_HEADER.size + sum(s for _, s in sizes)
    have = len(raw)
    if have < need or (have > need and not info.has_extensions):
        raise FormatError(
            f"says it holds {info.num_points:,} splats (SH degree {info.sh_degree}), which take {need:,} bytes, "
            f"but the data is {have:,} bytes",
            path,
            "the file is truncated or corrupt; export it again",
        )
    buf = np.frombuffer(raw, dtype=np.uint8)
    sections, offset = {}, _LEGACY_HEADER.size
    for name, size in sizes:
        sections[name] = buf[offset : offset + size]
        offset += size
    return info, sections


def _read_v4_sections(path: Path, data: bytes) -> tuple[SpzInfo, dict[str, np.ndarray]]:
    info, num_streams, toc_offset = _parse_v4_header(path, data)
    sizes = [(name, size) for name, size in _section_sizes(info) if size > 0]
    if num_streams != len(sizes):
        raise FormatError(
            f"lists {num_streams} attribute streams; {len(sizes)} are expected for "
            f"{info.num_points:,} splats with SH degree {info.sh_degree}",
            path,
        )
    toc_end = toc_offset + num_streams * _TOC_ENTRY.size
    if toc_end > len(data):
        raise FormatError(f"is truncated: the table of contents ends at byte {toc_end:,} of {len(data):,}", path)
    # streams of size 0 (SH of degree 0, everything of an empty scene) are left out of the file
    sections = {name: np.zeros(0, np.uint8) for name, _ in _section_sizes(info)}
    offset = toc_end
    for i, (name, expected) in enumerate(sizes):
        compressed_size, size = _TOC_ENTRY.unpack_from(data, toc_offset + i * _TOC_ENTRY.size)
        if size != expected:
            raise FormatError(
                f"says it holds {info.num_points:,} splats, but its {name} stream is {size:,} bytes "
                f"where {expected:,} are needed",
                path,
                "the file is corrupt; export it again",
            )
        if offset + compressed_size > len(data):
            raise FormatError(
                f"is truncated: the {name} stream ends at byte {offset + compressed_size:,} of {len(data):,}",
                path,
                "export or download it again",
            )
        raw = zstd_decompress(data[offset : offset + compressed_size], size, path, name)
        sections[name] = np.frombuffer(raw, dtype=np.uint8)
        offset += compressed_size
    if offset != len(data):
        raise FormatError(f"has {len(data) - offset:,} unexpected bytes after the last stream", path)
    return info, sections


def _decode(info: SpzInfo, sections: dict[str, np.ndarray]) -> GaussianScene:
    n = info.num_points
    p = sections["positions"].reshape(n, 3, 3).astype(np.int32)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = (fixed ^ 0x800000) - 0x800000  # sign-extend 24 bits
    means = fixed * (_AXIS_FLIP / (1 << info.fractional_bits))

    # 0 and 255 would be opacity -inf/+inf: keep them half a step inside (Niantic's reader
    # clamps to 1..254, which would also move bytes 0 and 255 by a whole step)
    alpha = np.clip(sections["alphas"].astype(np.float64), 0.5, 254.5) / 255.0
    logits = np.log(alpha / (1.0 - alpha))
    dc = (sections["colors"].reshape(n, 3) / 255.0 - 0.5) / COLOR_SCALE
    log_scales = sections["scales"].reshape(n, 3) / 16.0 - 10.0
    if info.version >= 3:
        xyzw = _unpack_smallest_three(sections["rotations"].reshape(n, 4))
    else:
        xyzw = _unpack_first_three(sections["rotations"].reshape(n, 3))
    quats = np.stack([xyzw[:, 3], xyzw[:, 0], -xyzw[:, 1], -xyzw[:, 2]], axis=1)

    file_dim = sh_coeffs_for_degree(info.sh_degree) - 1
    degree = min(info.sh_degree, MAX_SH_DEGREE)
    keep = sh_coeffs_for_degree(degree) - 1
    sh = np.empty((n, keep + 1, 3), dtype=np.float32)
    sh[:, 0] = dc
    if keep:
        rest = sections["sh"].reshape(n, file_dim, 3)[:, :keep]
        # one table look-up per byte, for each sign the axis change gives: (q - 128) / 128 * flip
        unflipped = (np.arange(256, dtype=np.float32) - 128) / 128
        tables = np.stack([unflipped, -unflipped])
        for k in range(keep):
            sh[:, 1 + k] = tables[int(_SH_REST_FLIP[k] < 0)][rest[:, k]]
    return GaussianScene.from_numpy(means, quats, log_scales, logits, sh)


def _unpack_smallest_three(packed: np.ndarray) -> np.ndarray:
    comp = packed.astype(np.uint32)
    comp = comp[:, 0] | (comp[:, 1] << 8) | (comp[:, 2] << 16) | (comp[:, 3] << 24)
    # the first stored component is in the highest bits; each is sign + 9-bit magnitude
    fields = np.stack([(comp >> shift) & 0x3FF for shift in (20, 10, 0)], axis=1)
    value = (fields & 0x1FF) * (SQRT1_2 / 511.0)
    return from_smallest_three(comp >> 30, np.where(fields & 0x200, -value, value))


def _unpack_first_three(packed: np.ndarray) -> np.ndarray:
    xyz = packed.astype(np.float64) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", xyz, xyz)))
    return np.concatenate([xyz, w[:, None]], axis=1)


# ===================================================================== writing


def write(
    scene: GaussianScene,
    path: str | Path,
    *,
    version: int = DEFAULT_VERSION,
    fractional_bits: int = DEFAULT_FRACTIONAL_BITS,
    antialiased: bool = False,
    sh1_bits: int = DEFAULT_SH1_BITS,
    sh_rest_bits: int = DEFAULT_SH_REST_BITS,
    zstd_level: int = DEFAULT_ZSTD_LEVEL,
) -> None:
    """Write ``scene`` as .spz (version 4 by default; 3 and 2 are gzip) atomically.

    Values outside what the format can hold clamp to its edges: positions to
    +-2^(23 - fractional_bits), log scales to [-10, 5.94], DC colour to +-3.33, SH to [-1, 0.99].
    """
    path = Path(path)
    if version not in WRITE_VERSIONS:
        raise InputError(f"cannot write .spz version {version}; choose one of {WRITE_VERSIONS}", path)
    if not 0 <= fractional_bits <= MAX_FRACTIONAL_BITS:
        raise InputError(f"fractional_bits must be 0-{MAX_FRACTIONAL_BITS}, got {fractional_bits}", path)
    for name, bits in (("sh1_bits", sh1_bits), ("sh_rest_bits", sh_rest_bits)):
        if not 1 <= bits <= 8:
            raise InputError(f"{name} must be 1-8, got {bits}", path)
    sections = _encode(scene, version, fractional_bits, sh1_bits, sh_rest_bits)
    flags = FLAG_ANTIALIASED if antialiased else 0
    n, degree = len(scene), scene.sh_degree
    if version == 4:
        streams = [s for s in sections if len(s)]
        compressed = [zstd_compress(s, zstd_level) for s in streams]
        header = _V4_HEADER.pack(MAGIC, 4, n, degree, fractional_bits, flags, len(streams), _V4_HEADER.size, bytes(12))
        toc = b"".join(_TOC_ENTRY.pack(len(c), len(s)) for c, s in zip(compressed, streams))
        payload = b"".join([header, toc, *compressed])
    else:
        header = _LEGACY_HEADER.pack(MAGIC, version, n, degree, fractional_bits, flags, 0)
        # mtime=0 keeps the bytes reproducible; level 6 is zlib's speed/size balance
        payload = gzip.compress(b"".join([header, *sections]), compresslevel=6, mtime=0)
    atomic_write_bytes(path, payload)


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, like C's round() in Niantic's encoder (np.rint rounds to even)."""
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _encode(scene: GaussianScene, version: int, fractional_bits: int, sh1_bits: int, sh_rest_bits: int) -> list[bytes]:
    n = len(scene)
    means = _to_numpy(scene.means).astype(np.float64) * _AXIS_FLIP
    fixed = np.clip(_round(means * (1 << fractional_bits)), _FIXED_MIN, _FIXED_MAX).astype("<i4")
    positions = fixed.view(np.uint8).reshape(n, 3, 4)[..., :3]

    logits = _to_numpy(scene.opacity_logits).astype(np.float64)
    alphas = round_u8(255.0 / (1.0 + np.exp(-np.clip(logits, -60, 60))))
    sh = _to_numpy(scene.sh)
    colors = round_u8(sh[:, 0].astype(np.float64) * (COLOR_SCALE * 255.0) + 127.5)
    scales = round_u8((_to_numpy(scene.log_scales).astype(np.float64) + 10.0) * 16.0)

    q = _to_numpy(scene.quats).astype(np.float64)
    # engine w,x,y,z (RDF) -> file x,y,z,w (RUB)
    xyzw = np.stack([q[:, 1], -q[:, 2], -q[:, 3], q[:, 0]], axis=1)
    xyzw = normalize_quats(xyzw, identity=(0.0, 0.0, 0.0, 1.0))
    rotations = _pack_smallest_three(xyzw) if version >= 3 else _pack_first_three(xyzw)

    sections = [positions, alphas, colors, scales, rotations]
    dim = sh.shape[1] - 1
    if dim:
        sections.append(_quantize_sh_rest(sh[:, 1:], sh1_bits, sh_rest_bits))
    return [np.ascontiguousarray(s).tobytes() for s in sections]


def _quantize_sh_rest(rest: np.ndarray, sh1_bits: int, sh_rest_bits: int) -> np.ndarray:
    """SH bands 1+ to u8 = x * 128 + 128, rounded to the centre of a 2^(8 - bits) bucket so that
    the dropped low bits are zero (they then compress away)."""
    dim = rest.shape[1]
    # a C-ordered copy (scenes read from .ply hold channel-major views), worked on in place
    x = np.array(rest, dtype=np.float32, order="C")
    x *= (_SH_REST_FLIP[:dim, None] * 128.0).astype(np.float32)
    np.clip(x, -256.0, 256.0, out=x)  # keeps the int16 arithmetic below in range
    magnitude = np.abs(x)
    magnitude += np.float32(0.5)
    np.floor(magnitude, out=magnitude)
    np.copysign(magnitude, x, out=x)  # rounded half away from zero, as C's round()
    q = x.astype(np.int16)
    q += 128
    for band, bits in ((slice(0, 3), sh1_bits), (slice(3, dim), sh_rest_bits)):
        bucket = 1 << (8 - bits)
        part = q[:, band]
        part += bucket // 2
        part &= ~(bucket - 1)  # floor to a multiple of bucket, also for negatives
    np.clip(q, 0, 255, out=q)
    return q.astype(np.uint8)


def _pack_smallest_three(xyzw: np.ndarray) -> np.ndarray:
    largest, others = smallest_three(xyzw)
    comp = largest.astype(np.uint32)
    for k in range(3):
        v = others[:, k]
        mag = np.minimum(np.floor(511.0 * np.abs(v) / SQRT1_2 + 0.5), 511).astype(np.uint32)
        comp = (comp << 10) | ((v < 0).astype(np.uint32) << 9) | mag
    return comp.astype("<u4").view(np.uint8).reshape(len(xyzw), 4)


def _pack_first_three(xyzw: np.ndarray) -> np.ndarray:
    signed = np.where(xyzw[:, 3:4] < 0, -xyzw, xyzw)
    return round_u8(signed[:, :3] * 127.5 + 127.5)


__all__ = ["FORMAT_NAME", "EXTENSIONS", "SpzInfo", "read", "read_info", "write", "sniff"]
