"""Depth priors for sparse-view reconstruction: one depth map (with a confidence per pixel) per
training view, and the dense points fused from them for initialisation.

Backends: ``MultiViewDepth`` (the default: learned matches triangulated with the known cameras, then
rectified SGBM, all offline on the CPU) and ``MonocularDepth(folder)`` (a transformers depth model
from a local folder; relative depth). See ``docs/architecture.md``.
"""

from .depth_map import DepthMap
from .fuse import dense_points
from .monocular import MonocularDepth
from .multiview import MultiViewDepth
from .prior import DepthPrior
from .quality import ViewQuality, confirmed_depth_range, in_unreached_cells, points_in_unreached_cells, view_quality

__all__ = ["DepthMap", "DepthPrior", "MultiViewDepth", "MonocularDepth", "dense_points", "ViewQuality", "confirmed_depth_range", "in_unreached_cells", "points_in_unreached_cells", "view_quality"]
