"""init: the Gaussians training starts from (init.ply): the sparse SfM points (or, for cameras given
without points, the photos' matches triangulated with them), the depth stage's dense points when the
priors plan has them, topped up with random points in the cameras' view.

The dense points get the share of the budget that the depth guard trusts (the mean over the views of
the share of each photo their confirmed depths reach, engine.priors.quality); the rest is the random
fill plain training starts from. Maps that reach only a corner of each photo must not take the whole
budget: the rest of the photo would then have no Gaussian to grow from (measured: strecha_fountain_p11,
3 views, held-out 16.0 dB off, 12.1 with the dense start taking everything)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..scene import GaussianScene
from . import priors
from .base import Stage, StageResult

# below this many points the initialisation is topped up with random points in the cameras' view
MIN_SFM_POINTS = 2000
TRIANGULATED_FOR_RANGE = 50  # triangulated points needed to bound the random fill's depths
# up to this many photos the start's matches are ALIKED + LightGlue (measured on 3 views, 3 seeds, Preview,
# held-out: fern 17.4 -> 18.2 dB, fountain 15.6 -> 15.9, templeSR 17.4 -> 17.5 over SIFT, for 2-3 s);
# above, SIFT, whose cost stays small with many pairs
LEARNED_UP_TO = 12
TRIANGULATION_VERSION = 2  # of the start from triangulated matches: a change re-runs the stage


@dataclass
class InitResult(StageResult):
    file = "init.json"
    gaussians: int = 0
    sources: dict = field(default_factory=dict)  # points from each source: sfm, triangulated, depth, random
    dense_share: float | None = None  # the budget share the depth guard gave the dense points (None: no dense start)
    fill: str | None = None  # where the random fill beside dense points went: "hull" (visual hull) or "holes"
    start_matches: str | None = None  # the matcher of the triangulated start (cameras given without points)


class InitStage(Stage):
    name = "init"
    reads = ("seed", "preset")
    outputs = ("init.ply", "init.json")
    result_type = InitResult

    def settings(self, ctx) -> dict:
        dense = ctx.priors.has("dense-init")
        guard = {"guard": priors.GUARD_VERSION, "hull": ctx.priors.has("hull")} if dense else {}
        return {"dense_init": dense, "triangulation": TRIANGULATION_VERSION, **guard}

    def run(self, ctx) -> InitResult:
        from ..io import save_scene
        from ..train import init_from_points, random_init

        rig, train_cams, _, cfg = ctx.train_setup()
        torch.manual_seed(ctx.options.seed)
        budget = max(1000, cfg.cap_max // 2)
        parts, sources = [], {}
        depth_range, start_matches = None, None
        if rig.points is not None and len(rig.points):
            parts.append(init_from_points(rig.points))
            sources["sfm"] = len(rig.points)
        else:  # cameras given without points: triangulate the photos' matches with them
            points, matches = _triangulated(ctx, train_cams)
            if points is not None and len(points):
                parts.append(init_from_points(points, max_points=budget, seed=ctx.options.seed))
                sources["triangulated"] = min(len(points), budget)
                start_matches = matches
                depth_range = _depth_range(points, train_cams)
        free = max(0, budget - sum(sources.values()))
        share, untrusted, fill_at = None, 0, None
        if ctx.priors.has("dense-init"):
            share = _dense_share(ctx, train_cams)
            untrusted = round(free * (1 - share))
            dense = _dense_points(ctx, train_cams, free - untrusted) if share > 0 else None
            if dense is not None and len(dense):
                parts.append(init_from_points(dense, seed=ctx.options.seed))
                sources["depth"] = len(dense)
            else:
                share = None
        have = sum(sources.values())
        # top up sparse points with random ones in the cameras' view, within half the Gaussian budget, and
        # give the random fill the part of the photos the dense points do not reach
        if have < min(MIN_SFM_POINTS, budget) or (share is not None and untrusted > 0):
            fill = budget - have if have < min(MIN_SFM_POINTS, budget) else untrusted
            # a forward-facing capture's rays take their depths from the triangulated points when there are any
            scene = random_init(rig.cameras, fill, seed=ctx.options.seed, depth_range=depth_range)
            if share is not None:
                hull = _in_the_hull(ctx, train_cams, fill) if ctx.priors.has("hull") and _plain_background(ctx) else None
                scene = hull if hull is not None else _in_the_holes(ctx, train_cams, scene, fill)
                fill_at = "hull" if hull is not None else "holes"
            parts.append(scene)
            sources["random"] = len(scene)
            if have < 100:
                ctx.warn(f"only {have} sparse points; starting from {fill:,} random points in the cameras' view")
        scene = GaussianScene.concatenate(parts)
        save_scene(scene, ctx.out / "init.ply")
        return InitResult(gaussians=len(scene), sources=sources,
                          dense_share=None if share is None else round(share, 4), fill=fill_at,
                          start_matches=start_matches)


def _triangulated(ctx, train_cams):
    """The training photos' matches triangulated with their given cameras and the matcher's label
    ((None, "none") when that fails)."""
    images = ctx.load_images(train_cams)
    features = "aliked" if len(train_cams) <= LEARNED_UP_TO else "sift"
    points, label = priors.triangulated_points(train_cams, images, features=features,
                                               step=lambda message: ctx.progress(0, 1, message), cancel=ctx.cancel,
                                               warn=ctx.warn)
    if points is not None:
        ctx.progress(1, 1, f"{len(points):,} starting points from {label} matches triangulated with the given cameras")
    return points, label


def _depth_range(points, cams) -> tuple[float, float] | None:
    """(near, far) of the points' depths in the cameras (2nd-98th percentile, widened by a quarter);
    None with fewer than TRIANGULATED_FOR_RANGE points in front of them."""
    z = np.concatenate([(points.xyz @ c.R.T + c.t)[:, 2] for c in cams])
    z = z[z > 0]
    if len(z) < TRIANGULATED_FOR_RANGE:
        return None
    near, far = np.percentile(z, [2, 98])
    return float(near) / 1.25, float(far) * 1.25


def _dense_share(ctx, train_cams) -> float:
    """The mean guard weight of the training views' depth maps: the share of the budget the dense
    points take."""
    from .depth import depth_weights

    weights = depth_weights(ctx, train_cams)
    share = float(sum(weights) / len(weights)) if weights else 0.0
    ctx.progress(0, 1, f"the depth maps reach {share:.0%} of the photos: that share of the start is dense points")
    return min(1.0, max(0.0, share))


def _in_the_holes(ctx, train_cams, scene, fill: int):
    """``fill`` random Gaussians in the photos' cells that the confirmed depth does not reach, on rays
    through those cells at the depths the confirmed depth covers (engine.priors.quality): where the
    dense start leaves a photo empty, at the distance the scene is known to be, not in front of it.
    ``scene`` (the fill plain training starts from) when the maps are gone or confirm no depth, or no
    cell is unreached."""
    from ..train.init import grey_gaussians
    from .depth import load_depth_maps

    maps = load_depth_maps(ctx, train_cams)
    points = priors.points_in_unreached_cells(maps, fill, seed=ctx.options.seed, warn=ctx.warn) if maps else None
    if points is None or not len(points):
        return scene
    return grey_gaussians(points, seed=ctx.options.seed)


def _plain_background(ctx) -> bool:
    """Whether the photos were found on one plain background (engine.train.background): an object
    capture, whose visual hull bounds where the object can be."""
    return ctx.background.how in ("border", "transparent")


def _in_the_hull(ctx, train_cams, fill: int):
    """``fill`` random Gaussians inside the visual hull of the training photos' foreground
    (engine.priors.visual_hull), at the depths the confirmed depth covers: an object on a plain
    background leaves the background empty, and points there become floaters the few views cannot
    remove. None when there is no confirmed depth range or the hull holds no point."""
    from ..priors.visual_hull import foreground_mask, hull_points
    from ..train.init import grey_gaussians
    from .depth import load_depth_maps

    maps = load_depth_maps(ctx, train_cams)
    depth_range = priors.confirmed_depth_range(maps, warn=ctx.warn) if maps else None
    if depth_range is None:
        return None
    images = ctx.load_images(train_cams)
    masks = [foreground_mask(img, ctx.background.rgb) for img in images]
    points = hull_points(train_cams, masks, fill, depth_range, seed=ctx.options.seed)
    if not len(points):
        return None
    ctx.progress(0, 1, f"{len(points):,} random starting points inside the photos' visual hull")
    return grey_gaussians(points, seed=ctx.options.seed)


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
