"""Object groups: each Gaussian's group id (``GaussianScene.group_ids``) plus a name and colour per id.

The grouping stage writes ``groups.json`` as ``[{id, name, count, colour}]``; counts are recomputed from
the ids here (edits change them), names and colours are kept. A scene without group ids is one group,
"Scene" (id 0); id -1 (what ``GaussianScene.concatenate`` gives Gaussians without a group) is "Ungrouped".
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..scene import SH_C0

UNGROUPED = -1


@dataclass(frozen=True)
class Group:
    name: str
    colour: tuple[float, float, float]  # RGB in [0, 1], the swatch the Objects panel shows

    def to_json(self, group_id: int, count: int | None = None) -> dict:
        data = {"id": int(group_id), **asdict(self), "colour": [float(c) for c in self.colour]}
        if count is not None:
            data["count"] = int(count)
        return data


def default_colour(group_id: int) -> tuple[float, float, float]:
    """Distinct swatches: hues spread by the golden angle, so neighbouring ids never look alike."""
    if group_id < 0:
        return (0.5, 0.5, 0.5)
    hue = (group_id * 0.618033988749895) % 1.0
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.95))


def default_name(group_id: int, single: bool) -> str:
    if group_id == UNGROUPED:
        return "Ungrouped"
    return "Scene" if single else f"Object {group_id}"


def complete_groups(group_ids: np.ndarray, groups: dict[int, Group] | None = None,
                    sh: np.ndarray | None = None) -> dict[int, Group]:
    """``groups`` with an entry for every id present in ``group_ids``; a missing one is named by its id
    and, given the scene's ``sh``, shown in its splats' mean base colour (what the object looks like)."""
    out = dict(groups or {})
    ids, inverse = np.unique(group_ids, return_inverse=True)
    mean_colour = None
    if sh is not None and len(ids):
        rgb = np.clip(0.5 + SH_C0 * sh[:, 0].astype(np.float64), 0, 1)
        sums = np.zeros((len(ids), 3))
        np.add.at(sums, inverse.reshape(-1), rgb)
        mean_colour = sums / np.bincount(inverse.reshape(-1), minlength=len(ids))[:, None]
    for i, gid in enumerate(ids.tolist()):
        if gid not in out:
            colour = default_colour(gid) if mean_colour is None else tuple(float(c) for c in mean_colour[i])
            out[int(gid)] = Group(default_name(gid, len(ids) == 1 and not groups), colour)
    return out


def groups_from_json(data, path: str | Path | None = None) -> dict[int, Group]:
    """Parse ``[{id, name, colour, ...}]`` (the grouping stage's groups.json)."""
    if not isinstance(data, list):
        raise FormatError("groups must be a list of {id, name, colour}", path)
    out = {}
    for i, item in enumerate(data):
        try:
            gid = int(item["id"])
            name = str(item.get("name") or default_name(gid, False))
            colour = item.get("colour", item.get("color"))
            colour = default_colour(gid) if colour is None else tuple(float(c) for c in colour)
            if len(colour) != 3:
                raise ValueError("colour needs 3 values")
            if max(colour) > 1.0:  # 0-255 colours
                colour = tuple(c / 255.0 for c in colour)
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"group entry {i} is not valid ({e})", path) from None
        out[gid] = Group(name, colour)
    return out


def read_groups(path: str | Path) -> dict[int, Group]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"could not read the groups ({e})", path) from None
    return groups_from_json(data, path)


def groups_to_json(groups: dict[int, Group], group_ids: np.ndarray | None = None) -> list[dict]:
    counts = {}
    if group_ids is not None and len(group_ids):
        ids, n = np.unique(group_ids, return_counts=True)
        counts = dict(zip(ids.tolist(), n.tolist()))
    return [g.to_json(gid, counts.get(gid, 0) if group_ids is not None else None) for gid, g in sorted(groups.items())]
