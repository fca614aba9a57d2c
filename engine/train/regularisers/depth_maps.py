"""Depth priors (``engine.priors.depth.DepthMap``) matched to the training views and resampled to
the size each step renders at.

A depth map only needs ``depth`` (H,W), ``confidence`` (H,W), ``camera`` and ``kind``; anything with
those attributes works (the tests build their own).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from engine.errors import InputError


def match_to_views(depth_maps: Sequence, cameras: Sequence) -> list:
    """The depth map of each training camera: by camera name when every map's name is a training
    camera's, else by order (the job estimates the maps for its training cameras in order)."""
    maps = list(depth_maps)
    names = [c.name for c in cameras]
    by_name = {m.camera.name: m for m in maps}
    if all(names) and len(set(names)) == len(names) and set(by_name) >= set(names) and len(by_name) == len(maps):
        return [by_name[n] for n in names]
    if len(maps) != len(cameras):
        raise InputError(
            f"{len(maps)} depth maps for {len(cameras)} training views, and their camera names do not match",
            hint="estimate one depth map per training photo (engine.priors.depth)",
        )
    return maps


def resample(values: torch.Tensor, weights: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` (H,W) at another size, averaged with ``weights`` (H,W) so that unknown pixels (weight 0)
    do not pull known ones towards 0; returns the values and the resampled weights.

    The intrinsics of a resized camera scale exactly (pixel-centre convention), so a plain resize keeps
    every pixel on its ray. Shrinking averages each output pixel's area; enlarging interpolates.
    """
    if tuple(values.shape) == (height, width):
        return values, weights
    mode = "area" if height <= values.shape[0] and width <= values.shape[1] else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    stack = torch.stack([values * weights, weights])[None]
    num, den = F.interpolate(stack, size=(height, width), mode=mode, **kw)[0]
    out = torch.where(den > 1e-6, num / den.clamp_min(1e-6), torch.zeros_like(num))
    return out, den


class DepthPriorViews:
    """Each training view's depth prior as tensors, cached per render size."""

    def __init__(self, depth_maps: Sequence):
        self.depth_maps = list(depth_maps)
        self.maps: list = []
        self.device = torch.device("cpu")
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, views, device) -> None:
        self.maps = match_to_views(self.depth_maps, views.cameras)
        self.device = torch.device(device)
        self._cache.clear()

    def kind(self, index: int) -> str:
        return self.maps[index].kind

    def at(self, index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth, confidence) of view ``index`` at ``height`` x ``width``: float32 on the device,
        confidence 0 where the prior knows nothing."""
        key = (index, height, width)
        if key not in self._cache:
            m = self.maps[index]
            depth = torch.as_tensor(m.depth, dtype=torch.float32)
            conf = torch.as_tensor(m.confidence, dtype=torch.float32)
            conf = torch.where((depth != 0) & torch.isfinite(depth), conf.clamp(0, 1), torch.zeros_like(conf))
            depth = torch.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0)
            d, c = resample(depth, conf, height, width)
            self._cache[key] = (d.to(self.device), c.to(self.device))
        return self._cache[key]


__all__ = ["DepthPriorViews", "match_to_views", "resample"]
