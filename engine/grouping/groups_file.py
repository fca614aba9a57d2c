"""``groups.json``: the names, sizes and display colours of a scene's object groups.

    {"version": 1, "mask_source": "regions", "views": 10, "ungrouped": 12,
     "groups": [{"id": 0, "name": "object 1", "count": 5321, "colour": "#e6194b"}, ...]}

``id`` is the value in the scene's ``group_ids`` (the ``group_id`` property of scene.ply); Gaussians
with id -1 belong to no group and are counted in ``ungrouped``. ``colour`` is a display colour
(distinct per id, the same id always gets the same colour), not the object's own colour.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..io.atomic import atomic_write_text

VERSION = 1
GROUPS_FILE = "groups.json"


def group_colour(group_id: int) -> str:
    """A display colour for ``group_id``: hues a golden-ratio step apart, so neighbours differ."""
    hue = (0.61803398875 * (group_id + 1)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


def groups_document(group_ids: np.ndarray, mask_source: str = "", views: int = 0) -> dict:
    ids = np.asarray(group_ids)
    present, counts = np.unique(ids[ids >= 0], return_counts=True)
    groups = [
        {"id": int(i), "name": f"object {int(i) + 1}", "count": int(c), "colour": group_colour(int(i))}
        for i, c in zip(present, counts)
    ]
    return {"version": VERSION, "mask_source": mask_source, "views": int(views),
            "ungrouped": int((ids < 0).sum()), "groups": groups}


def write_groups(path: str | Path, document: dict) -> None:
    atomic_write_text(Path(path), json.dumps(document, indent=1))


def read_groups(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError("does not exist", path, "run the group stage or `python -m engine group`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"is not a readable groups file: {e}", path, "group the scene again") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise FormatError("has no list of groups", path, "group the scene again")
    return doc
