"""depth: a depth map with a confidence per training photo (depth/<photo>.npz), from the photos themselves
(multi-view stereo) or a local monocular model (--depth-model); init starts from its dense points and
training is regularised by it. Runs when the priors plan has depth."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Cancelled
from . import priors
from .base import Stage, StageResult

FOLDER = "depth"


@dataclass
class DepthResult(StageResult):
    file = "depth.json"
    backend: str | None = None  # the backend that made the maps, in words (None: no depth could be made)
    kind: str | None = None  # "metric" (scene units) or "relative" (monocular, up to an affine map)
    # [{"name", "file", "width", "height", "coverage", "guard": engine.priors.quality.ViewQuality.as_dict()}]
    views: list = field(default_factory=list)

    def weights(self) -> dict[str, float]:
        """Each view's weight for the dense start and its depth terms, by photo name (the guard's
        reach; 1 for a map written before the guard, which was trusted whole)."""
        return {v["name"]: float(v.get("guard", {}).get("weight", 1.0)) for v in self.views}


class DepthStage(Stage):
    name = "depth"
    reads = ("depth_model", "eval_every")  # the maps are of the training photos (the backend picks their size)
    outputs = (f"{FOLDER}/", "depth.json")
    result_type = DepthResult

    def enabled(self, ctx) -> bool:
        return ctx.priors.depth

    def settings(self, ctx) -> dict:
        # the guard's figures are part of depth.json: a folder made before them re-runs the stage
        return {"guard": priors.GUARD_VERSION}

    def run(self, ctx) -> DepthResult:
        folder = ctx.out / FOLDER
        shutil.rmtree(folder, ignore_errors=True)  # maps of an earlier run must not be read with these
        backends = priors.depth_priors(ctx.options.depth_model, ctx.warn)
        if not backends:
            return DepthResult()
        cams, _ = ctx.split_views(ctx.read_rig().cameras)  # the working photos: depth needs detail
        images = ctx.load_images(cams)
        for backend in backends:
            ctx.cancel.raise_if_cancelled()
            ctx.progress(0, len(cams), f"depth maps of {len(cams)} photos: {backend.name}")
            try:
                maps = backend.estimate(cams, images, emit=ctx.emit, cancel=ctx.cancel)
            except Cancelled:
                raise
            except priors.USABLE_ERRORS as e:
                ctx.warn(f"depth from {backend.name} failed: {e}")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            views = []
            guard = priors.depth_quality(maps, ctx.warn)
            for i, (cam, depth_map) in enumerate(zip(cams, maps)):
                ctx.cancel.raise_if_cancelled()
                path = folder / f"{Path(cam.name).stem}.npz"
                depth_map.save(path)
                views.append({"name": cam.name, "file": f"{FOLDER}/{path.name}", "width": int(depth_map.camera.width),
                              "height": int(depth_map.camera.height),
                              "coverage": round(float((depth_map.confidence > 0).mean()), 4),
                              "guard": guard[i]})
                ctx.progress(i + 1, len(cams), f"saved the depth map of {cam.name}")
            said = ", ".join(f"{v['name']} {v['guard']['weight']:.2f}" for v in views)
            ctx.progress(len(cams), len(cams), f"depth trusted per view (share of the photo with a depth another "
                                               f"view confirms): {said}")
            return DepthResult(backend=maps[0].source if maps else backend.name,
                               kind=maps[0].kind if maps else None, views=views)
        ctx.warn("no depth prior could run; training without depth")
        return DepthResult()


def depth_weights(ctx, cams) -> list[float]:
    """The guard's weight of each of ``cams``' depth maps, in their order (see engine.priors.quality)."""
    result = ctx.result("depth")
    weights = result.weights() if result is not None else {}
    return [weights.get(c.name, 1.0) for c in cams]


def load_depth_maps(ctx, cams) -> list:
    """The depth stage's maps for ``cams`` (the training photos), in their order; [] when the stage did not
    run with today's settings or has no map for one of them."""
    result = ctx.result("depth")
    files = {v["name"]: v["file"] for v in (result.views if result is not None else [])}
    if not files or any(c.name not in files for c in cams):
        return []
    depth_map = priors.depth_map_type()
    return [depth_map.load(ctx.out / files[c.name]) for c in cams]
