"""Decoding photos into numpy arrays: EXIF orientation applied, alpha kept or composited.

Pillow does the decoding (JPEG, PNG, WebP, TIFF, AVIF; HEIC/HEIF through ``pillow_heif``): it
reads EXIF and can decode JPEGs at a reduced size directly, which makes ingesting large photos fast.
OpenCV is the fallback for files Pillow cannot identify (e.g. some 16-bit TIFFs).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import FormatError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".avif", ".heic", ".heif"}
)
EXIF_ORIENTATION = 0x0112
# Orientations 5-8 turn the picture by 90 degrees, so width and height swap.
_SWAPS_AXES = {5, 6, 7, 8}


@functools.cache
def heif_available() -> bool:
    try:
        import pillow_heif  # HEIC photos from phones (a dependency; still guarded for trimmed installs)
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@dataclass
class DecodedImage:
    pixels: np.ndarray  # (H, W, 3) or (H, W, 4) uint8, upright
    original_size: tuple[int, int]  # (width, height) of the full-resolution upright image
    exif: Image.Exif
    mode: str = ""  # the file's pixel format as Pillow names it ("RGB", "RGBA", "I;16", ...)

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4


def _cannot_read(path: Path, reason: str) -> FormatError:
    ext = path.suffix.lower()
    hint = "re-export or re-copy the file, or leave it out"
    if ext in (".heic", ".heif") and not heif_available():
        hint = "HEIC needs the package pillow-heif, which this installation lacks (pip install pillow-heif), or convert to JPEG"
    return FormatError(f"cannot read this image: {reason}", path, hint)


def _to_uint8_array(img: Image.Image) -> np.ndarray:
    """RGB or RGBA uint8 from any Pillow mode."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale: keep the top 8 bits rather than clipping at 255.
        grey = np.asarray(img).astype(np.float64) / 257.0
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        scale = 255.0 if grey.max(initial=0) <= 1.0 else 1.0
        return np.repeat(np.clip(np.round(grey * scale), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))


def _decode_with_opencv(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None:
        return None
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float64) * (255.0 if arr.max(initial=0) <= 1 else 1), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB)


def _exif_of(img: Image.Image) -> Image.Exif:
    try:
        return img.getexif()
    except Exception:  # a damaged EXIF block must not make the photo unreadable
        return Image.Exif()


def _upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # damaged EXIF: show the pixels as stored rather than refuse the photo
        return img


def decode_image(path: str | Path, max_long_edge: int | None = None) -> DecodedImage:
    """Decode upright (EXIF orientation applied). With ``max_long_edge``, JPEGs are decoded at the
    smallest power-of-two reduction that still keeps at least that long edge (not resized further)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("does not exist or is not a file", path)
    if path.suffix.lower() in (".heic", ".heif"):
        heif_available()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings (odd EXIF, large images) are not errors
            with Image.open(path) as img:
                exif = _exif_of(img)
                orientation = exif.get(EXIF_ORIENTATION, 1)
                width, height = img.size
                if orientation in _SWAPS_AXES:
                    width, height = height, width
                if max_long_edge and max(width, height) > max_long_edge and img.format == "JPEG":
                    s = max_long_edge / max(width, height)
                    img.draft("RGB", (math.ceil(img.size[0] * s), math.ceil(img.size[1] * s)))
                img.load()
                mode = img.mode
                pixels = _to_uint8_array(_upright(img))
    except Image.DecompressionBombError as e:
        raise FormatError(f"image is too large to process safely ({e})", path) from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow raises UnidentifiedImageError (an OSError) for unknown formats; try OpenCV.
        if isinstance(e, Image.UnidentifiedImageError):
            pixels = _decode_with_opencv(path)
            if pixels is not None:
                h, w = pixels.shape[:2]
                return DecodedImage(np.ascontiguousarray(pixels), (w, h), Image.Exif())
            raise _cannot_read(path, "not an image format this app reads") from None
        raise _cannot_read(path, str(e) or type(e).__name__) from None
    if pixels.size == 0:
        raise _cannot_read(path, "the image is empty")
    return DecodedImage(np.ascontiguousarray(pixels), (width, height), exif, mode)


def composite(rgba: np.ndarray, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """RGBA uint8 over a background colour given in [0, 1]; returns RGB uint8."""
    if rgba.shape[2] == 3:
        return rgba
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3) * 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + bg * (1.0 - alpha)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def load_image(path: str | Path, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(H, W, 3) uint8 RGB, upright; transparent pixels composited over ``background`` (RGB in [0, 1])."""
    return composite(decode_image(path).pixels, background)


def load_image_rgba(path: str | Path) -> np.ndarray:
    """(H, W, 4) uint8 RGBA, upright; alpha 255 where the file has none."""
    pixels = decode_image(path).pixels
    if pixels.shape[2] == 4:
        return pixels
    return np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the upright image, from the header only."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if _exif_of(img).get(EXIF_ORIENTATION, 1) in _SWAPS_AXES:
                width, height = height, width
            return width, height
    except FileNotFoundError:
        raise FormatError("does not exist", path) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise _cannot_read(path, str(e) or type(e).__name__) from None
