"""Compiled CPU kernels (numba) for tile intersection and alpha compositing, forward and backward.

Why numba rather than a torch C++ extension: it needs no compiler at install time (the app ships to
desktops without one), caches the compiled code on disk (``cache=True``), and keeps the kernels in
Python next to the torch reference they are tested against. ``fastmath=False`` keeps the arithmetic
(and so the cull/stop decisions) the same as the reference's.

Kernels work tile by tile (``prange`` over 16x16 tiles), computing in float64 internally. The backward
writes gradients per intersection (each intersection belongs to one tile, so one thread) and a
second pass sums them per Gaussian: no atomics, no races.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

TILE = 16
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4


@njit(cache=True)
def tile_ranges(means2d, radii, tiles_x, tiles_y):
    """Per Gaussian the tile rectangle [x0, x1) x [y0, y1) covered by mean +- radius (gsplat's rule)."""
    n = means2d.shape[0]
    rect = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        rx, ry = radii[i, 0], radii[i, 1]
        if rx <= 0 or ry <= 0:
            continue
        tx = np.float64(means2d[i, 0]) / TILE
        ty = np.float64(means2d[i, 1]) / TILE
        trx, try_ = np.float64(rx) / TILE, np.float64(ry) / TILE
        rect[i, 0] = min(max(0, int(math.floor(tx - trx))), tiles_x)
        rect[i, 1] = min(max(0, int(math.ceil(tx + trx))), tiles_x)
        rect[i, 2] = min(max(0, int(math.floor(ty - try_))), tiles_y)
        rect[i, 3] = min(max(0, int(math.ceil(ty + try_))), tiles_y)
    return rect


@njit(cache=True)
def bin_by_tile(rect, depth_order, tiles_x, tiles_y):
    """Counting sort of intersections by tile; visiting Gaussians in depth order keeps each tile's
    list sorted front to back. Returns (tile_offsets (T+1,), flat_ids (n_isects,))."""
    n_tiles = tiles_x * tiles_y
    counts = np.zeros(n_tiles + 1, dtype=np.int64)
    for i in range(rect.shape[0]):
        for ty in range(rect[i, 2], rect[i, 3]):
            for tx in range(rect[i, 0], rect[i, 1]):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    cursor = offsets[:-1].copy()
    flat_ids = np.empty(offsets[-1], dtype=np.int32)
    for j in range(depth_order.shape[0]):
        i = depth_order[j]
        for ty in range(rect[i, 2], rect[i, 3]):
            for tx in range(rect[i, 0], rect[i, 1]):
                t = ty * tiles_x + tx
                flat_ids[cursor[t]] = i
                cursor[t] += 1
    return offsets, flat_ids


@njit(parallel=True, fastmath=False, cache=True)
def rasterize_forward(means2d, conics, opacities, channels, background, tile_offsets, flat_ids,
                      width, height, tiles_x, out, final_t, n_contrib):
    """Composite front to back. Writes out (H,W,C) incl. background, final transmittance (H,W, float64)
    and, per pixel, how many entries of its tile list were walked up to the last one that contributed."""
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    for tile in prange(n_tiles):
        start, end = tile_offsets[tile], tile_offsets[tile + 1]
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1, y1 = min(x0 + TILE, width), min(y0 + TILE, height)
        K = end - start
        # Gather this tile's Gaussians once (contiguous, like gsplat's shared-memory batches).
        mx = np.empty(K)
        my = np.empty(K)
        ca = np.empty(K)
        cb = np.empty(K)
        cc = np.empty(K)
        op = np.empty(K)
        col = np.empty((K, C))
        for k in range(K):
            g = flat_ids[start + k]
            mx[k] = means2d[g, 0]
            my[k] = means2d[g, 1]
            ca[k] = conics[g, 0]
            cb[k] = conics[g, 1]
            cc[k] = conics[g, 2]
            op[k] = opacities[g]
            for c in range(C):
                col[k, c] = channels[g, c]
        acc = np.empty(C)
        for py in range(y0, y1):
            for px in range(x0, x1):
                fx = px + 0.5
                fy = py + 0.5
                T = 1.0
                last = 0
                for c in range(C):
                    acc[c] = 0.0
                for k in range(K):
                    dx = mx[k] - fx
                    dy = my[k] - fy
                    sigma = 0.5 * (ca[k] * dx * dx + cc[k] * dy * dy) + cb[k] * dx * dy
                    if sigma < 0.0:
                        continue
                    alpha = min(MAX_ALPHA, op[k] * math.exp(-sigma))
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    next_t = T * (1.0 - alpha)
                    if next_t <= MIN_TRANSMITTANCE:
                        break
                    w = alpha * T
                    for c in range(C):
                        acc[c] += col[k, c] * w
                    T = next_t
                    last = k + 1
                for c in range(C):
                    out[py, px, c] = acc[c] + T * background[c]
                final_t[py, px] = T
                n_contrib[py, px] = last


@njit(parallel=True, fastmath=False, cache=True)
def rasterize_backward(means2d, conics, opacities, channels, background, tile_offsets, flat_ids,
                       width, height, tiles_x, final_t, n_contrib, grad_out, grad_alpha, g_isect):
    """Walk each pixel's list back to front, recovering transmittance by division, and write the
    gradients of every intersection into its row of g_isect (row = position in flat_ids; columns
    mean x, mean y, conic a, b, c, opacity, channels...)."""
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    for tile in prange(n_tiles):
        start, end = tile_offsets[tile], tile_offsets[tile + 1]
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1, y1 = min(x0 + TILE, width), min(y0 + TILE, height)
        K = end - start
        mx = np.empty(K)
        my = np.empty(K)
        ca = np.empty(K)
        cb = np.empty(K)
        cc = np.empty(K)
        op = np.empty(K)
        col = np.empty((K, C))
        for k in range(K):
            g = flat_ids[start + k]
            mx[k] = means2d[g, 0]
            my[k] = means2d[g, 1]
            ca[k] = conics[g, 0]
            cb[k] = conics[g, 1]
            cc[k] = conics[g, 2]
            op[k] = opacities[g]
            for c in range(C):
                col[k, c] = channels[g, c]
        # Tile-local accumulators (float64), written to the per-intersection rows once per tile.
        gmx = np.zeros(K)
        gmy = np.zeros(K)
        gca = np.zeros(K)
        gcb = np.zeros(K)
        gcc = np.zeros(K)
        gop = np.zeros(K)
        gcol = np.zeros((K, C))
        buf = np.empty(C)
        gpix = np.empty(C)
        for py in range(y0, y1):
            for px in range(x0, x1):
                n = n_contrib[py, px]
                if n == 0:
                    continue
                fx = px + 0.5
                fy = py + 0.5
                t_final = final_t[py, px]
                T = t_final
                g_bg = 0.0
                for c in range(C):
                    buf[c] = 0.0
                    gpix[c] = grad_out[py, px, c]
                    g_bg += gpix[c] * background[c]
                g_a_pix = grad_alpha[py, px]
                for k in range(n - 1, -1, -1):
                    dx = mx[k] - fx
                    dy = my[k] - fy
                    sigma = 0.5 * (ca[k] * dx * dx + cc[k] * dy * dy) + cb[k] * dx * dy
                    if sigma < 0.0:
                        continue
                    vis = math.exp(-sigma)
                    alpha = min(MAX_ALPHA, op[k] * vis)
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    ra = 1.0 / (1.0 - alpha)
                    T = T * ra
                    w = alpha * T
                    g_alpha_k = (g_a_pix - g_bg) * t_final * ra
                    for c in range(C):
                        gcol[k, c] += w * gpix[c]
                        g_alpha_k += (col[k, c] * T - buf[c] * ra) * gpix[c]
                        buf[c] += col[k, c] * w
                    if op[k] * vis <= MAX_ALPHA:
                        g_sigma = -op[k] * vis * g_alpha_k
                        gca[k] += 0.5 * g_sigma * dx * dx
                        gcb[k] += g_sigma * dx * dy
                        gcc[k] += 0.5 * g_sigma * dy * dy
                        gmx[k] += g_sigma * (ca[k] * dx + cb[k] * dy)
                        gmy[k] += g_sigma * (cb[k] * dx + cc[k] * dy)
                        gop[k] += vis * g_alpha_k
        for k in range(K):
            r = start + k
            g_isect[r, 0] = gmx[k]
            g_isect[r, 1] = gmy[k]
            g_isect[r, 2] = gca[k]
            g_isect[r, 3] = gcb[k]
            g_isect[r, 4] = gcc[k]
            g_isect[r, 5] = gop[k]
            for c in range(C):
                g_isect[r, 6 + c] = gcol[k, c]


@njit(cache=True)
def sum_per_gaussian(flat_ids, per_isect, out):
    """out[flat_ids[r]] += per_isect[r] (serial: the reduction is memory-bound and cheap)."""
    for r in range(flat_ids.shape[0]):
        g = flat_ids[r]
        for j in range(per_isect.shape[1]):
            out[g, j] += per_isect[r, j]


def set_threads(n: int) -> None:
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
