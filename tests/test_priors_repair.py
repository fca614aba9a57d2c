"""Generative repair of unseen views: pseudo cameras, image priors, the pseudo-view loss, repair rounds."""

import json
import warnings
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from engine.errors import InputError, ModelError
from engine.events import CancelToken, Progress
from engine.metrics import ssim_loss_value
from engine.priors.image_prior import ImagePrior
from engine.priors.pseudo_loss import PseudoViewLoss
from engine.priors.pseudo_views import pseudo_cameras, scene_centre
from engine.priors.repair_net import SceneRepairNet
from engine.priors.repair_rounds import repair_rounds
from engine.render import render
from engine.train import TrainConfig, train
from tests.factories import orbit_cameras, photographed_scene, random_scene


def _distance_to_segment(p, a, b) -> float:
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def _pixel(cam, point):
    x = cam.R @ point + cam.t
    return np.array([cam.fx * x[0] / x[2] + cam.cx, cam.fy * x[1] / x[2] + cam.cy]), x[2]


# ----------------------------------------------------------------------------- pseudo cameras


def test_pseudo_cameras_lie_between_and_around_the_photos_and_look_at_the_scene():
    cams = orbit_cameras(4, radius=4.0, width=64, image_height=48)
    centres = np.array([c.center for c in cams])
    views = pseudo_cameras(cams, 10, seed=3)
    assert len(views) == 10 and len({v.name for v in views}) == 10
    np.testing.assert_allclose(scene_centre(cams), 0.0, atol=1e-9)
    nearest_gap = min(np.linalg.norm(centres[i] - centres[j]) for i in range(4) for j in range(4) if i != j)
    between, around = views[:5], views[5:]
    for v in between:
        # on the segment between two neighbouring photos, away from both ends
        gaps = [_distance_to_segment(v.center, centres[i], centres[j]) for i in range(4) for j in range(i + 1, 4)]
        assert min(gaps) < 1e-9
        assert np.linalg.norm(centres - v.center, axis=1).min() > 0.15 * nearest_gap
    for v in around:
        # a small step from one photo, and still looking at the scene centre
        step = np.linalg.norm(centres - v.center, axis=1).min()
        assert 0.1 * nearest_gap < step <= 0.25 * nearest_gap + 1e-9
        pixel, depth = _pixel(v, np.zeros(3))
        assert depth > 0 and np.linalg.norm(pixel - [32, 24]) < 2.0  # the orbit keeps the centre where it was
    for v in views:
        assert (v.fx, v.fy, v.cx, v.cy, v.width, v.height) == (cams[0].fx, cams[0].fy, cams[0].cx, cams[0].cy, 64, 48)
        assert np.allclose(v.R @ v.R.T, np.eye(3)) and np.isclose(np.linalg.det(v.R), 1.0)
        pixel, depth = _pixel(v, np.zeros(3))
        assert depth > 0 and 0 <= pixel[0] < 64 and 0 <= pixel[1] < 48  # the scene is in view


def test_pseudo_cameras_interpolate_rotation_by_slerp_and_are_deterministic():
    cams = orbit_cameras(2, radius=4.0)
    a, b = cams
    views = pseudo_cameras(cams, 3, seed=7)
    again = pseudo_cameras(cams, 3, seed=7)
    other = pseudo_cameras(cams, 3, seed=8)
    assert all(np.array_equal(x.R, y.R) and np.array_equal(x.t, y.t) for x, y in zip(views, again))
    assert not np.allclose(views[0].center, other[0].center)
    mid = views[0]
    t = np.dot(mid.center - a.center, b.center - a.center) / np.dot(b.center - a.center, b.center - a.center)
    # the rotation from a is the fraction t of the whole rotation from a to b (geodesic, constant speed)
    angle = lambda r: np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))  # noqa: E731
    assert angle(mid.R @ a.R.T) == pytest.approx(t * angle(b.R @ a.R.T), abs=1e-6)
    assert angle(b.R @ mid.R.T) == pytest.approx((1 - t) * angle(b.R @ a.R.T), abs=1e-6)


# ----------------------------------------------------------------------------- the per-scene repair network


def _clean_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(cv2.resize(rng.random((8, 10, 3)).astype(np.float32), (40, 32), interpolation=cv2.INTER_CUBIC), 0, 1)


def _known_degradation(image: np.ndarray) -> np.ndarray:
    """Blurred, darker and with less contrast: what the net must learn to undo."""
    return np.clip(cv2.GaussianBlur(image, (0, 0), 1.2) * 0.7 + 0.1, 0, 1).astype(np.float32)


def test_scene_repair_net_learns_a_known_degradation():
    pairs = [(_known_degradation(c), c) for c in (_clean_image(s) for s in range(6))]
    net = SceneRepairNet(steps=120, batch=4, crop=32, lr=1e-2, channels=(8, 8, 8), synthetic_fraction=0.0)
    events = []
    figures = net.fit(pairs, emit=events.append)
    # measured: whole-image L1 0.101 -> 0.048 (x0.48)
    assert figures["l1_after"] < 0.6 * figures["l1_before"]
    assert np.mean(figures["losses"][-10:]) < 0.6 * np.mean(figures["losses"][:5])
    assert any(isinstance(e, Progress) and e.done == 120 for e in events)
    clean = _clean_image(100)  # not trained on
    degraded = _known_degradation(clean)
    fixed = net.repair([degraded])[0]
    assert fixed.shape == clean.shape and fixed.dtype == np.float32 and 0 <= fixed.min() and fixed.max() <= 1
    assert np.abs(fixed - clean).mean() < 0.6 * np.abs(degraded - clean).mean()


def test_scene_repair_net_starts_as_the_identity_and_fit_honours_cancel():
    net = SceneRepairNet(steps=50, channels=(8, 8, 8))
    image = _clean_image(1)
    np.testing.assert_array_equal(net.repair([image])[0], image)  # the zero-initialised head adds nothing
    token = CancelToken()
    token.cancel()
    from engine.errors import Cancelled

    with pytest.raises(Cancelled):
        net.fit([(image, image)], cancel=token)
    assert not net.fitted


# ----------------------------------------------------------------------------- the pseudo-view loss


@pytest.fixture(scope="module")
def tiny_capture():
    return photographed_scene(60, seed=2, views=4, width=32, height=24)


def _ctx(scene, step, factor, rendered):
    def _render(s, cam, **kw):
        rendered.append(cam)
        return render(s, cam, **kw)

    return SimpleNamespace(step=step, factor=factor, scene=scene, render=lambda cam: _render(scene, cam, sh_degree=0,
                                                                                             background=(0, 0, 0)))


def test_pseudo_view_loss_renders_the_pseudo_camera_at_the_step_resolution(tiny_capture):
    truth, cams, _ = tiny_capture
    views = pseudo_cameras(cams, 2, seed=0)
    exact = [render(truth, v, sh_degree=0, background=(0, 0, 0)).rgb.detach().numpy() for v in views]
    loss = PseudoViewLoss(views, exact, every=2)
    rendered = []
    assert loss(_ctx(truth, 1, 1.0, rendered)) is None and not rendered  # not this step
    value = loss(_ctx(truth, 0, 1.0, rendered))
    assert rendered == [loss.last_camera] and loss.last_camera.name in {v.name for v in views}
    assert float(value) < 1e-6  # the target is the render itself
    first = loss.last_camera.name
    rendered.clear()
    half = loss(_ctx(truth, 2, 0.5, rendered))  # the other view, at half the size
    assert rendered == [loss.last_camera] and loss.last_camera.name != first
    assert (rendered[0].width, rendered[0].height) == (16, 12)
    assert rendered[0].fx == pytest.approx(views[0].fx / 2)
    other = views[[v.name for v in views].index(rendered[0].name)]
    np.testing.assert_array_equal(rendered[0].R, other.R)
    assert float(half) > 0
    dimmer = PseudoViewLoss(views, [0.5 * e for e in exact], every=1, ssim_lambda=0.0)
    rendered.clear()
    got = dimmer(_ctx(truth, 0, 1.0, rendered))
    j = [v.name for v in views].index(rendered[0].name)
    assert float(got) == pytest.approx(float(np.abs(exact[j] - 0.5 * exact[j]).mean()), rel=1e-5)
    halved = PseudoViewLoss(views, exact, every=1, resolution=0.5)  # half of the step's resolution
    rendered.clear()
    halved(_ctx(truth, 0, 0.5, rendered))
    assert (rendered[0].width, rendered[0].height) == (8, 6)
    with pytest.raises(InputError, match="resolution"):
        PseudoViewLoss(views, exact, resolution=0)


def test_pseudo_view_loss_confidence_zero_switches_it_off_and_ssim_term_matches(tiny_capture):
    truth, cams, _ = tiny_capture
    views = pseudo_cameras(cams, 1, seed=0)
    grey = [np.full((24, 32, 3), 0.5, dtype=np.float32)]
    off = PseudoViewLoss(views, grey, every=1, ssim_lambda=0.0, confidence=[np.zeros((24, 32), np.float32)])
    assert float(off(_ctx(truth, 0, 1.0, []))) == 0.0
    with_ssim = PseudoViewLoss(views, grey, every=1, ssim_lambda=0.5)
    rgb = render(truth, views[0], sh_degree=0, background=(0, 0, 0)).rgb
    target = torch.from_numpy(grey[0])
    expected = 0.5 * (rgb - target).abs().mean() + 0.5 * (1 - ssim_loss_value(rgb, target))
    assert float(with_ssim(_ctx(truth, 0, 1.0, []))) == pytest.approx(float(expected), rel=1e-5)


def test_pseudo_view_loss_in_training_pulls_the_pseudo_views_toward_their_targets(tiny_capture):
    truth, cams, images = tiny_capture
    views = pseudo_cameras(cams, 4, seed=1)
    targets = [render(truth, v, sh_degree=0, background=(0, 0, 0)).rgb.detach().numpy() for v in views]
    init = random_scene(60, sh_degree=0, seed=9, extent=0.7)
    # learning rates 8x the defaults so that 100 steps move the scene visibly
    config = TrainConfig(iterations=100, sh_degree=0, strategy="none", start_resolution=1.0, metrics_every=10,
                         backend="cpu", seed=1, lr_means=1.3e-3, lr_sh0=2e-2, lr_scales=4e-2)

    def pseudo_error(scene):
        return np.mean([np.abs(render(scene, v, sh_degree=0, background=(0, 0, 0)).rgb.detach().numpy() - t).mean()
                        for v, t in zip(views, targets)])

    plain = train(init, cams[:1], images[:1], config)
    loss = PseudoViewLoss(views, targets, weight=1.0, every=1)
    guided = train(init, cams[:1], images[:1], config, losses=[loss])
    assert "loss/pseudo" in guided.history[-1]
    # measured: mean L1 on the pseudo views 0.055 trained on the photo alone, 0.036 with the pseudo views
    assert pseudo_error(guided.scene) < 0.8 * pseudo_error(plain.scene)


# ----------------------------------------------------------------------------- repair rounds


class _Brighten(ImagePrior):
    """A prior whose repair is known: every render made 20 % brighter."""

    name = "test brightening"

    def __init__(self, cancel_after=None, token=None):
        self.calls, self.cancel_after, self.token = 0, cancel_after, token

    def repair(self, images, cameras=None):
        self.calls += 1
        if self.cancel_after is not None and self.calls > self.cancel_after:
            self.token.cancel()
        return [np.clip(np.asarray(im) * 1.2, 0, 1).astype(np.float32) for im in images]


def _tiny_config():
    return TrainConfig(iterations=30, sh_degree=0, strategy="none", start_resolution=1.0, metrics_every=10,
                       backend="cpu", seed=0)


def test_repair_rounds_write_the_pseudo_views_and_fine_tune(tiny_capture, tmp_path):
    truth, cams, images = tiny_capture
    scene = train(random_scene(60, sh_degree=0, seed=4, extent=0.7), cams, images, _tiny_config()).scene
    events = []
    result = repair_rounds(scene, cams, images, _Brighten(), rounds=2, steps_per_round=10, config=_tiny_config(),
                           emit=events.append, out_dir=tmp_path, pseudo_count=3)
    assert [f["round"] for f in result.figures] == [0, 1]
    for k in range(2):
        folder = tmp_path / "pseudo" / f"round_{k}"
        saved = json.loads((folder / "cameras.json").read_text())
        assert [c["name"] for c in saved] == ["pseudo_000", "pseudo_001", "pseudo_002"]
        for c in saved:
            fixed = cv2.imread(str(folder / f"{c['name']}.png"))
            raw = cv2.imread(str(folder / f"{c['name']}.render.png"))
            assert fixed.shape == (24, 32, 3) and raw.shape == (24, 32, 3)
            assert fixed.astype(int).sum() > raw.astype(int).sum()  # the brightened one
        assert not list(folder.glob("*.part"))
    assert result.figures[0]["loss_pseudo"] is not None and result.figures[0]["repair_change_psnr"] < 40
    assert not torch.equal(result.scene.means, scene.means)  # fine-tuned
    assert len(result.scene) == len(scene)  # no densification while fine-tuning
    assert any(isinstance(e, Progress) and e.stage == "repair" for e in events)


def test_repair_rounds_continue_the_training_run_instead_of_restarting_it(tiny_capture, tmp_path):
    truth, cams, images = tiny_capture
    trained = train(random_scene(60, sh_degree=0, seed=4, extent=0.7), cams, images, _tiny_config())
    adam_steps = lambda state: {int(o.state_dict()["state"][0]["step"]) for o in state.optimizers.values()}  # noqa: E731
    assert trained.state.step == 30 and adam_steps(trained.state) == {30}
    result = repair_rounds(trained.scene, cams, images, _Brighten(), rounds=2, steps_per_round=10,
                           config=_tiny_config(), out_dir=tmp_path / "continued", pseudo_count=3, state=trained.state)
    # the same run, 20 steps further: schedule position and Adam moments carried on, not reset per round
    assert trained.state.step == 50 and adam_steps(trained.state) == {50}
    assert torch.equal(result.scene.means, trained.state.scene().means)
    # without the run's state the rounds start at the schedule's end with fresh optimisers
    fresh = repair_rounds(trained.scene, cams, images, _Brighten(), rounds=1, steps_per_round=10,
                          config=_tiny_config(), out_dir=tmp_path / "fresh", pseudo_count=3)
    assert not torch.equal(fresh.scene.means, trained.scene.means)


def test_repair_rounds_cancel_keeps_the_last_finished_round(tiny_capture, tmp_path):
    truth, cams, images = tiny_capture
    scene = train(random_scene(60, sh_degree=0, seed=4, extent=0.7), cams, images, _tiny_config()).scene
    token = CancelToken()
    per_round = 2  # pseudo views repaired one by one
    prior = _Brighten(cancel_after=per_round, token=token)  # cancels while repairing round 2
    result = repair_rounds(scene, cams, images, prior, rounds=3, steps_per_round=10, config=_tiny_config(),
                           cancel=token, out_dir=tmp_path, pseudo_count=per_round)
    assert [f["round"] for f in result.figures] == [0]
    assert (tmp_path / "pseudo" / "round_0" / "pseudo_000.png").is_file()
    assert not (tmp_path / "pseudo" / "round_1").exists()
    # the scene is round 0's: fine-tuning again from the input with the same settings gives it exactly
    again = repair_rounds(scene, cams, images, _Brighten(), rounds=1, steps_per_round=10, config=_tiny_config(),
                          out_dir=tmp_path / "again", pseudo_count=per_round)
    assert torch.equal(result.scene.means, again.scene.means)


def test_repair_rounds_cancelled_while_fitting_the_net_returns_the_scene_unchanged(tiny_capture, tmp_path):
    truth, cams, images = tiny_capture
    scene = random_scene(60, sh_degree=0, seed=4, extent=0.7)
    token = CancelToken()
    token.cancel()
    net = SceneRepairNet(steps=10, channels=(4, 4, 4))
    result = repair_rounds(scene, cams, images, net, rounds=2, steps_per_round=5, config=_tiny_config(),
                           cancel=token, out_dir=tmp_path, init=scene, fit_steps=5)
    assert result.figures == [] and result.scene is scene and not net.fitted
    assert not (tmp_path / "pseudo").exists()


def test_repair_rounds_fit_the_per_scene_net_on_leave_one_out_pairs(tiny_capture, tmp_path):
    truth, cams, images = tiny_capture
    scene = train(random_scene(60, sh_degree=0, seed=4, extent=0.7), cams, images, _tiny_config()).scene
    net = SceneRepairNet(steps=10, batch=2, crop=16, channels=(4, 4, 4))
    events = []
    result = repair_rounds(scene, cams, images, net, rounds=1, steps_per_round=5, config=_tiny_config(),
                           out_dir=tmp_path, pseudo_count=2, init=random_scene(60, sh_degree=0, seed=4, extent=0.7),
                           fit_steps=10, emit=events.append)
    assert net.fitted and len(result.figures) == 1
    labels = [e.message for e in events if isinstance(e, Progress)]
    assert any("without photo 4 of 4" in m for m in labels)


# ----------------------------------------------------------------------------- diffusers img2img


def _bytes_to_unicode_chars() -> list[str]:
    """The 256 printable characters byte-level BPE tokenizers (CLIP's) map bytes to."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _tiny_img2img_folder(root):
    """A randomly initialised, tiny Stable Diffusion img2img pipeline saved in ``root``: the real loading path
    without any downloaded weights (a character-level CLIP vocabulary written here, no merges)."""
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in _bytes_to_unicode_chars():
            vocab.setdefault(c + suffix, len(vocab))
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=77)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16))
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8)
    pipe = diffusers.StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
        scheduler=diffusers.DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    folder = root / "tiny-img2img"
    pipe.save_pretrained(folder)
    return folder


@pytest.mark.slow  # importing diffusers and transformers takes 5-25 s on 2 cores; the pipeline itself is tiny
def test_diffusion_prior_loads_a_local_pipeline_and_repairs(tmp_path):
    from engine.priors.diffusion_prior import DiffusionPrior

    folder = _tiny_img2img_folder(tmp_path)
    # An older checkpoint's scheduler config: diffusers fixes it on loading and says so with a FutureWarning,
    # which is not the person's to act on, so loading keeps it quiet.
    config = folder / "scheduler" / "scheduler_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "steps_offset": 0}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        prior = DiffusionPrior(folder, strength=0.5, steps=2)
    assert prior.pipeline.scheduler.config.steps_offset == 1
    assert "tiny-img2img" in prior.name and "diffusion" in prior.name
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    odd = np.random.default_rng(1).random((30, 44, 3)).astype(np.float32)  # not a multiple of the latent grid
    fixed, fixed_odd = prior.repair([image, odd])
    assert fixed.shape == (64, 64, 3) and fixed_odd.shape == (30, 44, 3)
    for out in (fixed, fixed_odd):
        assert out.dtype == np.float32 and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(prior.repair([image])[0], fixed)  # seeded: the same repair twice


def test_diffusion_prior_names_a_missing_or_broken_folder(tmp_path):
    from engine.priors.diffusion_prior import DiffusionPrior

    with pytest.raises(ModelError, match="does not exist") as missing:
        DiffusionPrior(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        DiffusionPrior(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "StableDiffusionImg2ImgPipeline", "unet": ["diffusers"')
    with pytest.raises(ModelError, match="cannot be loaded") as bad:
        DiffusionPrior(broken)
    assert "broken" in str(bad.value)


# ----------------------------------------------------------------------------- Real-ESRGAN


def test_realesrgan_enhancer_runs_the_wheels_weights_on_the_cpu(monkeypatch):
    pytest.importorskip("ncnn")
    from engine.priors import realesrgan
    from engine.priors.realesrgan import RealEsrganEnhancer, model_files

    param, weights = model_files("realesr-animevideov3-x2")
    assert param.suffix == ".param" and weights.stat().st_size > 1_000_000
    enhancer = RealEsrganEnhancer("realesr-animevideov3-x2", threads=1)
    blocks = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    sharp = cv2.resize(blocks, (240, 200), interpolation=cv2.INTER_NEAREST)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    out = enhancer.repair([blurred])[0]  # shrunk to 120x100 for the x2 model: four tiles of at most 96 px
    assert out.shape == blurred.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    edges = lambda im: np.abs(np.diff(im, axis=0)).mean() + np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
    assert edges(out) > 1.2 * edges(blurred)  # measured 0.046 vs 0.031: it sharpens (and overshoots)
    np.testing.assert_array_equal(enhancer.repair([blurred])[0], out)
    monkeypatch.setattr(realesrgan, "TILE", 1000)
    whole = enhancer.repair([blurred])[0]
    assert np.abs(whole - out).max() < 0.005  # the tiles' margins hide the seams (measured 0.0008)
    with pytest.raises(ModelError, match="unknown Real-ESRGAN model"):
        model_files("nope")
