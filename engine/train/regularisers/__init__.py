"""Regularisers for few-view training, plugged into ``engine.train.train`` as losses and hooks
(``engine.train.hooks``), and a pixel-aligned initialisation from per-view depth priors.

- ``DropGaussian`` (hook): random Gaussian dropout with opacity compensation.
- ``DepthCorrelationLoss`` / ``MetricDepthLoss``: rendered depth against a ``DepthMap`` prior.
- ``DepthSmoothnessLoss``: edge-aware smoothness of the rendered depth.
- ``CrossViewLoss``: a neighbouring photo warped through the rendered depth matches this step's photo.
- ``FloaterLoss``: limits on splat size and on large faint splats.
- ``coherent_init``: one Gaussian per subsampled pixel of each view's depth map.
"""

from .coherent_init import coherent_init
from .cross_view import CrossViewLoss, warp_photo
from .depth_losses import DepthCorrelationLoss, MetricDepthLoss
from .dropout import DropGaussian
from .floaters import FloaterLoss
from .smoothness import DepthSmoothnessLoss

__all__ = [
    "DropGaussian",
    "DepthCorrelationLoss",
    "MetricDepthLoss",
    "DepthSmoothnessLoss",
    "CrossViewLoss",
    "warp_photo",
    "FloaterLoss",
    "coherent_init",
]
