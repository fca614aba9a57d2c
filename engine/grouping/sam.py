"""Segment Anything masks from a local checkpoint folder (``transformers``' ``SamModel``).

The folder is one a person downloaded beforehand (e.g. a ``facebook/sam-vit-base`` snapshot: its
``config.json`` and ``model.safetensors``); nothing is ever fetched. The model is prompted with a
grid of points over the part of the photo the scene covers; each prompt's best mask (by the model's
own IoU estimate) is kept when the estimate passes ``min_score``, near-duplicates are dropped, and
the masks are painted into one label image (smaller masks over larger ones).

``transformers`` is used instead of ``segment-anything`` because the latter imports torchvision.
Pre- and post-processing are done here (resize the long side to the model's input size, pad,
normalise; upsample the low-resolution logits): the library's image processor wants torchvision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputError
from .masks import ViewCues, paint_masks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HINT = ("point --sam-model at a folder holding a Segment Anything checkpoint in the transformers layout "
        "(config.json and model.safetensors), downloaded beforehand")


def _normalisation(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    proc = folder / "preprocessor_config.json"
    if proc.is_file():
        try:
            doc = json.loads(proc.read_text())
            mean, std = doc.get("image_mean", mean), doc.get("image_std", std)
        except (OSError, json.JSONDecodeError):
            pass
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


@dataclass
class SamMaskSource:
    model: object
    folder: Path
    points_per_side: int = 16
    min_score: float = 0.7
    duplicate_iou: float = 0.85
    prompts_per_batch: int = 64
    min_region_fraction: float = 0.001
    mean: np.ndarray = field(default_factory=lambda: np.asarray(IMAGENET_MEAN, np.float32))
    std: np.ndarray = field(default_factory=lambda: np.asarray(IMAGENET_STD, np.float32))
    name: str = "sam"

    @classmethod
    def load(cls, folder: str | Path | None, **options) -> "SamMaskSource":
        """Load the checkpoint in ``folder``; every way this can fail is an ``InputError`` naming it."""
        if folder is None:
            raise InputError("the SAM mask source needs a model folder and none was given", hint=HINT)
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("the SAM model folder does not exist", path=folder, hint=HINT)
        if not (folder / "config.json").is_file():
            raise InputError("is not a SAM model folder: it has no config.json", path=folder, hint=HINT)
        try:
            import transformers
            from transformers import SamModel
        except ImportError:
            raise InputError("the SAM mask source needs the transformers package",
                             hint="pip install transformers") from None
        try:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"has an unreadable config.json: {e}", path=folder, hint=HINT) from None
        if model_type != "sam":
            raise InputError(f"holds a {model_type!r} model, not a Segment Anything (sam) model", path=folder, hint=HINT)
        transformers.utils.logging.disable_progress_bar()
        try:
            model = SamModel.from_pretrained(str(folder), local_files_only=True).eval()
        except Exception as e:  # missing or corrupt weights, a mismatched config: all mean "this folder is broken"
            raise InputError(f"cannot load the SAM model: {e}", path=folder, hint=HINT) from None
        mean, std = _normalisation(folder)
        return cls(model=model, folder=folder, mean=mean, std=std, **options)

    @property
    def input_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def _pixel_values(self, rgb: np.ndarray) -> tuple[torch.Tensor, float, tuple[int, int]]:
        h, w = rgb.shape[:2]
        side = self.input_size
        scale = side / max(h, w)
        rh, rw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        resized = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_LINEAR)
        padded = np.zeros((side, side, 3), np.float32)
        padded[:rh, :rw] = (resized - self.mean) / self.std
        return torch.from_numpy(padded).permute(2, 0, 1)[None], scale, (rh, rw)

    def _prompts(self, h: int, w: int, cues: ViewCues) -> np.ndarray:
        n = self.points_per_side
        xs = (np.arange(n) + 0.5) / n * w
        ys = (np.arange(n) + 0.5) / n * h
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        if cues.alpha is not None:  # prompt only where the scene draws something
            a = np.asarray(cues.alpha)
            inside = a[np.minimum(grid[:, 1].astype(int), h - 1), np.minimum(grid[:, 0].astype(int), w - 1)] >= 0.5
            grid = grid[inside]
        return grid

    def regions(self, image: np.ndarray, cues: ViewCues) -> np.ndarray:
        rgb = np.asarray(image, np.float32)
        if rgb.max() > 1.5:
            rgb = rgb / 255.0
        h, w = rgb.shape[:2]
        prompts = self._prompts(h, w, cues)
        if len(prompts) == 0:
            return paint_masks(np.zeros((0, h, w), bool), np.zeros(0), (h, w))
        pixels, scale, (rh, rw) = self._pixel_values(rgb)
        masks, scores = [], []
        with torch.no_grad():
            embeddings = self.model.get_image_embeddings(pixels)
            for start in range(0, len(prompts), self.prompts_per_batch):
                chunk = torch.as_tensor(prompts[start:start + self.prompts_per_batch] * scale, dtype=torch.float32)
                out = self.model(image_embeddings=embeddings, input_points=chunk[None, :, None, :],
                                 input_labels=torch.ones(1, len(chunk), 1, dtype=torch.long), multimask_output=True)
                iou = out.iou_scores[0]  # (P, 3)
                best = iou.argmax(dim=1)
                logits = out.pred_masks[0, torch.arange(len(chunk)), best]  # (P, h', w') low resolution
                logits = torch.nn.functional.interpolate(logits[:, None], size=(self.input_size, self.input_size),
                                                         mode="bilinear", align_corners=False)[:, 0, :rh, :rw]
                for logit, score in zip(logits.numpy(), iou[torch.arange(len(chunk)), best].numpy()):
                    if score < self.min_score:
                        continue
                    mask = cv2.resize(logit, (w, h), interpolation=cv2.INTER_LINEAR) > 0
                    if mask.any():
                        masks.append(mask)
                        scores.append(float(score))
        keep: list[int] = []
        for i in np.argsort(scores)[::-1]:  # greedy: the best-scored of near-duplicate masks survives
            if all(_mask_iou(masks[i], masks[j]) < self.duplicate_iou for j in keep):
                keep.append(int(i))
        stack = np.stack([masks[i] for i in keep]) if keep else np.zeros((0, h, w), bool)
        return paint_masks(stack, np.asarray([scores[i] for i in keep]), (h, w),
                           min_pixels=max(1, int(self.min_region_fraction * h * w)))
