"""Agreement checks between render backends (used by the tests and ``benchmarks/gpu_check.py``).

``edge_case_scene`` mixes ordinary Gaussians with the cases that break rasterizers: overlapping
stacks, tiny and huge Gaussians, Gaussians behind or beside the camera, one around the camera.
``compare_backends`` renders with two backends and reports forward and gradient differences.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from engine.scene import Camera, GaussianScene, sh_coeffs_for_degree

PARAMETERS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def edge_case_scene(camera: Camera, n: int = 300, sh_degree: int = 3, feature_dim: int = 0, seed: int = 0,
                    camera_inside: bool = False) -> GaussianScene:
    g = np.random.default_rng(seed)
    eye, forward = camera.center, camera.R[2]
    right, down = camera.R[0], camera.R[1]
    target_dist = 4.0

    def along(k, depth, spread):
        lateral = g.uniform(-spread, spread, size=(k, 2))
        return eye + depth[:, None] * forward + lateral[:, :1] * right + lateral[:, 1:] * down

    parts, log_scales = [], []
    k = n // 2  # ordinary Gaussians around the target
    parts.append(along(k, g.uniform(2.5, 5.5, k), 1.5))
    log_scales.append(g.uniform(-4.0, -1.5, size=(k, 3)))
    k = n // 10  # a stack of overlapping Gaussians at nearly the same place
    parts.append(along(k, np.full(k, target_dist) + g.normal(scale=0.01, size=k), 0.05))
    log_scales.append(g.uniform(-2.5, -1.5, size=(k, 3)))
    k = n // 10  # tiny (sub-pixel: only the 0.3 px dilation makes them visible)
    parts.append(along(k, g.uniform(2.0, 6.0, k), 1.5))
    log_scales.append(np.full((k, 3), -9.0))
    k = n // 20  # huge, some very anisotropic
    parts.append(along(k, g.uniform(3.0, 8.0, k), 1.0))
    log_scales.append(np.stack([g.uniform(-0.5, 0.5, k), g.uniform(-3, 0.5, k), g.uniform(-6, 0.0, k)], 1))
    k = n // 20  # behind the camera and just in front of the near plane
    parts.append(along(k, g.uniform(-3.0, 0.02, k), 1.0))
    log_scales.append(g.uniform(-3.0, -1.0, size=(k, 3)))
    k = n - sum(len(p) for p in parts)  # off-screen to the sides (some with footprints reaching in)
    shift = g.choice([-1, 1], size=(k, 1)) * g.uniform(3, 9, size=(k, 1))
    sides = along(k, g.uniform(1.0, 5.0, k), 0.0) + shift * right
    parts.append(sides)
    log_scales.append(g.uniform(-3.0, 0.0, size=(k, 3)))
    means = np.concatenate(parts)
    scales = np.concatenate(log_scales)
    if camera_inside:  # one big Gaussian whose 3-sigma ellipsoid holds the camera
        means = np.concatenate([means, (eye + 0.3 * forward)[None]])
        scales = np.concatenate([scales, np.full((1, 3), math.log(1.0))])
    m = len(means)
    opacity = g.normal(1.0, 2.0, size=m)
    opacity[: m // 20] = math.log((1.5 / 255) / (1 - 1.5 / 255))  # a few near the cull threshold
    sh = g.normal(scale=0.4, size=(m, sh_coeffs_for_degree(sh_degree), 3))
    return GaussianScene.from_numpy(
        means=means,
        quats=g.normal(size=(m, 4)),
        log_scales=scales,
        opacity_logits=opacity,
        sh=sh,
        features=g.normal(size=(m, feature_dim)) if feature_dim else None,
    )


def render_with_grads(scene: GaussianScene, camera: Camera, backend: str, sh_degree: int, background,
                      seed: int = 0):
    """Render with leaf copies of the scene tensors and of the camera pose (``viewmat``), and
    back-propagate a fixed random weighting of every output. Returns (result, {name: grad})."""
    from engine.render import render

    leaves = {name: getattr(scene, name).detach().clone().requires_grad_(True) for name in PARAMETERS}
    features = None
    if scene.features is not None:
        features = scene.features.detach().clone().requires_grad_(True)
    leaf_scene = replace(scene, **leaves, features=features)
    viewmat = camera.viewmat(scene.device, scene.dtype).requires_grad_(True)
    result = render(leaf_scene, camera, sh_degree=sh_degree, background=background, features=features,
                    backend=backend, viewmat=viewmat)
    outputs = [result.rgb, result.alpha, result.depth] + ([result.features] if features is not None else [])
    gen = torch.Generator().manual_seed(seed)
    loss = 0.0
    for out in outputs:
        weight = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device)
        loss = loss + (out * weight).sum()
    loss.backward()
    grads = {name: leaves[name].grad for name in PARAMETERS}
    if features is not None:
        grads["features"] = features.grad
    grads["means2d"] = result.meta.means2d.grad
    grads["viewmat"] = viewmat.grad
    return result, grads


def compare_backends(scene: GaussianScene, camera: Camera, a: str, b: str, sh_degree: int = 3,
                     background=(0.2, 0.4, 0.6), scene_b: GaussianScene | None = None) -> dict:
    """Max abs forward differences and relative (norm) gradient differences of backend b against a."""
    ra, ga = render_with_grads(scene, camera, a, sh_degree, background)
    rb, gb = render_with_grads(scene if scene_b is None else scene_b, camera, b, sh_degree, background)
    report = {}
    for name in ("rgb", "alpha", "depth", "features"):
        x, y = getattr(ra, name), getattr(rb, name)
        x, y = (None if x is None else x.detach()), (None if y is None else y.detach())
        if x is not None:
            report[f"max_abs_{name}"] = float((x - y.to(x.device)).abs().max()) if x.numel() else 0.0
    for name, x in ga.items():
        y = gb[name].to(x.device)
        report[f"rel_grad_{name}"] = float((x - y).norm() / x.norm().clamp_min(1e-12))
    report["n_isects"] = (ra.meta.n_isects, rb.meta.n_isects)
    report["visible"] = (int(ra.meta.visible.sum()), int(rb.meta.visible.sum()))
    return report


def assert_agreement(report: dict, forward_tol: float, grad_tol: float) -> None:
    """Every forward output within ``forward_tol`` (depth, in scene units of a few, gets 10x) and every
    parameter's gradient within ``grad_tol`` relative error, for a ``compare_backends`` report."""
    for key, value in report.items():
        if key.startswith("max_abs_"):
            assert value < forward_tol * (10 if key == "max_abs_depth" else 1), (key, value)
        elif key.startswith("rel_grad_"):
            assert value < grad_tol, (key, value)
    assert {f"rel_grad_{p}" for p in (*PARAMETERS, "viewmat")} <= report.keys()
