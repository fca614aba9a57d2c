"""The live Gaussian-splat viewer widget (vispy on Qt, EWA splats drawn as GPU triangles)."""

from .widget import SplatViewer

__all__ = ["SplatViewer"]
