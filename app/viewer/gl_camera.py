"""The one place where the engine's OpenCV camera meets OpenGL.

Engine cameras are OpenCV/COLMAP: x right, y down, z forward, pixel (u, v) = (fx x/z + cx, fy y/z + cy)
with the centre of the top-left pixel at (0.5, 0.5). OpenGL wants clip coordinates whose NDC has
y up and the visible depth range in [-1, 1], and puts fragment centres of window pixel (i, j) at
(i + 0.5, j + 0.5) counted from the bottom-left. ``opencv_to_gl_clip`` builds the 4x4 matrix that
takes OpenCV camera coordinates straight to GL clip coordinates so that:
  ndc_x = 2u/W - 1,  ndc_y = 1 - 2v/H,  w_clip = z (perspective divide by camera depth).
With it, GL fragment centres land exactly on the engine's pixel centres (image row r is GL row
H-1-r, which ``glReadPixels`` output flipped upside down restores). Shaders keep working in OpenCV
camera space (the EWA Jacobian is the engine's) and use this matrix only to reach the screen.
"""

from __future__ import annotations

import numpy as np

from engine.scene import Camera


def opencv_to_gl_clip(camera: Camera, near: float, far: float) -> np.ndarray:
    """(4,4) float64 matrix: OpenCV camera coordinates (x, y, z, 1) -> GL clip coordinates."""
    w, h = camera.width, camera.height
    m = np.zeros((4, 4))
    m[0, 0] = 2 * camera.fx / w
    m[0, 2] = 2 * camera.cx / w - 1
    m[1, 1] = -2 * camera.fy / h
    m[1, 2] = 1 - 2 * camera.cy / h
    m[2, 2] = (far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = 1.0
    return m


def pixel_to_ndc_scale(camera: Camera) -> tuple[float, float]:
    """NDC change per pixel offset in image coordinates (y down) for the same mapping."""
    return 2.0 / camera.width, -2.0 / camera.height


def side_planes(camera: Camera) -> np.ndarray:
    """(4,4) rows (nx, ny, nz, 0): unit normals in OpenCV camera space of the planes through the
    eye and the four image borders, pointing inside, so a sphere (c, r) is outside when
    ``n . c < -r`` for any row."""
    fx, fy, cx, cy, w, h = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    planes = np.array(
        [
            [fx, 0, cx],  # u >= 0
            [-fx, 0, w - cx],  # u <= W
            [0, fy, cy],  # v >= 0
            [0, -fy, h - cy],  # v <= H
        ],
        dtype=np.float64,
    )
    planes /= np.linalg.norm(planes, axis=1, keepdims=True)
    return np.hstack([planes, np.zeros((4, 1))])


def gl_uniform(matrix: np.ndarray) -> np.ndarray:
    """A row-major numpy matrix as the float32 array vispy hands to a GLSL mat4 (column-major)."""
    return np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).T)


def project_points(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N,2) and camera depths (N,) of world points."""
    pc = np.asarray(points, dtype=np.float64) @ camera.R.T + camera.t
    z = pc[:, 2]
    safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
    uv = np.stack([camera.fx * pc[:, 0] / safe + camera.cx, camera.fy * pc[:, 1] / safe + camera.cy], -1)
    return uv, z
