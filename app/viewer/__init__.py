"""The live Gaussian-splat viewer widget (vispy on Qt, instanced EWA splats)."""

from .widget import SplatViewer

__all__ = ["SplatViewer"]
