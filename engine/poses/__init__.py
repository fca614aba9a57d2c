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

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
