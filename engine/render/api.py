"""``render()``: one differentiable entry point over the gsplat, cpu and reference backends."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.render import cpu_backend, gsplat_backend, reference
from engine.render.cpu_projection import project_cpu
from engine.render.projection import project
from engine.scene import Camera, GaussianScene, SceneError

BACKENDS = ("gsplat", "cpu", "reference")


@dataclass
class RenderMeta:
    """Per-Gaussian data the trainer needs (N = scene size; culled Gaussians have radii 0)."""

    means2d: torch.Tensor  # (N,2) pixels; .grad after backward is the screen-space gradient
    radii: torch.Tensor  # (N,2) int32
    visible: torch.Tensor  # (N,) bool
    depths: torch.Tensor  # (N,) camera-space z
    n_isects: int
    backend: str = ""


@dataclass
class RenderResult:
    rgb: torch.Tensor  # (H,W,3)
    alpha: torch.Tensor  # (H,W)
    depth: torch.Tensor  # (H,W) expected depth sum(w z) / alpha, 0 where alpha is 0
    features: torch.Tensor | None  # (H,W,F)
    meta: RenderMeta = field(repr=False)


def available_backends() -> list[str]:
    names = ["cpu", "reference"]
    if gsplat_backend.is_available():
        names.insert(0, "gsplat")
    return names


def _choose_backend(backend: str, scene: GaussianScene) -> str:
    if backend == "auto":
        return "gsplat" if scene.device.type == "cuda" and gsplat_backend.is_available() else "cpu"
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    if backend == "gsplat" and not gsplat_backend.is_available():
        raise RuntimeError("the gsplat backend needs CUDA and gsplat; use backend='cpu' on this machine")
    if backend == "gsplat" and scene.device.type != "cuda":
        raise ValueError("the gsplat backend renders CUDA scenes; move the scene with scene.to('cuda')")
    if backend == "cpu" and scene.device.type != "cpu":
        raise ValueError("the cpu backend renders scenes in CPU memory; use scene.to('cpu') or backend='auto'")
    return backend


def _check_inputs(scene: GaussianScene, camera: Camera, sh_degree: int, features) -> None:
    if camera.width <= 0 or camera.height <= 0:
        raise SceneError(f"camera {camera.name!r}: cannot render a {camera.width}x{camera.height} image")
    if not 0 <= sh_degree <= scene.sh_degree:
        raise SceneError(f"sh_degree {sh_degree} is not available: the scene has SH degree {scene.sh_degree}")
    if features is not None and (features.ndim != 2 or features.shape[0] != len(scene)):
        raise SceneError(f"features has shape {tuple(features.shape)}, expected ({len(scene)}, F)")
    n = len(scene)
    tensors = list(scene.tensors().items()) + ([("features", features)] if features is not None else [])
    floats = [t.detach() for _, t in tensors if t.is_floating_point() and t.numel()]
    # Fast path: a sum is finite when every element is (a finite overflow falls through to the exact count).
    if all(bool(torch.isfinite(t.sum())) for t in floats):
        return
    bad = torch.zeros(n, dtype=torch.bool, device=scene.device)
    for t in floats:
        bad |= ~torch.isfinite(t).reshape(n, -1).all(dim=1)
    count = int(bad.sum())
    if count:
        raise SceneError(
            f"{count} of {n} Gaussians have NaN or infinite parameters; remove them "
            "(scene.subset(mask)) or lower the learning rate if this came from training"
        )


def _check_viewmat(viewmat: torch.Tensor | None, camera: Camera, device) -> None:
    if viewmat is None:
        return
    if tuple(viewmat.shape) != (4, 4):
        raise SceneError(f"camera {camera.name!r}: viewmat has shape {tuple(viewmat.shape)}, expected (4, 4)")
    if viewmat.device.type != torch.device(device).type:
        raise SceneError(f"camera {camera.name!r}: viewmat is on {viewmat.device}, the scene on {device}")
    if not bool(torch.isfinite(viewmat.detach()).all()):
        raise SceneError(f"camera {camera.name!r}: viewmat has NaN or infinite entries")


def _background_only(camera: Camera, bg: torch.Tensor, F: int, backend: str) -> RenderResult:
    H, W = camera.height, camera.width
    zeros = lambda *shape: torch.zeros(*shape, dtype=bg.dtype, device=bg.device)  # noqa: E731
    meta = RenderMeta(zeros(0, 2), torch.zeros(0, 2, dtype=torch.int32, device=bg.device),
                      torch.zeros(0, dtype=torch.bool, device=bg.device), zeros(0), 0, backend)
    return RenderResult(bg.expand(H, W, 3).clone(), zeros(H, W), zeros(H, W), zeros(H, W, F) if F else None, meta)


def render(
    scene: GaussianScene,
    camera: Camera,
    *,
    sh_degree: int | None = None,
    background,
    features: torch.Tensor | None = None,
    backend: str = "auto",
    viewmat: torch.Tensor | None = None,
) -> RenderResult:
    """Render ``scene`` from ``camera``; differentiable w.r.t. every scene tensor, ``features`` and ``viewmat``.

    ``sh_degree`` is the number of SH bands to use (None: all the scene has); ``background`` is an RGB
    triple (or (3,) tensor) composited behind the Gaussians; ``features`` (N,F) are extra per-Gaussian
    channels composited like colour (no background). ``viewmat`` (4,4), when given, is the world->camera
    pose used instead of ``camera.R`` and ``camera.t`` (intrinsics and size still come from ``camera``);
    gradients reach it, which is how camera poses are refined.
    """
    if sh_degree is None:
        sh_degree = scene.sh_degree
    _check_inputs(scene, camera, sh_degree, features)
    name = _choose_backend(backend, scene)
    device, dtype = scene.device, scene.dtype
    _check_viewmat(viewmat, camera, device)
    bg = torch.as_tensor(background, device=device, dtype=dtype).reshape(-1)
    if bg.shape != (3,):
        raise ValueError(f"background must be an RGB triple, got shape {tuple(bg.shape)}")
    F = 0 if features is None else int(features.shape[1])
    if len(scene) == 0:
        return _background_only(camera, bg, F, name)

    if name == "gsplat":
        image, alpha, info = gsplat_backend.render_gsplat(scene, camera, sh_degree, bg, features, viewmat)
        means2d = gsplat_backend.screen_gradient_holder(info["means2d"])
        radii = info["radii"][0].to(torch.int32)
        meta = RenderMeta(means2d, radii, (radii > 0).all(-1), info["depths"][0].detach(),
                          int(info["flatten_ids"].numel()), name)
        rgb = image[..., :3]
        feats = image[..., 3:3 + F] if F else None
        depth = image[..., 3 + F]
        return RenderResult(rgb, alpha, torch.where(alpha > 0, depth, torch.zeros_like(depth)), feats, meta)

    if name == "cpu":
        proj = project_cpu(scene, camera, sh_degree, features, viewmat)
    else:
        proj = project(scene, camera, sh_degree, features, viewmat)
    parts = [proj.colors, proj.depths.unsqueeze(-1)]
    if proj.features is not None:
        parts.append(proj.features.to(dtype))
    channels = torch.cat(parts, dim=1)
    background_all = torch.cat([bg, torch.zeros(channels.shape[1] - 3, device=device, dtype=dtype)])
    rasterize = cpu_backend.rasterize if name == "cpu" else reference.rasterize
    image, alpha, n_isects = rasterize(proj, channels, background_all, camera)

    summed_depth = image[..., 3]
    depth = torch.where(alpha > 0, summed_depth / alpha.clamp_min(1e-10), torch.zeros_like(summed_depth))
    meta = RenderMeta(
        means2d=proj.means2d_full,
        radii=proj.radii_full,
        visible=proj.radii_full.gt(0).all(-1),
        depths=proj.depths_full,
        n_isects=n_isects,
        backend=name,
    )
    return RenderResult(image[..., :3], alpha, depth, image[..., 4:] if F else None, meta)
