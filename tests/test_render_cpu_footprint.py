"""The cpu backend's footprint binning (a Gaussian joins only the tiles its alpha >= 1/255 ellipse reaches)
and its training thread plan."""

from __future__ import annotations

import math
from dataclasses import replace

import numba
import numpy as np
import torch

from engine.render import cpu_backend, cpu_threads, render
from engine.render import cpu_kernels as K
from engine.render.cpu_projection import project_cpu
from engine.render.checks import PARAMETERS, edge_case_scene
from tests.factories import orbit_cameras


def _random_gaussians(n, width, height, seed):
    g = np.random.default_rng(seed)
    means2d = np.column_stack([g.uniform(-20, width + 20, n), g.uniform(-20, height + 20, n)])
    # slanted, elongated covariances (the case a box wastes most tiles on), conic = inverse
    angle = g.uniform(0, np.pi, n)
    s1, s2 = g.uniform(0.5, 25, n), g.uniform(0.3, 3, n)
    c, s = np.cos(angle), np.sin(angle)
    cov = np.empty((n, 2, 2))
    cov[:, 0, 0] = c * c * s1**2 + s * s * s2**2
    cov[:, 1, 1] = s * s * s1**2 + c * c * s2**2
    cov[:, 0, 1] = cov[:, 1, 0] = c * s * (s1**2 - s2**2)
    inv = np.linalg.inv(cov)
    conics = np.column_stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]])
    opacities = g.uniform(0.01, 0.999, n)
    extend = np.minimum(3.33, np.sqrt(2 * np.log(opacities / K.ALPHA_THRESHOLD)))
    radii = np.column_stack([np.ceil(extend * np.sqrt(cov[:, 0, 0])), np.ceil(extend * np.sqrt(cov[:, 1, 1]))])
    return means2d, conics, opacities, radii.astype(np.int32)


def test_footprint_binning_never_drops_a_pixel_with_alpha_above_the_threshold():
    width, height = 150, 110
    tiles_x, tiles_y = math.ceil(width / K.TILE), math.ceil(height / K.TILE)
    means2d, conics, opacities, radii = _random_gaussians(400, width, height, seed=0)
    rect = K.tile_ranges(means2d, radii, tiles_x, tiles_y)
    order = np.arange(len(opacities))
    box_offsets, box_ids = K.bin_by_tile(rect, order, tiles_x, tiles_y)
    offsets, ids, box_count = K.bin_by_footprint(rect, order, means2d, conics, opacities, tiles_x, tiles_y,
                                                 width, height)
    assert box_count == len(box_ids)
    assert len(ids) < 0.8 * len(box_ids)  # slanted ellipses miss many tiles of their boxes
    px, py = np.meshgrid(np.arange(K.TILE) + 0.5, np.arange(K.TILE) + 0.5)
    dropped = kept_checked = 0
    for tile in range(tiles_x * tiles_y):
        kept = set(ids[offsets[tile]:offsets[tile + 1]].tolist())
        box = box_ids[box_offsets[tile]:box_offsets[tile + 1]].tolist()
        assert kept <= set(box)
        x0, y0 = (tile % tiles_x) * K.TILE, (tile // tiles_x) * K.TILE
        inside = (x0 + px < width) & (y0 + py < height)
        xs, ys = (x0 + px)[inside], (y0 + py)[inside]
        for i in box:
            dx, dy = means2d[i, 0] - xs, means2d[i, 1] - ys
            sigma = 0.5 * (conics[i, 0] * dx * dx + conics[i, 2] * dy * dy) + conics[i, 1] * dx * dy
            alpha = np.minimum(K.MAX_ALPHA, opacities[i] * np.exp(-sigma))
            if i in kept:
                kept_checked += 1
                continue
            dropped += 1
            assert alpha.max() < K.ALPHA_THRESHOLD, (tile, i, alpha.max())
    assert dropped > 100 and kept_checked > 100


def test_min_sigma_in_rect_is_the_minimum_over_the_rectangle():
    g = np.random.default_rng(1)
    means2d, conics, _, _ = _random_gaussians(200, 100, 100, seed=2)
    for i in range(200):
        ax, ay = g.uniform(0, 80, 2)
        bx, by = ax + g.uniform(0, 20), ay + g.uniform(0, 20)
        x, y = np.meshgrid(np.linspace(ax, bx, 201), np.linspace(ay, by, 201))
        dx, dy = means2d[i, 0] - x, means2d[i, 1] - y
        a, b, c = conics[i]
        dense = (0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy).min()
        exact = K.min_sigma_in_rect(means2d[i, 0], means2d[i, 1], a, b, c, ax, bx, ay, by)
        assert exact <= dense + 1e-9  # never above the true minimum (a sample grid can only be above it)
        assert exact >= dense - 0.02 * max(dense, 1.0)  # and close to it (grid spacing)


def test_footprint_bins_give_the_box_bins_image():
    """The rasteriser over footprint-binned lists gives the image of the box-binned lists (same kernel)."""
    cam = orbit_cameras(8, width=80, image_height=60)[1]
    scene = edge_case_scene(cam, n=300, feature_dim=0, seed=4, camera_inside=False).to(dtype=torch.float64)
    with torch.no_grad():
        proj = project_cpu(scene, cam, 0, None)
    channels = torch.cat([proj.colors, proj.depths[:, None]], 1)
    background = torch.tensor([0.2, 0.4, 0.6, 0.0], dtype=torch.float64)
    images = []
    for bins in (cpu_backend.bin_tiles(proj, cam), cpu_backend.bin_tiles_by_footprint(proj, cam)):
        image, alpha = cpu_backend.RasterizeCPU.apply(proj.means2d, proj.conics, proj.opacities, channels,
                                                      background, proj.radii, bins, cam.width, cam.height)
        images.append((image, alpha, bins.n_isects, bins.box_count))
    (im0, a0, n0, box0), (im1, a1, n1, box1) = images
    assert box0 == box1 == n0 > n1 > 0
    assert float((im0 - im1).abs().max()) < 1e-12 and float((a0 - a1).abs().max()) < 1e-12


def test_training_threads_sets_and_restores_both_pools():
    before = (torch.get_num_threads(), numba.get_num_threads())
    assert cpu_threads.planned_threads() is None
    with cpu_threads.training_threads(1) as n:
        assert n == 1 == torch.get_num_threads() == numba.get_num_threads() == cpu_threads.planned_threads()
    assert (torch.get_num_threads(), numba.get_num_threads()) == before
    assert cpu_threads.planned_threads() is None


def test_free_cores_counts_the_cores_other_work_leaves():
    cores = cpu_threads.usable_cores()
    assert 1 <= cpu_threads.free_cores(0.05) <= cores
    # this process's own work in the window is not counted as other work
    assert cpu_threads.busy_cores_of_others(0.05) >= 0.0


def test_channels_without_image_gradient_are_skipped_exactly():
    """A loss on colour and alpha only (depth's and the features' image gradients are zero) gives the
    gradients of the walk over every channel (the legacy kernels), and zero for the features."""
    cam = orbit_cameras(8, width=48, image_height=40)[3]
    scene = edge_case_scene(cam, n=200, feature_dim=1, seed=5, camera_inside=False).to(dtype=torch.float64)
    grads = {}
    for kernels in ("legacy", "rows"):
        leaves = {name: getattr(scene, name).detach().clone().requires_grad_(True) for name in PARAMETERS}
        features = scene.features.detach().clone().requires_grad_(True)
        with cpu_backend.use_kernels(kernels):
            out = render(replace(scene, **leaves, features=features), cam, sh_degree=1,
                         background=(0.1, 0.2, 0.3), features=features, backend="cpu")
        weights = torch.linspace(-1, 1, out.rgb.numel(), dtype=torch.float64).reshape(out.rgb.shape)
        ((out.rgb * weights).sum() + out.alpha.sum()).backward()
        grads[kernels] = {**{name: leaves[name].grad for name in PARAMETERS}, "features": features.grad}
    for name, g in grads["legacy"].items():
        assert float((grads["rows"][name] - g).abs().max()) <= 1e-11 * max(1.0, float(g.abs().max())), name
    assert float(grads["rows"]["means"].abs().max()) > 0
    assert float(grads["rows"]["features"].abs().max()) == 0.0


def test_depth_order_is_numpys_stable_argsort_with_ties_and_negative_depths():
    g = np.random.default_rng(3)
    depths = g.uniform(-5, 50, 5000).astype(np.float32)
    depths[::7] = depths[3]  # many ties, which must keep scene order
    depths[1::11] = 0.0
    depths[2::13] = -0.0
    depths[5] = np.float32(np.inf)
    order = cpu_backend.depth_order(depths)
    assert order.dtype == np.int64
    # -0.0 and 0.0 compare equal but have different bits: both keep scene order
    np.testing.assert_array_equal(order, np.argsort(depths, kind="stable"))
    assert cpu_backend.depth_order(np.zeros(0, np.float32)).shape == (0,)
