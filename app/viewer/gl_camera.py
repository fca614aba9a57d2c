"""The viewer's side of the shared camera maths: the projection itself lives in
``engine.camera_projection`` (picking and selection use the same functions); this module only turns a
matrix into what a GLSL uniform wants."""

from __future__ import annotations

import numpy as np

from engine.camera_projection import opencv_to_gl_clip, pixel_to_ndc_scale, side_planes  # noqa: F401 (re-exported)


def gl_uniform(matrix: np.ndarray) -> np.ndarray:
    """A row-major numpy matrix as the float32 array vispy hands to a GLSL mat4 (column-major)."""
    return np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).T)
