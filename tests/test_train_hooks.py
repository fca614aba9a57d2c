"""train()'s extension points: loss terms and hooks see each step and change what is optimised."""

import dataclasses

import pytest
import torch

from engine.train import Hook, Loss, NoStrategy, TrainConfig, random_init, train
from tests.factories import photographed_scene


@pytest.fixture(scope="module")
def views():
    _, cams, images = photographed_scene(30, seed=2, views=4, width=24, height=18)
    return cams, images


def config(**kw):
    base = dict(iterations=30, sh_degree=0, strategy="none", start_resolution=0.5, full_resolution_at=0.5,
                metrics_every=10, seed=1)
    base.update(kw)
    return TrainConfig(**base).validate()


class RecordingLoss(Loss):
    """Pushes every opacity towards 1 and remembers what each step looked like."""

    name = "record"

    def __init__(self, weight):
        self.weight = weight
        self.calls, self.setups = [], []

    def setup(self, views, extent, device):
        self.setups.append((views.count, extent))

    def __call__(self, ctx):
        assert ctx.target.shape == ctx.rgb.shape == (ctx.camera.height, ctx.camera.width, 3)
        assert ctx.camera.width == round(ctx.views.cameras[ctx.index].width * ctx.factor)
        self.calls.append((ctx.step, ctx.index, ctx.factor))
        return (1 - torch.sigmoid(ctx.params["opacity_logits"])).mean()


def test_a_loss_term_is_called_every_step_weighted_and_recorded(views):
    cams, images = views
    init = random_init(cams, 60, sh_degree=0, seed=0)
    plain = train(init, cams, images, config())
    term = RecordingLoss(weight=50.0)
    pulled = train(init, cams, images, config(), losses=[term])
    assert term.setups == [(4, pytest.approx(term.setups[0][1]))] and term.setups[0][1] > 0
    assert [c[0] for c in term.calls] == list(range(30))
    assert {c[2] for c in term.calls} == {0.5, 1.0}  # the loss sees each resolution level's camera
    assert sorted({c[1] for c in term.calls}) == [0, 1, 2, 3]
    # a heavy weight on the term must drive the opacities well above the photometric fit's
    mean = lambda r: float(torch.sigmoid(r.scene.opacity_logits).mean())  # noqa: E731
    assert mean(pulled) > 2 * mean(plain), (mean(pulled), mean(plain))
    assert all("loss/record" in row for row in pulled.history)
    assert "loss/record" not in plain.history[-1]


class SkipOddSteps(Loss):
    name = "odd"

    def __init__(self):
        self.seen = []

    def __call__(self, ctx):
        self.seen.append(ctx.step)
        return None if ctx.step % 2 else ctx.rgb.sum() * 0


def test_a_loss_returning_none_sits_the_step_out(views):
    cams, images = views
    init = random_init(cams, 40, sh_degree=0, seed=0)
    term = SkipOddSteps()
    res = train(init, cams, images, config(iterations=6), losses=[term])
    assert term.seen == list(range(6)) and res.iterations == 6


class HideHalf(Hook):
    """Renders only the first half of the Gaussians (a differentiable opacity mask)."""

    def __init__(self):
        self.rendered, self.after = [], []

    def transform_scene(self, scene, step, total, generator):
        keep = torch.zeros(len(scene), dtype=torch.bool)
        keep[: len(scene) // 2] = True
        logits = torch.where(keep, scene.opacity_logits, torch.full_like(scene.opacity_logits, -30.0))
        out = dataclasses.replace(scene, opacity_logits=logits)
        self.rendered.append(len(out))
        return out

    def after_step(self, ctx):
        self.after.append(ctx.step)


def test_a_hook_changes_what_is_rendered_and_sees_every_step(views):
    cams, images = views
    init = random_init(cams, 40, sh_degree=0, seed=0)
    hook = HideHalf()
    res = train(init, cams, images, config(iterations=8, lr_opacity=0.0, lr_means=0.0, lr_scales=0.0,
                                           lr_quats=0.0), hooks=[hook])
    assert hook.rendered == [40] * 8 and hook.after == list(range(8))
    # the hidden half got no gradient, so with only colours learning its colours never changed
    torch.testing.assert_close(res.scene.sh[20:], init.sh[20:], rtol=0, atol=0)
    assert not torch.equal(res.scene.sh[:20], init.sh[:20])


def test_a_given_strategy_replaces_the_configured_one(views):
    cams, images = views
    init = random_init(cams, 40, sh_degree=0, seed=0)
    cfg = config(iterations=60, strategy="mcmc", cap_max=80, refine_start=10, refine_every=10)
    assert len(train(init, cams, images, cfg).scene) > 40  # mcmc grows towards its cap
    assert len(train(init, cams, images, cfg, strategy=NoStrategy()).scene) == 40
