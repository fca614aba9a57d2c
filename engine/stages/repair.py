"""repair: the generative repair loop after training (GaussianObject / LM-Gaussian style): render pseudo
views between and around the photos, repair them with an image prior (the per-scene repair net trained on
the capture, or a local diffusion model with --diffusion-model), and train on them as down-weighted ground
truth, a few rounds. Writes pseudo/ (the repaired views of each round) and updates scene.ply after each
finished round, starting from the training's own scene (trained.ply) so that a re-run repeats the same work.
Runs when the priors plan is full."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Cancelled
from . import priors
from .base import Stage, StageResult
from .train import TRAINED, regularisers

FOLDER = "pseudo"


@dataclass
class RepairResult(StageResult):
    file = "repair.json"
    backend: str | None = None  # the image prior that repaired the views, in words (None: none could run)
    rounds: int = 0  # rounds finished
    pseudo_views: list = field(default_factory=list)  # files under pseudo/
    cancelled: bool = False


class RepairStage(Stage):
    name = "repair"
    reads = ("diffusion_model", "seed")
    outputs = (f"{FOLDER}/", "repair.json", "scene.ply")
    result_type = RepairResult

    def enabled(self, ctx) -> bool:
        return ctx.priors.repair

    def settings(self, ctx) -> dict:
        return {"rounds": repair_round_count(ctx.options.preset), "views_per_round": priors.PSEUDO_VIEWS_PER_ROUND}

    def run(self, ctx) -> RepairResult:
        from ..io import load_scene, save_scene

        folder = ctx.out / FOLDER
        shutil.rmtree(folder, ignore_errors=True)
        backends = priors.image_priors(ctx.options.diffusion_model, ctx.warn)
        if not backends:
            return RepairResult()
        start = ctx.out / TRAINED if (ctx.out / TRAINED).is_file() else ctx.out / "scene.ply"
        scene = load_scene(start).to(ctx.device)
        rig, cams, _, cfg = ctx.train_setup(refined=True)
        images = ctx.load_images(cams)
        from ..train import train

        losses, hooks = regularisers(ctx, cams, train)
        rounds = repair_round_count(ctx.options.preset)
        for backend in backends:
            ctx.cancel.raise_if_cancelled()
            ctx.progress(0, rounds, f"{rounds} repair round{'s' if rounds != 1 else ''} with {backend.name}")
            folder.mkdir(parents=True, exist_ok=True)
            try:
                res = priors.repair_rounds(
                    scene, cams, images, cfg, backend, rounds=rounds, views_per_round=priors.PSEUDO_VIEWS_PER_ROUND,
                    seed=ctx.options.seed, background=ctx.background.rgb, scene_extent=rig.scene_extent(),
                    losses=losses, hooks=hooks, out_dir=folder, emit=ctx.snapshot_forwarder(rig.cameras),
                    cancel=ctx.cancel)
            except Cancelled:
                raise
            except priors.USABLE_ERRORS as e:
                ctx.warn(f"repair with {backend.name} failed: {e}")
                shutil.rmtree(folder, ignore_errors=True)
                continue
            save_scene(res.scene.detach().to("cpu"), ctx.out / "scene.ply")
            _write_views(folder, getattr(res, "views", None))
            result = RepairResult(backend=backend.name, rounds=int(getattr(res, "rounds", rounds)),
                                  pseudo_views=sorted(f"{FOLDER}/{p.name}" for p in folder.glob("*.png")),
                                  cancelled=bool(getattr(res, "cancelled", False)))
            if result.cancelled:
                result.save(ctx.out)
                raise Cancelled(f"repair stopped after {result.rounds} of {rounds} rounds; the scene reached so far "
                                f"is saved as {ctx.out / 'scene.ply'}")
            return result
        ctx.warn("no image prior could run; the scene is not repaired")
        return RepairResult()


def repair_round_count(preset: str) -> int:
    return priors.REPAIR_ROUNDS.get(preset, 2)


def _write_views(folder: Path, views) -> None:
    """The repaired pseudo views as PNGs, when the loop returned them instead of writing them."""
    if not views or any(folder.glob("*.png")):
        return
    import cv2

    from ..io.atomic import atomic_write_bytes

    for i, view in enumerate(views):
        image = view[1] if isinstance(view, tuple) else getattr(view, "image", view)
        rgb = (np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(folder / f"view_{i:03d}.png", buf.tobytes())
