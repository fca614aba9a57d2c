"""Plain-JSON forms of the values commands carry (cameras, arrays), so a history file stays readable."""

from __future__ import annotations

import numpy as np

from ..scene import Camera


def camera_to_json(camera: Camera) -> dict:
    return {
        "R": np.asarray(camera.R, dtype=np.float64).tolist(), "t": np.asarray(camera.t, dtype=np.float64).tolist(),
        "fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy,
        "width": camera.width, "height": camera.height, "name": camera.name,
    }


def camera_from_json(data: dict) -> Camera:
    return Camera(R=np.asarray(data["R"], dtype=np.float64), t=np.asarray(data["t"], dtype=np.float64),
                  fx=data["fx"], fy=data["fy"], cx=data["cx"], cy=data["cy"], width=data["width"],
                  height=data["height"], name=data.get("name", ""))


def floats(values) -> list:
    """Nested lists of Python floats (JSON keeps float64 exactly: repr round-trips)."""
    return np.asarray(values, dtype=np.float64).tolist()
