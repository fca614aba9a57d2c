"""SceneRepairNet: a small U-Net trained on the capture itself to turn renders into photos.

No pretrained weights exist for this (and none may be downloaded), so the network learns the one thing it
needs from the photos: what this scene's renders get wrong where a view was not trained on. Its pairs are
renders of scenes fitted without photo i, paired with photo i (``leave_one_out_pairs``), the same scenes
rendered with a share of their splats dropped (holes), and the photos under synthetic blur and noise.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import Cancelled, InputError
from engine.events import CancelToken, EventSink, Progress, null_sink
from engine.scene import Camera, GaussianScene

from .image_prior import ImagePrior, check_images
from .repair_progress import STAGE, part_of_stage

Pair = tuple[np.ndarray, np.ndarray]  # (degraded input, clean target), float32 (H,W,3) in [0, 1]


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1),
        nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1),
    )


class _UNet(nn.Module):
    """Two downsamplings, skip connections, a residual output that starts as the identity."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 48)):
        super().__init__()
        c0, c1, c2 = channels
        self.enc0, self.enc1, self.enc2 = _block(3, c0), _block(c0, c1, 2), _block(c1, c2, 2)
        self.dec1, self.dec0 = _block(c2 + c1, c1), _block(c1 + c0, c0)
        self.head = nn.Conv2d(c0, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,3,H,W), H and W multiples of 4
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        up = lambda t, like: F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)  # noqa: E731
        d1 = self.dec1(torch.cat([up(e2, e1), e1], 1))
        d0 = self.dec0(torch.cat([up(d1, e0), e0], 1))
        return x + self.head(d0)


def _to_batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).float()


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian blur of (B,3,H,W) with per-sample ``sigma`` (B,)."""
    radius = 4
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # (B, 2r+1)
    b, c, h, w = x.shape
    flat = x.reshape(1, b * c, h, w)
    kx = k.repeat_interleave(c, 0).view(b * c, 1, 1, -1)
    ky = k.repeat_interleave(c, 0).view(b * c, 1, -1, 1)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kx, groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), ky, groups=b * c)
    return flat.view(b, c, h, w)


def degrade(clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A synthetic render-like degradation of (B,3,H,W) photos: blur (sigma 0.5-2.5 px) and noise."""
    b = clean.shape[0]
    sigma = 0.5 + 2.0 * torch.rand(b, generator=generator)
    noise = 0.03 * torch.rand(b, 1, 1, 1, generator=generator)
    out = _blur(clean, sigma) + noise * torch.randn(clean.shape, generator=generator)
    return out.clamp(0, 1)


class SceneRepairNet(ImagePrior):
    """The default image prior: a U-Net (16-32-48 channels, about 90k weights) trained on this capture in
    a few minutes of CPU, no pretrained weights."""

    name = "per-scene repair network (trained on this capture's photos; offline)"
    needs_fit = True

    def __init__(self, *, steps: int = 400, batch: int = 8, crop: int = 64, lr: float = 2e-3,
                 synthetic_fraction: float = 0.25, seed: int = 0, channels=(16, 32, 48)):
        self.steps, self.batch, self.crop, self.lr = steps, batch, crop, lr
        self.synthetic_fraction = synthetic_fraction
        self.seed = seed
        torch.manual_seed(seed)
        self.net = _UNet(tuple(channels))
        self.fitted = False

    # ---------------------------------------------------------------- training
    def _crops(self, pairs: list[Pair], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(self.batch):
            x, y = pairs[int(rng.integers(len(pairs)))]
            h, w = y.shape[:2]
            ch, cw = min(self.crop, h) // 4 * 4, min(self.crop, w) // 4 * 4
            top, left = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
            x, y = x[top:top + ch, left:left + cw], y[top:top + ch, left:left + cw]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[:, ::-1]
            xs.append(x)
            ys.append(y)
        side = min(min(a.shape[0] for a in xs), min(a.shape[1] for a in xs))
        return _to_batch([a[:side, :side] for a in xs]), _to_batch([a[:side, :side] for a in ys])

    def evaluate(self, pairs: Sequence[Pair]) -> float:
        """Mean L1 between the repaired inputs and their targets, whole images, no augmentation."""
        pairs = [(a, b) for a, b in ((check_images([x])[0], check_images([y])[0]) for x, y in pairs)]
        repaired = self.repair([x for x, _ in pairs])
        return float(np.mean([np.abs(r - y).mean() for r, (_, y) in zip(repaired, pairs)]))

    def fit(self, pairs: Sequence[Pair], emit: EventSink = null_sink, cancel: CancelToken | None = None) -> dict:
        """Train on ``pairs`` of (render, photo) for ``steps`` Adam steps of random crops (flipped at random;
        a ``synthetic_fraction`` of each batch uses the photo under synthetic blur and noise as input).
        Returns the whole-image L1 before and after and the per-step training losses."""
        pairs = [tuple(check_images(p)) for p in pairs]
        if not pairs:
            raise InputError("the repair network needs at least one (render, photo) pair")
        for i, (x, y) in enumerate(pairs):
            if x.shape != y.shape:
                raise InputError(f"repair pair {i}: render {x.shape} and photo {y.shape} differ in size")
        before = self.evaluate(pairs)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps, eta_min=self.lr * 0.05)
        losses = []
        self.net.train()
        for step in range(self.steps):
            if cancel is not None:
                cancel.raise_if_cancelled()
            x, y = self._crops(pairs, rng)
            synthetic = torch.rand(x.shape[0], generator=gen) < self.synthetic_fraction
            if bool(synthetic.any()):
                x[synthetic] = degrade(y[synthetic], gen)
            loss = (self.net(x) - y).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if (step + 1) % 20 == 0 or step + 1 == self.steps:
                emit(Progress(STAGE, step + 1, self.steps, f"repair network step {step + 1}/{self.steps}  "
                              f"L1 {np.mean(losses[-20:]):.4f}"))
        self.net.eval()
        self.fitted = True
        return {"l1_before": before, "l1_after": self.evaluate(pairs), "losses": losses}

    # ---------------------------------------------------------------- inference
    def repair(self, images: Sequence[np.ndarray], cameras: Sequence[Camera] | None = None) -> list[np.ndarray]:
        out = []
        with torch.no_grad():
            for image in check_images(images):
                h, w = image.shape[:2]
                x = _to_batch([image])
                ph, pw = (-h) % 4, (-w) % 4
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
                y = self.net(x)[0, :, :h, :w].clamp(0, 1)
                out.append(np.ascontiguousarray(y.permute(1, 2, 0).numpy(), dtype=np.float32))
        return out


# -------------------------------------------------------------------- the pairs, from the capture itself


def _training_size(cam: Camera, image: np.ndarray, max_side: int | None) -> tuple[Camera, np.ndarray]:
    """The camera and photo at the size training uses (``TrainConfig.max_image_side``)."""
    image = check_images([image])[0]
    if max_side and max(cam.width, cam.height) > max_side:
        cam = cam.scaled(max_side / max(cam.width, cam.height))
        image = cv2.resize(image, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    return cam, image


def leave_one_out_pairs(
    init: GaussianScene,
    cameras: Sequence[Camera],
    images: Sequence,
    config,
    *,
    background=(0.0, 0.0, 0.0),
    dropout_renders: int = 1,
    drop_fraction: float = 0.3,
    seed: int = 0,
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
) -> list[Pair]:
    """Training pairs for :class:`SceneRepairNet` from the capture: for each photo i, ``init`` trained with
    ``config`` (keep its iterations small) on every other photo, rendered from camera i and paired with
    photo i; plus ``dropout_renders`` renders of that scene from every camera with ``drop_fraction`` of
    its splats removed, paired with their photos. Images come at the training size."""
    from engine.render import render
    from engine.scene import CameraRig
    from engine.train import train

    cams = list(cameras)
    if len(cams) < 2:
        raise InputError("leave-one-out repair pairs need at least two photos",
                         hint="turn the repair prior off for a single photo")
    if len(images) != len(cams):
        raise InputError(f"{len(cams)} cameras but {len(images)} images")
    sized = [_training_size(c, im, config.max_image_side) for c, im in zip(cams, images)]
    extent = CameraRig(cams).scene_extent()
    rng = np.random.default_rng(seed)
    bg = torch.as_tensor(background, dtype=torch.float32)
    pairs: list[Pair] = []

    def rendered(scene, cam) -> np.ndarray:
        with torch.no_grad():
            rgb = render(scene, cam, background=bg, backend=config.backend).rgb
        return np.ascontiguousarray(rgb.clamp(0, 1).cpu().numpy(), dtype=np.float32)

    for i in range(len(cams)):
        others = [j for j in range(len(cams)) if j != i]
        sink = part_of_stage(emit, i, len(cams), f"scene without photo {i + 1} of {len(cams)}", snapshots=False)
        result = train(init, [cams[j] for j in others], [images[j] for j in others], config,
                       emit=sink, cancel=cancel, background=background, scene_extent=extent)
        if result.cancelled:
            raise Cancelled()
        scene = result.scene
        cam_i, photo_i = sized[i]
        pairs.append((rendered(scene, cam_i), photo_i))
        for _ in range(dropout_renders):
            for cam, photo in sized:
                keep = torch.from_numpy(rng.random(len(scene)) >= drop_fraction)
                pairs.append((rendered(scene.subset(keep.to(scene.device)), cam), photo))
    return pairs


__all__ = ["SceneRepairNet", "leave_one_out_pairs", "degrade"]
