"""Our gsplat backend's side of the contract with ``gsplat.rasterization``, checked on the CPU.

gsplat's kernels need CUDA, so in CI ``render(backend="gsplat")`` would never run. Here gsplat's function is
replaced by a stand-in that (1) binds the call against the real function's signature, so a renamed or
removed argument fails, (2) checks the options that carry our conventions, and (3) answers in gsplat's
documented layout (colours [C,H,W,D+1] with the expected depth last, alphas [C,H,W,1], meta with
``means2d`` [C,N,2] on the autograd path, ``radii`` [C,N,2], ``depths`` [C,N], ``flatten_ids``), computed
with our reference renderer. The wrapper's slicing, depth masking, screen-space gradient hook and pose
gradient are then compared with the reference backend. The kernels themselves are checked on a GPU by
``tests/test_render_gsplat.py`` and ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.render import api, gsplat_backend, reference
from engine.render.checks import assert_agreement, compare_backends, edge_case_scene
from engine.render.projection import EPS2D, FAR, NEAR, project
from engine.scene import Camera, GaussianScene
from tests.factories import orbit_cameras

gsplat = pytest.importorskip("gsplat")
REAL_RASTERIZATION = gsplat.rasterization


def stand_in_rasterization(*args, **kwargs):
    call = inspect.signature(REAL_RASTERIZATION).bind(*args, **kwargs)
    call.apply_defaults()
    a = call.arguments
    assert (a["near_plane"], a["far_plane"], a["eps2d"], a["radius_clip"], a["tile_size"]) == (NEAR, FAR, EPS2D, 0.0, 16)
    assert a["sh_degree"] is None and a["packed"] is False and a["render_mode"] == "RGB+ED"
    assert a["rasterize_mode"] == "classic" and a["camera_model"] == "pinhole"
    means, colors, viewmats, Ks = a["means"], a["colors"], a["viewmats"], a["Ks"]
    n, channels = means.shape[0], colors.shape[1]
    assert viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3) and colors.shape == (n, channels)
    assert a["backgrounds"].shape == (1, channels)

    K = Ks[0].detach().double().numpy()
    camera = Camera(R=np.eye(3), t=np.zeros(3), fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2],
                    width=a["width"], height=a["height"])
    scene = GaussianScene(means=means, quats=a["quats"], log_scales=torch.log(a["scales"]),
                          opacity_logits=torch.logit(a["opacities"]), sh=torch.zeros(n, 1, 3))
    proj = project(scene, camera, 0, viewmat=viewmats[0])
    means2d = proj.means2d_full.unsqueeze(0)  # gsplat's (C,N,2) output, which the pixels depend on
    proj = replace(proj, means2d=means2d[0][proj.index])
    values = torch.cat([colors[proj.index], proj.depths.unsqueeze(1)], dim=1)
    background = torch.cat([a["backgrounds"][0], torch.zeros(1)])
    image, alpha, n_isects = reference.rasterize(proj, values, background, camera)
    expected_depth = image[..., -1:] / alpha.unsqueeze(-1).clamp_min(1e-10)
    image = torch.cat([image[..., :-1], expected_depth], dim=-1)
    meta = {"means2d": means2d, "radii": proj.radii_full.unsqueeze(0), "depths": proj.depths_full.unsqueeze(0),
            "flatten_ids": torch.zeros(n_isects, dtype=torch.int64)}
    return image.unsqueeze(0), alpha.unsqueeze(0).unsqueeze(-1), meta


@pytest.fixture
def gsplat_on_cpu(monkeypatch):
    monkeypatch.setattr(gsplat, "rasterization", stand_in_rasterization)
    monkeypatch.setattr(gsplat_backend, "is_available", lambda: True)
    real_choose = api._choose_backend
    monkeypatch.setattr(api, "_choose_backend", lambda b, s: "gsplat" if b == "gsplat" else real_choose(b, s))


@pytest.mark.parametrize("features", [0, 3])
def test_gsplat_backend_wrapper_matches_reference(gsplat_on_cpu, features):
    cam = orbit_cameras(8, width=48, image_height=36)[1]
    # the stand-in goes through logit(sigmoid(x)): keep opacities where that round trip is exact enough
    scene = edge_case_scene(cam, n=200, feature_dim=features, seed=4)
    scene = replace(scene, opacity_logits=scene.opacity_logits.clamp(-8, 8))
    report = compare_backends(scene, cam, "reference", "gsplat")
    assert report["n_isects"][0] == report["n_isects"][1] and report["visible"][0] == report["visible"][1]
    assert_agreement(report, 1e-4, 1e-3)
    assert ("rel_grad_features" in report) == bool(features)


def test_gsplat_backend_meta_shapes(gsplat_on_cpu):
    cam = orbit_cameras(8, width=40, image_height=30)[2]
    scene = edge_case_scene(cam, n=100, seed=5)
    scene = replace(scene, means=scene.means.clone().requires_grad_(True))
    out = api.render(scene, cam, sh_degree=3, background=(0, 0, 0), backend="gsplat")
    assert out.meta.backend == "gsplat"
    assert out.rgb.shape == (30, 40, 3) and out.alpha.shape == (30, 40) and out.depth.shape == (30, 40)
    assert out.meta.means2d.shape == (100, 2) and out.meta.radii.dtype == torch.int32
    assert torch.all(out.depth[out.alpha == 0] == 0)
    out.rgb.sum().backward()
    grad = out.meta.means2d.grad  # reached through the hook on gsplat's (1,N,2) tensor
    assert grad is not None and float(grad[out.meta.visible].abs().sum()) > 0
    assert torch.all(grad[~out.meta.visible] == 0)
