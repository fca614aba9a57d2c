"""Objects in a Gaussian scene: per-Gaussian group ids from 2D masks of the training photos.

``group_scene(scene, cameras, images)`` -> ``GroupingResult`` (``group_ids`` (N,) int32, -1 for
ungrouped, and the ``groups.json`` document). Masks come from a ``MaskSource``: image regions by
default (offline), or Segment Anything from a local checkpoint (``make_mask_source("sam", folder)``).

Names are imported on first use, so that ``engine.grouping.masks`` (which the job's option check
reads) does not pull in the renderer.
"""

import importlib

_WHERE = {
    "group_scene": "group", "GroupingResult": "group", "STAGE": "group",
    "associate": "associate", "AssociationOptions": "associate", "UNGROUPED": "associate",
    "MaskSource": "masks", "ViewCues": "masks", "NO_REGION": "masks", "MASK_BACKENDS": "masks",
    "make_mask_source": "masks",
    "GROUPS_FILE": "groups_file", "groups_document": "groups_file", "write_groups": "groups_file",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
