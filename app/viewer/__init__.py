"""The live Gaussian-splat viewer widget (vispy on Qt, EWA splats drawn as GPU triangles).

``SplatViewer`` is imported on first use so that the GL-free parts (depth sort, navigation,
frustum picking, camera conventions) load without Qt or vispy.
"""

__all__ = ["SplatViewer"]


def __getattr__(name: str):
    if name == "SplatViewer":
        from .widget import SplatViewer

        return SplatViewer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
