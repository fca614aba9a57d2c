"""init: the Gaussians training starts from (init.ply): the sparse SfM points, the depth stage's dense
points when the priors plan has them, topped up with random points in the cameras' view."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..scene import GaussianScene
from . import priors
from .base import Stage, StageResult

# below this many points the initialisation is topped up with random points in the cameras' view
MIN_SFM_POINTS = 2000


@dataclass
class InitResult(StageResult):
    file = "init.json"
    gaussians: int = 0
    sources: dict = field(default_factory=dict)  # points from each source: sfm, depth, random


class InitStage(Stage):
    name = "init"
    reads = ("seed", "preset")
    outputs = ("init.ply", "init.json")
    result_type = InitResult

    def settings(self, ctx) -> dict:
        return {"dense_init": ctx.priors.has("dense-init")}

    def run(self, ctx) -> InitResult:
        from ..io import save_scene
        from ..train import init_from_points, random_init

        rig, train_cams, _, cfg = ctx.train_setup()
        torch.manual_seed(ctx.options.seed)
        budget = max(1000, cfg.cap_max // 2)
        parts, sources = [], {}
        if rig.points is not None and len(rig.points):
            parts.append(init_from_points(rig.points))
            sources["sfm"] = len(rig.points)
        if ctx.priors.has("dense-init"):
            dense = _dense_points(ctx, train_cams, budget - sources.get("sfm", 0))
            if dense is not None and len(dense):
                parts.append(init_from_points(dense, seed=ctx.options.seed))
                sources["depth"] = len(dense)
        have = sum(sources.values())
        # top up sparse points with random ones in the cameras' view, within half the Gaussian budget
        if have < min(MIN_SFM_POINTS, budget):
            fill = budget - have
            parts.append(random_init(rig.cameras, fill, seed=ctx.options.seed))
            sources["random"] = fill
            if have < 100:
                ctx.warn(f"only {have} sparse points; starting from {fill:,} random points in the cameras' view")
        scene = GaussianScene.concatenate(parts)
        save_scene(scene, ctx.out / "init.ply")
        return InitResult(gaussians=len(scene), sources=sources)


def _dense_points(ctx, train_cams, max_points: int):
    from .depth import load_depth_maps

    maps = load_depth_maps(ctx, train_cams)
    if not maps or max_points <= 0:
        return None
    images = ctx.load_images(train_cams)  # the backend resizes them to the maps' size
    if any(m.kind != "metric" for m in maps):
        ctx.warn("the depth maps are relative (monocular): they have no scale to place starting points with; "
                 "starting from the sparse and random points")
        return None
    ctx.progress(0, 1, f"dense starting points from {len(maps)} depth maps")
    points = priors.dense_points(maps, images, max_points=max_points)
    ctx.progress(1, 1, f"{len(points):,} dense starting points")
    return points
