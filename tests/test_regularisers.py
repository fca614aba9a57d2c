"""Few-view regularisers (engine.train.regularisers) on synthetic data whose answer is known."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.priors.depth import DepthMap
from engine.render import render
from engine.scene import Camera, GaussianScene
from engine.train import TrainConfig, train
from engine.train.regularisers import (
    CrossViewLoss,
    DepthCorrelationLoss,
    DepthSmoothnessLoss,
    DropGaussian,
    FloaterLoss,
    MetricDepthLoss,
    coherent_init,
    warp_photo,
)
from engine.train.regularisers.depth_losses import correlation_loss
from engine.train.regularisers.dropout import MAX_OPACITY, drop_rate
from engine.train.regularisers.smoothness import edge_aware_smoothness
from tests.factories import orbit_cameras, random_scene


def depth_map(depth, camera, kind="metric", confidence=None, quantity=None):
    depth = np.asarray(depth, dtype=np.float32)
    conf = np.ones_like(depth) if confidence is None else np.asarray(confidence, dtype=np.float32)
    return DepthMap(depth, conf, camera, kind, "test", quantity)


def pinhole(width=40, height=30, f=36.0, R=np.eye(3), t=(0, 0, 0), name="cam"):
    return Camera(R=R, t=np.asarray(t, float), fx=f, fy=f, cx=width / 2, cy=height / 2, width=width,
                  height=height, name=name)


def step_context(depth, alpha=None, *, index=0, step=0, camera=None, target=None):
    """The parts of a StepContext the depth losses read."""
    depth = torch.as_tensor(depth, dtype=torch.float32)
    alpha = torch.ones_like(depth) if alpha is None else alpha
    result = SimpleNamespace(depth=depth, alpha=alpha)
    return SimpleNamespace(result=result, index=index, step=step, camera=camera, target=target)


def views_of(cameras):
    return SimpleNamespace(cameras=cameras, count=len(cameras))


def smooth_depth(h, w, seed=0):
    """A positive, smoothly varying depth field with structure at several scales."""
    g = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    d = 3.0 + x + 0.5 * np.sin(6 * y + g.uniform(0, 6)) + 0.3 * np.cos(11 * x * y + g.uniform(0, 6))
    return d.astype(np.float32)


# ----------------------------------------------------------------------------- DropGaussian


def test_drop_gaussian_keeps_the_expected_count_and_mean_opacity():
    n, rate = 20_000, 0.2
    g = np.random.default_rng(1)
    opacity = g.uniform(0.05, 0.75, size=n)  # all below (1 - rate): no compensation saturates
    scene = GaussianScene.from_numpy(g.normal(size=(n, 3)), np.tile([1.0, 0, 0, 0], (n, 1)), np.full((n, 3), -3.0),
                                     np.log(opacity / (1 - opacity)), np.zeros((n, 1, 3)))
    hook = DropGaussian(rate, ramp=False)
    out = hook.transform_scene(scene, 10, 100, torch.Generator().manual_seed(0))
    assert len(out) == n  # rows stay: the trainer's per-Gaussian state is indexed by them
    kept = hook.last_kept
    # The kept count is Binomial(n, 1 - rate): sd = sqrt(n rate (1 - rate)) = 56.6; 6 sd leaves a
    # false-failure chance of about 2e-9 for any seed.
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(int(kept.sum()) - n * (1 - rate)) < 6 * sd
    new = torch.sigmoid(out.opacity_logits).double()
    o = torch.as_tensor(opacity)
    assert float(new[~kept].max()) < 1e-12  # dropped: transparent
    torch.testing.assert_close(new[kept], o[kept] / (1 - rate), rtol=1e-5, atol=0)
    # Each new opacity has mean o_i and variance o_i^2 rate / (1 - rate); the mean over n Gaussians has
    # sd sqrt(sum o_i^2 rate / (1 - rate)) / n (~0.0024 here); 6 sd again.
    sd_mean = math.sqrt(float((o**2).sum()) * rate / (1 - rate)) / n
    assert abs(float(new.mean()) - float(o.mean())) < 6 * sd_mean


def test_drop_gaussian_ramps_saturates_and_passes_gradients_to_kept_opacities():
    assert drop_rate(0, 101, 0.2, ramp=True) == 0.0
    assert drop_rate(50, 101, 0.2, ramp=True) == pytest.approx(0.1)
    assert drop_rate(100, 101, 0.2, ramp=True) == pytest.approx(0.2)
    scene = random_scene(500, sh_degree=0, seed=2)
    hook = DropGaussian(0.2)
    assert hook.transform_scene(scene, 0, 100, torch.Generator().manual_seed(0)) is scene  # rate 0 at step 0

    logits = torch.tensor([0.0, 1.0, 2.0, 8.0] * 50, requires_grad=True)
    scene = GaussianScene(torch.zeros(200, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(200, 1), torch.zeros(200, 3),
                          logits, torch.zeros(200, 1, 3))
    out = DropGaussian(0.1, ramp=False)
    dropped = out.transform_scene(scene, 0, 10, torch.Generator().manual_seed(3))
    keep = out.last_kept
    assert 0 < int(keep.sum()) < 200
    opacity = torch.sigmoid(dropped.opacity_logits)
    # sigmoid(8) = 0.99966 would become 1.11: it saturates just below 1 (the scene stores logits)
    saturated = keep & (logits.detach() == 8.0)
    assert bool(saturated.any()) and float(opacity[saturated].detach().min()) == pytest.approx(MAX_OPACITY, abs=1e-6)
    opacity.sum().backward()
    s = torch.sigmoid(logits.detach())
    expected = torch.where(keep & (logits.detach() < 8), s * (1 - s) / 0.9, torch.zeros_like(s))
    torch.testing.assert_close(logits.grad, expected, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- depth correlation


def test_depth_correlation_is_zero_for_affine_priors_and_positive_for_shuffled_ones():
    h, w = 30, 40
    cam = pinhole(w, h)
    rendered = smooth_depth(h, w)
    g = np.random.default_rng(0)
    confidence = np.ones((h, w), np.float32)
    confidence[:, :8] = 0.0  # the prior knows nothing here ...
    garbage = g.uniform(0, 100, size=(h, 8))

    def loss_for(prior, kind, quantity=None, **kw):
        prior = prior.copy()
        prior[:, :8] = garbage  # ... and what it has there is garbage
        loss = DepthCorrelationLoss([depth_map(prior, cam, kind, confidence, quantity)], **kw)
        loss.setup(views_of([cam]), 1.0, "cpu")
        return float(loss(step_context(rendered, camera=cam)))

    # "zero": the maps are float32 and a 10x10 patch varies by ~1 % of its mean, so the inputs' own
    # rounding leaves correlations of 1 - 1e-4; 1e-3 is far from both that and a real mismatch (> 0.7)
    for patch in (None, 10):
        assert loss_for(2.5 * rendered + 7.0, "metric", patch=patch) < 1e-3
        assert loss_for(4.0 / rendered + 0.3, "relative", patch=patch) < 1e-3  # monocular: inverse depth
        shuffled = g.permutation(rendered.ravel()).reshape(h, w)
        assert loss_for(shuffled, "metric", patch=patch) > 0.7
        assert loss_for(10.0 - rendered, "metric", patch=patch) > 1.99  # anti-correlated: the worst case, 2
    # A depth-like relative map read as inverse depth is anti-correlated (loss ~1.99 measured): which
    # convention a map follows matters, and the map's ``quantity`` (or ``against``) says it.
    assert loss_for(2 * rendered + 1, "relative") > 1.9  # a relative map is inverse unless it says so
    assert loss_for(2 * rendered + 1, "relative", quantity="depth") < 1e-3
    assert loss_for(4.0 / rendered + 0.3, "relative", quantity="depth") > 1.5
    assert loss_for(2 * rendered + 1, "relative", against="depth") < 1e-3


def test_depth_correlation_resamples_the_prior_to_the_render_size_and_skips_uncovered_pixels():
    h, w = 15, 20
    cam = pinhole(2 * w, 2 * h)
    coarse = smooth_depth(h, w, seed=4)
    # The prior is at twice the render's size, constant over each 2x2 block, so that whichever pixel of a
    # block the resize keeps, the prior at the render's size is an affine map of the rendered depth.
    fine = np.kron(3 * coarse - 1, np.ones((2, 2), np.float32))
    rendered = torch.from_numpy(coarse.copy())
    alpha = torch.ones(h, w)
    alpha[:4] = 0.1  # barely covered rows: their depth means nothing ...
    rendered[:4] = 99.0  # ... and is wrong
    loss = DepthCorrelationLoss([depth_map(fine, cam)])
    loss.setup(views_of([cam]), 1.0, "cpu")
    assert float(loss(step_context(rendered, alpha, camera=cam.resized(w, h)))) < 1e-3
    assert float(loss(step_context(rendered, torch.ones(h, w), camera=cam.resized(w, h)))) > 0.01


def test_depth_correlation_gradient_moves_the_render_towards_the_prior_shape():
    a = torch.tensor(smooth_depth(20, 20, seed=1), requires_grad=True)
    prior = torch.tensor(smooth_depth(20, 20, seed=2))
    before = float(correlation_loss(a.detach(), prior, torch.ones(20, 20)))
    correlation_loss(a, prior, torch.ones(20, 20)).backward()
    after = float(correlation_loss(a.detach() - 0.5 * a.grad / a.grad.norm() * a.detach().std(), prior,
                                   torch.ones(20, 20)))
    assert after < before


def test_metric_depth_l1_is_confidence_weighted_and_relative():
    cam = pinhole()
    rendered = smooth_depth(30, 40)
    conf = np.full((30, 40), 0.8, np.float32)
    prior = rendered / 1.1
    prior[:10] = rendered[:10]  # exact where the confidence is high
    conf[:10] = 1.0
    loss = MetricDepthLoss([depth_map(prior, cam, "metric", conf)], min_confidence=0.3)
    loss.setup(views_of([cam]), 1.0, "cpu")
    # |d - d/1.1| / (d/1.1) = 0.1 on the 20 rows at confidence 0.8; 0 on the 10 rows at 1.0
    expected = 0.1 * (20 * 0.8) / (20 * 0.8 + 10 * 1.0)
    assert float(loss(step_context(rendered, camera=cam))) == pytest.approx(expected, rel=1e-5)
    relative = MetricDepthLoss([depth_map(prior, cam, "relative", conf)])
    relative.setup(views_of([cam]), 1.0, "cpu")
    assert relative(step_context(rendered, camera=cam)) is None  # only metric maps have values to match


# ----------------------------------------------------------------------------- smoothness


def test_smoothness_is_zero_for_a_constant_depth_plane_and_cheaper_across_photo_edges():
    h, w = 24, 32
    photo = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(0))
    covered = torch.ones(h, w, dtype=torch.bool)
    assert float(edge_aware_smoothness(torch.full((h, w), 4.2), photo, covered)) == 0.0
    step = torch.full((h, w), 4.0)
    step[:, w // 2:] = 8.0
    flat_photo = torch.full((h, w, 3), 0.5)
    edged_photo = flat_photo.clone()
    edged_photo[:, w // 2:] = 0.9  # the photo has an edge where the depth jumps
    plain = float(edge_aware_smoothness(step, flat_photo, covered))
    edged = float(edge_aware_smoothness(step, edged_photo, covered))
    assert plain > 0.0
    assert edged == pytest.approx(plain * math.exp(-10 * 0.4), rel=1e-5)
    # uncovered pixels (alpha below the threshold) do not count: a jump to 0 there costs nothing
    holes = torch.full((h, w), 4.2)
    holes[:5] = 0.0
    assert float(edge_aware_smoothness(holes, photo, holes > 0)) == 0.0


def test_smoothness_loss_reads_the_step_render_and_photo():
    depth = torch.full((10, 12), 2.0)
    depth[:, 6:] = 3.0
    ctx = step_context(depth, target=torch.full((10, 12, 3), 0.3))
    assert float(DepthSmoothnessLoss()(ctx)) > 0
    assert float(DepthSmoothnessLoss()(step_context(torch.full((10, 12), 2.0), target=ctx.target))) == 0.0


# ----------------------------------------------------------------------------- cross-view warp


PLANE_Z = 5.0  # the world plane z = 5, seen by both cameras


def texture(x, y):
    return np.stack([0.5 + 0.3 * np.sin(1.3 * x + 0.4 * y), 0.5 + 0.3 * np.cos(0.9 * y - 0.5 * x),
                     0.4 + 0.2 * np.sin(0.7 * (x + y))], -1)


def plane_view(cam):
    """The photo and the depth of the textured plane z = PLANE_Z seen by ``cam`` (exact, per pixel centre)."""
    v, u = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    d_cam = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1)
    d_world = d_cam @ cam.R  # R^T d
    centre = cam.center
    s = (PLANE_Z - centre[2]) / d_world[..., 2]
    hit = centre + s[..., None] * d_world
    depth = s  # camera-space z of the hit: d_cam has z = 1
    return texture(hit[..., 0], hit[..., 1]).astype(np.float32), depth.astype(np.float32)


def rotation_y(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def test_warp_reproduces_a_plane_view_and_masks_pixels_outside_the_other_image():
    here = pinhole(80, 60, f=70.0, name="here")
    R = rotation_y(-4.0)
    there = Camera(R=R, t=-R @ np.array([0.6, 0.1, 0.0]), fx=64.0, fy=64.0, cx=36, cy=26, width=72, height=54,
                   name="there")
    photo_here, depth_here = plane_view(here)
    photo_there, _ = plane_view(there)
    warp = warp_photo(torch.from_numpy(depth_here), here, torch.from_numpy(photo_there), there)
    valid = warp.valid.numpy()
    # the valid pixels are exactly those whose plane point projects between the other image's outer
    # pixel centres (computed here independently, in float64)
    v, u = np.mgrid[0:60, 0:80] + 0.5
    p = np.stack([(u - 40) / 70 * depth_here, (v - 30) / 70 * depth_here, depth_here], -1)
    q = (p - here.t) @ here.R @ there.R.T + there.t
    uo, vo = 64 * q[..., 0] / q[..., 2] + 36, 64 * q[..., 1] / q[..., 2] + 26
    inside = (uo >= 0.5) & (uo <= 71.5) & (vo >= 0.5) & (vo <= 53.5)
    margin = (np.abs(uo - 0.5) > 1e-3) & (np.abs(uo - 71.5) > 1e-3) & (np.abs(vo - 0.5) > 1e-3) & (np.abs(vo - 53.5) > 1e-3)
    assert np.array_equal(valid[margin], inside[margin])
    assert 0.5 < valid.mean() < 0.95  # the other camera sees part of this view, not all of it
    error = np.abs(warp.image.numpy() - photo_here)[valid]
    # What is left is bilinear interpolation of the texture between the other photo's pixel centres:
    # about h^2/8 (|f_xx| + |f_yy|) with h ~ 5/64 world units per pixel on the plane and the red
    # channel's |f''| <= 0.3 * (1.3^2 + 0.4^2) per unit^2, i.e. ~4e-4. Measured: max 4.4e-4, mean 1.2e-4,
    # the same in float64 (so not rounding).
    assert error.max() < 1e-3
    assert error.mean() < 2.5e-4
    # a wrong depth (5 % too far) mis-registers the photos far beyond that
    wrong = warp_photo(torch.from_numpy(depth_here * 1.05), here, torch.from_numpy(photo_there), there)
    both = wrong.valid.numpy() & valid
    assert np.abs(wrong.image.numpy() - photo_here)[both].mean() > 20 * error.mean()  # measured 35x


def test_warp_masks_occluded_pixels_and_pulls_the_depth_towards_the_surface():
    here = pinhole(60, 40, f=50.0, name="here")
    there = pinhole(60, 40, f=50.0, t=(-0.5, 0.0, 0.0), name="there")  # 0.5 to the right
    photo_here, depth_here = plane_view(here)
    photo_there, depth_there = plane_view(there)
    occluder = depth_there.copy()
    occluder[:, :30] = 2.0  # something at depth 2 hides the plane in the other view's left half
    warp = warp_photo(torch.from_numpy(depth_here), here, torch.from_numpy(photo_there), there,
                      other_depth=torch.from_numpy(occluder))
    plain = warp_photo(torch.from_numpy(depth_here), here, torch.from_numpy(photo_there), there)
    u_there = warp.grid[..., 0].numpy() * 30 + 30  # pixel x in the other image
    assert not warp.valid.numpy()[u_there < 29.5].any()
    assert np.array_equal(warp.valid.numpy()[u_there > 30.5], plain.valid.numpy()[u_there > 30.5])

    target = torch.from_numpy(photo_here)

    def loss_at(scale):
        depth = torch.tensor(depth_here * scale, requires_grad=True)
        w = warp_photo(depth, here, torch.from_numpy(photo_there), there)
        m = plain.valid & w.valid
        value = ((w.image - target).abs().mean(-1) * m).sum() / m.sum()
        value.backward()
        return float(value.detach()), float(depth.grad.sum())

    at_truth, _ = loss_at(1.0)
    too_near, grad_near = loss_at(0.9)
    too_far, grad_far = loss_at(1.1)
    assert at_truth < too_near and at_truth < too_far
    assert grad_near < 0 < grad_far  # gradient descent moves a wrong depth towards the plane


# ----------------------------------------------------------------------------- coherent init


def test_coherent_init_unprojects_a_plane_depth_onto_the_plane():
    R = rotation_y(10.0)
    cam = Camera(R=R, t=-R @ np.array([0.2, -0.3, 0.0]), fx=45.0, fy=45.0, cx=32, cy=24, width=64, height=48)
    photo, depth = plane_view(cam)
    conf = np.ones_like(depth)
    conf[:8] = 0.1  # unsure rows are left out
    scene = coherent_init([depth_map(depth, cam, confidence=conf)], [(photo * 255).round().astype(np.uint8)],
                          stride=4, min_confidence=0.5, sh_degree=1)
    means = scene.means.double().numpy()
    assert len(scene) == (48 - 8) // 4 * (64 // 4)
    assert np.abs(means[:, 2] - PLANE_Z).max() < 1e-4  # float32 storage of the points
    # every point projects back to the centre of a stride cell of its view (pixel 2, 6, 10, ... + 0.5)
    p = means @ cam.R.T + cam.t
    u = cam.fx * p[:, 0] / p[:, 2] + cam.cx
    v = cam.fy * p[:, 1] / p[:, 2] + cam.cy
    assert np.abs((u - 2.5) / 4 - np.round((u - 2.5) / 4)).max() < 1e-3
    assert np.abs((v - 2.5) / 4 - np.round((v - 2.5) / 4)).max() < 1e-3
    assert v.min() > 8
    # colours from the photo, sizes from the pixel footprint (half a stride step at the point's depth)
    expected_rgb = texture(means[:, 0], means[:, 1])
    assert np.abs(scene.colors_dc.numpy() - expected_rgb).max() < 0.01  # 8-bit photo
    np.testing.assert_allclose(scene.scales.numpy()[:, 0], 0.5 * p[:, 2] * 4 / 45.0, rtol=1e-4)


# ----------------------------------------------------------------------------- floaters


def test_floater_loss_penalises_large_and_large_faint_splats_only():
    cam = pinhole(40, 30, f=36.0)
    n = 4
    means = torch.tensor([[0.0, 0, 4], [0.5, 0, 4], [-0.5, 0, 4], [0, 0.3, 4]])
    log_scales = torch.log(torch.tensor([[0.02] * 3, [0.02] * 3, [0.5] * 3, [0.06] * 3]))
    opacity = torch.tensor([0.9, 0.05, 0.9, 0.05])
    params = {"log_scales": log_scales.clone().requires_grad_(), "opacity_logits": torch.logit(opacity).requires_grad_()}
    visible = torch.ones(n, dtype=torch.bool)
    meta = SimpleNamespace(visible=visible, depths=means[:, 2])
    ctx = SimpleNamespace(params=params, result=SimpleNamespace(meta=meta), camera=cam)
    loss = FloaterLoss(max_screen_fraction=0.1, faint_opacity=0.1, faint_screen_fraction=0.02)
    loss.setup(None, 1.0, "cpu")
    value = loss(ctx)
    # sizes on screen: 3 * scale * 36 / 4 / 40 = 0.0135, 0.0135, 0.3375, 0.0405 of the image
    large = (0.3375 / 0.1 - 1) / n
    faint = 0.05 / n  # only the fourth: faint and above 0.02 of the image; the second is faint but small
    assert float(value.detach()) == pytest.approx(large + faint, rel=1e-4)
    value.backward()
    assert float(params["log_scales"].grad[2].sum()) > 0  # descent shrinks the large one
    assert float(params["log_scales"].grad[[0, 1, 3]].abs().sum()) == 0
    assert float(params["opacity_logits"].grad[3]) > 0  # and fades the large faint one
    assert float(params["opacity_logits"].grad[[0, 1, 2]].abs().sum()) == 0


# ----------------------------------------------------------------------------- inside train()


@pytest.fixture(scope="module")
def tiny_capture():
    """A known 60-Gaussian scene seen by 4 cameras at 32x24, with its rendered depth as a metric prior."""
    truth = random_scene(60, sh_degree=0, seed=5, extent=0.7)
    truth.opacity_logits = truth.opacity_logits.abs() + 2.0
    cams = orbit_cameras(4, radius=3.0, width=32, image_height=24)
    renders = [render(truth, c, sh_degree=0, background=(0, 0, 0)) for c in cams]
    images = [r.rgb.clamp(0, 1).numpy() for r in renders]
    maps = [depth_map(r.depth.numpy(), c, "metric", (r.alpha > 0.5).float().numpy()) for r, c in zip(renders, cams)]
    return cams, images, maps


def _regularisers(maps):
    return {
        "depth_corr": DepthCorrelationLoss(maps, patch=8),
        "depth_l1": MetricDepthLoss(maps),
        "depth_smooth": DepthSmoothnessLoss(),
        "cross_view": CrossViewLoss(),
        "floaters": FloaterLoss(),
    }


@pytest.mark.parametrize("name", ["depth_corr", "depth_l1", "depth_smooth", "cross_view", "floaters"])
def test_each_loss_trains_and_reports_its_history_key(tiny_capture, name):
    cams, images, maps = tiny_capture
    init = random_scene(150, sh_degree=0, seed=7, extent=0.7)
    config = TrainConfig(iterations=6, sh_degree=0, strategy="none", start_resolution=1.0, metrics_every=2, seed=1)
    loss = _regularisers(maps)[name]
    result = train(init, cams, images, config, losses=[loss])
    rows = [r for r in result.history if f"loss/{name}" in r]
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert all(math.isfinite(r[f"loss/{name}"]) and r[f"loss/{name}"] >= 0 for r in rows)
    assert bool(torch.isfinite(result.scene.means).all())


def test_drop_gaussian_runs_inside_train_and_leaves_the_final_scene_undropped(tiny_capture):
    cams, images, _ = tiny_capture
    init = random_scene(150, sh_degree=0, seed=7, extent=0.7)
    config = TrainConfig(iterations=4, sh_degree=0, strategy="none", start_resolution=1.0, metrics_every=2, seed=1)
    hook = DropGaussian(0.5, ramp=False)
    result = train(init, cams, images, config, hooks=[hook])
    assert hook.last_kept is not None and 0 < int(hook.last_kept.sum()) < 150
    # the trained scene is the parameters, not a dropped render: no Gaussian sits at the dropped logit
    assert float(result.scene.opacity_logits.min()) > -20


def test_coherent_init_coarsens_its_grid_to_fit_a_point_budget():
    cam = pinhole(64, 48, f=45.0)
    photo, depth = plane_view(cam)
    full = coherent_init([depth_map(depth, cam)], [photo], stride=1, sh_degree=0)
    fitted = coherent_init([depth_map(depth, cam)], [photo], stride=1, sh_degree=0, max_points=200)
    assert len(full) == 64 * 48
    assert len(fitted) == 192  # stride 4 (16 x 12 cells) is the first grid within 200 * 1.1
    # the coarser grid's Gaussians are four times larger, so they still cover the view
    assert float(fitted.scales.mean()) == pytest.approx(4 * float(full.scales.mean()), rel=0.05)
    inner = (slice(4, -4), slice(4, -4))  # the outer half cell of the grid is covered from one side only
    alpha = render(fitted, cam, background=(0, 0, 0)).alpha[inner]
    # Opacity 0.3 on a grid of spacing s with sigma s/2 sums to 0.3 * 2 pi / 4 per pixel on average:
    # alpha ~ 1 - exp(-0.47) = 0.38 everywhere (measured 0.40 - 0.49) ...
    assert float(alpha.min()) > 0.35
    # ... where the same number of the full grid's Gaussians, picked at random, leaves holes.
    pick = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[:len(fitted)]
    assert float(render(full.subset(pick), cam, background=(0, 0, 0)).alpha[inner].min()) < 0.05
