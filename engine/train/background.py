"""The background a scene is trained against: given, or found in the photos.

A Gaussian scene renders over a background colour. When that colour differs from what the photos show
around the subject (a white studio sweep, a product shot, a synthetic render), training has to paint the
photos' background with Gaussians: a shell all round the cameras that costs quality (it blocks the view
from where no photo was taken) and time (every pixel composites it). So the job trains, evaluates and
previews with the photos' own background when they have one:

- photos with transparency are composited over white (the convention for such sets, e.g. NeRF-synthetic);
- otherwise a uniform colour along the photos' borders is that colour, if most photos agree;
- otherwise there is none (a real scene: its surroundings are part of it) and black is used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from engine.errors import InputError

WHITE = (1.0, 1.0, 1.0)
BLACK = (0.0, 0.0, 0.0)
NAMED = {"white": WHITE, "black": BLACK}

BORDER_FRACTION = 0.02  # width of the border strip, as a fraction of the shorter side (at least 2 px)
NEAR = 12  # a border pixel matches the photo's border colour within this many levels (of 255) per channel
UNIFORM_FRACTION = 0.7  # a photo has a uniform border when this share of its border pixels match
AGREEING_PHOTOS = 0.75  # the set has a background when this share of its photos share one border colour
TRANSPARENT_SHARE = 0.01  # a photo is cut out when this share of its pixels is (partly) transparent
MAX_PHOTOS = 24  # photos looked at (spread evenly): enough to decide, fast on large sets


@dataclass(frozen=True)
class Background:
    rgb: tuple[float, float, float]
    how: str  # "given", "transparent", "border" or "none"
    detail: str  # one sentence for the report and the log

    def to_dict(self) -> dict:
        return {**asdict(self), "rgb": [round(c, 4) for c in self.rgb]}


def parse_background(text: str) -> str | tuple[float, float, float]:
    """``auto``, ``white``, ``black``, ``R,G,B`` (0-255) or ``#rrggbb`` -> "auto" or an RGB triple in [0, 1]."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    if value in NAMED:
        return NAMED[value]
    try:
        if value.startswith("#") and len(value) == 7:
            channels = [int(value[i:i + 2], 16) for i in (1, 3, 5)]
        else:
            channels = [float(c) for c in value.split(",")]
    except ValueError:
        channels = []
    if len(channels) != 3 or not all(0 <= c <= 255 for c in channels):
        raise InputError(f"cannot read the background {text!r}",
                         hint="use auto, white, black, three numbers 0-255 such as 128,128,128, or #rrggbb")
    return tuple(float(c) / 255.0 for c in channels)


def check_background(value) -> str | tuple[float, float, float]:
    """A background option as the job keeps it: "auto" or an RGB triple in [0, 1]."""
    if isinstance(value, str):
        return value if value == "auto" else check_background(parse_background(value))
    rgb = tuple(float(c) for c in np.asarray(value, dtype=np.float64).reshape(-1))
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise InputError(f"background must be 'auto' or three values in [0, 1], got {value!r}")
    return rgb


def border_pixels(image: np.ndarray) -> np.ndarray:
    """(N, 3) the pixels of a strip along all four edges of an (H, W, 3) image."""
    h, w = image.shape[:2]
    b = max(2, int(round(BORDER_FRACTION * min(h, w))))
    b = min(b, h // 2, w // 2) or 1
    strips = [image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3),
              image[b:-b, :b].reshape(-1, 3), image[b:-b, -b:].reshape(-1, 3)]
    return np.concatenate(strips).astype(np.int16)


def uniform_border_colour(image: np.ndarray) -> np.ndarray | None:
    """The colour (0-255) of a photo's border when most of it is that one colour, else None."""
    pixels = border_pixels(image[..., :3])
    median = np.median(pixels, axis=0)
    matching = np.all(np.abs(pixels - median) <= NEAR, axis=1).mean()
    return median if matching >= UNIFORM_FRACTION else None


def is_cut_out(rgba: np.ndarray) -> bool:
    """The photo has an alpha channel that makes part of it transparent."""
    return rgba.shape[2] == 4 and float((rgba[..., 3] < 255).mean()) >= TRANSPARENT_SHARE


def detect_background(photos: Sequence[np.ndarray]) -> Background:
    """The background of a set of (H, W, 3) RGB or (H, W, 4) RGBA uint8 photos (see the module doc)."""
    if not len(photos):
        return Background(BLACK, "none", "no photos to look at; black")
    if sum(is_cut_out(p) for p in photos) >= AGREEING_PHOTOS * len(photos):
        return Background(WHITE, "transparent", "the photos are transparent around the subject; "
                                                "composited over white, trained and rendered on white")
    colours = [c for c in (uniform_border_colour(p) for p in photos) if c is not None]
    if len(colours) >= AGREEING_PHOTOS * len(photos):
        common = np.median(np.stack(colours), axis=0)
        agreeing = [c for c in colours if np.all(np.abs(c - common) <= NEAR)]
        if len(agreeing) >= AGREEING_PHOTOS * len(photos):
            rgb = tuple(float(v) / 255.0 for v in np.median(np.stack(agreeing), axis=0))
            return Background(rgb, "border", f"{len(agreeing)} of {len(photos)} photos have a uniform border of "
                                             f"RGB {_levels(rgb)}; trained and rendered on it")
    return Background(BLACK, "none", "no uniform background in the photos (their surroundings are part of the "
                                     "scene); trained and rendered on black")


def choose_background(option, photo_paths: Sequence, load: Callable | None = None) -> Background:
    """The background for option "auto" (detected from up to ``MAX_PHOTOS`` of the photos, spread evenly,
    read with ``load``: path -> uint8 RGB or RGBA array) or a given RGB triple."""
    option = check_background(option)
    if option != "auto":
        return Background(option, "given", f"RGB {_levels(option)} as asked")
    if load is None:
        from engine.ingest import load_image_rgba as load
    paths = list(photo_paths)
    if len(paths) > MAX_PHOTOS:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, MAX_PHOTOS).round()]
    return detect_background([load(p) for p in paths])


def _levels(rgb) -> str:
    return ",".join(str(int(round(c * 255))) for c in rgb)


__all__ = ["Background", "parse_background", "check_background", "detect_background", "choose_background",
           "uniform_border_colour", "is_cut_out", "WHITE", "BLACK"]
