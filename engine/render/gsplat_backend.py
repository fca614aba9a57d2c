"""The ``gsplat`` backend: gsplat's fused CUDA kernels with the options that match our conventions."""

from __future__ import annotations

import functools

import torch

from engine.render.projection import EPS2D, FAR, NEAR, camera_tensors
from engine.render.sh import sh_to_rgb
from engine.scene import Camera, GaussianScene


@functools.cache
def kernel_status() -> tuple[bool, str]:
    """(usable, why not): a CUDA device, gsplat, and gsplat's CUDA kernels loaded.

    gsplat compiles its kernels the first time they are loaded on a machine (minutes, and only where
    the CUDA toolkit is installed), so the first call can take that long; the answer is kept."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    try:
        import gsplat  # noqa: F401
    except ImportError as e:
        return False, f"gsplat is not installed ({e})"
    try:
        from gsplat.cuda._backend import _C
    except Exception as e:  # a failed compile surfaces as any kind of error
        return False, f"gsplat's CUDA kernels failed to build or load ({type(e).__name__}: {e})"
    if _C is None:
        return False, "gsplat's CUDA kernels are not built and could not be compiled (is the CUDA toolkit installed?)"
    return True, ""


def is_available() -> bool:
    return kernel_status()[0]


def render_gsplat(scene: GaussianScene, camera: Camera, sh_degree: int, background: torch.Tensor,
                  features: torch.Tensor | None, viewmat: torch.Tensor | None = None):
    """(image (H,W,C) with [rgb, features, depth], alpha (H,W), info dict from gsplat).

    ``viewmat`` (4,4) overrides the camera's pose; gsplat back-propagates into it."""
    from gsplat import rasterization

    device, dtype = scene.device, scene.dtype
    _, _, center = camera_tensors(camera, device, dtype, viewmat)
    if viewmat is None:
        viewmat = camera.viewmat(device, dtype)
    # Colours are evaluated here (same formula as gsplat's SH path) so that features can ride along as
    # extra colour channels in the same pass.
    colors = sh_to_rgb(scene.sh, scene.means, center, sh_degree)
    if features is not None:
        colors = torch.cat([colors, features], dim=1)
    bg = torch.zeros(colors.shape[1], device=device, dtype=dtype)
    bg[:3] = background
    images, alphas, info = rasterization(
        means=scene.means,
        quats=scene.quats,
        scales=torch.exp(scene.log_scales),
        opacities=torch.sigmoid(scene.opacity_logits),
        colors=colors,
        viewmats=viewmat[None],
        Ks=camera.K_tensor(device, dtype)[None],
        width=camera.width,
        height=camera.height,
        near_plane=NEAR,
        far_plane=FAR,
        eps2d=EPS2D,
        radius_clip=0.0,
        sh_degree=None,
        packed=False,
        tile_size=16,
        backgrounds=bg[None],
        render_mode="RGB+ED",
        rasterize_mode="classic",
        camera_model="pinhole",
    )
    return images[0], alphas[0, ..., 0], info


def screen_gradient_holder(means2d: torch.Tensor) -> torch.Tensor:
    """An (N,2) tensor whose ``.grad`` receives the gradient of gsplat's (1,N,2) ``means2d``.

    A view such as ``means2d[0]`` is not on the autograd path gsplat built, so its ``.grad`` would stay
    empty; a hook on the real tensor copies (and accumulates) the gradient into this holder instead.
    """
    holder = means2d.detach()[0].clone()
    if not means2d.requires_grad:
        return holder
    holder.requires_grad_(True)

    def keep(grad):
        holder.grad = grad[0].clone() if holder.grad is None else holder.grad + grad[0]

    means2d.register_hook(keep)
    return holder
