"""Training settings and the Preview / Standard / High presets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine.errors import InputError

PRESETS = ("preview", "standard", "high")
AUTO_PRESET = "auto"  # a job's preset when none is chosen: ``default_preset`` of its training device


@dataclass
class TrainConfig:
    iterations: int = 7000
    seed: int = 0
    backend: str = "auto"  # renderer backend: auto, cpu, reference, gsplat

    # Spherical harmonics: start at degree 0 and add one band every ``sh_interval`` steps.
    sh_degree: int = 3
    sh_interval: int = 1000

    # Learning rates (Adam), as in 3DGS. ``lr_means`` is multiplied by the scene extent and decays
    # exponentially to ``lr_means_final`` (also times the extent) over the run.
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_quats: float = 1e-3
    lr_scales: float = 5e-3
    lr_opacity: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_sh_rest_ratio: float = 1 / 20  # higher SH bands learn 20x slower

    ssim_lambda: float = 0.2  # loss = (1 - l) * L1 + l * (1 - SSIM)
    opacity_reg: float = 0.0  # weight of mean(opacity)
    scale_reg: float = 0.0  # weight of mean(scale)

    # Densification: "mcmc" (3DGS-MCMC: relocate dead Gaussians, grow to cap_max) or "classic"
    # (clone / split / prune on screen-space gradients, periodic opacity reset).
    strategy: str = "mcmc"
    cap_max: int = 100_000
    refine_start: int = 500
    refine_stop_fraction: float = 0.5  # stop refining after this fraction of the iterations (classic)
    refine_every: int = 100
    # classic
    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.01
    prune_scale3d: float = 0.1
    prune_opacity: float = 0.005
    reset_every: int = 3000
    # mcmc
    mcmc_min_opacity: float = 0.005
    mcmc_growth_rate: float = 0.05
    mcmc_noise_lr: float = 5e5
    mcmc_refine_stop_fraction: float = 0.8

    # Progressive resolution: train at ``start_resolution`` of the images, doubling (never beyond 1)
    # at evenly spaced steps until ``full_resolution_at`` (a fraction of the iterations).
    start_resolution: float = 0.5
    full_resolution_at: float = 0.3
    max_image_side: int | None = None  # downscale larger training images to this longest side

    # Per-image colour correction (a learnable 3x3 matrix and bias applied to the render).
    exposure_compensation: bool = False
    lr_exposure: float = 1e-3

    # Camera pose refinement (engine.train.pose_refine): a learned rotation and translation per training
    # photo, from ``pose_refine_start`` (a fraction of the iterations); learning rates decay to 1% by the end.
    pose_refinement: bool = False
    lr_pose_rotation: float = 3e-3  # radians
    lr_pose_translation: float = 1e-3  # times the scene extent
    pose_refine_start: float = 0.1

    # Reporting.
    progress_every_s: float = 0.5
    snapshot_every_s: float = 1.0
    metrics_every: int = 50
    threads: int | None = None  # CPU threads while training (None: the cores other work leaves free)

    extra: dict = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        if self.iterations < 1:
            raise InputError(f"iterations must be at least 1, got {self.iterations}")
        if not 0 <= self.sh_degree <= 3:
            raise InputError(f"sh_degree must be 0-3, got {self.sh_degree}")
        if self.strategy not in ("mcmc", "classic", "none"):
            raise InputError(f"unknown densification strategy {self.strategy!r}", hint="use mcmc, classic or none")
        if not 0 < self.start_resolution <= 1:
            raise InputError(f"start_resolution must be in (0, 1], got {self.start_resolution}")
        if self.cap_max < 1:
            raise InputError(f"cap_max must be positive, got {self.cap_max}")
        return self

    def with_(self, **changes) -> "TrainConfig":
        return replace(self, **changes).validate()


def preset(name: str, num_images: int, device: str = "cpu") -> TrainConfig:
    """Settings for ``num_images`` training photos on ``device`` ("cpu" or "cuda").

    Preview is a quick look, Standard a good result in minutes, High the best this device offers in
    reasonable time. CPU presets train fewer, smaller Gaussians at a capped resolution.
    """
    key = name.strip().lower()
    if key not in PRESETS:
        raise InputError(f"unknown training preset {name!r}", hint="use Preview, Standard or High")
    if num_images < 1:
        raise InputError("no training images", hint="add photos before training")
    cuda = str(device).startswith("cuda")
    # More photos need more steps to see each photo a comparable number of times.
    views = min(max(num_images, 1), 200)
    if cuda:
        table = {
            "preview": dict(iterations=3000 + 20 * views, cap_max=300_000, max_image_side=1000, sh_degree=3),
            "standard": dict(iterations=15_000 + 50 * views, cap_max=1_000_000, max_image_side=1600, sh_degree=3),
            "high": dict(iterations=30_000, cap_max=3_000_000, max_image_side=None, sh_degree=3),
        }
    else:
        table = {
            # Preview fits well inside two minutes on an idle 2-core CPU, poses included: the sample's
            # reconstruct took 54 s (39 s training) before the float32 kernels and fused loss, which
            # cut a step by ~1.7x more. A full-resolution step costs about 0.6-1.5 us of one core per
            # training pixel (benchmarks/train_bench.py, lego and the sample), so resolution buys time.
            "preview": dict(iterations=300 + 5 * views, cap_max=6_000, max_image_side=256, sh_degree=1),
            "standard": dict(iterations=2000 + 40 * views, cap_max=25_000, max_image_side=640, sh_degree=2),
            "high": dict(iterations=6000 + 120 * views, cap_max=150_000, max_image_side=1000, sh_degree=3),
        }
    chosen = table[key]
    iters = chosen["iterations"]
    sh_interval = max(100, iters // (2 * max(chosen["sh_degree"], 1) + 1))
    cfg = TrainConfig(
        iterations=iters,
        cap_max=chosen["cap_max"],
        max_image_side=chosen["max_image_side"],
        sh_degree=chosen["sh_degree"],
        sh_interval=sh_interval,
        refine_start=min(500, iters // 10),
        refine_every=100,
        reset_every=max(1000, iters // 3),
        start_resolution=0.5 if key != "high" else 0.25,
        # Low-resolution steps cost a quarter of the pixels: on a CPU spend half the run there.
        full_resolution_at=0.3 if cuda else 0.6,
        opacity_reg=0.01,
        scale_reg=0.01,
        strategy="mcmc",
        backend="gsplat" if cuda else "auto",
        extra={"init_points": chosen["cap_max"] // 2},  # for random_init when SfM gives too few points
    )
    return cfg.validate()


def default_preset(device: str = "auto") -> str:
    """Preview on a CPU (Standard trains for hours there), Standard on a GPU; ``device`` "auto" means a
    GPU when torch sees CUDA."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "standard" if str(device).startswith("cuda") else "preview"


def describe_preset(name: str, num_images: int, device: str = "cpu") -> str:
    """One line saying what a preset does on ``device`` for ``num_images`` photos, from its settings:
    steps, training resolution and splat budget (the time follows from the machine; the progress panel
    shows it once the training rate is steady)."""
    cfg = preset(name, num_images=max(num_images, 1), device=device)
    side = f"photos at up to {cfg.max_image_side} px" if cfg.max_image_side else "photos at full size"
    return f"{cfg.iterations:,} steps, {side}, up to {cfg.cap_max:,} splats"


__all__ = ["TrainConfig", "preset", "PRESETS", "AUTO_PRESET", "default_preset", "describe_preset"]
