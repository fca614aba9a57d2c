"""Focal length in pixels from a photo's EXIF: a starting guess for the pose solver."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from PIL import Image

EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_Y_RESOLUTION = 0xA20F
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003

# FocalPlaneResolutionUnit: 2 inch, 3 centimetre, 4 millimetre, 5 micrometre (EXIF 2.3).
_UNIT_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
# Focal lengths outside these multiples of the long edge mean a field of view over ~157 or under
# ~3 degrees: a broken tag rather than a lens worth trusting.
_PLAUSIBLE = (0.1, 20.0)


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def focal_px_from_exif_data(
    exif: Image.Exif, width: int, height: int, stored_long_edge: int | None = None
) -> float | None:
    """Focal length in pixels for an upright image of ``width`` x ``height`` (any resolution of the
    photo); ``stored_long_edge`` is the file's own long edge, used when EXIF lacks the sensor size."""
    tags = dict(exif.get_ifd(EXIF_IFD)) if exif else {}
    long_edge = max(width, height)
    focal_px = None

    f35 = _number(tags.get(FOCAL_LENGTH_35MM))
    if f35 is not None:
        # The 35 mm equivalent matches the field of view along the diagonal (makers compute it with the
        # diagonal crop factor), which also holds for 4:3 and 16:9 sensors; for 3:2 this equals
        # f35 / 36 * long edge.
        focal_px = f35 * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
    else:
        focal_mm = _number(tags.get(FOCAL_LENGTH))
        x_res = _number(tags.get(FOCAL_PLANE_X_RESOLUTION))
        unit_mm = _UNIT_MM.get(int(_number(tags.get(FOCAL_PLANE_RESOLUTION_UNIT)) or 2))
        if focal_mm is not None and x_res is not None and unit_mm is not None:
            # FocalPlaneXResolution is pixels per unit on the sensor at the camera's own resolution
            # (PixelXDimension); scale to the size asked for.
            focal_px_sensor = focal_mm * x_res / unit_mm
            sensor_px = max(_number(tags.get(PIXEL_X_DIMENSION)) or 0, _number(tags.get(PIXEL_Y_DIMENSION)) or 0)
            sensor_px = sensor_px or stored_long_edge
            focal_px = focal_px_sensor * (long_edge / sensor_px if sensor_px else 1.0)
    if focal_px is None or not (_PLAUSIBLE[0] * long_edge <= focal_px <= _PLAUSIBLE[1] * long_edge):
        return None
    return float(focal_px)


def focal_px_from_exif(path: str | Path, width: int, height: int) -> float | None:
    """Focal length in pixels at ``width`` x ``height`` from FocalLengthIn35mmFilm, else FocalLength
    with the sensor's focal-plane resolution; None when the photo does not say (or says nonsense)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                exif = img.getexif()
                stored_long_edge = max(img.size)
    except (OSError, SyntaxError, ValueError):
        return None
    return focal_px_from_exif_data(exif, width, height, stored_long_edge)
