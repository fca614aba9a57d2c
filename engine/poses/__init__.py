"""Camera poses from photos: pycolmap in a child process with a sparse-view strategy ladder.

Names are imported lazily so that the worker process (``python -m engine.poses.worker``) does not
pay for torch, which only the parent-side result types need.
"""

from importlib import import_module

_EXPORTS = {
    "estimate_poses": ".estimate",
    "PoseResult": ".estimate",
    "align_similarity": ".alignment",
    "pose_errors": ".alignment",
    "read_reference_rig": ".reference",
}

# What places the cameras (``estimate_poses(features=...)``, ``reconstruct --features``): here, not in
# the attempts module, so that the CLI can name the choices without importing pycolmap.
FEATURE_CHOICES = ("auto", "sift", "aliked", "disk", "xfeat")

__all__ = [*_EXPORTS, "FEATURE_CHOICES"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
