"""Depth priors (``engine.priors.depth.DepthMap``) matched to the training views, at the size each
step renders at (``DepthMap.resized``: nearest depths, area-averaged confidence)."""

from __future__ import annotations

from typing import Sequence

import torch

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


class DepthPriorViews:
    """Each training view's depth prior as tensors, cached per render size."""

    def __init__(self, depth_maps: Sequence, view_weights: Sequence[float] | None = None):
        self.depth_maps = list(depth_maps)
        if view_weights is not None and len(view_weights) != len(self.depth_maps):
            raise InputError(f"{len(view_weights)} view weights for {len(self.depth_maps)} depth maps")
        self.view_weights = [1.0] * len(self.depth_maps) if view_weights is None else [float(w) for w in view_weights]
        self.maps: list = []
        self.weights: list[float] = []
        self.device = torch.device("cpu")
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def setup(self, views, device) -> None:
        self.maps = match_to_views(self.depth_maps, views.cameras)
        given = {id(m): w for m, w in zip(self.depth_maps, self.view_weights)}
        self.weights = [given[id(m)] for m in self.maps]
        self.device = torch.device(device)
        self._cache.clear()

    def kind(self, index: int) -> str:
        return self.maps[index].kind

    def weight(self, index: int) -> float:
        """How much view ``index``'s prior counts (the depth guard's weight; 0: dropped)."""
        return self.weights[index]

    def quantity(self, index: int) -> str:
        """"depth" or "inverse" (maps made before DepthMap had the field: inverse when relative)."""
        m = self.maps[index]
        return getattr(m, "quantity", "inverse" if m.kind == "relative" else "depth")

    def at(self, index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(depth, confidence) of view ``index`` at ``height`` x ``width``: float32 on the device,
        confidence 0 where the prior knows nothing."""
        key = (index, height, width)
        if key not in self._cache:
            m = self.maps[index]
            if (m.camera.width, m.camera.height) != (width, height):
                m = m.resized(width, height)
            depth = torch.as_tensor(m.depth, dtype=torch.float32, device=self.device)
            conf = torch.as_tensor(m.confidence, dtype=torch.float32, device=self.device)
            self._cache[key] = (depth, torch.where(depth != 0, conf, torch.zeros_like(conf)))
        return self._cache[key]


__all__ = ["DepthPriorViews", "match_to_views"]
