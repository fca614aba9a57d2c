"""Stand-ins for engine.priors' backends with answers known in advance, to test the job's wiring of the
priors (which stage calls what, with which files, cancel and fallbacks) apart from the priors themselves.
``install(monkeypatch)`` puts them where engine/stages/priors.py looks them up; the regularisers are
empty Loss / Hook objects (recording_train takes them off before the real training)."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import numpy as np

from engine import events as ev
from engine.errors import Cancelled, ModelError
from engine.scene import Camera, PointCloud
from engine.train.hooks import Hook, Loss

PLANE_DEPTH = 3.0  # every fake depth map sees a plane this far in front of its camera


@dataclasses.dataclass
class FakeDepthMap:
    depth: np.ndarray
    confidence: np.ndarray
    camera: Camera
    kind: str
    source: str

    def save(self, path):
        c = self.camera
        np.savez(path, depth=self.depth, confidence=self.confidence, K=c.K, R=c.R, t=c.t,
                 size=[c.width, c.height], kind=self.kind, source=self.source, name=c.name)

    @classmethod
    def load(cls, path):
        d = np.load(path)
        w, h = (int(v) for v in d["size"])
        K = d["K"]
        cam = Camera(width=w, height=h, fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], R=d["R"], t=d["t"],
                     name=str(d["name"]))
        return cls(d["depth"], d["confidence"], cam, str(d["kind"]), str(d["source"]))


class FakeMultiViewDepth:
    name = "fake multi-view depth (a plane)"

    def estimate(self, cameras, images, *, emit=ev.null_sink, cancel=None):
        maps = []
        for i, (cam, img) in enumerate(zip(cameras, images)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            emit(ev.Progress("depth", i + 1, len(cameras), f"view {i + 1}"))
            depth = np.full((cam.height, cam.width), PLANE_DEPTH, np.float32)
            maps.append(FakeDepthMap(depth, np.ones_like(depth), cam, "metric", self.name))
        return maps


class FakeMonocularDepth:
    def __init__(self, folder: Path):
        if not (Path(folder) / "config.json").is_file():
            raise ModelError(f"no depth model in {folder} (config.json is missing)", path=folder)
        self.name = f"fake monocular depth from {folder}"


def fake_dense_points(depth_maps, images, *, max_points, min_confidence):
    """Each map's pixels lifted to the world at their depth (a subsample, at most ``max_points``)."""
    xyz, rgb = [], []
    for m, img in zip(depth_maps, images):
        cam = m.camera
        v, u = np.mgrid[0:cam.height:4, 0:cam.width:4]
        z = m.depth[v, u]
        x = (u + 0.5 - cam.cx) / cam.fx * z
        y = (v + 0.5 - cam.cy) / cam.fy * z
        pc = np.stack([x, y, z], -1).reshape(-1, 3)
        xyz.append((pc - cam.t) @ cam.R)  # camera to world: R^T (p - t)
        rgb.append(np.asarray(img)[v, u].reshape(-1, 3))
    xyz, rgb = np.concatenate(xyz)[:max_points], np.concatenate(rgb)[:max_points]
    return PointCloud(xyz, rgb)


class DropGaussian(Hook):
    def __init__(self, rate):
        self.rate = rate


class DepthCorrelationLoss(Loss):
    def __init__(self, depth_maps, patch=None, view_weights=None):
        built.append(("DepthCorrelationLoss", len(depth_maps)))
        self.view_weights = view_weights


class DepthSmoothnessLoss(Loss):
    pass


class FloaterLoss(Loss):
    pass


built: list = []  # (regulariser, depth maps it got), as the job made them


class FakeSceneRepairNet:
    name = "fake repair net (identity)"


class FakeDiffusionPrior:
    def __init__(self, folder: Path):
        if not (Path(folder) / "model_index.json").is_file():
            raise ModelError(f"no diffusers pipeline in {folder} (model_index.json is missing)", path=folder)
        self.name = f"fake diffusion from {folder}"


repair_states: list = []  # the schedule step of the training run each fake repair was given (None: none)


def fake_repair_rounds(scene, cameras, images, prior, *, rounds, out_dir, pseudo_count, emit, cancel, state=None,
                       **_):
    """Writes ``pseudo_count`` grey views (and their 'renders') per round into out_dir/pseudo/round_<k>/ and
    halves every opacity once per round; a cancel keeps the last finished round's scene (as the real one)."""
    import cv2
    import torch

    repair_states.append(None if state is None else state.step)

    figures = []
    for k in range(rounds):
        if cancel is not None and cancel.cancelled:
            break
        folder = Path(out_dir) / "pseudo" / f"round_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(pseudo_count):
            for suffix in (".png", ".render.png"):
                cv2.imwrite(str(folder / f"view_{i:02d}{suffix}"), np.full((8, 8, 3), 128, np.uint8))
        scene = dataclasses.replace(scene, opacity_logits=scene.opacity_logits - torch.log(torch.tensor(2.0)))
        figures.append({"round": k, "prior": prior.name})
        emit(ev.Progress("repair", k + 1, rounds, f"round {k + 1}"))
    return types.SimpleNamespace(scene=scene, figures=figures)


def install(monkeypatch):
    """Make engine/stages/priors.py find the fakes as engine.priors.depth, engine.train.regularisers,
    engine.priors.image_prior and engine.priors.repair_rounds; returns the list of regularisers built."""
    import sys

    built.clear()
    repair_states.clear()
    depth = types.ModuleType("engine.priors.depth")
    depth.DepthMap, depth.MultiViewDepth, depth.MonocularDepth = FakeDepthMap, FakeMultiViewDepth, FakeMonocularDepth
    depth.dense_points = fake_dense_points
    from engine.priors.quality import confirmed_depth_range, in_unreached_cells, points_in_unreached_cells, view_quality  # the real guard: it reads the maps' arrays

    depth.view_quality, depth.in_unreached_cells = view_quality, in_unreached_cells
    depth.points_in_unreached_cells, depth.confirmed_depth_range = points_in_unreached_cells, confirmed_depth_range
    regularisers = types.ModuleType("engine.train.regularisers")
    for cls in (DropGaussian, DepthCorrelationLoss, DepthSmoothnessLoss, FloaterLoss):
        setattr(regularisers, cls.__name__, cls)
    image_prior = types.ModuleType("engine.priors.image_prior")
    image_prior.SceneRepairNet, image_prior.DiffusionPrior = FakeSceneRepairNet, FakeDiffusionPrior
    repair = types.ModuleType("engine.priors.repair_rounds")
    repair.repair_rounds = fake_repair_rounds
    for mod in (depth, regularisers, image_prior, repair):
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return built


def recording_train(monkeypatch):
    """Replace engine.train.train with one that records the losses and hooks it gets and trains without them
    (the fakes do nothing); returns the list of recorded calls."""
    import engine.train

    real = engine.train.train
    calls = []

    def train(init, cameras, images, config, *, losses=(), hooks=(), **kw):
        calls.append({"losses": [type(x).__name__ for x in losses], "hooks": [type(h).__name__ for h in hooks],
                      "views": len(cameras)})
        return real(init, cameras, images, config, **kw)

    monkeypatch.setattr(engine.train, "train", train)
    return calls
