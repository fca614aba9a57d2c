"""The edits a document knows, each a small serialisable command.

A command holds only its parameters (plain JSON: a camera, a rectangle, a colour...), so a history can
be saved and replayed on the scene it started from. ``compute(doc)`` works out what the command does to
the document's current state and returns a ``Change`` (which the document applies and keeps for undo),
or a message saying why there is nothing to do (an edit on an empty selection, a click on nothing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..errors import FormatError
from ..scene import SH_C0, Camera
from . import selectors
from .changes import Change
from .floaters import FloaterOptions
from .groups import Group, default_colour
from .serial import camera_from_json, camera_to_json, floats
from .transform import transform_rows

if TYPE_CHECKING:  # pragma: no cover
    from .document import SceneDocument

NOTHING_SELECTED = "Nothing is selected: click an object or drag a box over splats first"
SELECT_MODES = ("replace", "add", "subtract", "intersect")

COMMANDS: dict[str, type["Command"]] = {}


def command_from_json(data: dict) -> "Command":
    """The command a ``to_json()`` dict describes; FormatError for unknown kinds or bad parameters."""
    try:
        cls = COMMANDS[data["kind"]]
    except (KeyError, TypeError):
        kind = data.get("kind") if isinstance(data, dict) else None
        raise FormatError(f"unknown edit {kind!r} in the edit history (made by a newer Handful?)") from None
    params = {k: v for k, v in data.items() if k != "kind"}
    try:
        return cls(**params)
    except TypeError as e:
        raise FormatError(f"edit {data['kind']!r} in the edit history has bad parameters ({e})") from None


@dataclass
class Command:
    kind: ClassVar[str] = ""
    # A command that only changes the selection does not make the document "modified" (nothing to save).
    selection_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.kind:
            COMMANDS[cls.kind] = cls

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ").capitalize()

    def compute(self, doc: "SceneDocument") -> Change | str:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self, doc: "SceneDocument") -> str:
        """What was done, for a person, once applied (the label unless a command says more)."""
        return self.label


def _selection_change(doc: "SceneDocument", new: np.ndarray) -> Change | str:
    if np.array_equal(new, doc.selected):
        return "The selection is unchanged"
    change = Change()
    change.patch(doc.arrays, "selected", None, new)
    return change


def _mark_selection(doc: "SceneDocument", mask: str) -> Change | str:
    """Set ``mask`` (hidden or deleted) on the selected splats, which are then no longer selected."""
    sel = doc.selected
    if not sel.any():
        return NOTHING_SELECTED
    change = Change(count=int(sel.sum()))
    change.patch(doc.arrays, mask, None, doc.arrays[mask] | sel)
    change.patch(doc.arrays, "selected", None, np.zeros_like(sel))
    return change


# ============================================================================ selection


@dataclass
class Select(Command):
    """Select by one of the ``how`` tools with its ``params``; ``mode`` combines with the selection."""

    kind: ClassVar[str] = "select"
    selection_only: ClassVar[bool] = True
    how: str = "all"
    params: dict = field(default_factory=dict)
    mode: str = "replace"

    @property
    def label(self) -> str:
        return {"all": "Select all", "none": "Select none", "invert": "Invert selection"}.get(
            self.how, f"Select ({self.how})")

    # --------------------------------------------------------------- constructors the app uses
    @classmethod
    def pick(cls, camera: Camera, x: float, y: float, mode: str = "replace") -> "Select":
        return cls("pick", {"camera": camera_to_json(camera), "x": float(x), "y": float(y)}, mode)

    @classmethod
    def rect(cls, camera: Camera, rect, mode: str = "replace") -> "Select":
        return cls("rect", {"camera": camera_to_json(camera), "rect": floats(rect)}, mode)

    @classmethod
    def lasso(cls, camera: Camera, polygon, mode: str = "replace") -> "Select":
        return cls("lasso", {"camera": camera_to_json(camera), "polygon": floats(polygon)}, mode)

    @classmethod
    def brush(cls, camera: Camera, points, radius: float, mode: str = "replace") -> "Select":
        return cls("brush", {"camera": camera_to_json(camera), "points": floats(points), "radius": float(radius)},
                   mode)

    @classmethod
    def indices(cls, indices, mode: str = "replace") -> "Select":
        """Select Gaussians by index (scripts, tests; the history stores the list)."""
        return cls("indices", {"indices": np.asarray(indices, dtype=np.int64).reshape(-1).tolist()}, mode)

    @classmethod
    def group(cls, group_id: int, mode: str = "replace") -> "Select":
        return cls("group", {"group_id": int(group_id)}, mode)

    def summary(self, doc) -> str:
        if self.how in ("pick", "group"):
            ids = np.unique(doc.group_ids[doc.selected])
            if len(ids) == 1 and int(ids[0]) in doc.groups:
                return f"Selected {doc.groups[int(ids[0])].name}"
            if len(ids) > 1:
                return f"Selected {len(ids)} objects"
        return self.label

    # --------------------------------------------------------------- maths
    def covered(self, doc: "SceneDocument") -> np.ndarray | str:
        """The Gaussians this tool covers (before combining with the selection), or why none."""
        a, p = doc.arrays, self.params
        if self.how == "pick":
            index = selectors.pick_splat(a, camera_from_json(p["camera"]), p["x"], p["y"], doc.selectable)
            if index is None:
                return "No splat under the cursor"
            return doc.group_ids == doc.group_ids[index]
        if self.how == "group":
            return doc.group_ids == int(p["group_id"])
        if self.how == "indices":
            mask = np.zeros(doc.count, dtype=bool)
            mask[np.asarray(p["indices"], dtype=np.int64)] = True
            return mask
        if self.how == "rect":
            return selectors.rect_mask(a["means"], camera_from_json(p["camera"]), p["rect"])
        if self.how == "lasso":
            return selectors.lasso_mask(a["means"], camera_from_json(p["camera"]), p["polygon"])
        if self.how == "brush":
            return selectors.brush_mask(a["means"], camera_from_json(p["camera"]), p["points"], p["radius"])
        if self.how == "sphere":
            return selectors.sphere_mask(a["means"], p["centre"], p["radius"])
        if self.how == "box":
            return selectors.box_mask(a["means"], p["min"], p["max"])
        if self.how == "colour":
            return selectors.colour_mask(a["sh"], p["rgb"], p["tolerance"])
        if self.how == "opacity":
            return selectors.opacity_mask(a["opacity_logits"], p.get("min", 0.0), p.get("max", 1.0))
        if self.how == "size":
            return selectors.size_mask(a["log_scales"], p.get("min", 0.0), p.get("max", np.inf))
        if self.how == "all":
            return np.ones(doc.count, dtype=bool)
        if self.how == "none":
            return np.zeros(doc.count, dtype=bool)
        if self.how == "invert":
            return ~doc.selected
        if self.how == "grow":
            return selectors.grow_mask(a["means"], doc.selected, doc.selectable, p["distance"])
        if self.how == "shrink":
            return selectors.shrink_mask(a["means"], doc.selected, doc.selectable, p["distance"])
        raise FormatError(f"unknown selection tool {self.how!r}")

    def compute(self, doc):
        if self.mode not in SELECT_MODES:
            raise FormatError(f"unknown selection mode {self.mode!r} (modes: {', '.join(SELECT_MODES)})")
        mask = self.covered(doc)
        if isinstance(mask, str):
            return mask
        mask = np.asarray(mask, dtype=bool)
        current = doc.selected
        if self.mode == "add":
            mask = current | mask
        elif self.mode == "subtract":
            mask = current & ~mask
        elif self.mode == "intersect":
            mask = current & mask
        return _selection_change(doc, mask & doc.selectable)


# ============================================================================ visibility


@dataclass
class Hide(Command):
    """Hide the selection: hidden splats are drawn no more and cannot be selected, but are saved."""

    kind: ClassVar[str] = "hide"

    def compute(self, doc):
        return _mark_selection(doc, "hidden")


@dataclass
class ShowAll(Command):
    kind: ClassVar[str] = "show_all"

    @property
    def label(self) -> str:
        return "Show all"

    def compute(self, doc):
        hidden = doc.arrays["hidden"]
        if not hidden.any():
            return "Nothing is hidden"
        change = Change(count=int(hidden.sum()))
        change.patch(doc.arrays, "hidden", None, np.zeros_like(hidden))
        return change


@dataclass
class Isolate(Command):
    """Hide everything but the selection."""

    kind: ClassVar[str] = "isolate"

    def compute(self, doc):
        sel = doc.selected
        if not sel.any():
            return NOTHING_SELECTED
        hidden = doc.arrays["hidden"] | (~sel & ~doc.arrays["deleted"])
        if np.array_equal(hidden, doc.arrays["hidden"]):
            return "Everything else is already hidden"
        change = Change(count=int((hidden & ~doc.arrays["hidden"]).sum()))
        change.patch(doc.arrays, "hidden", None, hidden)
        return change


@dataclass
class SetGroupVisible(Command):
    kind: ClassVar[str] = "set_group_visible"
    group_id: int = 0
    visible: bool = True

    @property
    def label(self) -> str:
        return f"{'Show' if self.visible else 'Hide'} object {self.group_id}"

    def compute(self, doc):
        members = (doc.group_ids == self.group_id) & ~doc.arrays["deleted"]
        if not members.any():
            return f"Object {self.group_id} has no splats"
        hidden = doc.arrays["hidden"].copy()
        hidden[members] = not self.visible
        if np.array_equal(hidden, doc.arrays["hidden"]):
            return f"Object {self.group_id} is already {'shown' if self.visible else 'hidden'}"
        change = Change(count=int(members.sum()))
        change.patch(doc.arrays, "hidden", None, hidden)
        if not self.visible and (doc.selected & members).any():
            change.patch(doc.arrays, "selected", None, doc.selected & ~members)
        return change


# ============================================================================ structure


@dataclass
class Delete(Command):
    """Delete the selection (a mask: indices stay stable for the rest of the history; saved scenes drop them)."""

    kind: ClassVar[str] = "delete"

    def compute(self, doc):
        return _mark_selection(doc, "deleted")


@dataclass
class Duplicate(Command):
    """Copy the selected splats in place; each copied object becomes a new object, and the copies are
    selected (so that a move that follows moves the copy)."""

    kind: ClassVar[str] = "duplicate"

    def compute(self, doc):
        sel = doc.selected
        if not sel.any():
            return NOTHING_SELECTED
        index = np.flatnonzero(sel)
        a = doc.arrays
        appended = {name: a[name][index].copy() for name in doc.row_fields}
        appended["hidden"] = np.zeros(len(index), dtype=bool)
        appended["deleted"] = np.zeros(len(index), dtype=bool)
        appended["selected"] = np.ones(len(index), dtype=bool)
        old_ids = a["group_ids"][index]
        next_id = max(int(a["group_ids"].max(initial=0)), max(doc.groups, default=0)) + 1
        groups = dict(doc.groups)
        new_ids = np.empty_like(old_ids)
        for gid in np.unique(old_ids).tolist():
            source = groups.get(gid)
            groups[next_id] = Group(f"{source.name if source else f'Object {gid}'} copy", default_colour(next_id))
            new_ids[old_ids == gid] = next_id
            next_id += 1
        appended["group_ids"] = new_ids
        change = Change(appended=appended, groups_before=dict(doc.groups), groups_after=groups, count=len(index),
                        old_count=doc.count)
        change.patch(a, "selected", None, np.concatenate([np.zeros(doc.count, dtype=bool), appended["selected"]]))
        return change


@dataclass
class Transform(Command):
    """x' = pivot + scale R (x - pivot) + shift for the selected splats (orientation, size and SH too)."""

    kind: ClassVar[str] = "transform"
    rotation: list = field(default_factory=lambda: np.eye(3).tolist())
    scale: float = 1.0
    shift: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    pivot: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # False leaves the view-dependent colour as it was (a quick preview while a gizmo is dragged)
    turn_sh: bool = True

    @property
    def label(self) -> str:
        if self.scale != 1.0:
            return "Scale"
        return "Move" if np.allclose(self.rotation, np.eye(3)) else "Rotate"

    def compute(self, doc):
        sel = doc.selected
        if not sel.any():
            return NOTHING_SELECTED
        if not (np.isfinite(self.scale) and self.scale > 0):
            return f"A scale must be a positive number, not {self.scale}"
        rotation = np.asarray(self.rotation, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
            return "The rotation is not a rotation matrix"
        index = np.flatnonzero(sel)
        rows = transform_rows(doc.arrays, index, rotation, float(self.scale), np.asarray(self.shift, np.float64),
                              np.asarray(self.pivot, np.float64), turn_sh=self.turn_sh)
        change = Change(count=len(index))
        for name, values in rows.items():
            change.patch(doc.arrays, name, index, values)
        return change


@dataclass
class Recolour(Command):
    """Blend the base colour of the selection toward ``rgb`` by ``amount`` (1: that colour exactly)."""

    kind: ClassVar[str] = "recolour"
    rgb: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    amount: float = 1.0

    def compute(self, doc):
        sel = doc.selected
        if not sel.any():
            return NOTHING_SELECTED
        index = np.flatnonzero(sel)
        sh = doc.arrays["sh"][index].astype(np.float64)
        colour = 0.5 + SH_C0 * sh[:, 0]
        target = np.asarray(self.rgb, dtype=np.float64)
        sh[:, 0] = ((1 - self.amount) * colour + self.amount * target - 0.5) / SH_C0
        change = Change(count=len(index))
        change.patch(doc.arrays, "sh", index, sh.astype(np.float32))
        return change


@dataclass
class Brightness(Command):
    """Multiply the selection's colour (all SH bands, so view-dependent colour scales too) by ``factor``."""

    kind: ClassVar[str] = "brightness"
    factor: float = 1.0

    def compute(self, doc):
        sel = doc.selected
        if not sel.any():
            return NOTHING_SELECTED
        if not (np.isfinite(self.factor) and self.factor >= 0):
            return f"A brightness factor must be zero or more, not {self.factor}"
        index = np.flatnonzero(sel)
        sh = doc.arrays["sh"][index].astype(np.float64)
        sh[:, 0] = (self.factor * (0.5 + SH_C0 * sh[:, 0]) - 0.5) / SH_C0
        sh[:, 1:] *= self.factor
        change = Change(count=len(index))
        change.patch(doc.arrays, "sh", index, sh.astype(np.float32))
        return change


@dataclass
class RemoveFloaters(Command):
    """Delete what ``find_floaters`` finds among the shown splats (``SceneDocument.preview_floaters`` shows it first)."""

    kind: ClassVar[str] = "remove_floaters"
    options: dict = field(default_factory=lambda: FloaterOptions().to_json())

    @property
    def label(self) -> str:
        return "Remove floaters"

    def mask(self, doc) -> np.ndarray:
        return doc.find_floaters(FloaterOptions.from_json(self.options))

    def compute(self, doc):
        floaters = self.mask(doc)
        if not floaters.any():
            return "No floaters found with these settings"
        change = Change(count=int(floaters.sum()))
        change.patch(doc.arrays, "deleted", None, doc.arrays["deleted"] | floaters)
        if (doc.selected & floaters).any():
            change.patch(doc.arrays, "selected", None, doc.selected & ~floaters)
        return change


@dataclass
class RenameGroup(Command):
    kind: ClassVar[str] = "rename_group"
    group_id: int = 0
    name: str = ""

    @property
    def label(self) -> str:
        return f"Rename to {self.name!r}"

    def compute(self, doc):
        name = self.name.strip()
        old = doc.groups.get(self.group_id)
        if old is None:
            return f"There is no object {self.group_id}"
        if not name:
            return "An object's name cannot be empty"
        if name == old.name:
            return "The name is unchanged"
        groups = dict(doc.groups)
        groups[self.group_id] = Group(name, old.colour)
        return Change(groups_before=dict(doc.groups), groups_after=groups)
