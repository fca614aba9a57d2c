"""The codec layer every compact format shares: quantisers, quaternion packing, Morton order, zstd.

Used by the .spz, compressed .ply, .splat, SOG and .handful writers and readers, so that a rounding
rule or a bit layout lives in one place. Every quantiser says its error bound:

- ``unorm(t, bits)`` of ``t`` in [0, 1]: round to nearest, error <= 0.5 / (2^bits - 1).
- ``quantize_range(v, lo, hi, bits)``: the same on [lo, hi], error <= 0.5 (hi - lo) / (2^bits - 1).
- ``smallest_three``: a unit quaternion as the index of its largest component (made positive) and
  the other three, each within [-1/sqrt 2, 1/sqrt 2]; quantising those to b bits loses at most
  0.5 sqrt 2 / (2^b - 1) per component.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import zstandard

from engine.errors import FormatError

SQRT1_2 = math.sqrt(0.5)
# the three slots filled by the stored components, for each index of the largest one
SMALLEST_THREE_SLOTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
MORTON_BUCKET = 256
_MAX_MORTON_DEPTH = 16  # 160 bits of refinement: far past float precision, bounds the recursion


# ===================================================================== scalar quantisers


def round_u8(x: np.ndarray) -> np.ndarray:
    """Round to nearest (half up) and clamp into 0..255."""
    return np.clip(np.floor(np.asarray(x) + 0.5), 0, 255).astype(np.uint8)


def unorm(t: np.ndarray, bits: int) -> np.ndarray:
    """``t`` in [0, 1] to an unsigned ``bits``-bit integer (uint32), rounded to nearest."""
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(t, dtype=np.float64) * top + 0.5), 0, top).astype(np.uint32)


def from_unorm(q: np.ndarray, bits: int, dtype=np.float64) -> np.ndarray:
    return np.asarray(q).astype(dtype) * dtype(1.0 / ((1 << bits) - 1))


def column_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) float64 of each column of ``values`` (N, D): the range a fixed-point column is stored on;
    zeros when there are no rows."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return np.zeros(values.shape[1]), np.zeros(values.shape[1])
    return values.min(axis=0), values.max(axis=0)


def quantize_range(values: np.ndarray, lo, hi, bits: int) -> np.ndarray:
    """``values`` between ``lo`` and ``hi`` (broadcast per column) to ``bits``-bit integers."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    return unorm((np.asarray(values, dtype=np.float64) - lo) / span, bits)


def dequantize_range(q: np.ndarray, lo, hi, bits: int, dtype=np.float64) -> np.ndarray:
    """``lo + q / (2^bits - 1) * (hi - lo)``; float32 ``dtype`` halves the work of decoding big scenes."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return (lo.astype(dtype) + from_unorm(q, bits, dtype) * (hi - lo).astype(dtype)).astype(dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -60, 60)))


def logit(p: np.ndarray, edge: float) -> np.ndarray:
    """Inverse sigmoid with ``p`` kept ``edge`` inside (0, 1), so the result stays finite."""
    p = np.clip(np.asarray(p, dtype=np.float64), edge, 1.0 - edge)
    return np.log(p / (1.0 - p))


# ===================================================================== quaternions


def normalize_quats(q: np.ndarray, identity=(1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """Unit quaternions; a zero one becomes ``identity`` (in the caller's component order)."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    return np.where(norm > 1e-12, q / np.maximum(norm, 1e-300), np.asarray(identity, dtype=np.float64))


def smallest_three(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the largest |component|, the other three in index order), with the quaternion's sign
    chosen so that the largest component is positive (q and -q are the same rotation)."""
    rows = np.arange(len(unit))
    largest = np.argmax(np.abs(unit), axis=1)
    signed = np.where(unit[rows, largest][:, None] < 0, -unit, unit)
    others = np.take_along_axis(signed, SMALLEST_THREE_SLOTS[largest], axis=1)
    return largest, others


def from_smallest_three(largest: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Rebuild (N,4) quaternions: the largest component is the positive square root of what is left."""
    largest = np.asarray(largest, dtype=np.int64)
    others = np.asarray(others, dtype=np.float64)
    out = np.zeros((len(largest), 4), dtype=np.float64)
    np.put_along_axis(out, SMALLEST_THREE_SLOTS[largest], others, axis=1)
    rest = np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", others, others))
    np.put_along_axis(out, largest[:, None], np.sqrt(rest)[:, None], axis=1)
    return out


# ===================================================================== Morton order


def part1by2(v: np.ndarray) -> np.ndarray:
    """Spread the low 10 bits of ``v`` to every third bit (for 30-bit 3D Morton codes)."""
    v = v.astype(np.uint32) & 0x3FF
    v = (v ^ (v << 16)) & 0xFF0000FF
    v = (v ^ (v << 8)) & 0x0300F00F
    v = (v ^ (v << 4)) & 0x030C30C3
    v = (v ^ (v << 2)) & 0x09249249
    return v


def morton_codes(cells: np.ndarray) -> np.ndarray:
    """30-bit Morton codes of (N,3) integer cells in 0..1023."""
    return part1by2(cells[:, 0]) | (part1by2(cells[:, 1]) << 1) | (part1by2(cells[:, 2]) << 2)


def morton_order(means: np.ndarray, bucket: int = MORTON_BUCKET) -> np.ndarray:
    """Indices that put splats in 3D Morton order: codes of positions quantised to 10 bits per axis
    over their bounds; runs of more than ``bucket`` equal codes are re-sorted inside their own bounds
    (as PlayCanvas does), so that neighbours in the order are neighbours in space at every density."""
    means = np.asarray(means, dtype=np.float64)
    order = np.arange(len(means))
    if len(means) == 0 or not np.isfinite(means).all():
        return order
    return _morton_sort(means, order, bucket, 0)


def _morton_sort(means: np.ndarray, idx: np.ndarray, bucket: int, depth: int) -> np.ndarray:
    pts = means[idx]
    lo = pts.min(axis=0)
    extent = pts.max(axis=0) - lo
    if not extent.any():
        return idx
    mul = np.where(extent > 0, 1024.0 / np.where(extent > 0, extent, 1.0), 0.0)
    codes = morton_codes(np.minimum(1023, (pts - lo) * mul).astype(np.uint32))
    sort = np.argsort(codes, kind="stable")
    idx, codes = idx[sort], codes[sort]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    big = ends - starts > bucket
    if depth < _MAX_MORTON_DEPTH:
        for s, e in zip(starts[big], ends[big]):
            idx[s:e] = _morton_sort(means, idx[s:e], bucket, depth + 1)
    return idx


def _spread21(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact21(v: np.ndarray) -> np.ndarray:
    v = v & np.uint64(0x1249249249249249)
    for shift, mask in ((2, 0x10C30C30C30C30C3), (4, 0x100F00F00F00F00F), (8, 0x1F0000FF0000FF),
                        (16, 0x1F00000000FFFF), (32, 0x1FFFFF)):
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


def morton_encode_63(cells: np.ndarray) -> np.ndarray:
    """Exact 63-bit Morton codes (uint64) of (N,3) integer cells of up to 21 bits per axis."""
    return _spread21(cells[:, 0]) | (_spread21(cells[:, 1]) << np.uint64(1)) | (_spread21(cells[:, 2]) << np.uint64(2))


def morton_decode_63(codes: np.ndarray) -> np.ndarray:
    codes = codes.astype(np.uint64)
    return np.stack([_compact21(codes >> np.uint64(k)) for k in range(3)], axis=1).astype(np.uint32)


# ===================================================================== delta coding


def delta_encode(values: np.ndarray) -> np.ndarray:
    """Differences along axis 0 (the first row kept), wrapping in the values' unsigned type: a sorted
    sequence of codes becomes its gaps, small numbers that entropy-code well."""
    out = np.empty_like(values)
    out[:1] = values[:1]
    np.subtract(values[1:], values[:-1], out=out[1:])
    return out


def delta_decode(deltas: np.ndarray) -> np.ndarray:
    return np.cumsum(deltas, axis=0, dtype=deltas.dtype)


def predict_previous(values: np.ndarray, bits: int) -> np.ndarray:
    """Each row of ``bits``-bit integers (N, D) as its difference from the row before, modulo 2^bits (the
    first row kept): neighbours in Morton order have similar colours, sizes and turns, so the differences
    gather near 0 and entropy-code in fewer bits. ``unpredict_previous`` inverts it exactly."""
    return delta_encode(np.asarray(values, dtype=np.uint64)) & np.uint64((1 << bits) - 1)


def unpredict_previous(residuals: np.ndarray, bits: int) -> np.ndarray:
    return delta_decode(np.asarray(residuals, dtype=np.uint64)) & np.uint64((1 << bits) - 1)


def entropy_bits(values: np.ndarray, bits: int) -> float:
    """Order-0 entropy of each column of ``bits``-bit integers (N, D), summed over the columns, in bits per row:
    what an entropy coder of the values one at a time needs (zstd's literal coding comes close)."""
    values = np.asarray(values).reshape(len(values), -1)
    total = 0.0
    for column in values.T:
        counts = np.bincount(column.astype(np.int64), minlength=1 << bits) if bits <= 20 else \
            np.unique(column, return_counts=True)[1]
        p = counts[counts > 0] / max(len(column), 1)
        total += float(-(p * np.log2(p)).sum())
    return total


def byte_planes(values: np.ndarray, nbytes: int) -> bytes:
    """Unsigned integers as ``nbytes`` planes (all low bytes, then the next...): each plane holds
    bytes of one significance, which entropy coders model far better than interleaved words."""
    v = np.ascontiguousarray(values, dtype="<u8").reshape(-1)
    return np.ascontiguousarray(v.view(np.uint8).reshape(-1, 8)[:, :nbytes].T).tobytes()


def from_byte_planes(data: bytes, count: int, nbytes: int) -> np.ndarray:
    """The uint64 values ``byte_planes`` stored."""
    planes = np.frombuffer(data, dtype=np.uint8).reshape(nbytes, count)
    out = np.zeros((count, 8), dtype=np.uint8)
    out[:, :nbytes] = planes.T
    return out.reshape(-1).view("<u8")


# ===================================================================== entropy coding (zstd)

DEFAULT_ZSTD_LEVEL = 19  # small static scenes: the strongest usual level still encodes at MB/s


def zstd_compress(data: bytes, level: int = DEFAULT_ZSTD_LEVEL, checksum: bool = True) -> bytes:
    """One zstd frame; the frame checksum (xxhash, cheap) lets readers tell damaged data apart."""
    return zstandard.ZstdCompressor(level=level, write_checksum=checksum).compress(data)


def zstd_decompress(data: bytes, size: int, path: str | Path | None = None, what: str = "data") -> bytes:
    """Exactly ``size`` bytes from one zstd frame, or a FormatError naming ``what`` was damaged."""
    try:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except zstandard.ZstdError as e:
        raise FormatError(f"has a corrupt {what} stream ({e})", path, "export or download it again") from None
    if len(raw) != size:
        raise FormatError(f"has a {what} stream of {len(raw):,} bytes where {size:,} were listed", path)
    return raw


__all__ = [
    "round_u8", "unorm", "from_unorm", "quantize_range", "dequantize_range", "sigmoid", "logit",
    "normalize_quats", "smallest_three", "from_smallest_three", "SMALLEST_THREE_SLOTS",
    "part1by2", "morton_codes", "morton_order", "morton_encode_63", "morton_decode_63", "delta_encode", "delta_decode",
    "byte_planes", "from_byte_planes", "zstd_compress", "zstd_decompress", "DEFAULT_ZSTD_LEVEL",
]  # fmt: skip


# ===================================================================== rate-aware rounding


def snap_towards_previous(values: np.ndarray, slack: np.ndarray, width: int) -> np.ndarray:
    """Each row of integer ``values`` (N, C) moved by at most ``slack`` (N, C) towards the row before it
    in a ``width``-wide raster (the row above for the first of a raster line), with that row already moved.

    Why: a lossless image coder (WebP) codes each pixel as its difference from a neighbour, so a value
    that may change by a few steps without visible harm (a splat's position far below its size) costs
    nothing when it equals its neighbour, and fewer bits when it is nearer. The error per value is at most
    its slack; a value whose slack is 0 is kept exactly.
    """
    values = np.asarray(values, dtype=np.int64)
    slack = np.broadcast_to(np.asarray(slack, dtype=np.int64), values.shape)
    if (slack < 0).any():
        raise ValueError("slack must be >= 0")
    return _snap(np.ascontiguousarray(values), np.ascontiguousarray(slack), int(width))


def _snap_loop(values, slack, width):
    out = values.copy()
    n, c = values.shape
    for i in range(1, n):
        j = i - 1 if i % width else i - width
        if j < 0:
            continue
        for k in range(c):
            lo, hi, p = values[i, k] - slack[i, k], values[i, k] + slack[i, k], out[j, k]
            out[i, k] = lo if p < lo else hi if p > hi else p
    return out


def _snap(values, slack, width):
    global _snap_compiled
    if _snap_compiled is None:
        import numba

        _snap_compiled = numba.njit(cache=True)(_snap_loop)
    return _snap_compiled(values, slack, width)


_snap_compiled = None
