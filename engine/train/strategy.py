"""Densification strategies: when and how Gaussians are added, removed or moved during training.

Both strategies implement one small interface, called by the training loop at every step:

- ``step_pre_backward(params, optimizers, meta, step)``: after rendering, before ``backward``.
- ``step_post_backward(params, optimizers, meta, step, lr_means)``: after the optimizer step; may
  change the number of Gaussians (through ``engine.train.params`` row edits that keep the Adam
  state aligned). Returns counts of what it did this step.

``meta`` is the renderer's meta dict plus ``width``/``height`` of the rendered image.
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import torch

from ..render.projection import quat_to_rotmat
from .params import append_rows, keep_rows, reset_state_rows, set_rows


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


class Strategy:
    """Base: does nothing (a fixed set of Gaussians)."""

    def __init__(self):
        self.totals: Counter = Counter()

    def step_pre_backward(self, params, optimizers, meta, step: int) -> None:
        means2d = meta.get("means2d")
        if isinstance(means2d, torch.Tensor) and means2d.requires_grad and not means2d.is_leaf:
            means2d.retain_grad()

    def step_post_backward(self, params, optimizers, meta, step: int, lr_means: float) -> dict:
        return {}

    def _count(self, counts: dict) -> dict:
        self.totals.update({k: v for k, v in counts.items() if v})
        return counts


class NoStrategy(Strategy):
    pass


# --------------------------------------------------------------------------------------- classic


class ClassicStrategy(Strategy):
    """The original 3DGS adaptive density control.

    Screen-space position gradients (in NDC units) are averaged per Gaussian over the steps where it
    is visible. Every ``refine_every`` steps between ``refine_start`` and ``refine_stop``, Gaussians
    whose average exceeds ``grow_grad2d`` are cloned (small ones) or split in two (large ones,
    sampled from the Gaussian, scales / 1.6); nearly transparent (``prune_opacity``) or, after the
    first opacity reset, very large (``prune_scale3d`` x extent) ones are removed. Every
    ``reset_every`` steps opacities are clamped down to twice the prune threshold.
    """

    def __init__(
        self,
        scene_extent: float,
        *,
        refine_start: int = 500,
        refine_stop: int = 15_000,
        refine_every: int = 100,
        reset_every: int = 3000,
        grow_grad2d: float = 2e-4,
        grow_scale3d: float = 0.01,
        prune_scale3d: float = 0.1,
        prune_opacity: float = 0.005,
        cap_max: int | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.extent = float(scene_extent)
        self.refine_start, self.refine_stop, self.refine_every = refine_start, refine_stop, refine_every
        self.reset_every = reset_every
        self.grow_grad2d, self.grow_scale3d = grow_grad2d, grow_scale3d
        self.prune_scale3d, self.prune_opacity = prune_scale3d, prune_opacity
        self.cap_max = cap_max
        self.generator = generator
        self.grad_accum: torch.Tensor | None = None
        self.visible_count: torch.Tensor | None = None

    def _ensure_state(self, n: int, device):
        if self.grad_accum is None or self.grad_accum.shape[0] != n:
            self.grad_accum = torch.zeros(n, device=device)
            self.visible_count = torch.zeros(n, device=device)

    def accumulate(self, meta, n: int, device) -> None:
        self._ensure_state(n, device)
        means2d = meta["means2d"]
        grad = means2d.grad
        if grad is None:
            return
        grad = grad.detach().reshape(n, 2).clone()
        grad[:, 0] *= meta["width"] / 2.0
        grad[:, 1] *= meta["height"] / 2.0
        visible = meta.get("visible")
        if visible is None:
            visible = (meta["radii"].reshape(n, -1) > 0).any(dim=1)
        visible = visible.reshape(n)
        self.grad_accum[visible] += grad[visible].norm(dim=-1)
        self.visible_count[visible] += 1

    def step_post_backward(self, params, optimizers, meta, step: int, lr_means: float = 0.0) -> dict:
        counts = {"cloned": 0, "split": 0, "pruned": 0, "opacity_reset": 0}
        if step >= self.refine_stop:
            return counts
        n = params["means"].shape[0]
        self.accumulate(meta, n, params["means"].device)
        if step > self.refine_start and step % self.refine_every == 0:
            counts["cloned"], counts["split"] = self.grow(params, optimizers)
            counts["pruned"] = self.prune(params, optimizers, step)
            self.grad_accum = None  # restart the averages after every refinement
        if step > 0 and self.reset_every > 0 and step % self.reset_every == 0:
            self.reset_opacity(params, optimizers)
            counts["opacity_reset"] = 1
        return self._count(counts)

    @torch.no_grad()
    def grow(self, params, optimizers) -> tuple[int, int]:
        n = params["means"].shape[0]
        self._ensure_state(n, params["means"].device)
        avg = self.grad_accum / self.visible_count.clamp_min(1)
        high = avg > self.grow_grad2d
        if self.cap_max is not None:
            room = max(0, self.cap_max - n)
            if int(high.sum()) > room:  # keep the candidates with the largest gradients
                keep = torch.zeros_like(high)
                if room > 0:
                    keep[torch.topk(torch.where(high, avg, torch.full_like(avg, -1.0)), room).indices] = True
                high &= keep
        small = params["log_scales"].exp().max(dim=-1).values <= self.grow_scale3d * self.extent
        clone, split = high & small, high & ~small
        n_clone, n_split = int(clone.sum()), int(split.sum())
        if n_clone:
            append_rows(params, optimizers, {k: v.detach()[clone] for k, v in params.items()})
            split = torch.cat([split, torch.zeros(n_clone, dtype=torch.bool, device=split.device)])
        if n_split:
            self._split(params, optimizers, split)
        return n_clone, n_split

    def _split(self, params, optimizers, mask: torch.Tensor) -> None:
        idx = mask.nonzero().squeeze(1)
        scales = params["log_scales"].detach()[idx].exp()
        rot = quat_to_rotmat(params["quats"].detach()[idx])
        new_log_scales = torch.log(scales / 1.6)
        samples = []
        for _ in range(2):
            z = torch.randn(idx.shape[0], 3, generator=self.generator, device=scales.device)
            samples.append(params["means"].detach()[idx] + torch.einsum("nij,nj->ni", rot, z * scales))
        # The original row becomes the first half, a new row the second.
        set_rows(params, optimizers, idx, {"means": samples[0], "log_scales": new_log_scales})
        rows = {k: v.detach()[idx] for k, v in params.items()}
        rows["means"] = samples[1]
        append_rows(params, optimizers, rows)

    @torch.no_grad()
    def prune(self, params, optimizers, step: int) -> int:
        opacity = torch.sigmoid(params["opacity_logits"].detach())
        drop = opacity < self.prune_opacity
        if step > self.reset_every:
            drop |= params["log_scales"].detach().exp().max(dim=-1).values > self.prune_scale3d * self.extent
        n_drop = int(drop.sum())
        if n_drop == drop.shape[0]:  # never empty the scene: keep the most opaque Gaussian
            drop[torch.argmax(opacity)] = False
            n_drop -= 1
        if n_drop:
            keep_rows(params, optimizers, ~drop)
        return n_drop

    @torch.no_grad()
    def reset_opacity(self, params, optimizers) -> None:
        ceiling = math.log(2 * self.prune_opacity / (1 - 2 * self.prune_opacity))
        params["opacity_logits"].clamp_(max=ceiling)
        everything = torch.arange(params["opacity_logits"].shape[0], device=params["means"].device)
        reset_state_rows(optimizers, params, everything, names=["opacity_logits"])


# ------------------------------------------------------------------------------------------ MCMC


@functools.lru_cache(maxsize=4)
def _binomials(size: int) -> torch.Tensor:
    return torch.tensor(
        [[math.comb(row, k) if k <= row else 0 for k in range(size)] for row in range(size)], dtype=torch.float64
    )


def relocation_update(opacity: torch.Tensor, copies: torch.Tensor, max_copies: int = 51):
    """New opacity and scale factor when one Gaussian becomes ``copies`` identical ones so that
    their composite looks like the original (3DGS-MCMC, eq. 9).

    o_new = 1 - (1 - o)^(1/n);  scale *= o / sum_{i=1..n} sum_{k=0..i-1} C(i-1,k) (-1)^k o_new^(k+1) / sqrt(k+1)
    Written here in torch because the published version is a CUDA kernel.
    """
    o = opacity.double().clamp(1e-6, 1 - 1e-6)
    n = copies.clamp(1, max_copies).double()
    o_new = 1 - (1 - o) ** (1 / n)
    ks = torch.arange(max_copies, dtype=torch.float64, device=o.device)
    binom = _binomials(max_copies).to(o.device)  # binom[i-1, k] = C(i-1, k)
    sign = (-1.0) ** ks
    # inner[m, i-1] = sum_k C(i-1,k) (-1)^k o_new^(k+1) / sqrt(k+1)
    powers = o_new[:, None] ** (ks[None, :] + 1) / torch.sqrt(ks[None, :] + 1)  # (M, K)
    inner = (powers * sign[None, :]) @ binom.T  # (M, max_copies)
    use = ks[None, :] < n[:, None]  # i - 1 < n
    denom = (inner * use).sum(dim=1)
    factor = o / denom
    return o_new.to(opacity.dtype), factor.to(opacity.dtype)


class MCMCStrategy(Strategy):
    """3DGS-MCMC: a fixed-size budget of Gaussians treated as samples.

    Every ``refine_every`` steps in ``[refine_start, refine_stop)``: Gaussians with opacity below
    ``min_opacity`` are moved onto live ones sampled in proportion to opacity (source and copies
    share the source's opacity and shrink so the composite is unchanged), then ``growth_rate`` more
    are added the same way, up to ``cap_max``. After every step, positions get noise shaped by each
    Gaussian's covariance and gated to low-opacity Gaussians (scale: ``noise_lr`` x current means lr).
    """

    def __init__(
        self,
        *,
        cap_max: int = 100_000,
        refine_start: int = 500,
        refine_stop: int = 25_000,
        refine_every: int = 100,
        min_opacity: float = 0.005,
        growth_rate: float = 0.05,
        noise_lr: float = 5e5,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.cap_max = cap_max
        self.refine_start, self.refine_stop, self.refine_every = refine_start, refine_stop, refine_every
        self.min_opacity, self.growth_rate, self.noise_lr = min_opacity, growth_rate, noise_lr
        self.generator = generator

    def step_post_backward(self, params, optimizers, meta, step: int, lr_means: float = 0.0) -> dict:
        counts = {"relocated": 0, "added": 0}
        if self.refine_start <= step < self.refine_stop and step > 0 and step % self.refine_every == 0:
            counts["relocated"] = self.relocate(params, optimizers)
            counts["added"] = self.add(params, optimizers)
        if self.noise_lr > 0 and lr_means > 0:
            self.inject_noise(params, lr_means)
        return self._count(counts)

    def _sample_sources(self, weights: torch.Tensor, count: int) -> torch.Tensor:
        return torch.multinomial(weights, count, replacement=True, generator=self.generator)

    def _share(self, params, optimizers, sources: torch.Tensor) -> dict[str, torch.Tensor]:
        """Update each sampled source for its new copies; return the rows the copies get."""
        unique, inverse, per_source = torch.unique(sources, return_inverse=True, return_counts=True)
        copies = (per_source + 1)[inverse]
        opacity = torch.sigmoid(params["opacity_logits"].detach()[sources])
        new_opacity, factor = relocation_update(opacity, copies)
        new_opacity = new_opacity.clamp(self.min_opacity, 1 - 1e-6)
        new_log_scales = params["log_scales"].detach()[sources] + torch.log(factor.clamp_min(1e-12))[:, None]
        set_rows(params, optimizers, sources, {"opacity_logits": _logit(new_opacity), "log_scales": new_log_scales})
        return {k: v.detach()[sources] for k, v in params.items()}

    @torch.no_grad()
    def relocate(self, params, optimizers) -> int:
        opacity = torch.sigmoid(params["opacity_logits"].detach())
        dead = (opacity <= self.min_opacity) | ~torch.isfinite(opacity)
        n_dead = int(dead.sum())
        alive_idx = (~dead).nonzero().squeeze(1)
        if n_dead == 0 or alive_idx.numel() == 0:
            return 0
        dead_idx = dead.nonzero().squeeze(1)
        sources = alive_idx[self._sample_sources(opacity[alive_idx], n_dead)]
        rows = self._share(params, optimizers, sources)
        set_rows(params, optimizers, dead_idx, rows)
        return n_dead

    @torch.no_grad()
    def add(self, params, optimizers) -> int:
        n = params["means"].shape[0]
        target = min(self.cap_max, int(math.floor((1 + self.growth_rate) * n)))
        n_new = max(0, target - n)
        if n_new == 0:
            return 0
        opacity = torch.sigmoid(params["opacity_logits"].detach())
        sources = self._sample_sources(opacity.clamp_min(1e-12), n_new)
        rows = self._share(params, optimizers, sources)
        append_rows(params, optimizers, rows)
        return n_new

    @torch.no_grad()
    def inject_noise(self, params, lr_means: float) -> None:
        opacity = torch.sigmoid(params["opacity_logits"].detach())
        gate = torch.sigmoid(-100.0 * (opacity - 0.005))
        eta = torch.randn(opacity.shape[0], 3, generator=self.generator, device=opacity.device)
        # Opaque Gaussians get a gate below 1e-4 and a negligible push: only the others are moved.
        idx = (gate > 1e-4).nonzero().squeeze(1)
        if idx.numel() == 0:
            return
        rot = quat_to_rotmat(params["quats"].detach()[idx])
        variances = params["log_scales"].detach()[idx].mul(2).exp()
        # covariance @ eta = R diag(s^2) R^T eta
        local = torch.einsum("nji,nj->ni", rot, eta[idx]) * variances
        noise = torch.einsum("nij,nj->ni", rot, local) * (gate[idx] * self.noise_lr * lr_means)[:, None]
        params["means"].index_add_(0, idx, noise)


def make_strategy(config, scene_extent: float, generator: torch.Generator | None = None) -> Strategy:
    refine_stop_mcmc = int(config.iterations * config.mcmc_refine_stop_fraction)
    if config.strategy == "mcmc":
        return MCMCStrategy(
            cap_max=config.cap_max,
            refine_start=config.refine_start,
            refine_stop=refine_stop_mcmc,
            refine_every=config.refine_every,
            min_opacity=config.mcmc_min_opacity,
            growth_rate=config.mcmc_growth_rate,
            noise_lr=config.mcmc_noise_lr,
            generator=generator,
        )
    if config.strategy == "classic":
        return ClassicStrategy(
            scene_extent,
            refine_start=config.refine_start,
            refine_stop=int(config.iterations * config.refine_stop_fraction),
            refine_every=config.refine_every,
            reset_every=config.reset_every,
            grow_grad2d=config.grow_grad2d,
            grow_scale3d=config.grow_scale3d,
            prune_scale3d=config.prune_scale3d,
            prune_opacity=config.prune_opacity,
            cap_max=config.cap_max,
            generator=generator,
        )
    return NoStrategy()


__all__ = [
    "Strategy",
    "NoStrategy",
    "ClassicStrategy",
    "MCMCStrategy",
    "relocation_update",
    "make_strategy",

]
