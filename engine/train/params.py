"""Trainable Gaussian parameters, one Adam optimizer per tensor, and row edits that keep the Adam
state in step when Gaussians are added, removed or re-initialised.

Each per-Gaussian tensor (means, quats, log_scales, opacity_logits, sh0, sh_rest) has its own Adam
with one parameter, so a row edit touches exactly one optimizer state (exp_avg / exp_avg_sq).
A scene's object ids ride along as a plain (untrained) ``group_ids`` row tensor, so every row edit
(prune, clone, split, relocate) carries them with their Gaussians.
"""

from __future__ import annotations

from typing import Callable

import torch

from engine.scene import GaussianScene

PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh0", "sh_rest")
ROW_LABELS = ("group_ids",)  # per-Gaussian values that follow row edits but are not optimised


def params_from_scene(scene: GaussianScene, sh_degree: int) -> dict[str, torch.nn.Parameter]:
    scene = scene.with_sh_degree(sh_degree)
    sh = scene.sh.detach().float()
    values = {
        "means": scene.means,
        "quats": scene.quats,
        "log_scales": scene.log_scales,
        "opacity_logits": scene.opacity_logits,
        "sh0": sh[:, :1],
        "sh_rest": sh[:, 1:],
    }
    params = {k: torch.nn.Parameter(v.detach().float().clone().contiguous()) for k, v in values.items()}
    if scene.group_ids is not None:
        params["group_ids"] = scene.group_ids.detach().clone()
    return params


def scene_from_params(params: dict[str, torch.Tensor]) -> GaussianScene:
    """A scene view of the parameters (differentiable: gradients reach the parameters)."""
    return GaussianScene(
        means=params["means"],
        quats=params["quats"],
        log_scales=params["log_scales"],
        opacity_logits=params["opacity_logits"],
        sh=torch.cat([params["sh0"], params["sh_rest"]], dim=1),
        group_ids=params.get("group_ids"),
    )


def make_optimizers(params: dict[str, torch.nn.Parameter], lrs: dict[str, float]) -> dict[str, torch.optim.Adam]:
    # eps 1e-15 as in 3DGS: gradients of individual Gaussians are tiny.
    return {name: adam([p], lrs[name]) for name, p in params.items() if name not in ROW_LABELS}


def adam(tensors, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one (several times faster per step on CPU)."""
    try:
        return torch.optim.Adam(tensors, lr=lr, eps=1e-15, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(tensors, lr=lr, eps=1e-15)


def _swap_param(params, optimizers, name, new_value: torch.Tensor, state_fn: Callable[[torch.Tensor], torch.Tensor]):
    old = params[name]
    new = torch.nn.Parameter(new_value.contiguous()) if isinstance(old, torch.nn.Parameter) else new_value.contiguous()
    opt = optimizers.get(name)
    if opt is not None:
        group = opt.param_groups[0]
        state = opt.state.pop(old, None)
        group["params"][0] = new
        if state:
            for key, v in state.items():
                if isinstance(v, torch.Tensor) and v.shape == old.shape:
                    state[key] = state_fn(v).contiguous()
            opt.state[new] = state
    params[name] = new


def keep_rows(params, optimizers, keep: torch.Tensor) -> None:
    """Keep only the Gaussians where the boolean mask ``keep`` is true (params and Adam state)."""
    idx = keep.nonzero().squeeze(1) if keep.dtype == torch.bool else keep
    for name in list(params):
        _swap_param(params, optimizers, name, params[name].detach()[idx], lambda s: s[idx])


def append_rows(params, optimizers, new_rows: dict[str, torch.Tensor]) -> None:
    """Append Gaussians; their Adam moments start at zero."""
    for name in list(params):
        rows = new_rows[name].to(params[name].dtype)
        n = rows.shape[0]
        _swap_param(
            params,
            optimizers,
            name,
            torch.cat([params[name].detach(), rows]),
            lambda s: torch.cat([s, torch.zeros((n, *s.shape[1:]), dtype=s.dtype, device=s.device)]),
        )


def set_rows(params, optimizers, index: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
    """Overwrite rows ``index`` of the named parameters in place; these Gaussians start afresh, so
    the Adam moments of every parameter are zeroed for those rows."""
    with torch.no_grad():
        for name, v in values.items():
            params[name][index] = v.to(params[name].dtype)
    reset_state_rows(optimizers, params, index)


def reset_state_rows(optimizers, params, index: torch.Tensor, names=None) -> None:
    """Zero the Adam moments of rows ``index`` (all parameters unless ``names`` is given)."""
    for name in names or list(params):
        opt = optimizers.get(name)
        if opt is None:
            continue
        state = opt.state.get(params[name])
        if not state:
            continue
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][index] = 0


__all__ = [
    "PARAM_NAMES",
    "ROW_LABELS",
    "params_from_scene",
    "scene_from_params",
    "make_optimizers",
    "keep_rows",
    "append_rows",
    "set_rows",
    "reset_state_rows",
]
