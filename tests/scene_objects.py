"""A synthetic scene of known objects (cubes and spheres of different colours on a plane) with their group
ids, for the edit model's and the viewer's object tests."""

from __future__ import annotations

import math

import numpy as np

from engine.scene import Camera, GaussianScene, rgb_to_sh_dc

# (group id, name, shape, centre, half size, colour)
OBJECTS = [
    (0, "floor", "plane", (0.0, 0.6, 0.3), 2.0, (0.5, 0.5, 0.5)),
    (1, "red cube", "cube", (-0.9, 0.32, 0.3), 0.28, (0.9, 0.1, 0.1)),
    (2, "green sphere", "sphere", (0.0, 0.3, 0.25), 0.3, (0.1, 0.85, 0.2)),
    (3, "blue cube", "cube", (0.9, 0.32, 0.3), 0.28, (0.15, 0.2, 0.9)),
]

# a world point on each object that the front camera sees unoccluded (the floor's centre is behind the sphere)
CLICK_POINTS = {0: (1.6, 0.6, 0.0), 1: (-0.9, 0.32, 0.3), 2: (0.0, 0.3, 0.25), 3: (0.9, 0.32, 0.3)}
BEHIND_SPHERE = (0.0, 0.6, 0.94)  # a floor point hidden behind the sphere's centre from the front camera


def objects_scene(per_object: int = 600, sh_degree: int = 1, seed: int = 0) -> GaussianScene:
    """World y down (camera convention): the plane is y = 0.6 (centre), objects sit above it."""
    rng = np.random.default_rng(seed)
    means, colours, ids, sizes = [], [], [], []
    for gid, _, shape, centre, half, colour in OBJECTS:
        c = np.asarray(centre)
        if shape == "plane":
            pts = np.column_stack([rng.uniform(-half, half, per_object), np.zeros(per_object),
                                   rng.uniform(-half * 0.5, half * 0.5, per_object) + c[2]])
            pts[:, 1] = c[1]
        elif shape == "cube":
            pts = c + rng.uniform(-half, half, (per_object, 3))
        else:
            d = rng.normal(size=(per_object, 3))
            pts = c + half * d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.3, 1, (per_object, 1)) ** (1 / 3)
        means.append(pts)
        colours.append(np.tile(colour, (per_object, 1)) + rng.normal(scale=0.02, size=(per_object, 3)))
        ids.append(np.full(per_object, gid))
        sizes.append(np.full(per_object, 0.12 if shape == "plane" else 0.04))
    means = np.concatenate(means)
    n = len(means)
    k = (sh_degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    sh[:, 0] = rgb_to_sh_dc(np.clip(np.concatenate(colours), 0, 1))
    if k > 1:
        sh[:, 1:] = rng.normal(scale=0.05, size=(n, k - 1, 3))
    quats = rng.normal(size=(n, 4))
    log_scales = np.log(np.concatenate(sizes))[:, None] + rng.normal(scale=0.1, size=(n, 3))
    return GaussianScene.from_numpy(means, quats, log_scales, rng.uniform(-1.0, 4.0, n), sh, group_ids=np.concatenate(ids))


def front_camera(width: int = 320, height: int = 240) -> Camera:
    """Looking at the objects from the front and a little above."""
    f = 0.5 * width / math.tan(math.radians(55) / 2)
    return Camera.look_at(np.array([0.0, -1.2, -3.2]), np.array([0.0, 0.2, 0.3]), up=(0, -1, 0), fx=f, fy=f,
                          cx=width / 2, cy=height / 2, width=width, height=height)
