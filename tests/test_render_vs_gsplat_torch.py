"""Our reference renderer against gsplat's own pure-torch functions (``gsplat.cuda._torch_impl``), on CPU.

This is the CPU-side check that our conventions are gsplat's. Differences found and accepted:
- gsplat's torch ``_fully_fused_projection`` uses a fixed 3.33 sigma extent and takes no opacities, so it
  never culls by opacity; its CUDA kernel (what ``gsplat.rasterization`` runs, and what we follow) uses
  the opacity-aware extent min(3.33, sqrt(2 ln(255 opacity))) and culls opacity < 1/255. Our radii are
  therefore <= gsplat-torch's, and we cull a superset.
- gsplat's torch ``_rasterize_to_pixels`` needs CUDA (``rasterize_to_indices_in_range``) and nerfacc, and
  its ``accumulate`` has no transmittance stop, so compositing is compared with gsplat's CUDA kernels in
  ``tests/test_render_gsplat.py`` (GPU) instead.
"""

from __future__ import annotations

import pytest
import torch

gsplat_torch = pytest.importorskip("gsplat.cuda._torch_impl")

from engine.render import cpu_backend  # noqa: E402
from engine.render.checks import edge_case_scene  # noqa: E402
from engine.render.projection import TILE, project, tile_grid  # noqa: E402
from engine.render.reference import intersect_tiles  # noqa: E402
from engine.render.sh import sh_to_rgb  # noqa: E402
from tests.factories import orbit_cameras, random_scene  # noqa: E402


def _gsplat_projection(scene, cam):
    covars, _ = gsplat_torch._quat_scale_to_covar_preci(scene.quats, scene.scales, compute_preci=False)
    radii, means2d, depths, conics, _ = gsplat_torch._fully_fused_projection(
        scene.means, covars, cam.viewmat()[None], cam.K_tensor()[None], cam.width, cam.height,
        eps2d=0.3, near_plane=0.01, far_plane=1e10,
    )
    return radii[0], means2d[0], depths[0], conics[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_projection_matches_gsplat_torch(seed):
    cam = orbit_cameras(8, width=96, image_height=72)[3]
    scene = edge_case_scene(cam, n=400, sh_degree=0, seed=seed, camera_inside=True)
    with torch.no_grad():
        ours = project(scene, cam, sh_degree=0)
    g_radii, g_means2d, g_depths, g_conics = _gsplat_projection(scene, cam)
    idx = ours.index
    assert len(idx) > 100
    g_visible = (g_radii > 0).all(-1)
    # Everything we keep, gsplat keeps; what only gsplat keeps is opacity-culled or off-screen with our
    # (smaller) opacity-aware box.
    assert bool(g_visible[idx].all())
    only_gsplat = g_visible.clone()
    only_gsplat[idx] = False
    extra = torch.nonzero(only_gsplat).squeeze(1)
    opac = scene.opacities[extra]
    a, b, c = g_conics[extra].unbind(-1)
    det = a * c - b * b
    extend = torch.sqrt(2 * torch.log(opac.clamp_min(1 / 255) * 255)).clamp_max(3.33)
    rx, ry = torch.ceil(extend * torch.sqrt(c / det)), torch.ceil(extend * torch.sqrt(a / det))
    mx, my = g_means2d[extra].unbind(-1)
    off_screen = (mx + rx <= 0) | (mx - rx >= cam.width) | (my + ry <= 0) | (my - ry >= cam.height)
    assert bool(((opac < 1 / 255) | off_screen).all())
    torch.testing.assert_close(ours.means2d, g_means2d[idx], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(ours.depths, g_depths[idx], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours.conics, g_conics[idx], rtol=2e-4, atol=1e-6)
    assert bool((ours.radii <= g_radii[idx]).all())
    # With opacity ~1 the two extents agree to 0.03%: radii equal but for rounding at the ceil.
    strong = scene.opacities[idx] > 0.999
    if strong.any():
        assert (ours.radii[strong] - g_radii[idx][strong]).abs().max() <= 1


def test_tile_intersection_matches_gsplat_torch():
    cam = orbit_cameras(8, width=80, image_height=56)[2]
    scene = random_scene(120, sh_degree=0, seed=2)
    with torch.no_grad():
        proj = project(scene, cam, sh_degree=0)
    tiles_x, tiles_y = tile_grid(cam)
    _, isect_ids, flatten_ids = gsplat_torch._isect_tiles(
        proj.means2d[None], proj.radii[None], proj.depths[None], TILE, tiles_x, tiles_y
    )
    g_offsets = gsplat_torch._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten().long()
    g_offsets = torch.cat([g_offsets, torch.tensor([len(flatten_ids)])])
    ref_offsets, ref_ids = intersect_tiles(proj.means2d, proj.radii, proj.depths, tiles_x, tiles_y)
    bins = cpu_backend.bin_tiles(proj, cam)
    assert len(flatten_ids) == len(ref_ids) == bins.n_isects > 0
    torch.testing.assert_close(ref_offsets, g_offsets)
    torch.testing.assert_close(torch.from_numpy(bins.tile_offsets), g_offsets)
    # Same Gaussians per tile, in the same (depth) order.
    assert torch.equal(ref_ids, flatten_ids.long())
    assert torch.equal(torch.from_numpy(bins.flat_ids).long(), flatten_ids.long())


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours_match_gsplat_torch(degree):
    scene = random_scene(300, sh_degree=3, seed=degree)
    center = torch.tensor([0.3, -2.0, 1.5])
    ours = sh_to_rgb(scene.sh, scene.means, center, degree)
    theirs = gsplat_torch._spherical_harmonics(degree, scene.means - center, scene.sh)
    torch.testing.assert_close(ours, (theirs + 0.5).clamp_min(0.0), rtol=1e-5, atol=1e-6)
