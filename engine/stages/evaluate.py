"""evaluate: the scene scored on the held-out photos (or the training ones when too few to hold out),
previews/, and report.json (what the job did: photos, cameras, priors, scores, timings, warnings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .base import Stage, StageResult


@dataclass
class Report(StageResult):
    """report.json: the evaluate stage's result is the job's report (the job adds the final timings)."""

    file = "report.json"
    images_total: int = 0
    images_used: int = 0
    images_registered: int = 0
    images_unregistered: list = field(default_factory=list)
    pose_strategy: str | None = None
    eval: dict = field(default_factory=dict)
    background: dict = field(default_factory=dict)
    num_gaussians: int = 0
    sh_degree: int = 0
    training: dict = field(default_factory=dict)
    priors: dict = field(default_factory=dict)
    preset: str = ""
    timings: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    compress: dict | None = None

    def to_dict(self) -> dict:
        doc = super().to_dict()
        if doc.get("compress") is None:
            doc.pop("compress", None)
        return doc


class EvaluateStage(Stage):
    name = "evaluate"
    outputs = ("report.json", "previews/")
    result_type = Report

    def run(self, ctx) -> Report:
        from ..io import load_scene
        from ..metrics import evaluate

        rig, train_cams, test_cams, cfg = ctx.train_setup(refined=True)
        scene = load_scene(ctx.out / "scene.ply").to(ctx.device)
        eval_cams = test_cams or train_cams
        images = ctx.load_images(eval_cams)
        if test_cams:
            what = f"rendering the {len(test_cams)} hold-out views"
        elif ctx.options.eval_every:
            what = (f"scoring the {len(eval_cams)} training views (fewer than {ctx.min_views_to_hold_out()} "
                    "photos: none held out)")
        else:
            what = f"scoring the {len(eval_cams)} training views (--eval-every 0: none held out)"
        ctx.progress(0, len(eval_cams), what)
        metrics = evaluate(scene, eval_cams, images, background=ctx.background.rgb)
        write_previews(ctx, scene, eval_cams[:4])
        ingested = ctx.ingested()
        poses = ctx.result("poses")
        train = ctx.result("train")
        return Report(
            images_total=ingested.images_total,
            images_used=len(ingested.images),
            images_registered=len(rig.cameras),
            images_unregistered=poses.unregistered if poses else [],
            pose_strategy=poses.strategy if poses else None,
            eval={"psnr": float(metrics["psnr"]), "ssim": float(metrics["ssim"]),
                  "views": [c.name for c in eval_cams], "held_out": bool(test_cams),
                  "per_view": metrics.get("views", [])},
            background=ctx.background.to_dict(),
            num_gaussians=len(scene),
            sh_degree=scene.sh_degree,
            training=train.report() if train else {},
            priors=ctx.job.priors_report(),
            preset=ctx.options.preset,
            timings=dict(ctx.job.timings),
            device=ctx.job.device_description(),
            warnings=ctx.job.warnings,
            skipped=ingested.skipped,
        )


def write_previews(ctx, scene, cams) -> None:
    import cv2

    from ..io.atomic import atomic_write_bytes
    from ..render import render

    (ctx.out / "previews").mkdir(exist_ok=True)
    with torch.no_grad():
        for cam in cams:
            out = render(scene, cam, background=torch.tensor(ctx.background.rgb, dtype=torch.float32))
            rgb = (out.rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if ok:
                atomic_write_bytes(ctx.out / "previews" / f"{Path(cam.name).stem}.png", buf.tobytes())
