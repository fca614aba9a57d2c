"""repair: the generative repair loop after training (GaussianObject / LM-Gaussian style): render pseudo
views between and around the photos, repair them with an image prior (the per-scene repair net trained on
the capture, or a local diffusion model with --diffusion-model), and train on them as down-weighted ground
truth, a few rounds. Writes pseudo/round_<k>/ (the repaired views of each round, their raw renders and cameras) and updates
scene.ply with the last finished round, starting from the training's own scene (trained.ply) so that a re-run repeats the same work.
Runs when the priors plan is full."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from ..errors import Cancelled
from . import priors
from .base import Stage, StageResult
from .train import STATE, TRAINED

FOLDER = "pseudo"


@dataclass
class RepairResult(StageResult):
    file = "repair.json"
    backend: str | None = None  # the image prior that repaired the views, in words (None: none could run)
    rounds: int = 0  # rounds finished
    pseudo_views: list = field(default_factory=list)  # files under pseudo/
    cancelled: bool = False
    figures: list = field(default_factory=list)  # one per finished round (engine.priors.repair_rounds)


class RepairStage(Stage):
    name = "repair"
    reads = ("diffusion_model", "seed")
    outputs = (f"{FOLDER}/", "repair.json", "scene.ply")
    result_type = RepairResult
    replaces_scene = True

    def enabled(self, ctx) -> bool:
        return ctx.priors.repair

    def settings(self, ctx) -> dict:
        return {"rounds": repair_round_count(ctx.options.preset), "views_per_round": priors.PSEUDO_VIEWS_PER_ROUND}

    def run(self, ctx) -> RepairResult:
        from ..io import load_scene, save_scene

        shutil.rmtree(ctx.out / FOLDER, ignore_errors=True)  # views of an earlier run must not be mixed in
        backends = priors.image_priors(ctx.options.diffusion_model, ctx.warn)
        if not backends:
            return RepairResult()
        start = ctx.out / TRAINED if (ctx.out / TRAINED).is_file() else ctx.out / "scene.ply"
        scene = load_scene(start).to(ctx.device)
        init = load_scene(ctx.out / "init.ply").to(ctx.device)  # a per-scene prior fits on scenes trained from it
        rig, cams, _, cfg = ctx.train_setup(refined=True)
        images = ctx.load_images(cams)
        rounds = repair_round_count(ctx.options.preset)
        for backend in backends:
            ctx.cancel.raise_if_cancelled()
            ctx.progress(0, rounds, f"{rounds} repair round{'s' if rounds != 1 else ''} with {backend.name}")
            state = training_state(ctx, cfg, rig.scene_extent())  # afresh for each backend: the rounds advance it
            try:
                repaired, figures = priors.repair_rounds(
                    scene, cams, images, backend, rounds=rounds, steps_per_round=repair_steps(cfg.iterations),
                    config=cfg, background=ctx.background.rgb, emit=ctx.snapshot_forwarder(rig.cameras),
                    cancel=ctx.cancel, out_dir=ctx.out, pseudo_count=priors.PSEUDO_VIEWS_PER_ROUND,
                    seed=ctx.options.seed, init=init, fit_steps=leave_one_out_steps(cfg.iterations), state=state,
                    scene_extent=rig.scene_extent())
            except Cancelled:
                raise
            except priors.USABLE_ERRORS as e:
                ctx.warn(f"repair with {backend.name} failed: {e}")
                shutil.rmtree(ctx.out / FOLDER, ignore_errors=True)
                continue
            if figures:  # a cancel before the first round finished leaves the trained scene as it is
                save_scene(repaired.detach().to("cpu"), ctx.out / "scene.ply")
            result = RepairResult(backend=backend.name, rounds=len(figures),
                                  pseudo_views=sorted(str(p.relative_to(ctx.out)) for p in (ctx.out / FOLDER).rglob("*.png")
                                                      if not p.name.endswith(".render.png")),
                                  cancelled=ctx.cancel.cancelled and len(figures) < rounds,
                                  figures=figures)
            if result.cancelled:
                result.save(ctx.out)
                raise Cancelled(f"repair stopped after {result.rounds} of {rounds} rounds; the scene reached so far "
                                f"is saved as {ctx.out / 'scene.ply'}")
            return result
        ctx.warn("no image prior could run; the scene is not repaired")
        return RepairResult()


def training_state(ctx, cfg, extent: float):
    """The training run to continue (train_state.pt), or None when training did not leave one (it ran
    without repair planned) or it cannot be read (the rounds then start afresh at the schedule's end)."""
    from ..errors import InputError
    from ..train.loop import TrainState

    path = ctx.out / STATE
    if not path.is_file():
        return None
    try:
        return TrainState.load(path, cfg, extent, ctx.device)
    except InputError as e:
        ctx.warn(f"{e}; the repair rounds start from the trained scene with fresh optimisers")
        return None


def repair_steps(iterations: int) -> int:
    """Steps per repair round: an eighth of the training's, at least 50 (the rounds continue the trained run
    with its optimiser moments, so they need not relearn what a restarted fine-tune would)."""
    return max(50, iterations // 8)


def leave_one_out_steps(iterations: int) -> int:
    """Steps of each scene fitted without one photo, whose renders the per-scene repair net learns from: a
    quarter of the training's (these scenes are for the net's pairs, not the result)."""
    return max(1, iterations // 4)


def repair_round_count(preset: str) -> int:
    return priors.REPAIR_ROUNDS.get(preset, 2)
