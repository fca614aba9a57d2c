"""``group_scene``: split a trained scene into objects from its photos (no retraining).

For each of (at most ``max_views``) posed photos, downscaled to ``max_side``: render the scene, cut
the photo into regions (``MaskSource``), lift the regions to per-Gaussian votes (``lift``); then
associate the votes of all views into one object id per Gaussian (``associate``). Progress is
reported per view and a cancel is honoured between views (the scene is never modified in place).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..events import CancelToken, EventSink, Progress, null_sink
from ..scene import Camera, GaussianScene
from .associate import AssociationOptions, associate, by_size
from .groups_file import groups_document
from .lift import view_votes
from .masks import MaskSource

STAGE = "group"


@dataclass
class GroupingResult:
    group_ids: torch.Tensor  # (N,) int32, -1 for ungrouped
    document: dict  # groups (the groups.json list), ungrouped, mask_source, views
    views: list[str] = field(default_factory=list)
    seconds: float = 0.0
    regions: list[np.ndarray] = field(default_factory=list)  # each view's label image (when kept)
    vote_ids: torch.Tensor | None = None  # the votes' ids, when identity features refined them

    @property
    def num_groups(self) -> int:
        return len(self.document["groups"])


def spread(count: int, limit: int) -> list[int]:
    """``limit`` indices spread evenly over ``range(count)`` (all of them when there are fewer)."""
    if count <= limit:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, limit)})


def _view_image(image, camera: Camera, size: Camera) -> np.ndarray:
    if image is None:
        if camera.image_path is None:
            raise InputError(f"camera {camera.name!r} has no photo", hint="pass the photos' folder (--images)")
        from ..ingest import load_image

        image = load_image(camera.image_path)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(f"photo has shape {arr.shape}, expected (H, W, 3)", path=camera.image_path or camera.name)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.shape[:2] != (size.height, size.width):
        arr = cv2.resize(arr, (size.width, size.height), interpolation=cv2.INTER_AREA)
    return arr


def group_scene(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    images: Sequence | None = None,
    *,
    source: MaskSource | None = None,
    max_views: int = 12,
    max_side: int = 320,
    options: AssociationOptions | None = None,
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
    keep_regions: bool = False,
    identity_steps: int = 0,
) -> GroupingResult:
    """Object ids for every Gaussian of ``scene`` from the photos ``images`` taken by ``cameras``
    (``images`` None: read each camera's ``image_path``). ``identity_steps`` > 0 also trains identity
    features through the renderer for that many steps (``engine.grouping.identity``) and uses them."""
    from .regions import RegionMaskSource

    start = time.perf_counter()
    cameras = list(cameras)
    if not cameras:
        raise InputError("grouping needs the cameras the scene's photos were taken with, and there are none",
                         hint="pass the camera file (--cameras: a COLMAP model or transforms.json) and the photos")
    if images is not None and len(images) != len(cameras):
        raise InputError(f"{len(cameras)} cameras but {len(images)} photos")
    if len(scene) == 0:
        raise InputError("the scene has no Gaussians to group")
    source = source or RegionMaskSource()
    picked = spread(len(cameras), max_views)
    n = len(scene)
    labels = np.full((len(picked), n), -1, np.int32)
    weights = np.zeros((len(picked), n), np.float32)
    kept_regions, small_cams = [], []
    for row, index in enumerate(picked):
        if cancel is not None:
            cancel.raise_if_cancelled()
        cam = cameras[index]
        factor = min(1.0, max_side / max(cam.width, cam.height))
        small = cam.scaled(factor) if factor < 1.0 else cam
        image = _view_image(None if images is None else images[index], cam, small)
        votes = view_votes(scene, small, image, source)
        labels[row], weights[row] = votes.labels, votes.weights
        small_cams.append(small)
        if keep_regions or identity_steps > 0:
            kept_regions.append(votes.regions)
        emit(Progress(STAGE, row + 1, len(picked) + 1,
                      f"view {row + 1}/{len(picked)}: {int(votes.regions.max()) + 1} regions"))
    if cancel is not None:
        cancel.raise_if_cancelled()
    emit(Progress(STAGE, len(picked), len(picked) + 1, "associating the views' regions"))
    ids = associate(labels, weights, scene.means.detach().cpu().numpy(),
                    scene.colors_dc.detach().cpu().numpy(), options)
    vote_ids = None
    if identity_steps > 0 and (ids >= 0).any():
        from .identity import region_targets, train_identity

        groups = int(ids.max()) + 1
        targets = [region_targets(r, labels[i], weights[i], ids, groups) for i, r in enumerate(kept_regions)]
        emit(Progress(STAGE, len(picked), len(picked) + 1, f"training identity features ({identity_steps} steps)"))
        vote_ids = torch.as_tensor(ids, dtype=torch.int32)
        trained, _ = train_identity(scene, small_cams, targets, ids, groups, identity_steps, cancel=cancel)
        ids = by_size(trained)
    document = groups_document(ids, getattr(source, "name", type(source).__name__), len(picked))
    emit(Progress(STAGE, len(picked) + 1, len(picked) + 1, f"{len(document['groups'])} objects"))
    return GroupingResult(
        group_ids=torch.as_tensor(ids, dtype=torch.int32),
        document=document,
        views=[cameras[i].name for i in picked],
        seconds=time.perf_counter() - start,
        regions=kept_regions if keep_regions else [],
        vote_ids=vote_ids,
    )

