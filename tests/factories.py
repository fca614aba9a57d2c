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


def photographed_scene(n: int = 60, seed: int = 2, views: int = 4, width: int = 32, height: int = 24):
    """A small, clearly visible random scene (degree 0) and its renders from ``views`` orbit cameras on a
    black background: (scene, cameras, images as float32 (H,W,3) arrays)."""
    from engine.render import render

    truth = random_scene(n, sh_degree=0, seed=seed, extent=0.7)
    truth.opacity_logits = truth.opacity_logits.abs() + 1.0
    cams = orbit_cameras(views, radius=3.0, width=width, image_height=height)
    images = [render(truth, c, sh_degree=0, background=(0, 0, 0)).rgb.detach().clamp(0, 1).numpy() for c in cams]
    return truth, cams, images


def assert_scenes_close(a: GaussianScene, b: GaussianScene, atol: float = 0.0, rtol: float = 0.0) -> None:
    assert len(a) == len(b)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=rtol, msg=name)


__all__ = ["random_scene", "extreme_scene", "orbit_cameras", "photographed_scene", "assert_scenes_close", "torch"]


# (kind, centre, size, colour): cubes (size = side) and spheres (size = radius) resting on the floor
OBJECTS = (
    ("cube", (-0.7, -0.55), 0.55, (0.85, 0.2, 0.15)),
    ("cube", (0.6, -0.6), 0.65, (0.15, 0.3, 0.85)),
    ("sphere", (0.55, 0.6), 0.35, (0.2, 0.75, 0.25)),
    ("sphere", (-0.6, 0.65), 0.3, (0.9, 0.8, 0.15)),
)
FLOOR_COLOUR = (0.55, 0.52, 0.48)


def objects_scene(spacing: float = 0.05, floor_half: float = 1.4, seed: int = 0, n_per_object: int | None = None):
    """Coloured cubes and spheres on a floor, as opaque Gaussians on their surfaces.

    Returns ``(scene, labels)``: ``labels`` (N,) is each Gaussian's object (0 = floor, 1.. = OBJECTS).
    """
    g = np.random.default_rng(seed)
    pts, cols, labels = [], [], []

    def add(p, colour, label):
        pts.append(p)
        cols.append(np.clip(np.asarray(colour) + g.normal(0, 0.03, size=(len(p), 3)), 0, 1))
        labels.append(np.full(len(p), label))

    ticks = np.arange(-floor_half, floor_half + 1e-9, spacing)
    fx, fy = np.meshgrid(ticks, ticks)
    floor = np.stack([fx.ravel(), fy.ravel(), np.zeros(fx.size)], 1)
    occupied = np.zeros(len(floor), bool)
    for kind, (cx, cy), size, _ in OBJECTS:
        half = size / 2 if kind == "cube" else size
        occupied |= (np.abs(floor[:, 0] - cx) < half) & (np.abs(floor[:, 1] - cy) < half) if kind == "cube" \
            else np.hypot(floor[:, 0] - cx, floor[:, 1] - cy) < half
    add(floor[~occupied], FLOOR_COLOUR, 0)
    for label, (kind, (cx, cy), size, colour) in enumerate(OBJECTS, start=1):
        if kind == "cube":
            t = np.arange(-size / 2, size / 2 + 1e-9, spacing)
            u, v = (a.ravel() for a in np.meshgrid(t, t))
            faces = []
            for axis in range(3):
                for sign in (-1, 1):
                    if axis == 2 and sign == -1:
                        continue  # the bottom face touches the floor, nobody sees it
                    p = np.zeros((len(u), 3))
                    others = [i for i in range(3) if i != axis]
                    p[:, others[0]], p[:, others[1]], p[:, axis] = u, v, sign * size / 2
                    faces.append(p)
            p = np.concatenate(faces) + [cx, cy, size / 2]
        else:
            count = int(4 * math.pi * size**2 / spacing**2)
            d = g.normal(size=(count, 3))
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            p = d * size + [cx, cy, size]
        add(p, colour, label)
    xyz = np.concatenate(pts)
    rgb = np.concatenate(cols)
    scene = GaussianScene.from_points(xyz, rgb, scale=spacing * 0.6, opacity=0.95)
    return scene, np.concatenate(labels).astype(np.int32)


def objects_photos(scene: GaussianScene, views: int = 10, width: int = 128, height: int = 96):
    """Cameras around the objects scene and the photos it renders from them (uint8 RGB)."""
    from engine.render import render

    cams = orbit_cameras(views, radius=3.6, height=2.4, width=width, image_height=height, fov_deg=55,
                         target=(0.0, 0.0, 0.2))
    photos = []
    with torch.no_grad():
        for cam in cams:
            rgb = render(scene, cam, background=(0.9, 0.92, 0.95)).rgb
            photos.append((rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    return cams, photos


def best_iou_per_object(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """For each true object, the IoU (over Gaussians) of the predicted group that matches it best."""
    out = {}
    for obj in np.unique(truth[truth >= 0]):
        t = truth == obj
        best = 0.0
        for grp in np.unique(pred[t]):
            if grp < 0:
                continue
            p = pred == grp
            best = max(best, float((p & t).sum() / (p | t).sum()))
        out[int(obj)] = best
    return out


def cancelling_at(stage: str, done: int):
    """(events seen, a sink that records them, the token it cancels once ``stage`` reports ``done``)."""
    from engine import events as ev

    seen, token = [], ev.CancelToken()

    def sink(e):
        seen.append(e)
        if isinstance(e, ev.Progress) and e.stage == stage and e.done >= done:
            token.cancel()

    return seen, sink, token
