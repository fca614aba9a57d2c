"""Relative depth from one photo with a learned monocular model loaded from a local folder.

The folder is one a person downloaded beforehand, in the transformers layout (``config.json``, the
weights, and ideally ``preprocessor_config.json``), of a model that ``AutoModelForDepthEstimation``
knows (Depth Anything v1/v2, DPT, ...). Nothing is ever fetched (``local_files_only``). The
pre-processing is done here (resize to the model's size in multiples of its patch, normalise): the
library's image processors want torchvision, which this project does not install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..errors import ModelError
from ..events import CancelToken, EventSink, Progress, null_sink
from ..scene import Camera
from .depth_map import DepthMap
from .prior import WORKING_LONG_EDGE, DepthPrior, check_cancel, working_views

HINT = ("put a monocular depth model in the transformers layout there (config.json, model.safetensors and "
        "preprocessor_config.json, e.g. a Depth Anything V2 Small snapshot downloaded beforehand), or use the "
        "multi-view depth prior")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT = 518  # px: Depth Anything's input size when the folder does not say


def _preprocessing(folder: Path, patch: int) -> dict:
    """Mean, std, input size and size multiple from ``preprocessor_config.json`` (defaults: Depth Anything's)."""
    doc = {}
    path = folder / "preprocessor_config.json"
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"its preprocessor_config.json cannot be read ({e})", folder, HINT) from None
    size = doc.get("size") or DEFAULT_INPUT
    side = (size.get("height") or size.get("shortest_edge") or DEFAULT_INPUT) if isinstance(size, dict) else size
    return {"mean": np.asarray(doc.get("image_mean", IMAGENET_MEAN), np.float32),
            "std": np.asarray(doc.get("image_std", IMAGENET_STD), np.float32),
            "side": int(side), "multiple": int(doc.get("ensure_multiple_of", patch) or patch)}


def _patch_size(config) -> int:
    for owner in (config, getattr(config, "backbone_config", None)):
        if owner is not None and getattr(owner, "patch_size", None):
            return int(owner.patch_size)
    return 14


# model types whose head predicts depth itself (metric-trained); the others predict relative disparity
DEPTH_MODEL_TYPES = ("zoedepth", "glpn")


def predicted_quantity(config) -> str:
    """"depth" or "inverse": what a transformers depth model's ``predicted_depth`` holds. Depth Anything
    says so in ``depth_estimation_type`` (its metric fine-tunes predict depth); relative models such
    as Depth Anything and DPT predict disparity, larger when nearer."""
    declared = getattr(config, "depth_estimation_type", None)
    if declared is not None:
        return "depth" if declared == "metric" else "inverse"
    return "depth" if getattr(config, "model_type", "") in DEPTH_MODEL_TYPES else "inverse"


class MonocularDepth(DepthPrior):
    """Depth Anything (or another transformers depth model) from ``folder``; maps are ``relative``."""

    name = "monocular"

    def __init__(self, folder: str | Path, long_edge: int = WORKING_LONG_EDGE, stage: str = "depth", device: str = "cpu"):
        self.folder = Path(folder)
        self.long_edge = long_edge
        self.stage = stage
        self.device = device
        self.model, self.prep = self._load()
        self.quantity = predicted_quantity(self.model.config)
        self.source = f"monocular depth ({self.model.config.model_type} from {self.folder.name}, {self.quantity})"

    def _load(self):
        folder = self.folder
        if not folder.is_dir():
            raise ModelError("the monocular depth model folder does not exist", folder, HINT)
        if not (folder / "config.json").is_file():
            raise ModelError("is not a depth model folder: it has no config.json", folder, HINT)
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForDepthEstimation
        except ImportError:
            raise ModelError("monocular depth needs the transformers package",
                             hint="pip install transformers (one of Handful's dependencies)") from None
        try:
            model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError, safetensors errors...
            raise ModelError(f"the depth model cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                             folder, HINT) from None
        model = model.to(self.device).eval()
        return model, _preprocessing(folder, _patch_size(model.config))

    def _input(self, rgb: np.ndarray):
        import torch

        h, w = rgb.shape[:2]
        side, multiple = self.prep["side"], self.prep["multiple"]
        scale = side / min(h, w)  # the short side to the model's size, as its own processor does
        size = (max(multiple, round(w * scale / multiple) * multiple), max(multiple, round(h * scale / multiple) * multiple))
        x = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        x = (x - self.prep["mean"]) / self.prep["std"]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)

    def predict(self, rgb: np.ndarray, camera: Camera) -> DepthMap:
        import torch

        with torch.inference_mode():
            out = self.model(pixel_values=self._input(rgb)).predicted_depth
        pred = out.reshape(out.shape[-2], out.shape[-1]).float().cpu().numpy()
        pred = cv2.resize(pred, (camera.width, camera.height), interpolation=cv2.INTER_LINEAR)
        conf = np.isfinite(pred).astype(np.float32)
        return DepthMap(pred, conf, camera, "relative", self.source, self.quantity)

    def estimate(self, cameras: Sequence[Camera], images: Sequence, *, emit: EventSink = null_sink,
                 cancel: CancelToken | None = None) -> list[DepthMap]:
        cams, work = working_views(cameras, images, self.long_edge)
        maps = []
        for k, (cam, rgb) in enumerate(zip(cams, work)):
            check_cancel(cancel)
            emit(Progress(self.stage, k, len(cams), f"depth: monocular model on view {k + 1} of {len(cams)}"))
            maps.append(self.predict(rgb, cam))
        emit(Progress(self.stage, len(cams), len(cams), "depth: done"))
        return maps
