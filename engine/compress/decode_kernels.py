"""Compiled (numba) kernels that turn a .handful file's byte-plane streams into the scene's float32 arrays.

Why kernels: the numpy decoder (``scene_codec.NumpyStreams``, kept as the readable reference these are
tested against) makes several full-size temporaries per attribute (uint64 words from byte planes, a float64
copy, the codebook gather, the copy into the SH array): about 2 s for a million splats. Each kernel here
reads its byte planes once and writes its values straight into the scene's own arrays, with no
temporaries. ``cache=True`` keeps the compiled code on disk, as the renderer's kernels do; ``nogil``
lets a worker thread decode while the GUI thread keeps running.

Every kernel reads a stream as ``planes`` (nbytes, count) uint8: plane b holds byte b of every value
(``codec.byte_planes``). Values are computed in float64 and stored as float32, as the numpy decoder
does. A kernel that finds an index out of range (a codebook word that does not exist, a quaternion's
largest component past w, x, y, z) stops and returns that row, so that a crafted file can never read
outside an array; the caller turns it into a FormatError. -1 means every row was valid.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SQRT2 = math.sqrt(2.0)


@njit(cache=True, inline="always")
def _word(planes, j):
    v = np.uint64(0)
    for b in range(planes.shape[0]):
        v |= np.uint64(planes[b, j]) << np.uint64(8 * b)
    return v


@njit(cache=True, inline="always")
def _compact21(v):
    """Every third bit of ``v`` (bits 0, 3, 6, ...) packed into the low 21 bits."""
    v = v & np.uint64(0x1249249249249249)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v >> np.uint64(16))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v >> np.uint64(32))) & np.uint64(0x1FFFFF)
    return v


@njit(cache=True, nogil=True)
def words_into(planes, out, col, dim):
    """``out[:, col:col + dim]`` (uint32; a float32 array's bits) = the 32-bit values, row-major (n, dim)."""
    for i in range(out.shape[0]):
        for d in range(dim):
            out[i, col + d] = np.uint32(_word(planes, i * dim + d))


@njit(cache=True, nogil=True)
def morton_means(planes, bits, lo, hi, out):
    """Positions from the gaps between consecutive sorted Morton codes: a running sum (wrapping, as the
    encoder's differences do), each axis's cell taken out of the code, then the cell's fixed point."""
    inv = 1.0 / ((1 << bits) - 1)
    code = np.uint64(0)
    for i in range(out.shape[0]):
        code += _word(planes, i)
        for axis in range(3):
            cell = _compact21(code >> np.uint64(axis))
            out[i, axis] = lo[axis] + (np.float64(cell) * inv) * (hi[axis] - lo[axis])


@njit(cache=True, nogil=True)
def uniform_into(planes, bits, lo, hi, out, col, logit_edge):
    """``out[:, col:col + dim] = lo + q / (2^bits - 1) (hi - lo)``, the values row-major (n, dim); with
    ``logit_edge`` > 0 the value is a probability stored as its logit, kept that far inside (0, 1)."""
    dim = lo.shape[0]
    inv = 1.0 / ((1 << bits) - 1)
    for i in range(out.shape[0]):
        for d in range(dim):
            v = lo[d] + (np.float64(_word(planes, i * dim + d)) * inv) * (hi[d] - lo[d])
            if logit_edge > 0:
                p = min(max(v, logit_edge), 1.0 - logit_edge)
                v = math.log(p / (1.0 - p))
            out[i, col + d] = v


@njit(cache=True, nogil=True)
def gather_into(planes, book, out, col):
    """``out[i, col:col + dim] = book[index i]``; returns the first row whose index is past the book."""
    k, dim = book.shape
    for i in range(out.shape[0]):
        j = _word(planes, i)
        if j >= k:
            return i
        for d in range(dim):
            out[i, col + d] = book[j, d]
    return -1


@njit(cache=True, nogil=True)
def smallest_three_quats(largest, planes, bits, out):
    """Unit quaternions from the index of their largest component and the other three, each stored
    as unorm(c / sqrt 2 + 1/2); the largest is the positive square root of what is left."""
    inv = 1.0 / ((1 << bits) - 1)
    for i in range(out.shape[0]):
        big = largest[0, i]
        if big > 3:
            return i
        rest = 1.0
        k = 0
        for c in range(4):
            if c == big:
                continue
            v = (np.float64(_word(planes, 3 * i + k)) * inv - 0.5) * _SQRT2
            out[i, c] = v
            rest -= v * v
            k += 1
        out[i, big] = math.sqrt(max(0.0, rest))
    return -1


__all__ = ["words_into", "morton_means", "uniform_into", "gather_into", "smallest_three_quats"]
