"""The generative repair loop (GaussianObject, LM-Gaussian): render pseudo views, repair them with an image
prior, fine-tune the scene on the photos plus the repaired views, a few rounds.

Each round writes ``out_dir/pseudo/round_<k>/``: the repaired views (``<name>.png``), the raw renders
(``<name>.render.png``) and their cameras (``cameras.json``), every file atomically. A cancel keeps the
scene of the last finished round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from engine.bounds import bulk_bounds
from engine.edit.serial import camera_to_json
from engine.errors import Cancelled, InputError
from engine.events import CancelToken, EventSink, Progress, null_sink
from engine.io.atomic import atomic_write_bytes, atomic_write_text
from engine.metrics import psnr
from engine.scene import Camera, GaussianScene

from .image_prior import ImagePrior
from .pseudo_loss import PseudoViewLoss
from .pseudo_views import pseudo_cameras
from .repair_progress import STAGE, part_of_stage

class RepairResult(NamedTuple):
    scene: GaussianScene  # the scene after the last finished round (the input scene when none finished)
    figures: list[dict]  # one per finished round


def training_size(cameras: Sequence[Camera], max_side: int | None) -> list[Camera]:
    """The cameras at the size training uses (longest side at most ``max_side``)."""
    return [c.scaled(max_side / max(c.width, c.height)) if max_side and max(c.width, c.height) > max_side else c
            for c in cameras]


def save_png(path: Path, image: np.ndarray) -> None:
    rgb = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError("could not encode a pseudo view as PNG", path=path)
    atomic_write_bytes(path, data.tobytes())


def _render_views(scene: GaussianScene, cameras: Sequence[Camera], background, backend: str) -> list[np.ndarray]:
    from engine.render import render

    bg = torch.as_tensor(background, dtype=torch.float32)
    with torch.no_grad():
        return [np.ascontiguousarray(render(scene, cam, background=bg, backend=backend).rgb.clamp(0, 1).cpu().numpy())
                for cam in cameras]


def _fit_prior(prior, init, cameras, images, config, fit_steps, background, seed, emit, cancel) -> None:
    """Fit a per-scene prior on leave-one-out pairs of this capture (``init``: the scene training starts from)."""
    from .repair_net import leave_one_out_pairs

    if init is None:
        from engine.train import random_init

        init = random_init(cameras, int(config.extra.get("init_points", 20_000)), sh_degree=config.sh_degree,
                           seed=seed)
    loo = config.with_(iterations=fit_steps) if fit_steps else config
    emit(Progress(STAGE, 0, 1, f"fitting {prior.name}: a scene without each photo in turn"))
    pairs = leave_one_out_pairs(init, cameras, images, loo, background=background, seed=seed, emit=emit,
                                cancel=cancel)
    prior.fit(pairs, emit=emit, cancel=cancel)


def repair_rounds(
    scene: GaussianScene,
    train_cameras: Sequence[Camera],
    train_images: Sequence,
    prior: ImagePrior,
    *,
    rounds: int,
    steps_per_round: int,
    config,
    background=(0.0, 0.0, 0.0),
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
    out_dir,
    pseudo_count: int = 8,
    weight: float = 0.2,
    every: int = 2,
    pseudo_resolution: float = 0.5,
    seed: int = 0,
    init: GaussianScene | None = None,
    fit_steps: int | None = None,
    state=None,
    scene_extent: float | None = None,
) -> RepairResult:
    """``rounds`` rounds of: render ``pseudo_count`` pseudo views of ``scene`` (new cameras each round),
    repair them with ``prior``, save them, and continue training ``scene`` for ``steps_per_round`` steps on
    the photos plus the repaired views (``PseudoViewLoss`` with ``weight``, every ``every``-th step, rendered
    at ``pseudo_resolution`` of the training size).

    The rounds continue the run that trained ``scene`` (``state``: its ``engine.train.TrainState``, e.g.
    ``TrainResult.state``) past the end of ``config``'s schedule: the final learning rates, every SH band,
    full resolution, no densification, and the optimisers' moments kept from round to round. Without
    ``state`` the run starts at that point with fresh optimisers. A prior that ``needs_fit`` and is not
    fitted yet is first fitted on leave-one-out pairs (``init`` trained for ``fit_steps``, default
    ``config.iterations``, without each photo in turn). Progress and cancel throughout; a cancel returns the
    last finished round's scene."""
    from engine.scene import CameraRig
    from engine.train import train
    from engine.train.loop import TrainState

    if rounds < 0 or steps_per_round < 1:
        raise InputError(f"repair needs rounds >= 0 and steps_per_round >= 1, got {rounds} and {steps_per_round}")
    cams = list(train_cameras)
    out = Path(out_dir) / "pseudo"
    figures: list[dict] = []
    try:
        if prior.needs_fit and not getattr(prior, "fitted", False):
            _fit_prior(prior, init, cams, list(train_images), config, fit_steps, background, seed, emit, cancel)
        sized = training_size(cams, config.max_image_side)
        extent = float(scene_extent) if scene_extent else CameraRig(cams).scene_extent()
        if state is None:
            state = TrainState.fresh(scene, config, extent, step=config.iterations)
        else:
            scene = state.scene()
        for k in range(rounds):
            if cancel is not None:
                cancel.raise_if_cancelled()
            start = time.perf_counter()
            emit(Progress(STAGE, k, rounds, f"round {k + 1}/{rounds}: rendering and repairing {pseudo_count} pseudo views"))
            lo, hi = bulk_bounds(scene.to("cpu"))
            views = pseudo_cameras(sized, pseudo_count, seed=seed + k, centre=(lo + hi) / 2)
            renders = _render_views(scene, views, background, config.backend)
            repaired = []
            for image, cam in zip(renders, views):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                repaired.extend(prior.repair([image], [cam]))
            folder = out / f"round_{k}"
            for cam, image, fixed in zip(views, renders, repaired):
                save_png(folder / f"{cam.name}.render.png", image)
                save_png(folder / f"{cam.name}.png", fixed)
            atomic_write_text(folder / "cameras.json", json.dumps([camera_to_json(c) for c in views], indent=1))
            repair_seconds = time.perf_counter() - start

            loss = PseudoViewLoss(views, repaired, weight=weight, every=every, seed=seed + k,
                                  resolution=pseudo_resolution)
            sink = part_of_stage(emit, k, rounds, f"round {k + 1}/{rounds}", snapshots=True)
            result = train(None, cams, train_images, config, emit=sink, cancel=cancel, background=background,
                           scene_extent=extent, losses=[loss], resume=state, steps=steps_per_round)
            if result.cancelled:
                break
            scene = result.scene
            last = result.history[-1] if result.history else {}
            figures.append({
                "round": k,
                "pseudo_views": len(views),
                "folder": str(folder),
                "prior": prior.name,
                "repair_change_psnr": float(np.mean([psnr(f, r) for f, r in zip(repaired, renders)])),
                "train_psnr": last.get("psnr"),
                "loss_pseudo": last.get("loss/pseudo"),
                "repair_seconds": repair_seconds,
                "train_seconds": result.seconds,
            })
    except Cancelled:
        pass
    return RepairResult(scene, figures)


__all__ = ["repair_rounds", "RepairResult", "training_size"]
