"""The ``cpu`` backend's rasterizer: numba tile kernels wrapped in an autograd Function."""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import torch

from engine.render import cpu_kernels as K
from engine.render import cpu_threads
from engine.render import cpu_kernels_legacy

# The raster kernels in use: "rows" (cpu_kernels) or "legacy" (the earlier ones, kept as the benchmarks'
# baseline). Both take the same arguments and give the same images and gradients.
_KERNELS = {"rows": K, "legacy": cpu_kernels_legacy}
_active = ["rows"]


@contextlib.contextmanager
def use_kernels(name: str):
    """Rasterize with the named kernels inside the ``with`` block (for side-by-side benchmarks)."""
    if name not in _KERNELS:
        raise ValueError(f"unknown cpu kernels {name!r}; choose one of {', '.join(_KERNELS)}")
    previous = _active[0]
    _active[0] = name
    try:
        yield
    finally:
        _active[0] = previous
from engine.render.projection import Projection, tile_grid
from engine.scene import Camera


class TileBins:
    """Intersections of Gaussians with 16x16 tiles, each tile's list sorted front to back."""

    def __init__(self, tile_offsets: np.ndarray, flat_ids: np.ndarray, tiles_x: int, tiles_y: int,
                 box_count: int | None = None):
        self.tile_offsets = tile_offsets  # (tiles+1,) int64
        self.flat_ids = flat_ids  # (n_isects,) int32, rows of the Projection
        self.tiles_x, self.tiles_y = tiles_x, tiles_y
        # gsplat's count (every tile of each mean +- radius box), also when the lists keep fewer
        self.box_count = int(flat_ids.shape[0]) if box_count is None else int(box_count)

    @property
    def n_isects(self) -> int:
        return int(self.flat_ids.shape[0])


def _binning_inputs(proj: Projection, camera: Camera):
    tiles_x, tiles_y = tile_grid(camera)
    means2d = proj.means2d.detach().cpu().numpy()
    rect = K.tile_ranges(means2d, proj.radii.cpu().numpy(), tiles_x, tiles_y)
    order = depth_order(proj.depths.detach().cpu().numpy())
    return tiles_x, tiles_y, means2d, rect, order


def depth_order(depths: np.ndarray) -> np.ndarray:
    """The stable argsort of ``depths`` (ties keep scene order, as gsplat's radix sort does).

    Sorted as unique 64-bit keys (the depth's bits made order-preserving, then the index), because
    numpy's stable sort of floats is a merge sort three times slower than its vectorised sort of
    integers, and unique keys make the unstable sort give the stable order. Other dtypes (float64 in
    the tests held to the reference) take numpy's stable sort."""
    if depths.dtype != np.float32:
        return np.argsort(depths, kind="stable")
    plus_zero = depths + np.float32(0.0)  # -0.0 becomes 0.0: they are equal
    bits = plus_zero.view(np.uint32).astype(np.uint64)
    bits = np.where(bits >> 31 == 1, ~bits & 0xFFFFFFFF, bits | 0x80000000)  # negative floats reverse order
    keys = (bits << 32) | np.arange(bits.shape[0], dtype=np.uint64)
    keys.sort()
    return (keys & 0xFFFFFFFF).astype(np.int64)


def bin_tiles(proj: Projection, camera: Camera) -> TileBins:
    """gsplat's binning: every tile of each Gaussian's mean +- radius box."""
    tiles_x, tiles_y, _, rect, order = _binning_inputs(proj, camera)
    offsets, flat_ids = K.bin_by_tile(rect, order, tiles_x, tiles_y)
    return TileBins(offsets, flat_ids, tiles_x, tiles_y)


def bin_tiles_by_footprint(proj: Projection, camera: Camera) -> TileBins:
    """Only the tiles of the box where the Gaussian's alpha can reach 1/255 (same image, fewer lists)."""
    tiles_x, tiles_y, means2d, rect, order = _binning_inputs(proj, camera)
    offsets, flat_ids, box_count = K.bin_by_footprint(
        rect, order, means2d, _np(proj.conics), _np(proj.opacities), tiles_x, tiles_y, camera.width,
        camera.height)
    return TileBins(offsets, flat_ids, tiles_x, tiles_y, box_count)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().cpu().numpy()


class RasterizeCPU(torch.autograd.Function):
    """(means2d, conics, opacities, channels, background) -> (image (H,W,C), alpha (H,W))."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, channels, background, radii, bins: TileBins, width: int,
                height: int):
        dtype = channels.dtype
        C = channels.shape[1]
        kernels = _KERNELS[_active[0]]
        # the kernels compute in the channels' precision (float32 in training); the legacy ones in float64
        work = np.float64 if kernels is cpu_kernels_legacy else _np(channels).dtype
        out = np.empty((height, width, C), dtype=work)
        final_t = np.empty((height, width), dtype=work)
        n_contrib = np.empty((height, width), dtype=np.int32)
        inputs = [_np(means2d), _np(conics), _np(opacities), _np(radii), _np(channels), _np(background)]
        with numba.parallel_chunksize(1):  # tiles differ a lot in cost: hand them out one by one
            kernels.rasterize_forward(*inputs, bins.tile_offsets, bins.flat_ids, width, height, bins.tiles_x,
                                out, final_t, n_contrib)
        ctx.inputs, ctx.bins, ctx.size = inputs, bins, (width, height)
        ctx.final_t, ctx.n_contrib, ctx.kernels = final_t, n_contrib, kernels
        image = torch.from_numpy(out).to(dtype)
        alpha = torch.from_numpy(1.0 - final_t).to(dtype)
        return image, alpha

    @staticmethod
    def backward(ctx, grad_image, grad_alpha):
        means2d, conics, opacities, radii, channels, background = ctx.inputs
        bins, (width, height) = ctx.bins, ctx.size
        C = channels.shape[1]
        dtype = torch.float64 if channels.dtype == np.float64 else torch.float32
        if grad_image is None:
            grad_image = torch.zeros(height, width, C, dtype=dtype)
        if grad_alpha is None:
            grad_alpha = torch.zeros(height, width, dtype=dtype)
        work = torch.float64 if ctx.kernels is cpu_kernels_legacy else dtype
        g_img = _np(grad_image.to(work))
        g_alpha = _np(grad_alpha.to(work))
        if ctx.kernels is K:
            # A channel whose image gradient is zero everywhere (depth, when the loss ignores it) adds
            # exactly nothing to any gradient: the kernel walks only the others.
            live_mask, g_bg = K.image_gradient_summary(g_img, ctx.final_t)
            live = np.flatnonzero(live_mask)
        else:  # the legacy baseline walks every channel, as before
            live = np.arange(C)
            g_bg = (ctx.final_t[..., None] * g_img).sum(axis=(0, 1))
        if len(live) < C:
            channels, background = np.ascontiguousarray(channels[:, live]), np.ascontiguousarray(background[live])
            g_img_live = np.ascontiguousarray(g_img[..., live])
        else:
            g_img_live = g_img
        g_isect = np.empty((bins.n_isects, 6 + len(live)), dtype=channels.dtype)
        with numba.parallel_chunksize(1):
            ctx.kernels.rasterize_backward(means2d, conics, opacities, radii, channels, background, bins.tile_offsets,
                                 bins.flat_ids, width, height, bins.tiles_x, ctx.final_t, ctx.n_contrib,
                                 g_img_live, g_alpha, g_isect)
        per_gaussian = np.zeros((means2d.shape[0], 6 + C), dtype=np.float64)
        summed = per_gaussian if len(live) == C else np.zeros((means2d.shape[0], 6 + len(live)))
        K.sum_per_gaussian(bins.flat_ids, g_isect, summed)
        if len(live) < C:
            per_gaussian[:, :6] = summed[:, :6]
            per_gaussian[:, 6 + live] = summed[:, 6:]
        g = torch.from_numpy(per_gaussian).to(dtype)
        g_background = torch.from_numpy(np.asarray(g_bg, dtype=np.float64)).to(dtype)
        return g[:, 0:2], g[:, 2:5], g[:, 5], g[:, 6:], g_background, None, None, None, None


def rasterize(proj: Projection, channels: torch.Tensor, background: torch.Tensor, camera: Camera):
    """Image (H,W,C) with ``background`` composited behind, alpha (H,W) and the number of intersections."""
    # inside a training run the thread count was chosen once from the free cores (cpu_threads)
    K.set_threads(cpu_threads.planned_threads() or torch.get_num_threads())
    bins = bin_tiles_by_footprint(proj, camera) if _active[0] == "rows" else bin_tiles(proj, camera)
    image, alpha = RasterizeCPU.apply(
        proj.means2d, proj.conics, proj.opacities, channels, background, proj.radii, bins, camera.width,
        camera.height,
    )
    return image, alpha, bins.box_count
