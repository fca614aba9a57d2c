"""``groups.json``: the names, sizes and display colours of a scene's object groups.

    [{"id": 0, "name": "object 1", "count": 5321, "colour": [0.95, 0.33, 0.4]}, ...]

the list ``engine.edit.groups`` reads. ``id`` is the value in the scene's ``group_ids`` (the
``group_id`` property of scene.ply); Gaussians with id -1 belong to no group. ``colour`` (RGB in
[0, 1]) is a display colour, distinct per id (``engine.edit.groups.default_colour``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..edit.groups import default_colour
from ..io.atomic import atomic_write_text

GROUPS_FILE = "groups.json"


def groups_document(group_ids: np.ndarray, mask_source: str = "", views: int = 0) -> dict:
    """A summary of a grouping: ``groups`` (the groups.json list), ``ungrouped``, ``mask_source``, ``views``."""
    ids = np.asarray(group_ids)
    present, counts = np.unique(ids[ids >= 0], return_counts=True)
    groups = [
        {"id": int(i), "name": f"object {int(i) + 1}", "count": int(c), "colour": list(default_colour(int(i)))}
        for i, c in zip(present, counts)
    ]
    return {"mask_source": mask_source, "views": int(views), "ungrouped": int((ids < 0).sum()), "groups": groups}


def write_groups(path: str | Path, document: dict) -> None:
    """Write the ``groups`` list of ``document`` as groups.json (atomically)."""
    atomic_write_text(Path(path), json.dumps(document["groups"], indent=1))
