"""Compiled CPU kernels (numba) for tile intersection and alpha compositing, forward and backward.

Why numba rather than a torch C++ extension: it needs no compiler at install time (the app ships to
desktops without one), caches the compiled code on disk (``cache=True``), and keeps the kernels in
Python next to the torch reference they are tested against.

Kernels work tile by tile (``prange`` over 16x16 tiles) in their inputs' precision: float32 in
training (cheaper exp, division and square root; ``like`` keeps literals from promoting to float64),
float64 in the tests that hold them to the reference to rounding. Of fastmath only ``contract``
(fused multiply-adds) is on: forward and backward evaluate the same expressions, so they still take
the same cull/stop decisions, and value-changing reordering stays off. The backward
writes gradients per intersection (each intersection belongs to one tile, so one thread) and a
second pass sums them per Gaussian: no atomics, no races.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

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


@njit(inline="always")
def _edge_min(d_fixed, lo, hi, c_fixed, c_free, cb):
    """Smallest sigma on a rectangle edge: the offset along one axis is fixed at ``d_fixed``, the other
    runs over [lo, hi]; sigma = (c_fixed d_fixed^2 + c_free d^2) / 2 + cb d_fixed d is a parabola in d."""
    d = min(max(-cb * d_fixed / c_free, lo), hi)
    return 0.5 * (c_fixed * d_fixed * d_fixed + c_free * d * d) + cb * d_fixed * d


@njit(inline="always")
def min_sigma_in_rect(mx, my, ca, cb, cc, ax, bx, ay, by):
    """Smallest sigma(x, y) of a positive-definite conic over the rectangle [ax, bx] x [ay, by].

    sigma is convex, so off the mean its minimum over the rectangle lies on the boundary: the least of
    the four edges' parabola minima (gsplat 1.5 bins by the mean +- radius box instead, which for a
    slanted ellipse covers many tiles the ellipse misses)."""
    if ax <= mx <= bx and ay <= my <= by:
        return 0.0
    # offsets dx = mx - x, dy = my - y over the rectangle
    dx_lo, dx_hi = mx - bx, mx - ax
    dy_lo, dy_hi = my - by, my - ay
    best = min(_edge_min(dx_lo, dy_lo, dy_hi, ca, cc, cb), _edge_min(dx_hi, dy_lo, dy_hi, ca, cc, cb))
    return min(best, min(_edge_min(dy_lo, dx_lo, dx_hi, cc, ca, cb), _edge_min(dy_hi, dx_lo, dx_hi, cc, ca, cb)))


# sigma margin for the tile test: the kernels' exp(-sigma) by multiplication along a row differs from
# this closed form by rounding only (~1e-14 relative); 1e-3 keeps every pixel with alpha >= 1/255.
FOOTPRINT_MARGIN = 1e-3


@njit(inline="always")
def _tile_hit(mx, my, ca, cb, cc, lop, tile, tiles_x, width, height):
    """Whether any pixel centre of ``tile`` can see the Gaussian with alpha >= 1/255 (sigma <= lop)."""
    x0 = (tile % tiles_x) * TILE
    y0 = (tile // tiles_x) * TILE
    ax, bx = x0 + 0.5, min(x0 + TILE, width) - 0.5
    ay, by = y0 + 0.5, min(y0 + TILE, height) - 0.5
    return min_sigma_in_rect(mx, my, ca, cb, cc, ax, bx, ay, by) <= lop + FOOTPRINT_MARGIN


@njit(parallel=True, cache=True)
def _footprint_tiles(rect, means2d, conics, opacities, tiles_x, width, height):
    """Per Gaussian i, the tiles of its box that its footprint reaches: tiles[box[i]:box[i] + hits[i]]
    (``box`` is the running sum of box areas). One parallel pass, so the binning tests each tile once."""
    n = rect.shape[0]
    box = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        box[i + 1] = box[i] + (rect[i, 1] - rect[i, 0]) * (rect[i, 3] - rect[i, 2])
    tiles = np.empty(box[n], dtype=np.int32)
    hits = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        if box[i + 1] == box[i]:
            continue
        lop = math.log(max(np.float64(opacities[i]), 1e-30) / ALPHA_THRESHOLD)
        mx, my = np.float64(means2d[i, 0]), np.float64(means2d[i, 1])
        ca, cb, cc = np.float64(conics[i, 0]), np.float64(conics[i, 1]), np.float64(conics[i, 2])
        if not (ca > 0.0 and cc > 0.0):
            continue
        c = box[i]
        for ty in range(rect[i, 2], rect[i, 3]):
            for tx in range(rect[i, 0], rect[i, 1]):
                t = ty * tiles_x + tx
                if _tile_hit(mx, my, ca, cb, cc, lop, t, tiles_x, width, height):
                    tiles[c] = t
                    c += 1
        hits[i] = c - box[i]
    return box, tiles, hits


@njit(cache=True)
def bin_by_footprint(rect, depth_order, means2d, conics, opacities, tiles_x, tiles_y, width, height):
    """Like ``bin_by_tile`` but keeps a Gaussian in a tile of its box only when the tile holds a pixel
    centre where its alpha can reach 1/255 (a Gaussian dropped from a tile would add nothing there).
    ``depth_order`` may leave out Gaussians with an empty box. Returns (tile_offsets, flat_ids,
    box_count): box_count is gsplat's number of intersections."""
    n_tiles = tiles_x * tiles_y
    box, tiles, hits = _footprint_tiles(rect, means2d, conics, opacities, tiles_x, width, height)
    counts = np.zeros(n_tiles + 1, dtype=np.int64)
    for i in range(rect.shape[0]):
        for j in range(box[i], box[i] + hits[i]):
            counts[tiles[j] + 1] += 1
    offsets = np.cumsum(counts)
    cursor = offsets[:-1].copy()
    flat_ids = np.empty(offsets[-1], dtype=np.int32)
    for j in range(depth_order.shape[0]):
        i = depth_order[j]
        for h in range(box[i], box[i] + hits[i]):
            t = tiles[h]
            flat_ids[cursor[t]] = i
            cursor[t] += 1
    return offsets, flat_ids, box[rect.shape[0]]


@njit(inline="always")
def _pixel_span(m, r, lo, hi):
    """Pixels [a, b) of [lo, hi) whose centres lie within m +- r, widened by one pixel against rounding.

    Outside mean +- radius a Gaussian's alpha is below 1/255 (the radius uses the opacity-aware
    extend), so skipping those pixels gives the same image as walking the whole tile.
    """
    a = min(max(math.floor(m - r - 0.5), lo), hi)
    b = min(max(math.ceil(m + r - 0.5) + 1.0, lo), hi)
    return int(a), int(b)


def like(proto, value):
    """``value`` in the precision of ``proto`` (a float array or scalar), inside compiled code: the
    kernels compute in their inputs' precision, and a plain literal would promote float32 to float64."""
    raise NotImplementedError("only inside numba-compiled code")


@overload(like, inline="always")
def _like(proto, value):
    target = proto.dtype if isinstance(proto, types.Array) else proto

    def impl(proto, value):
        return target(value)

    return impl


@njit(inline="always")
def _gather_tile(means2d, conics, opacities, radii, channels, flat_ids, start, K):
    """Copy one tile's Gaussians into contiguous arrays (as gsplat's shared-memory batches), in the
    channels' precision."""
    C = channels.shape[1]
    g6 = np.empty((K, 9), dtype=channels.dtype)  # mean x, y, conic a, b, c, opacity, log(255 opacity), radius x, y
    col = np.empty((K, C), dtype=channels.dtype)
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


# The chord is solved for sigma <= log(255 opacity) + CHORD_SLACK, i.e. alpha down to 1 % under the
# threshold: far wider than the rounding of the pixel loop's exp() recurrence (~1e-6 relative) or of the
# chord's own arithmetic in float32, so every pixel the per-pixel test keeps lies inside it, while a
# chord one pixel wider on each side (as before) walked ~2 extra pixels per row, a third of all the
# pixels walked on a trained scene.
CHORD_SLACK = 0.01


@njit(inline="always")
def _row_constants(mx, ca, cb, cc, lop):
    """Per Gaussian, what ``_chord`` needs on every row, in the inputs' precision.

    Along a row sigma is a parabola in x: sigma = rowmin + ca/2 (x - vertex)^2 with its vertex at
    mean x + slope dy and rowmin = (cc - cb slope) dy^2 / 2 (the conic is positive definite)."""
    half = like(ca, 0.5)
    slope = cb / ca
    return slope, half * (cc - cb * slope), like(ca, 2.0) / ca, lop + like(ca, CHORD_SLACK), mx - half


@njit(inline="always")
def _chord(slope, rowc, inv2, reach0, centre0, dy, lo, hi):
    """Pixels [xs, xe) of [lo, hi) on row dy whose centres lie where sigma <= lop + CHORD_SLACK (xs >= xe:
    none); the arguments come from ``_row_constants``. One square root per row."""
    reach = reach0 - rowc * dy * dy
    if reach < 0.0:
        return 0, 0
    hw = math.sqrt(reach * inv2)
    centre = centre0 + slope * dy  # the pixel index whose centre is the vertex
    return max(int(math.ceil(centre - hw)), lo), min(int(math.floor(centre + hw)) + 1, hi)


@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def rasterize_forward(means2d, conics, opacities, radii, channels, background, tile_offsets, flat_ids,
                      width, height, tiles_x, out, final_t, n_contrib):
    """Composite front to back. Writes out (H,W,C) incl. background, final transmittance (H,W, float64)
    and, per pixel, how many entries of its tile list were walked up to the last one that contributed.

    Loops Gaussian-outer, pixel-inner; the per-pixel order of operations is still front to back, as in
    gsplat's per-pixel loop. Each row of a Gaussian's box visits only the chord where alpha can reach
    1/255 (one sqrt per row), and carries exp(-sigma) along it with two multiplications per pixel
    (sigma's second difference along x is the constant conic a; a <= 1/0.3 after the 0.3 px dilation,
    so the factors stay far from overflow): two exp() per row instead of one per pixel.
    """
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    f = channels  # the working precision's prototype
    half, one, max_alpha = like(f, 0.5), like(f, 1.0), like(f, MAX_ALPHA)
    threshold, min_t = like(f, ALPHA_THRESHOLD), like(f, MIN_TRANSMITTANCE)
    for tile in prange(n_tiles):
        start, end = tile_offsets[tile], tile_offsets[tile + 1]
        x0 = (tile % tiles_x) * TILE
        y0 = (tile // tiles_x) * TILE
        x1, y1 = min(x0 + TILE, width), min(y0 + TILE, height)
        tw = x1 - x0
        n_pix = tw * (y1 - y0)
        K = end - start
        g6, col = _gather_tile(means2d, conics, opacities, radii, channels, flat_ids, start, K)
        T = np.ones(n_pix, dtype=channels.dtype)
        acc = np.zeros((n_pix, C), dtype=channels.dtype)
        last = np.zeros(n_pix, dtype=np.int32)
        done = np.zeros(n_pix, dtype=np.bool_)
        row_live = np.full(y1 - y0, tw, dtype=np.int32)  # pixels of each row not yet done
        n_done = 0
        for k in range(K):
            mx, my, ca, cb, cc, op, lop = g6[k, 0], g6[k, 1], g6[k, 2], g6[k, 3], g6[k, 4], g6[k, 5], g6[k, 6]
            if not ca > 0.0:  # projection only makes positive-definite conics
                continue
            xa, xb = _pixel_span(mx, g6[k, 7], x0, x1)
            ya, yb = _pixel_span(my, g6[k, 8], y0, y1)
            q = math.exp(-ca)
            slope, rowc, inv2, reach0, centre0 = _row_constants(mx, ca, cb, cc, lop)
            for py in range(ya, yb):
                if row_live[py - y0] == 0:  # every pixel of this row has spent its transmittance
                    continue
                dy = my - (like(f, py) + half)
                xs, xe = _chord(slope, rowc, inv2, reach0, centre0, dy, xa, xb)
                if xs >= xe:  # the row misses the alpha >= 1/255 ellipse
                    continue
                dx = mx - (like(f, xs) + half)
                vis = math.exp(-(half * (ca * dx * dx + cc * dy * dy) + cb * dx * dy))
                r = math.exp(-(half * ca - ca * dx - cb * dy))  # exp(-(sigma(xs + 1) - sigma(xs)))
                p = (py - y0) * tw + (xs - x0)
                for px in range(xs, xe):
                    alpha = min(max_alpha, op * vis)
                    if alpha >= threshold and not done[p]:
                        next_t = T[p] * (one - alpha)
                        if next_t <= min_t:
                            done[p] = True
                            n_done += 1
                            row_live[py - y0] -= 1
                        else:
                            w = alpha * T[p]
                            for c in range(C):
                                acc[p, c] += col[k, c] * w
                            T[p] = next_t
                            last[p] = k + 1
                    vis *= r
                    r *= q
                    p += 1
            if n_done == n_pix:
                break
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                for c in range(C):
                    out[py, px, c] = acc[p, c] + T[p] * background[c]
                final_t[py, px] = T[p]
                n_contrib[py, px] = last[p]


@njit(parallel=True, fastmath={"contract"}, error_model="numpy", cache=True)
def rasterize_backward(means2d, conics, opacities, radii, channels, background, tile_offsets, flat_ids,
                       width, height, tiles_x, final_t, n_contrib, grad_out, grad_alpha, g_isect):
    """Walk each tile's list back to front, recovering each pixel's transmittance by division, and
    write the gradients of every intersection into its row of g_isect (row = position in flat_ids;
    columns mean x, mean y, conic a, b, c, opacity, channels...). Rows are walked as in the forward."""
    n_tiles = tile_offsets.shape[0] - 1
    C = channels.shape[1]
    f = channels
    half, one, max_alpha, threshold = like(f, 0.5), like(f, 1.0), like(f, MAX_ALPHA), like(f, ALPHA_THRESHOLD)
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
        T = np.empty(n_pix, dtype=f.dtype)
        buf = np.zeros((n_pix, C), dtype=f.dtype)
        gpix = np.empty((n_pix, C), dtype=f.dtype)
        coef = np.empty(n_pix, dtype=f.dtype)  # d loss / d final transmittance terms: (g_alpha - g . background) T_final
        last = np.empty(n_pix, dtype=np.int32)
        row_last = np.zeros(y1 - y0, dtype=np.int32)  # per row, the largest ``last`` of its pixels
        gcol = np.empty(C, dtype=f.dtype)
        k_end = 0
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                T[p] = final_t[py, px]
                last[p] = n_contrib[py, px]
                k_end = max(k_end, last[p])
                row_last[py - y0] = max(row_last[py - y0], last[p])
                g_bg = like(f, 0.0)
                for c in range(C):
                    gpix[p, c] = grad_out[py, px, c]
                    g_bg += gpix[p, c] * background[c]
                coef[p] = (grad_alpha[py, px] - g_bg) * T[p]
        for r in range(start + k_end, end):
            for j in range(6 + C):
                g_isect[r, j] = 0.0
        for k in range(k_end - 1, -1, -1):
            mx, my, ca, cb, cc, op, lop = g6[k, 0], g6[k, 1], g6[k, 2], g6[k, 3], g6[k, 4], g6[k, 5], g6[k, 6]
            gmx = gmy = gca = gcb = gcc = gop = like(f, 0.0)
            for c in range(C):
                gcol[c] = 0.0
            if ca > 0.0:
                xa, xb = _pixel_span(mx, g6[k, 7], x0, x1)
                ya, yb = _pixel_span(my, g6[k, 8], y0, y1)
                q = math.exp(-ca)
                slope, rowc, inv2, reach0, centre0 = _row_constants(mx, ca, cb, cc, lop)
                for py in range(ya, yb):
                    if k >= row_last[py - y0]:  # no pixel of this row saw Gaussian k contribute
                        continue
                    dy = my - (like(f, py) + half)
                    xs, xe = _chord(slope, rowc, inv2, reach0, centre0, dy, xa, xb)
                    if xs >= xe:
                        continue
                    dx = mx - (like(f, xs) + half)
                    vis = math.exp(-(half * (ca * dx * dx + cc * dy * dy) + cb * dx * dy))
                    r = math.exp(-(half * ca - ca * dx - cb * dy))
                    p = (py - y0) * tw + (xs - x0)
                    for px in range(xs, xe):
                        alpha = min(max_alpha, op * vis)
                        if alpha >= threshold and k < last[p]:
                            ra = one / (one - alpha)
                            T[p] *= ra
                            t = T[p]
                            w = alpha * t
                            g_alpha_k = coef[p] * ra
                            for c in range(C):
                                g = gpix[p, c]
                                gcol[c] += w * g
                                g_alpha_k += (col[k, c] * t - buf[p, c] * ra) * g
                                buf[p, c] += col[k, c] * w
                            if op * vis <= max_alpha:
                                g_sigma = -op * vis * g_alpha_k
                                gca += half * g_sigma * dx * dx
                                gcb += g_sigma * dx * dy
                                gcc += half * g_sigma * dy * dy
                                gmx += g_sigma * (ca * dx + cb * dy)
                                gmy += g_sigma * (cb * dx + cc * dy)
                                gop += vis * g_alpha_k
                        vis *= r
                        r *= q
                        p += 1
                        dx -= one  # the next pixel's offset
            r = start + k
            g_isect[r, 0] = gmx
            g_isect[r, 1] = gmy
            g_isect[r, 2] = gca
            g_isect[r, 3] = gcb
            g_isect[r, 4] = gcc
            g_isect[r, 5] = gop
            for c in range(C):
                g_isect[r, 6 + c] = gcol[c]


@njit(cache=True)
def image_gradient_summary(grad_out, final_t):
    """Per channel of the (H,W,C) image gradient: whether any pixel's is non-zero, and the background's
    gradient sum_pixels final_t * grad (float64), in one pass."""
    H, W, C = grad_out.shape
    live = np.zeros(C, dtype=np.bool_)
    g_background = np.zeros(C)
    for y in range(H):
        for x in range(W):
            t = np.float64(final_t[y, x])
            for c in range(C):
                g = grad_out[y, x, c]
                if g != 0:
                    live[c] = True
                g_background[c] += t * g
    return live, g_background


@njit(cache=True)
def sum_per_gaussian(flat_ids, per_isect, out):
    """out[flat_ids[r]] += per_isect[r] (serial: the reduction is memory-bound and cheap)."""
    for r in range(flat_ids.shape[0]):
        g = flat_ids[r]
        for j in range(per_isect.shape[1]):
            out[g, j] += per_isect[r, j]


def set_threads(n: int) -> None:
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
