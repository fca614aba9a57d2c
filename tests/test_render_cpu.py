"""The numba ``cpu`` backend against the torch ``reference`` backend, finite differences, bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.render import available_backends, cpu_backend, render
from engine.render.checks import PARAMETERS, assert_agreement, compare_backends, edge_case_scene, render_with_grads
from engine.scene import Camera, GaussianScene, SceneError
from tests.factories import orbit_cameras, random_scene

FORWARD_TOL = 1e-4
GRAD_TOL = 1e-3


def _camera(width=80, height=60, index=1):
    return orbit_cameras(8, width=width, image_height=height)[index]


@pytest.mark.parametrize(
    "width,height,seed,inside,features",
    [(80, 60, 0, False, 3), (37, 29, 1, True, 0), (64, 64, 2, False, 1)],
    ids=["features", "camera-inside-odd-size", "square"],
)
def test_cpu_matches_reference_on_edge_cases(width, height, seed, inside, features):
    cam = _camera(width, height)
    scene = edge_case_scene(cam, n=300, feature_dim=features, seed=seed, camera_inside=inside)
    report = compare_backends(scene, cam, "reference", "cpu")
    assert report["n_isects"][0] == report["n_isects"][1] > 0
    # depth is in scene units (~5) where float32 carries ~1e-6 relative; colours are ~1.
    assert_agreement(report, FORWARD_TOL, GRAD_TOL)


def test_row_chord_kernels_match_the_legacy_kernels_in_float64():
    """The row-chord kernels change only how each pixel's exp(-sigma) is computed (by multiplication
    along the row) and which pixels are visited (the alpha >= 1/255 chord instead of the box): in
    float64 they must give the old kernels' image and gradients to rounding (measured ~3e-15)."""
    cam = _camera(80, 60)
    scene = edge_case_scene(cam, n=300, feature_dim=2, seed=0, camera_inside=True).to(dtype=torch.float64)
    with cpu_backend.use_kernels("legacy"):
        old, old_grads = render_with_grads(scene, cam, "cpu", 3, (0.2, 0.4, 0.6))
    new, new_grads = render_with_grads(scene, cam, "cpu", 3, (0.2, 0.4, 0.6))
    assert new.meta.n_isects == old.meta.n_isects > 0
    for name in ("rgb", "alpha", "depth", "features"):
        assert float((getattr(new, name) - getattr(old, name)).detach().abs().max()) < 1e-11, name
    for name, g in old_grads.items():
        assert float((new_grads[name] - g).norm() / g.norm()) < 1e-11, name
    with pytest.raises(ValueError, match="unknown cpu kernels"):
        with cpu_backend.use_kernels("fastest"):
            pass


def test_cpu_matches_reference_on_dense_random_scene():
    cam = _camera(48, 40)
    scene = random_scene(400, sh_degree=2, seed=3, feature_dim=2)
    report = compare_backends(scene, cam, "reference", "cpu", sh_degree=1, background=(1.0, 1.0, 1.0))
    assert report["max_abs_rgb"] < FORWARD_TOL and report["max_abs_alpha"] < FORWARD_TOL
    assert max(v for k, v in report.items() if k.startswith("rel_grad_")) < GRAD_TOL


def _tiny_scene(dtype=torch.float64):
    cam = Camera.look_at((0, 0, -3.0), (0, 0, 0), fx=30, fy=28, cx=12, cy=9.5, width=24, height=20)
    g = np.random.default_rng(7)
    n = 6
    scene = GaussianScene.from_numpy(
        means=g.uniform(-0.5, 0.5, size=(n, 3)),
        quats=g.normal(size=(n, 4)),
        log_scales=g.uniform(-1.8, -0.8, size=(n, 3)),
        opacity_logits=g.uniform(-1, 2, size=n),
        sh=g.normal(scale=0.5, size=(n, 4, 3)),
        features=g.normal(size=(n, 2)),
    ).to(dtype=dtype)
    return scene, cam


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_gradients_match_finite_differences(backend):
    scene, cam = _tiny_scene()
    background = (0.3, 0.1, 0.7)

    def loss_of(s, viewmat=None):
        r = render(s, cam, sh_degree=1, background=background, features=s.features, backend=backend,
                   viewmat=viewmat)
        gen = torch.Generator().manual_seed(1)
        outs = (r.rgb, r.alpha, r.depth, r.features)
        return sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)

    _, grads = render_with_grads(scene, cam, backend, 1, background, seed=1)
    eps = 1e-6
    g = np.random.default_rng(0)
    for name in ("means", "log_scales", "opacity_logits", "quats", "sh"):
        base = getattr(scene, name)
        for _ in range(4):
            idx = tuple(int(g.integers(0, s)) for s in base.shape)
            if name == "sh" and idx[1] >= 4:
                continue
            plus, minus = base.clone(), base.clone()
            plus[idx] += eps
            minus[idx] -= eps
            fd = (loss_of(replace(scene, **{name: plus})) - loss_of(replace(scene, **{name: minus}))) / (2 * eps)
            analytic = grads[name][idx]
            assert float(abs(fd - analytic)) <= 1e-5 + 1e-4 * float(abs(fd)), (name, idx, float(fd), float(analytic))
    # The camera pose: every entry of the rotation and translation (the matrix need not stay a rotation).
    viewmat = cam.viewmat("cpu", torch.float64)
    for idx in [(r, c) for r in range(3) for c in range(4)]:
        plus, minus = viewmat.clone(), viewmat.clone()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (loss_of(scene, plus) - loss_of(scene, minus)) / (2 * eps)
        analytic = grads["viewmat"][idx]
        assert float(abs(fd - analytic)) <= 1e-5 + 1e-4 * float(abs(fd)), ("viewmat", idx, float(fd), float(analytic))


def test_outputs_and_meta():
    cam = _camera(64, 48)
    scene = random_scene(200, sh_degree=3, seed=4)
    r = render(scene, cam, sh_degree=3, background=(0, 0, 0), backend="cpu")
    assert r.rgb.shape == (48, 64, 3) and r.alpha.shape == (48, 64) and r.depth.shape == (48, 64)
    assert r.features is None
    assert r.meta.means2d.shape == (200, 2) and r.meta.radii.shape == (200, 2) and r.meta.radii.dtype == torch.int32
    assert r.meta.visible.dtype == torch.bool and r.meta.depths.shape == (200,)
    assert r.meta.visible.sum() > 100 and r.meta.n_isects > 0
    assert torch.all(r.meta.radii[~r.meta.visible] == 0)
    # Depth is the expected camera z of what is drawn: between the nearest and farthest visible Gaussian.
    z = r.meta.depths[r.meta.visible]
    covered = r.alpha > 0.05
    assert covered.any()
    assert float(r.depth[covered].min()) >= float(z.min()) - 1e-4
    assert float(r.depth[covered].max()) <= float(z.max()) + 1e-4
    assert torch.all(r.depth[r.alpha == 0] == 0)
    assert float(r.alpha.max()) <= 1.0 and float(r.alpha.min()) >= 0.0
    # Background is composited with the remaining transmittance.
    r_white = render(scene, cam, sh_degree=3, background=(1, 1, 1), backend="cpu")
    torch.testing.assert_close(r_white.rgb - r.rgb, (1 - r.alpha)[..., None].expand(-1, -1, 3), atol=1e-5, rtol=0)


def test_means2d_grad_is_screen_space_gradient():
    cam = _camera(64, 48)
    scene = random_scene(150, sh_degree=0, seed=5)
    means = scene.means.clone().requires_grad_(True)
    r = render(replace(scene, means=means), cam, sh_degree=0, background=(0, 0, 0), backend="cpu")
    r.rgb.sum().backward()
    g2d = r.meta.means2d.grad
    assert g2d is not None and g2d.shape == (150, 2)
    assert torch.all(g2d[~r.meta.visible] == 0)
    assert float(g2d[r.meta.visible].abs().sum()) > 0


def test_empty_scene_returns_background():
    cam = _camera(32, 24)
    r = render(GaussianScene.empty(sh_degree=1), cam, sh_degree=1, background=(0.1, 0.2, 0.3), backend="cpu")
    assert torch.all(r.alpha == 0) and torch.all(r.depth == 0)
    torch.testing.assert_close(r.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(24, 32, 3))
    assert r.meta.n_isects == 0 and r.meta.means2d.shape == (0, 2)


def test_nan_parameters_are_rejected_with_a_count():
    scene = random_scene(50, sh_degree=0, seed=6)
    scene.means[3, 0] = float("nan")
    scene.opacity_logits[7] = float("inf")
    with pytest.raises(SceneError, match="2 of 50 Gaussians"):
        render(scene, _camera(), sh_degree=0, background=(0, 0, 0), backend="cpu")


def test_zero_size_image_is_an_error():
    cam = _camera(32, 24)
    object.__setattr__(cam, "width", 0)  # Camera() itself refuses this; render must too
    with pytest.raises(SceneError, match="0x24"):
        render(random_scene(5, sh_degree=0), cam, sh_degree=0, background=(0, 0, 0), backend="cpu")


def test_bad_sh_degree_and_backend():
    scene = random_scene(5, sh_degree=1)
    with pytest.raises(SceneError, match="sh_degree 2"):
        render(scene, _camera(), sh_degree=2, background=(0, 0, 0), backend="cpu")
    with pytest.raises(ValueError, match="unknown render backend"):
        render(scene, _camera(), sh_degree=1, background=(0, 0, 0), backend="vulkan")


def test_camera_inside_a_gaussian_is_defined():
    cam = _camera(40, 30)
    eye = cam.center
    # One Gaussian centred just in front of the camera, one centred behind it; both enclose it.
    means = np.stack([eye + 0.2 * cam.R[2], eye - 0.2 * cam.R[2]])
    scene = GaussianScene.from_numpy(means, [[1, 0, 0, 0]] * 2, np.zeros((2, 3)), [2.0, 2.0], np.zeros((2, 1, 3)))
    r = render(scene, cam, sh_degree=0, background=(0, 0, 0), backend="cpu")
    assert bool(r.meta.visible[0]) and not bool(r.meta.visible[1])  # behind the camera is culled, as gsplat
    assert torch.isfinite(r.rgb).all() and float(r.alpha.min()) > 0.5
    ref = render(scene, cam, sh_degree=0, background=(0, 0, 0), backend="reference")
    torch.testing.assert_close(r.rgb, ref.rgb, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_viewmat_replaces_the_camera_pose(backend):
    scene = random_scene(120, sh_degree=1, seed=11)
    cams = orbit_cameras(8, width=40, image_height=30)
    moved = render(scene, cams[0], sh_degree=1, background=(0, 0, 0), backend=backend,
                   viewmat=cams[3].viewmat())
    direct = render(scene, cams[3], sh_degree=1, background=(0, 0, 0), backend=backend)
    torch.testing.assert_close(moved.rgb, direct.rgb, atol=1e-6, rtol=0)
    # float32 compositing: depths (about 4.5 here) differed by up to 1.8e-5 between the two poses' renders
    torch.testing.assert_close(moved.depth, direct.depth, atol=2e-4, rtol=0)


def test_bad_viewmat_is_an_error():
    scene, cam = random_scene(5, sh_degree=0), _camera()
    with pytest.raises(SceneError, match=r"viewmat has shape \(3, 4\)"):
        render(scene, cam, sh_degree=0, background=(0, 0, 0), viewmat=torch.zeros(3, 4))
    bad = cam.viewmat()
    bad[0, 3] = float("nan")
    with pytest.raises(SceneError, match="NaN"):
        render(scene, cam, sh_degree=0, background=(0, 0, 0), viewmat=bad)


def test_backends_and_auto():
    assert {"cpu", "reference"} <= set(available_backends())
    r = render(random_scene(20, sh_degree=0), _camera(16, 16), sh_degree=0, background=(0, 0, 0))
    assert r.meta.backend == "cpu"  # auto on a CPU scene
    scene = random_scene(40, sh_degree=2, seed=9)
    cam = _camera(24, 24)
    full = render(scene, cam, background=(0, 0, 0))  # sh_degree defaults to the scene's
    torch.testing.assert_close(full.rgb, render(scene, cam, sh_degree=2, background=(0, 0, 0)).rgb)


def test_memory_is_bounded_for_many_gaussians():
    """No dense N x H x W buffers: 200k Gaussians at 256x256 with backward must stay well under 1 GiB of
    new allocations (peak RSS growth, measured coarsely)."""
    import resource

    cam = _camera(256, 256)
    scene = random_scene(200_000, sh_degree=0, seed=8, extent=1.5)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    means = scene.means.clone().requires_grad_(True)
    r = render(replace(scene, means=means), cam, sh_degree=0, background=(0, 0, 0), backend="cpu")
    r.rgb.sum().backward()
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert means.grad is not None and torch.isfinite(means.grad).all()
    assert grown_mib < 1024, grown_mib


def test_float32_kernels_agree_with_float64():
    """Training renders in float32. Against the same scene in float64 the images differed by at most
    5.1e-6 and the gradients by at most 5.2e-6 (relative norm) on these scenes: 1e-4 leaves ~20x."""
    cam = _camera(80, 60)
    for seed in range(3):
        scene = edge_case_scene(cam, n=300, seed=seed, camera_inside=seed == 1).to(dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        weights = (torch.randn(60, 80, 3, generator=g, dtype=torch.float64),
                   torch.randn(60, 80, generator=g, dtype=torch.float64))
        results = []
        for dtype in (torch.float64, torch.float32):
            leaves = {name: getattr(scene, name).detach().to(dtype).requires_grad_(True) for name in PARAMETERS}
            out = render(replace(scene.to(dtype=dtype), **leaves), cam, sh_degree=3, background=(0.2, 0.4, 0.6),
                         backend="cpu")
            assert out.rgb.dtype == dtype
            sum((o * w.to(dtype)).sum() for o, w in zip((out.rgb, out.alpha), weights)).backward()
            results.append((out, {name: leaves[name].grad.double() for name in PARAMETERS}))
        (o64, g64), (o32, g32) = results
        assert float((o32.rgb.double() - o64.rgb).abs().max()) < 1e-4
        assert float((o32.alpha.double() - o64.alpha).abs().max()) < 1e-4
        for name, grad in g64.items():
            assert float((g32[name] - grad).norm() / grad.norm()) < 1e-4, (seed, name)
