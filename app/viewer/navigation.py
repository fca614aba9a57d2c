"""The viewer's camera as plain numbers: orbit, pan, zoom, fly, framing (no Qt, no GL).

The pose is an engine (OpenCV) world-to-camera ``R, t``; the orbit pivot is a world point in
front of the camera. Intrinsics are kept relative to the image size so that a resize keeps the
field of view (and a camera shown with ``view_camera`` stays that camera at any widget size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.scene import Camera

DEFAULT_FOV_Y = math.radians(50.0)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


@dataclass
class ViewState:
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 3.0]))
    pivot: np.ndarray = field(default_factory=lambda: np.zeros(3))
    up: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))  # world up for orbiting
    relative_intrinsics: tuple[float, float, float, float] | None = None  # fx/W fy/H cx/W cy/H
    scene_radius: float = 1.0

    # ------------------------------------------------------------------ geometry
    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t

    def _set_pose(self, R: np.ndarray, center: np.ndarray) -> None:
        # re-orthonormalise so that many small rotations never drift off SO(3)
        u, _, vt = np.linalg.svd(R)
        self.R = u @ vt
        self.t = -self.R @ center

    def camera(self, width: int, height: int) -> Camera:
        if self.relative_intrinsics is None:
            f = 0.5 * height / math.tan(DEFAULT_FOV_Y / 2)
            fx, fy, cx, cy = f, f, width / 2, height / 2
        else:
            rfx, rfy, rcx, rcy = self.relative_intrinsics
            fx, fy, cx, cy = rfx * width, rfy * height, rcx * width, rcy * height
        return Camera(R=self.R.copy(), t=self.t.copy(), fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height, name="viewer")

    def near_far(self) -> tuple[float, float]:
        dist = np.linalg.norm(self.center - self.pivot)
        far = dist + 4 * self.scene_radius + 1e-3
        return max(far * 1e-4, 1e-3 * self.scene_radius, 1e-6), far * 10

    # ------------------------------------------------------------------ setting
    def set_camera(self, camera: Camera) -> None:
        """Become exactly ``camera`` (pose and intrinsics relative to its image size)."""
        self.R = camera.R.copy()
        self.t = camera.t.copy()
        self.relative_intrinsics = (
            camera.fx / camera.width, camera.fy / camera.height, camera.cx / camera.width, camera.cy / camera.height
        )
        self.up = -camera.R[1]
        dist = max(float(np.linalg.norm(camera.center - self.pivot)), 0.1 * self.scene_radius)
        self.pivot = camera.center + camera.R[2] * dist

    def frame(self, center: np.ndarray, radius: float, width: int, height: int) -> None:
        """Keep the orientation, look at ``center`` from far enough that a sphere of ``radius`` fits."""
        self.scene_radius = max(float(radius), 1e-6)
        cam = self.camera(width, height)
        half_fov = 0.5 * min(cam.fov_x, cam.fov_y)
        dist = self.scene_radius / math.sin(half_fov)
        self.pivot = np.asarray(center, dtype=np.float64).copy()
        self._set_pose(self.R, self.pivot - self.R[2] * dist)

    # ------------------------------------------------------------------ navigation
    def orbit(self, dx: float, dy: float, radians_per_pixel: float = 0.008) -> None:
        """Turntable around the pivot: horizontal drags turn about ``up``, vertical ones tilt."""
        rot = _rotation(self.up, -dx * radians_per_pixel) @ _rotation(self.R[0], dy * radians_per_pixel)
        center = self.pivot + rot @ (self.center - self.pivot)
        self._set_pose(self.R @ rot.T, center)

    def pan(self, dx: float, dy: float, focal_px: float) -> None:
        """Drag the scene by (dx, dy) pixels at the pivot's depth."""
        dist = float(np.linalg.norm(self.center - self.pivot))
        scale = dist / max(focal_px, 1e-9)
        shift = -(dx * self.R[0] + dy * self.R[1]) * scale
        self.pivot = self.pivot + shift
        self._set_pose(self.R, self.center + shift)

    def zoom(self, steps: float) -> None:
        """Move toward the pivot (positive steps) by 15% of the distance per step."""
        offset = self.center - self.pivot
        dist = float(np.linalg.norm(offset))
        new_dist = max(dist * (0.85 ** steps), 1e-4 * self.scene_radius)
        self._set_pose(self.R, self.pivot + offset * (new_dist / max(dist, 1e-12)))

    def fly(self, forward: float, right: float, down: float, seconds: float) -> None:
        """Move the camera and pivot together at half the scene radius per second."""
        step = 0.5 * self.scene_radius * seconds
        shift = (forward * self.R[2] + right * self.R[0] + down * self.R[1]) * step
        self.pivot = self.pivot + shift
        self._set_pose(self.R, self.center + shift)
