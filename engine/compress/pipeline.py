"""The compression pipeline: importance pruning -> SH reduction (distilled with cameras) -> (fine-tune) ->
quantise/encode.

``compress(scene, "medium", cameras=...)`` returns the .handful bytes and a report with the size and
the quality measured before anything is written (the encoded bytes are decoded in memory and rendered
from the cameras against the uncompressed scene; with photos also against the photos).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from engine import events as ev
from engine.compress import importance as imp
from engine.compress.quality import quality as quality_named
from engine.compress.scene_codec import decode_scene, encode_scene
from engine.compress.sh_reduce import distill_degrees, truncate_degrees
from engine.errors import InputError
from engine.metrics import psnr
from engine.scene import Camera, GaussianScene

STAGE = "compress"


@dataclass
class CompressReport:
    quality: str
    input_gaussians: int
    kept_gaussians: int
    sh_degree: int
    bytes: int
    bytes_per_input_splat: float
    ply_bytes: int
    ratio_to_ply: float
    importance_from: str  # "renders" (cameras) or "proxy" (no cameras)
    psnr_vs_uncompressed: float | None = None  # renders of the result vs renders of the input
    psnr_photos_before: float | None = None  # with photos: the input scene against them
    psnr_photos_after: float | None = None
    finetune_steps: int = 0
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _renders(scene: GaussianScene, cameras, background, backend) -> list[torch.Tensor]:
    from engine.render import render

    with torch.no_grad():
        return [render(scene, c, background=background, backend=backend).rgb.clamp(0, 1) for c in cameras]


def mean_psnr(images_a, images_b) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(images_a, images_b)]))


def compress(
    scene: GaussianScene,
    quality: str = "medium",
    *,
    cameras: Sequence[Camera] | None = None,
    images: Sequence | None = None,
    finetune_steps: int = 0,
    background=(0.0, 0.0, 0.0),
    backend: str = "auto",
    on_event: Callable[[ev.Event], None] | None = None,
    cancel=None,
    importance: np.ndarray | None = None,
    distill: bool = True,
) -> tuple[bytes, CompressReport, GaussianScene]:
    """(file bytes, report, the scene as a reader will decode it). ``importance`` (N,): contributions
    already measured for these cameras (``importance.contributions``), to compare settings cheaply;
    ``distill=False``: truncate SH by sphere energy even with cameras (the benchmark's comparison)."""
    emit = on_event or (lambda _e: None)
    q = quality_named(quality)
    cameras = list(cameras or [])
    if images is not None and len(images) != len(cameras):
        raise InputError(f"{len(cameras)} cameras but {len(images)} photos", hint="pass one photo per camera")
    if len(scene) == 0:
        raise InputError("the scene has no Gaussians to compress")
    scene = scene.detach().to("cpu")
    timings: dict[str, float] = {}
    steps = 4 + (1 if cameras else 0)
    done = 0

    def step(message: str):
        nonlocal done
        if cancel is not None:
            cancel.raise_if_cancelled()
        emit(ev.Progress(STAGE, done, steps, message))
        done += 1

    t = time.perf_counter()
    step("measuring each splat's contribution")
    if importance is not None:
        weights = np.asarray(importance, dtype=np.float64)
    elif cameras:
        weights = imp.contributions(scene, cameras, backend=backend, cancel=cancel,
                                    progress=lambda i, k: emit(ev.Progress(STAGE, i / k, steps, "importance")))
    else:
        weights = imp.contribution_proxy(scene)
    threshold = imp.threshold_for_kept_share(weights, q.kept_share)
    keep = imp.prune_mask(weights, threshold)
    pruned = scene.subset(torch.as_tensor(keep))
    weights = weights[keep]
    timings["prune"] = time.perf_counter() - t

    t = time.perf_counter()
    step("reducing view-dependent colour")
    # with cameras the kept bands are refitted to the colours seen from them (distillation)
    reduced, _degrees = distill_degrees(pruned, cameras, q.sh_tolerance) if cameras and distill else \
        truncate_degrees(pruned, q.sh_tolerance)
    timings["sh"] = time.perf_counter() - t

    codebooks = None
    if finetune_steps and images is not None:
        t = time.perf_counter()
        from engine.compress.qat import CodecRounding  # the trainer: only a fine-tune needs it

        step(f"fine-tuning {finetune_steps} steps against the photos, as the file will store the scene")
        rounding = CodecRounding(reduced, q.settings, weights)
        reduced = _finetune(reduced, cameras, images, finetune_steps, background, backend, emit, cancel, rounding,
                            at=done - 1, of=steps)
        codebooks = rounding.codebooks(reduced)
        timings["finetune"] = time.perf_counter() - t

    t = time.perf_counter()
    step("building codebooks and entropy coding")
    data = encode_scene(reduced, q.settings, weights=weights, codebooks=codebooks)
    timings["encode"] = time.perf_counter() - t
    t = time.perf_counter()
    decoded = decode_scene(data)
    timings["decode"] = time.perf_counter() - t

    from engine.io import estimate_size

    ply = estimate_size(scene, "ply")
    report = CompressReport(
        quality=q.name, input_gaussians=len(scene), kept_gaussians=len(decoded), sh_degree=decoded.sh_degree,
        bytes=len(data), bytes_per_input_splat=len(data) / len(scene), ply_bytes=ply, ratio_to_ply=ply / len(data),
        importance_from="renders" if cameras or importance is not None else "proxy", finetune_steps=finetune_steps if images is not None else 0,
        seconds={k: round(v, 3) for k, v in timings.items()},
    )
    if cameras:
        step("measuring the quality kept")
        before = _renders(scene, cameras, background, backend)
        after = _renders(decoded, cameras, background, backend)
        report.psnr_vs_uncompressed = mean_psnr(after, before)
        if images is not None:
            from engine.metrics import as_image_tensor

            photos = [as_image_tensor(im) for im in images]
            report.psnr_photos_before = mean_psnr(before, photos)
            report.psnr_photos_after = mean_psnr(after, photos)
    emit(ev.Progress(STAGE, steps, steps, f"{len(data):,} bytes, {report.bytes_per_input_splat:.2f} bytes per splat"))
    return data, report, decoded


def _finetune(scene, cameras, images, steps, background, backend, emit, cancel, rounding, at, of) -> GaussianScene:
    """A short optimisation of the pruned scene against the photos, rendered through ``rounding`` (what the
    file will hold), at full resolution and with no densification; its progress is step ``at`` of ``of``."""
    from engine.train.config import TrainConfig
    from engine.train.loop import train

    config = TrainConfig(
        iterations=steps, backend=backend, sh_degree=scene.sh_degree, sh_interval=1, strategy="none",
        refine_start=steps + 1, start_resolution=1.0, lr_means=1.6e-5, lr_means_final=1.6e-6,
        progress_every_s=1.0, snapshot_every_s=1e9, metrics_every=10**9,
    )

    def sink(e):
        if isinstance(e, ev.Warning):
            emit(e)
        elif isinstance(e, ev.Progress):
            emit(ev.Progress(STAGE, at + e.fraction, of, f"fine-tuning: {e.message}", eta_seconds=e.eta_seconds,
                             estimating=e.estimating))

    result = train(scene, cameras, images, config, emit=sink, cancel=cancel, background=background, hooks=[rounding])
    return result.scene.detach().to("cpu")


__all__ = ["compress", "CompressReport", "STAGE", "mean_psnr"]
