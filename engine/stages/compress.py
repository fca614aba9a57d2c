"""compress: scene.handful at the chosen quality (only with JobOptions.compress), fine-tuned first against the
training photos through the codec's rounding (``compress_finetune`` steps, ``engine.compress.qat``); its
figures, the PSNR against those photos before and after included, go into report.json["compress"]."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Stage, StageResult


@dataclass
class CompressResult(StageResult):
    file = "compress.json"
    summary: dict = field(default_factory=dict)


class CompressStage(Stage):
    name = "compress"
    reads = ("compress", "compress_finetune", "background")
    outputs = ("scene.handful", "compress.json", "report.json")
    result_type = CompressResult

    def enabled(self, ctx) -> bool:
        return bool(ctx.options.compress)

    def run(self, ctx) -> CompressResult:
        from ..compress.pipeline import compress
        from ..io import load_scene
        from ..io.atomic import atomic_write_bytes

        _, train_cams, _, _ = ctx.train_setup(refined=True)
        scene = load_scene(ctx.out / "scene.ply")
        data, summary, _ = compress(scene, ctx.options.compress, cameras=train_cams, images=ctx.load_images(train_cams),
                                    finetune_steps=ctx.options.compress_finetune, background=ctx.background.rgb,
                                    on_event=ctx.emit, cancel=ctx.cancel)
        atomic_write_bytes(ctx.out / "scene.handful", data)
        return CompressResult(summary={"file": "scene.handful", **summary.as_dict()})
