"""ingest: the photos (or video frames) as working copies in images/, with what was skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .base import Stage, StageResult


@dataclass
class IngestResult(StageResult):
    file = "ingest.json"
    images_total: int = 0
    # one dict per working photo: name, source, path (relative to the job folder), width, height, scale, focal_px
    images: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # [source, reason]
    warnings: list = field(default_factory=list)


class IngestStage(Stage):
    name = "ingest"
    reads = ("max_images", "max_long_edge")
    outputs = ("images/", "ingest.json")
    result_type = IngestResult

    def run(self, ctx) -> IngestResult:
        from ..ingest import ingest

        res = ingest(ctx.inputs, ctx.out / "images", max_long_edge=ctx.options.max_long_edge,
                     max_images=ctx.options.max_images, emit=ctx.emit, cancel=ctx.cancel)
        images = [
            {"name": im.name, "source": str(im.source), "path": str(Path(im.path).relative_to(ctx.out)),
             "width": im.width, "height": im.height, "scale": im.scale, "focal_px": im.focal_px}
            for im in res.images
        ]
        return IngestResult(images_total=len(res.images) + len(res.skipped), images=images,
                            skipped=[[str(p), reason] for p, reason in res.skipped], warnings=list(res.warnings))
