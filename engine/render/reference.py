"""The ``reference`` backend: tile intersection and compositing in plain torch, autograd for the backward.

Readable and slow; it is the oracle the compiled kernels are tested against. Each tile is composited
as a (pixels x Gaussians) matrix under activation checkpointing, so memory stays bounded by one tile.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from engine.render.projection import ALPHA_THRESHOLD, TILE, Projection, tile_grid
from engine.scene import Camera

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4


@torch.no_grad()
def intersect_tiles(means2d: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor, tiles_x: int, tiles_y: int):
    """(tile_offsets (tiles+1,), gaussian ids (n_isects,)): tiles covered by mean +- radius, each
    tile's ids sorted by depth (ties in index order)."""
    m = means2d.double() / TILE
    r = radii.double() / TILE
    lo = torch.floor(m - r).long()
    hi = torch.ceil(m + r).long()
    limits = torch.tensor([tiles_x, tiles_y], device=m.device)
    lo = torch.minimum(lo.clamp_min(0), limits)
    hi = torch.minimum(hi.clamp_min(0), limits)
    size = (hi - lo) * (radii > 0).all(dim=1, keepdim=True)
    counts = size[:, 0] * size[:, 1]

    order = torch.sort(depths, stable=True).indices
    ids = torch.repeat_interleave(order, counts[order])
    # Position of each intersection inside its Gaussian's rectangle -> tile coordinates.
    starts = torch.cumsum(counts[order], 0) - counts[order]
    local = torch.arange(len(ids), device=m.device) - torch.repeat_interleave(starts, counts[order])
    w = size[ids, 0]
    tile_x = lo[ids, 0] + local % w.clamp_min(1)
    tile_y = lo[ids, 1] + local // w.clamp_min(1)
    tile = tile_y * tiles_x + tile_x
    perm = torch.sort(tile, stable=True).indices  # stable: depth order kept within a tile
    ids, tile = ids[perm], tile[perm]
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long, device=m.device), torch.cumsum(per_tile, 0)])
    return offsets, ids


def composite_tile(pixels, means2d, conics, opacities, channels):
    """Front-to-back compositing of K depth-sorted Gaussians over P pixel centres.

    Returns (accumulated channels (P,C), final transmittance (P,))."""
    d = means2d.unsqueeze(0) - pixels.unsqueeze(1)  # (P,K,2), mean - pixel
    dx, dy = d[..., 0], d[..., 1]
    a, b, c = conics.unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    skip_sigma = sigma < 0
    # exp of a negative sigma could overflow; those entries are skipped anyway, keep their graph finite.
    alpha = torch.clamp_max(opacities * torch.exp(-sigma.masked_fill(skip_sigma, 0.0)), MAX_ALPHA)
    alpha = alpha.masked_fill(skip_sigma | (alpha < ALPHA_THRESHOLD), 0.0)
    t_after = torch.cumprod(1.0 - alpha, dim=1)
    # A Gaussian that would take T to 1e-4 or below stops the pixel and is not added, nor is any behind it.
    stopped = torch.cumsum((t_after <= MIN_TRANSMITTANCE).int(), dim=1) > 0
    alpha = alpha.masked_fill(stopped, 0.0)
    t_after = torch.cumprod(1.0 - alpha, dim=1)
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
    weights = alpha * t_before
    return weights @ channels, t_after[:, -1]


def rasterize(proj: Projection, channels: torch.Tensor, background: torch.Tensor, camera: Camera):
    """Image (H,W,C) with ``background`` composited behind, alpha (H,W) and the number of intersections."""
    W, H = camera.width, camera.height
    tiles_x, tiles_y = tile_grid(camera)
    offsets, ids = intersect_tiles(proj.means2d.detach(), proj.radii, proj.depths.detach(), tiles_x, tiles_y)
    dtype, device = channels.dtype, channels.device
    C = channels.shape[1]
    image = torch.zeros(H, W, C, dtype=dtype, device=device) + background
    transmittance = torch.ones(H, W, dtype=dtype, device=device)
    rows, cols, accs, ts = [], [], [], []
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (proj.means2d, proj.conics, proj.opacities, channels)
    )
    for tile in range(tiles_x * tiles_y):
        start, end = int(offsets[tile]), int(offsets[tile + 1])
        if start == end:
            continue
        x0, y0 = (tile % tiles_x) * TILE, (tile // tiles_x) * TILE
        ys, xs = torch.meshgrid(
            torch.arange(y0, min(y0 + TILE, H), device=device),
            torch.arange(x0, min(x0 + TILE, W), device=device),
            indexing="ij",
        )
        ys, xs = ys.reshape(-1), xs.reshape(-1)
        pixels = torch.stack([xs, ys], -1).to(dtype) + 0.5
        g = ids[start:end]
        args = (pixels, proj.means2d[g], proj.conics[g], proj.opacities[g], channels[g])
        if needs_grad:
            acc, t_final = checkpoint(composite_tile, *args, use_reentrant=False)
        else:
            acc, t_final = composite_tile(*args)
        rows.append(ys), cols.append(xs), accs.append(acc), ts.append(t_final)
    if rows:
        ys, xs = torch.cat(rows), torch.cat(cols)
        t_final = torch.cat(ts)
        image = image.index_put((ys, xs), torch.cat(accs) + t_final.unsqueeze(-1) * background)
        transmittance = transmittance.index_put((ys, xs), t_final)
    return image, 1.0 - transmittance, len(ids)
