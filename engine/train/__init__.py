"""Gaussian training: the optimisation loop, densification strategies, schedules and presets.

Public API::

    train(init, cameras, images, config, *, emit, cancel, background, eval_cameras, eval_images,
          scene_extent, losses, hooks, strategy) -> TrainResult
    Loss, Hook, StepContext (engine.train.hooks): extra loss terms and per-step behaviour
    TrainingViews (engine.train.views): the training photos at each resolution level
    preset(name, num_images, device="cpu") -> TrainConfig
    init_from_points(points, ...) / random_init(cameras, count, ...) -> GaussianScene
"""

from .config import AUTO_PRESET, PRESETS, TrainConfig, default_preset, describe_preset, preset
from .hooks import Hook, Loss, StepContext
from .init import init_from_points, random_init
from .loop import TrainResult, train
from .strategy import ClassicStrategy, MCMCStrategy, NoStrategy, Strategy
from .views import TrainingViews

__all__ = [
    "TrainConfig",
    "TrainResult",
    "preset",
    "PRESETS",
    "AUTO_PRESET",
    "default_preset",
    "describe_preset",
    "train",
    "init_from_points",
    "random_init",
    "Strategy",
    "ClassicStrategy",
    "MCMCStrategy",
    "NoStrategy",
    "Loss",
    "Hook",
    "StepContext",
    "TrainingViews",
]
