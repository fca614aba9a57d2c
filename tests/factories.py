"""Small synthetic scenes and cameras for unit tests (no data files needed)."""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.scene import Camera, GaussianScene, sh_coeffs_for_degree


def random_scene(
    n: int = 200,
    sh_degree: int = 3,
    seed: int = 0,
    extent: float = 1.0,
    with_groups: bool = False,
    feature_dim: int = 0,
) -> GaussianScene:
    g = np.random.default_rng(seed)
    k = sh_coeffs_for_degree(sh_degree)
    quats = g.normal(size=(n, 4))
    sh = g.normal(scale=0.5, size=(n, k, 3))
    return GaussianScene.from_numpy(
        means=g.uniform(-extent, extent, size=(n, 3)),
        quats=quats,
        log_scales=g.uniform(-4.5, -1.5, size=(n, 3)) + math.log(extent),
        opacity_logits=g.normal(scale=2.0, size=n),
        sh=sh,
        group_ids=g.integers(0, 5, size=n) if with_groups else None,
        features=g.normal(size=(n, feature_dim)) if feature_dim else None,
    )


def splat_with_a_nan_row(path, count: int = 12, bad_row: int = 4):
    """A .splat file of ``count`` splats, one of them (``bad_row``) at a NaN position; returns its path."""
    from engine.io import splat

    records = splat.encode(random_scene(count, sh_degree=0), sort=False)
    records["position"][bad_row] = float("nan")
    path.write_bytes(records.tobytes())
    return path


def extreme_scene(sh_degree: int = 3) -> GaussianScene:
    """Values at the edges of what files and quantisers must survive."""
    k = sh_coeffs_for_degree(sh_degree)
    means = np.array([[0, 0, 0], [1e4, -1e4, 5e3], [-2047.9, 2047.9, 0.0002], [1e-7, -1e-7, 3.0]])
    n = len(means)
    quats = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [0.5, -0.5, 0.5, -0.5], [1e-3, 1, -1e-3, 0]], dtype=float)
    log_scales = np.array([[-10, -10, -10], [5, 5, 5], [-9.9, 0, 5.9], [0, 0, 0]], dtype=float)
    opac = np.array([-20.0, 20.0, 0.0, -1e-3])
    sh = np.zeros((n, k, 3))
    sh[0, 0] = [-1.77, 1.77, 0]
    sh[1, :] = 1.0
    sh[2, :] = -1.0
    return GaussianScene.from_numpy(means, quats, log_scales, opac, sh)


def orbit_cameras(
    count: int = 8,
    radius: float = 4.0,
    height: float = 1.0,
    width: int = 64,
    image_height: int = 48,
    fov_deg: float = 60.0,
    target=(0.0, 0.0, 0.0),
) -> list[Camera]:
    """Cameras on a ring around ``target`` (world z up), looking at it."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    cams = []
    for i in range(count):
        a = 2 * math.pi * i / count
        eye = np.array([radius * math.cos(a), radius * math.sin(a), height]) + np.asarray(target)
        cams.append(
            Camera.look_at(
                eye, target, up=(0, 0, 1), fx=f, fy=f, cx=width / 2, cy=image_height / 2,
                width=width, height=image_height, name=f"view_{i:03d}.png",
            )
        )
    return cams


def assert_scenes_close(a: GaussianScene, b: GaussianScene, atol: float = 0.0, rtol: float = 0.0) -> None:
    assert len(a) == len(b)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=rtol, msg=name)


__all__ = ["random_scene", "extreme_scene", "orbit_cameras", "assert_scenes_close", "torch"]
