"""Today's tile rasteriser as it was before the row-walking kernels in ``cpu_kernels``: kept only as
the baseline that ``benchmarks/train_bench.py`` and ``benchmarks/render_bench.py`` time against (select
it with ``cpu_backend.use_kernels("legacy")``). Not used by the app; delete once the comparison has
served its purpose.

Per pixel of each Gaussian's box it evaluates the Gaussian with one ``exp``; see ``cpu_kernels`` for
the shared conventions (float64 inside, per-intersection gradients summed in a second pass).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from engine.render.cpu_kernels import ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE, TILE, _pixel_span


@njit(inline="always")
def _gather_tile(means2d, conics, opacities, radii, channels, flat_ids, start, K):
    """Copy one tile's Gaussians into contiguous arrays (as gsplat's shared-memory batches)."""
    C = channels.shape[1]
    g6 = np.empty((K, 9))  # mean x, mean y, conic a, b, c, opacity, log(255 opacity), radius x, radius y
    col = np.empty((K, C))
    for k in range(K):
        g = flat_ids[start + k]
        g6[k, 0] = means2d[g, 0]
        g6[k, 1] = means2d[g, 1]
        g6[k, 2] = conics[g, 0]
        g6[k, 3] = conics[g, 1]
        g6[k, 4] = conics[g, 2]
        g6[k, 5] = opacities[g]
        # alpha < 1/255 exactly when sigma > log(255 opacity): a cheap test that spares most exp() calls.
        g6[k, 6] = math.log(max(np.float64(opacities[g]), 1e-30) / ALPHA_THRESHOLD)
        g6[k, 7] = radii[g, 0]
        g6[k, 8] = radii[g, 1]
        for c in range(C):
            col[k, c] = channels[g, c]
    return g6, col


@njit(parallel=True, fastmath=False, cache=True)
def rasterize_forward(means2d, conics, opacities, radii, channels, background, tile_offsets, flat_ids,
                      width, height, tiles_x, out, final_t, n_contrib):
    """Composite front to back. Writes out (H,W,C) incl. background, final transmittance (H,W, float64)
    and, per pixel, how many entries of its tile list were walked up to the last one that contributed.

    Loops Gaussian-outer, pixel-inner so each Gaussian visits only the pixels its box covers; the
    per-pixel order of operations is still front to back, as in gsplat's per-pixel loop.
    """
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    for tile in prange(n_tiles):
        start, end = tile_offsets[tile], tile_offsets[tile + 1]
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1, y1 = min(x0 + TILE, width), min(y0 + TILE, height)
        tw = x1 - x0
        n_pix = tw * (y1 - y0)
        K = end - start
        g6, col = _gather_tile(means2d, conics, opacities, radii, channels, flat_ids, start, K)
        T = np.ones(n_pix)
        acc = np.zeros((n_pix, C))
        last = np.zeros(n_pix, dtype=np.int32)
        done = np.zeros(n_pix, dtype=np.bool_)
        n_done = 0
        for k in range(K):
            mx, my, ca, cb, cc, op, lop = g6[k, 0], g6[k, 1], g6[k, 2], g6[k, 3], g6[k, 4], g6[k, 5], g6[k, 6]
            xa, xb = _pixel_span(mx, g6[k, 7], x0, x1)
            ya, yb = _pixel_span(my, g6[k, 8], y0, y1)
            for py in range(ya, yb):
                dy = my - (py + 0.5)
                for px in range(xa, xb):
                    p = (py - y0) * tw + (px - x0)
                    if done[p]:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0 or sigma > lop:
                        continue
                    alpha = min(MAX_ALPHA, op * math.exp(-sigma))
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    next_t = T[p] * (1.0 - alpha)
                    if next_t <= MIN_TRANSMITTANCE:
                        done[p] = True
                        n_done += 1
                        continue
                    w = alpha * T[p]
                    for c in range(C):
                        acc[p, c] += col[k, c] * w
                    T[p] = next_t
                    last[p] = k + 1
            if n_done == n_pix:
                break
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                for c in range(C):
                    out[py, px, c] = acc[p, c] + T[p] * background[c]
                final_t[py, px] = T[p]
                n_contrib[py, px] = last[p]


@njit(parallel=True, fastmath=False, cache=True)
def rasterize_backward(means2d, conics, opacities, radii, channels, background, tile_offsets, flat_ids,
                       width, height, tiles_x, final_t, n_contrib, grad_out, grad_alpha, g_isect):
    """Walk each tile's list back to front, recovering each pixel's transmittance by division, and
    write the gradients of every intersection into its row of g_isect (row = position in flat_ids;
    columns mean x, mean y, conic a, b, c, opacity, channels...)."""
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    for tile in prange(n_tiles):
        # Same tile set-up as the forward kernel, written out on purpose: moved into an inlined helper
        # returning a tuple, numba's parfor lowering gave wrong images (tests caught it).
        start, end = tile_offsets[tile], tile_offsets[tile + 1]
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1, y1 = min(x0 + TILE, width), min(y0 + TILE, height)
        tw = x1 - x0
        n_pix = tw * (y1 - y0)
        K = end - start
        g6, col = _gather_tile(means2d, conics, opacities, radii, channels, flat_ids, start, K)
        T = np.empty(n_pix)
        buf = np.zeros((n_pix, C))
        gpix = np.empty((n_pix, C))
        coef = np.empty(n_pix)  # d loss / d final transmittance terms: (g_alpha - g . background) T_final
        last = np.empty(n_pix, dtype=np.int32)
        gcol = np.empty(C)
        k_end = 0
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                T[p] = final_t[py, px]
                last[p] = n_contrib[py, px]
                k_end = max(k_end, last[p])
                g_bg = 0.0
                for c in range(C):
                    gpix[p, c] = grad_out[py, px, c]
                    g_bg += gpix[p, c] * background[c]
                coef[p] = (grad_alpha[py, px] - g_bg) * T[p]
        for r in range(start + k_end, end):
            for j in range(6 + C):
                g_isect[r, j] = 0.0
        for k in range(k_end - 1, -1, -1):
            mx, my, ca, cb, cc, op, lop = g6[k, 0], g6[k, 1], g6[k, 2], g6[k, 3], g6[k, 4], g6[k, 5], g6[k, 6]
            xa, xb = _pixel_span(mx, g6[k, 7], x0, x1)
            ya, yb = _pixel_span(my, g6[k, 8], y0, y1)
            gmx = gmy = gca = gcb = gcc = gop = 0.0
            for c in range(C):
                gcol[c] = 0.0
            for py in range(ya, yb):
                dy = my - (py + 0.5)
                for px in range(xa, xb):
                    p = (py - y0) * tw + (px - x0)
                    if k >= last[p]:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0 or sigma > lop:
                        continue
                    vis = math.exp(-sigma)
                    alpha = min(MAX_ALPHA, op * vis)
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    ra = 1.0 / (1.0 - alpha)
                    T[p] *= ra
                    t = T[p]
                    w = alpha * t
                    g_alpha_k = coef[p] * ra
                    for c in range(C):
                        g = gpix[p, c]
                        gcol[c] += w * g
                        g_alpha_k += (col[k, c] * t - buf[p, c] * ra) * g
                        buf[p, c] += col[k, c] * w
                    if op * vis <= MAX_ALPHA:
                        g_sigma = -op * vis * g_alpha_k
                        gca += 0.5 * g_sigma * dx * dx
                        gcb += g_sigma * dx * dy
                        gcc += 0.5 * g_sigma * dy * dy
                        gmx += g_sigma * (ca * dx + cb * dy)
                        gmy += g_sigma * (cb * dx + cc * dy)
                        gop += vis * g_alpha_k
            r = start + k
            g_isect[r, 0] = gmx
            g_isect[r, 1] = gmy
            g_isect[r, 2] = gca
            g_isect[r, 3] = gcb
            g_isect[r, 4] = gcc
            g_isect[r, 5] = gop
            for c in range(C):
                g_isect[r, 6 + c] = gcol[c]
