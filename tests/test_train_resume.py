"""Continue-training: train(..., resume=state) picks a run up where it stopped, on the same schedule."""

import pytest
import torch

from engine.errors import InputError
from engine.render import render
from engine.scene import CameraRig
from engine.train import Hook, TrainConfig, random_init, train
from engine.train.loop import TrainState
from tests.factories import orbit_cameras, random_scene


@pytest.fixture(scope="module")
def views():
    truth = random_scene(30, sh_degree=1, seed=3, extent=0.7)
    cams = orbit_cameras(3, radius=3.0, width=24, image_height=18)
    images = [render(truth, c, sh_degree=1, background=(0, 0, 0)).rgb.clamp(0, 1).numpy() for c in cams]
    return cams, images


def config(**kw):
    # every schedule moves within the 24 steps: position lr decay, an SH band at step 8, a resolution level
    # change at step 6, MCMC relocation/growth every 5 steps from step 5 to 19
    base = dict(iterations=24, sh_degree=1, sh_interval=8, strategy="mcmc", cap_max=80, refine_start=5,
                refine_every=5, start_resolution=0.5, full_resolution_at=0.5, metrics_every=4, seed=4, threads=1,
                backend="cpu")
    base.update(kw)
    return TrainConfig(**base).validate()


class Schedule(Hook):
    """Records each finished step's schedule position."""

    def __init__(self):
        self.steps = []

    def after_step(self, ctx):
        self.steps.append((ctx.step, ctx.total, ctx.lr_means, ctx.sh_degree, ctx.factor, ctx.index,
                           int(ctx.params["means"].shape[0])))


def test_a_continued_run_takes_the_steps_of_one_uninterrupted_run(views):
    cams, images = views
    init = random_init(cams, 50, sh_degree=1, seed=0)
    whole, first, second = Schedule(), Schedule(), Schedule()
    one = train(init, cams, images, config(), hooks=[whole])
    part = train(init, cams, images, config(), hooks=[first], steps=10)
    assert part.iterations == 10 and part.state.step == 10
    rest = train(None, cams, images, config(), hooks=[second], resume=part.state)
    assert rest.iterations == 24
    # learning rate, SH band, resolution, view order and densification (splat count) all carry on
    assert first.steps + second.steps == whole.steps
    assert [s[0] for s in second.steps] == list(range(10, 24))
    assert len({s[6] for s in whole.steps}) > 1  # densification did add splats in this run
    # Gaussians, Adam moments and random streams are kept: the result is the uninterrupted run's
    for name in ("means", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(rest.scene, name), getattr(one.scene, name)), name
    assert [h["step"] for h in rest.history] == [12, 16, 20, 24]


def test_steps_past_the_schedule_keep_its_final_values(views):
    cams, images = views
    init = random_init(cams, 50, sh_degree=1, seed=0)
    done = train(init, cams, images, config())
    after = Schedule()
    more = train(None, cams, images, config(), hooks=[after], resume=done.state, steps=5)
    assert more.iterations == 29
    final_lr = config().lr_means_final * CameraRig(cams).scene_extent()
    assert [s[0] for s in after.steps] == list(range(24, 29))
    assert len({s[2] for s in after.steps}) == 1 and after.steps[0][2] == pytest.approx(final_lr, rel=1e-6)
    assert {s[3] for s in after.steps} == {1} and {s[4] for s in after.steps} == {1.0}
    assert len({s[6] for s in after.steps}) == 1  # no more densification
    assert not torch.equal(more.scene.means, done.scene.means)  # it did train


def test_a_saved_state_continues_like_the_one_in_memory(views, tmp_path):
    cams, images = views
    init = random_init(cams, 50, sh_degree=1, seed=0)
    cfg = config(strategy="none")
    part = train(init, cams, images, cfg, steps=12)
    part.state.save(tmp_path / "state.pt")
    loaded = TrainState.load(tmp_path / "state.pt", cfg, extent=1.0)
    assert loaded.step == 12
    assert all(torch.equal(loaded.optimizers[k].state_dict()["state"][0]["exp_avg"],
                           part.state.optimizers[k].state_dict()["state"][0]["exp_avg"]) for k in loaded.optimizers)
    from_disk = train(None, cams, images, cfg, resume=loaded)
    in_memory = train(None, cams, images, cfg, resume=part.state)
    assert from_disk.iterations == in_memory.iterations == 24
    assert torch.equal(from_disk.scene.means, in_memory.scene.means)


def test_a_broken_state_file_names_itself(tmp_path):
    path = tmp_path / "state.pt"
    path.write_bytes(b"not a state")
    with pytest.raises(InputError) as err:
        TrainState.load(path, config(), extent=1.0)
    assert "state.pt" in str(err.value) + str(getattr(err.value, "path", ""))
