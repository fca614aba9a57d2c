"""Vectorised numpy steps that turn a block of rows of a .handful file's byte-plane streams into the
scene's float32 arrays, written in place; ``scene_codec.BlockStreams`` runs the blocks on a thread pool.

Why numpy and not compiled kernels: the compiled (numba) decoder this replaces was fast once running,
but numba's first call in a process (its start-up, then loading the cached machine code) cost 1.5 CPU
seconds, ten times the decode of a million splats itself; these steps need no compiler. Why blocks:
numpy releases the GIL in its loops, so blocks of rows decode on every core, and a block's temporaries
stay in the cache. Values are computed in float64 and stored as float32, as the reference decoder does.

Every quantised value of up to 16 bits goes through a lookup table (one gather per value, the table
computed in float64 once per file). Every index is range-checked before use: a step that finds one out
of range returns False and writes nothing out of bounds; the caller turns that into a FormatError.
"""

from __future__ import annotations

import math

import numpy as np

from engine.compress import codec

_SQRT2 = math.sqrt(2.0)
_LUT_BITS = 16  # a larger table (2^bits words per column) costs more to build than it saves
# bits 0..11 of a Morton code hold 4 bits of each axis: per axis, those 4 bits for every 12-bit chunk
_MORTON_CHUNK = 12
_MORTON_AXES = [codec._compact21(np.arange(1 << _MORTON_CHUNK, dtype=np.uint64) >> np.uint64(a)).astype(np.uint32)
                for a in range(3)]


def ints(planes: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Values ``start:stop`` of a byte-plane stream ((nbytes, count) uint8) as unsigned integers of the
    smallest numpy width that holds them (a view of plane 0 for one-byte values)."""
    nb = planes.shape[0]
    part = planes[:, start:stop]
    if nb == 1:
        return part[0]
    width = 2 if nb == 2 else 4 if nb <= 4 else 8
    out = np.zeros((stop - start, width), dtype=np.uint8)
    out[:, :nb] = part.T
    return out.view(f"<u{width}")[:, 0]


def uniform_table(bits: int, lo: np.ndarray, hi: np.ndarray, logit_edge: float = 0.0) -> np.ndarray | None:
    """(dim, 2^bits) float32: every value ``lo + q / (2^bits - 1) (hi - lo)`` (its logit, kept
    ``logit_edge`` inside (0, 1), when > 0); None above 16 bits."""
    if bits > _LUT_BITS:
        return None
    q = np.arange(1 << bits, dtype=np.float64) * (1.0 / ((1 << bits) - 1))
    values = lo[:, None] + q[None, :] * (hi - lo)[:, None]
    return (codec.logit(values, logit_edge) if logit_edge > 0 else values).astype(np.float32)


def words_into(planes, out_words: np.ndarray, col: int, dim: int, r0: int, r1: int) -> None:
    """``out_words[r0:r1, col:col + dim]`` (uint32, a float32 array's bits) = the stored 32-bit words."""
    dst = out_words[r0:r1, col : col + dim].view(np.uint8)  # (rows, 4 dim): byte b of word d at 4 d + b
    for b in range(4):
        dst[:, b::4] = planes[b, r0 * dim : r1 * dim].reshape(r1 - r0, dim)


def uniform_into(planes, bits: int, lo, hi, table, out, col: int, logit_edge: float, r0: int, r1: int) -> None:
    dim = len(lo)
    q = ints(planes, r0 * dim, r1 * dim).reshape(r1 - r0, dim)
    for d in range(dim):
        if table is not None:
            out[r0:r1, col + d] = table[d].take(q[:, d])
        else:
            v = lo[d] + q[:, d] * (1.0 / ((1 << bits) - 1)) * (hi[d] - lo[d])
            out[r0:r1, col + d] = codec.logit(v, logit_edge) if logit_edge > 0 else v


def gather_into(planes, book: np.ndarray, out, col: int, r0: int, r1: int) -> bool:
    """``out[i, col:col + dim] = book[index i]``; False (nothing written) if an index is past the book."""
    labels = ints(planes, r0, r1)
    if len(labels) and int(labels.max()) >= len(book):
        return False
    out[r0:r1, col : col + book.shape[1]] = book.take(labels, axis=0)
    return True


def morton_means(codes: np.ndarray, bits: int, lo, hi, out, r0: int, r1: int) -> None:
    """Positions of rows r0:r1 from their (already summed) Morton codes: each axis's cell taken out of
    the code 12 bits at a time through a table, then the cell's fixed point."""
    part = codes[r0:r1]
    cells = np.zeros((3, r1 - r0), dtype=np.uint32)
    for shift in range(0, 3 * bits, _MORTON_CHUNK):
        chunk = ((part >> np.uint64(shift)) & np.uint64((1 << _MORTON_CHUNK) - 1)).astype(np.intp)
        for a in range(3):
            cells[a] |= _MORTON_AXES[a].take(chunk) << np.uint32(shift // 3)
    inv = 1.0 / ((1 << bits) - 1)
    for a in range(3):
        out[r0:r1, a] = lo[a] + (cells[a] * inv) * (hi[a] - lo[a])


def smallest_three_into(largest_planes, planes, bits: int, out, r0: int, r1: int) -> bool:
    """Unit quaternions of rows r0:r1 from the index of their largest component and the other three
    (each unorm(c / sqrt 2 + 1/2)); the largest is the positive square root of what is left. False
    (nothing written) if a largest-component index is past w, x, y, z."""
    largest = ints(largest_planes, r0, r1)
    if len(largest) and int(largest.max()) > 3:
        return False
    table = (np.arange(1 << bits, dtype=np.float64) * (1.0 / ((1 << bits) - 1)) - 0.5) * _SQRT2
    others = table.take(ints(planes, 3 * r0, 3 * r1)).reshape(r1 - r0, 3)
    rest = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", others, others)))
    for c in range(4):
        # component c is the largest, or stored at slot c (before the largest) or c - 1 (after it)
        if c in (0, 3):
            stored = others[:, min(c, 2)]
        else:
            stored = np.where(largest > c, others[:, c], others[:, c - 1])
        out[r0:r1, c] = np.where(largest == c, rest, stored)
    return True


__all__ = ["ints", "uniform_table", "words_into", "uniform_into", "gather_into", "morton_means", "smallest_three_into"]
