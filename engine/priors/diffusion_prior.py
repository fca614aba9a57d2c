"""DiffusionPrior: a diffusers img2img pipeline (SD-Turbo, a Difix-style single-step model, ...) from a folder.

The folder is a diffusers pipeline saved with ``save_pretrained`` (``model_index.json`` and one
sub-folder per component). It is loaded with ``local_files_only=True``: nothing is ever downloaded.
Low strength and few steps keep the repaired view close to the render: the prior cleans, it does not
repaint the scene.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from engine.errors import ModelError
from engine.scene import Camera

from .image_prior import ImagePrior, check_images

HINT = ("point to a diffusers img2img pipeline folder saved with save_pretrained (model_index.json, unet/, "
        "vae/, text_encoder/, tokenizer/, scheduler/), e.g. a local copy of stabilityai/sd-turbo")


class DiffusionPrior(ImagePrior):
    needs_fit = False

    def __init__(self, folder, *, strength: float = 0.3, steps: int = 4, guidance_scale: float = 0.0,
                 prompt: str = "", seed: int = 0, device: str = "cpu"):
        self.folder = Path(folder)
        self.strength, self.steps, self.guidance_scale = strength, steps, guidance_scale
        self.prompt, self.seed, self.device = prompt, seed, device
        self.pipeline = self._load()
        self.name = f"diffusion img2img ({self.folder.name}, {type(self.pipeline).__name__}; from a local folder)"

    def _load(self):
        if not self.folder.is_dir():
            raise ModelError("the diffusion model folder does not exist", path=self.folder, hint=HINT)
        if not (self.folder / "model_index.json").is_file():
            raise ModelError("the folder holds no diffusers pipeline (model_index.json is missing)",
                             path=self.folder, hint=HINT)
        try:
            import torch
            from diffusers import AutoPipelineForImage2Image
        except ImportError as e:  # pragma: no cover - diffusers is a dependency
            raise ModelError(f"diffusers cannot be imported ({e})", path=self.folder,
                             hint="install Handful's dependencies (scripts/setup.sh)") from e
        try:
            with warnings.catch_warnings():  # diffusers' notes on outdated configs (it fixes them itself)
                warnings.simplefilter("ignore", FutureWarning)
                pipe = AutoPipelineForImage2Image.from_pretrained(self.folder, local_files_only=True,
                                                                  dtype=torch.float32)
        except Exception as e:  # diffusers raises OSError, ValueError, KeyError... for broken folders
            raise ModelError(f"the diffusion pipeline cannot be loaded ({type(e).__name__}: {e})",
                             path=self.folder, hint=HINT) from e
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(self.device)

    def _multiple(self) -> int:
        """Image sides the pipeline takes: the VAE's downsampling factor times the UNet's."""
        vae_factor = getattr(self.pipeline, "vae_scale_factor", 8)
        unet = getattr(self.pipeline, "unet", None)
        unet_factor = 2 ** (len(unet.config.block_out_channels) - 1) if unet is not None else 8
        return int(vae_factor * unet_factor)

    def repair(self, images: Sequence[np.ndarray], cameras: Sequence[Camera] | None = None) -> list[np.ndarray]:
        import torch
        from PIL import Image

        m = self._multiple()
        out = []
        for i, image in enumerate(check_images(images)):
            h, w = image.shape[:2]
            ph, pw = max(m, round(h / m) * m), max(m, round(w / m) * m)
            resized = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA if pw < w else cv2.INTER_CUBIC)
            pil = Image.fromarray((np.clip(resized, 0, 1) * 255 + 0.5).astype(np.uint8))
            generator = torch.Generator(device="cpu").manual_seed(self.seed + i)
            with torch.no_grad():
                result = self.pipeline(prompt=self.prompt, image=pil, strength=self.strength,
                                       num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                                       generator=generator, output_type="np")
            fixed = np.asarray(result.images[0], dtype=np.float32)
            if fixed.shape[:2] != (h, w):
                fixed = cv2.resize(fixed, (w, h), interpolation=cv2.INTER_AREA if fixed.shape[1] > w else cv2.INTER_CUBIC)
            out.append(np.ascontiguousarray(np.clip(fixed, 0, 1), dtype=np.float32))
        return out


__all__ = ["DiffusionPrior"]
