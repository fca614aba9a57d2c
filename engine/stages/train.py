"""train: the Gaussian scene (scene.ply, and trained.ply for the repair stage to start from, with
train_state.pt when repair will continue the run), with the priors plan's regularisers; refined/ holds the
training cameras' refined poses when refinement ran."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field

import numpy as np

from ..errors import Cancelled
from ..scene import Camera, CameraRig
from . import priors
from .base import Stage, StageResult

TRAINED = "trained.ply"  # the training's own scene; scene.ply is the job's current one (repair, group edit it)
STATE = "train_state.pt"  # where training stopped (Adam moments, schedule step), for repair to continue it


@dataclass
class TrainResult(StageResult):
    file = "train.json"
    iterations: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    pose_refinement: dict | None = None
    priors: list = field(default_factory=list)  # the Loss / Hook objects training ran with, by name

    def report(self) -> dict:
        """What report.json shows under "training"."""
        return {k: v for k, v in self.to_dict().items() if v is not None and v != []}


class TrainStage(Stage):
    name = "train"
    reads = ("preset", "iterations", "eval_every", "background", "device", "seed", "refine_poses")
    outputs = ("scene.ply", TRAINED, STATE, "train.json", "refined/")
    result_type = TrainResult
    replaces_scene = True

    def settings(self, ctx) -> dict:
        plan = ctx.priors
        return {"regularisers": plan.has("regularisers"),
                "without": [s for s in plan.skip if s not in ("depth", "dense-init", "repair")]}

    def run(self, ctx) -> TrainResult:
        from ..io import load_scene, save_scene
        from ..train import train

        rig, train_cams, _, cfg = ctx.train_setup()
        init = load_scene(ctx.out / "init.ply").to(ctx.device)
        images = ctx.load_images(train_cams)
        losses, hooks, used = regularisers(ctx, train_cams)
        ctx.cancel.raise_if_cancelled()
        res = train(init, train_cams, images, cfg, emit=ctx.snapshot_forwarder(rig.cameras), cancel=ctx.cancel,
                    background=ctx.background.rgb, scene_extent=rig.scene_extent(), losses=losses, hooks=hooks)
        # a cancelled training still leaves a usable scene: keep it, then report the cancel
        scene = res.scene.detach().to("cpu")
        save_scene(scene, ctx.out / "scene.ply")
        save_scene(scene, ctx.out / TRAINED)
        if ctx.priors.repair and res.state is not None:  # the repair rounds continue this run
            res.state.save(ctx.out / STATE)
        else:
            (ctx.out / STATE).unlink(missing_ok=True)  # a state of an earlier training must not be continued
        save_refined_cameras(ctx, rig, res.cameras)
        result = TrainResult(iterations=int(res.iterations), seconds=round(float(res.seconds), 3),
                             cancelled=bool(getattr(res, "cancelled", False)),
                             priors=used)
        if res.pose_corrections_deg:
            corrections = np.array(res.pose_corrections_deg)
            result.pose_refinement = {
                "cameras": len(corrections), "median_correction_deg": round(float(np.median(corrections)), 4),
                "max_correction_deg": round(float(corrections.max()), 4)}
            ctx.progress(res.iterations, res.iterations,
                         f"refined {len(corrections) - 1} camera poses: median turn {np.median(corrections):.2f}°, "
                         f"largest {corrections.max():.2f}° (saved in refined/)")
        if result.cancelled:
            result.save(ctx.out)
            raise Cancelled(f"training stopped at step {res.iterations} of {cfg.iterations}; the scene reached "
                            f"so far is saved as {ctx.out / 'scene.ply'}")
        return result


def regularisers(ctx, train_cams) -> tuple[list, list, list[str]]:
    """The priors plan's losses and hooks for training, with the depth maps they need, and their names."""
    if not ctx.priors.has("regularisers"):
        return [], [], []
    from .depth import depth_weights, load_depth_maps

    maps = load_depth_maps(ctx, train_cams)
    losses, hooks, used = priors.training_priors(ctx.priors, maps, warn=ctx.warn,
                                                 view_weights=depth_weights(ctx, train_cams) if maps else None)
    if used:
        ctx.progress(0, 1, "training with " + ", ".join(used))
    return losses, hooks, used


def save_refined_cameras(ctx, rig: CameraRig, refined: list[Camera] | None) -> None:
    from ..io import colmap

    folder = ctx.out / "refined"
    if refined is None:
        shutil.rmtree(folder, ignore_errors=True)  # stale poses from an earlier run must not be read
        return
    by_name = rig.by_name()
    full_size = [dataclasses.replace(by_name[c.name], R=c.R, t=c.t) for c in refined]
    colmap.write_text(CameraRig(full_size), folder)
