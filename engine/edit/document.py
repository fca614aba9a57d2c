"""The scene being edited, headless: its Gaussians, masks, groups and one history of commands.

``SceneDocument`` keeps the Gaussians as numpy arrays plus three masks of the same length: ``selected``,
``hidden`` (not drawn, not selectable, still saved) and ``deleted`` (dropped when saved; a mask so that
indices stay stable through the history). Every edit is a ``Command``: ``apply`` computes its ``Change``,
applies it and keeps it for ``undo`` / ``redo``, which restore the arrays bit for bit. Listeners
(the app's viewer adapter) hear what changed: "scene", "visibility", "selection", "groups".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..scene import GaussianScene
from .changes import Change
from .commands import Command, RemoveFloaters, command_from_json
from .floaters import FloaterOptions, find_floaters
from .groups import Group, complete_groups

MASKS = ("selected", "hidden", "deleted")
HISTORY_VERSION = 1


@dataclass
class Result:
    """What an apply / undo / redo did: ``changed`` False means nothing happened, and ``message`` says why."""

    changed: bool
    message: str
    count: int = 0  # splats the edit touched (selected, deleted, moved...)

    def __bool__(self) -> bool:
        return self.changed


@dataclass
class _Entry:
    command: Command
    change: Change


def _what(touched: set[str]) -> set[str]:
    kinds = set()
    if touched & {"means", "quats", "log_scales", "opacity_logits", "sh", "features"}:
        kinds.add("scene")
    if touched & {"hidden", "deleted"}:
        kinds.add("visibility")
    if "selected" in touched:
        kinds.add("selection")
    if touched & {"groups", "group_ids"}:
        kinds.add("groups")
    return kinds


class SceneDocument:
    def __init__(self, scene: GaussianScene, groups: dict[int, Group] | None = None):
        self.base_scene = scene.detach().to(device="cpu")
        self._base_groups = dict(groups or {})
        self._had_group_ids = scene.group_ids is not None
        self._listeners: list[Callable[[set[str]], None]] = []
        self._reset()

    @property
    def base_groups(self) -> dict[int, Group]:
        """Names and colours before any edit (renames live in the history)."""
        return dict(self._base_groups_complete)

    def _reset(self) -> None:
        s = self.base_scene
        n = len(s)
        arrays = {k: np.ascontiguousarray(v.numpy().copy()) for k, v in s.tensors().items()}
        if "group_ids" not in arrays:
            arrays["group_ids"] = np.zeros(n, dtype=np.int32)
        for mask in MASKS:
            arrays[mask] = np.zeros(n, dtype=bool)
        self.arrays: dict[str, np.ndarray] = arrays
        self.groups: dict[int, Group] = complete_groups(arrays["group_ids"], self._base_groups, arrays["sh"])
        self._base_groups_complete = dict(self.groups)
        self._entries: list[_Entry] = []
        self._position = 0  # entries[:position] are applied
        self._saved_position = 0
        self._scene_cache: GaussianScene | None = None
        self._floater_cache = None  # (options, mask, the arrays it was found on): see find_floaters

    # ------------------------------------------------------------------ state
    @property
    def count(self) -> int:
        return len(self.arrays["means"])

    @property
    def row_fields(self) -> list[str]:
        """The per-Gaussian arrays a duplicate copies (group ids are given new values)."""
        return [k for k in ("means", "quats", "log_scales", "opacity_logits", "sh", "features") if k in self.arrays]

    @property
    def selected(self) -> np.ndarray:
        return self.arrays["selected"]

    @property
    def group_ids(self) -> np.ndarray:
        return self.arrays["group_ids"]

    @property
    def selectable(self) -> np.ndarray:
        """Shown splats: neither hidden nor deleted."""
        return ~self.arrays["hidden"] & ~self.arrays["deleted"]

    @property
    def visible(self) -> np.ndarray:
        return self.selectable

    @property
    def num_selected(self) -> int:
        return int(self.selected.sum())

    @property
    def num_kept(self) -> int:
        return int((~self.arrays["deleted"]).sum())

    def group_counts(self) -> dict[int, int]:
        """Splats per group that are not deleted (the Objects panel's counts)."""
        ids, n = np.unique(self.group_ids[~self.arrays["deleted"]], return_counts=True)
        counts = {gid: 0 for gid in self.groups}
        counts.update(zip(ids.tolist(), n.tolist()))
        return counts

    def group_visible(self, group_id: int) -> bool:
        members = (self.group_ids == group_id) & ~self.arrays["deleted"]
        return bool((members & ~self.arrays["hidden"]).any()) or not members.any()

    def selection_centre(self) -> np.ndarray:
        """The mean of the selected centres (the pivot the app's move/rotate/scale uses)."""
        sel = self.selected
        if not sel.any():
            return np.zeros(3)
        return self.arrays["means"][sel].astype(np.float64).mean(axis=0)

    def typical_spacing(self) -> float:
        """Median distance between neighbouring shown splats (a default grow/shrink step)."""
        from ..scene import nearest_neighbour_scale

        pts = self.arrays["means"][self.selectable]
        if len(pts) > 50_000:
            pts = pts[:: len(pts) // 50_000]
        return float(np.median(nearest_neighbour_scale(pts, k=1))) if len(pts) > 1 else 0.01

    def scene(self) -> GaussianScene:
        """Every Gaussian including deleted ones (the viewer draws it with ``visible`` as its mask).
        It shares the arrays' memory, which edits never write in place."""
        if self._scene_cache is None:
            self._scene_cache = self._scene_of(self.arrays)
        return self._scene_cache

    def _scene_of(self, arrays: dict[str, np.ndarray]) -> GaussianScene:
        tensors = {k: torch.from_numpy(arrays[k]) for k in self.row_fields}
        tensors["group_ids"] = torch.from_numpy(arrays["group_ids"])
        return GaussianScene(**tensors)

    def preview(self, command: Command) -> GaussianScene | None:
        """The scene as it would be after ``command`` (e.g. while a gizmo is dragged), leaving the
        document as it is; None when the command would do nothing."""
        change = command.compute(self)
        if isinstance(change, str):
            return None
        arrays = dict(self.arrays)  # a change swaps arrays in this dict and never writes the document's
        change.apply(arrays, self.groups)
        return self._scene_of(arrays)

    def edited_scene(self) -> GaussianScene:
        """The scene to save: deleted splats dropped (hidden ones kept); group ids only when the scene
        had them or an edit made new objects."""
        keep = ~self.arrays["deleted"]
        arrays = {k: self.arrays[k][keep] for k in self.row_fields}
        ids = self.arrays["group_ids"][keep]
        if self._had_group_ids or ids.any():
            arrays["group_ids"] = ids
        return GaussianScene.from_numpy(**arrays)

    def preview_floaters(self, options: FloaterOptions = FloaterOptions()) -> np.ndarray:
        """The mask a floater cleanup with ``options`` would delete; changes nothing."""
        return RemoveFloaters(options.to_json()).mask(self)

    def find_floaters(self, options: FloaterOptions) -> np.ndarray:
        """Floaters among the shown splats. The answer is kept with the arrays it was found on (arrays
        are never written in place), so a search made on a worker thread makes the cleanup instant."""
        a = self.arrays
        found_on = (a["means"], a["opacity_logits"], a["hidden"], a["deleted"])
        cached = self._floater_cache
        if cached is not None and cached[0] == options and all(x is y for x, y in zip(cached[2], found_on)):
            return cached[1]
        mask = find_floaters(a["means"], a["opacity_logits"], self.selectable, options)
        self._floater_cache = (options, mask, found_on)
        return mask

    # ------------------------------------------------------------------ listeners
    def subscribe(self, listener: Callable[[set[str]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, touched: set[str]) -> None:
        if touched & (set(self.row_fields) | {"group_ids"}):
            self._scene_cache = None
        kinds = _what(touched)
        for listener in list(self._listeners):
            listener(kinds)

    # ------------------------------------------------------------------ history
    def apply(self, command: Command) -> Result:
        """Do ``command`` as one undoable step; a no-op (e.g. nothing selected) returns its message."""
        change = command.compute(self)
        if isinstance(change, str):
            return Result(False, change)
        self.groups = change.apply(self.arrays, self.groups)
        del self._entries[self._position:]
        if self._saved_position > self._position:
            self._saved_position = -1  # the saved state can no longer be reached by undo/redo
        self._entries.append(_Entry(command, change))
        self._position += 1
        self._notify(change.touched)
        count = self.num_selected if command.selection_only else change.count
        return Result(True, command.summary(self), count)

    def undo(self) -> Result:
        if not self.can_undo:
            return Result(False, "Nothing to undo")
        self._position -= 1
        entry = self._entries[self._position]
        self.groups = entry.change.revert(self.arrays, self.groups)
        self._notify(entry.change.touched)
        return Result(True, f"Undid {entry.command.label}")

    def redo(self) -> Result:
        if not self.can_redo:
            return Result(False, "Nothing to redo")
        entry = self._entries[self._position]
        self.groups = entry.change.apply(self.arrays, self.groups)
        self._position += 1
        self._notify(entry.change.touched)
        return Result(True, f"Redid {entry.command.label}")

    @property
    def can_undo(self) -> bool:
        return self._position > 0

    @property
    def can_redo(self) -> bool:
        return self._position < len(self._entries)

    @property
    def undo_label(self) -> str:
        return self._entries[self._position - 1].command.label if self.can_undo else ""

    @property
    def redo_label(self) -> str:
        return self._entries[self._position].command.label if self.can_redo else ""

    @property
    def commands(self) -> list[Command]:
        """Every command in the history, applied ones first (``position`` of them), then the redo list."""
        return [e.command for e in self._entries]

    @property
    def position(self) -> int:
        return self._position

    @property
    def modified(self) -> bool:
        """Edits since opening or saving that a save would keep (selection changes do not count)."""
        if self._saved_position < 0:
            return True
        lo, hi = sorted((self._saved_position, self._position))
        return any(not e.command.selection_only for e in self._entries[lo:hi])

    def mark_saved(self) -> None:
        self._saved_position = self._position

    # ------------------------------------------------------------------ serialising
    def history_json(self) -> dict:
        return {"version": HISTORY_VERSION, "position": self._position,
                "commands": [c.to_json() for c in self.commands]}

    def replay(self, history: dict) -> None:
        """Start again from the base scene and re-apply a ``history_json()``: the applied commands are
        done, the rest wait on the redo list, exactly as when it was saved."""
        from ..errors import FormatError

        if not isinstance(history, dict) or not isinstance(history.get("commands"), list):
            raise FormatError("the edit history is not a {version, position, commands} object")
        if int(history.get("version", 0)) > HISTORY_VERSION:
            raise FormatError(f"the edit history has version {history['version']}; this Handful reads up to "
                              f"{HISTORY_VERSION}", hint="update Handful")
        commands = [command_from_json(c) for c in history["commands"]]
        position = int(history.get("position", len(commands)))
        if not 0 <= position <= len(commands):
            raise FormatError(f"the edit history's position {position} is outside its {len(commands)} edits")
        self._reset()
        for i, command in enumerate(commands):
            try:
                result = self.apply(command)
            except (KeyError, ValueError, IndexError, TypeError) as e:
                raise FormatError(f"edit {i + 1} ({command.kind}) of the history cannot be replayed ({e})") from None
            if not result.changed:
                raise FormatError(f"edit {i + 1} ({command.kind}) of the history did nothing on replay: "
                                  f"{result.message}")
        while self._position > position:
            self.undo()
        self._saved_position = self._position
        self._notify({"means", "hidden", "selected", "groups"})


def replay(scene: GaussianScene, history: dict, groups: dict[int, Group] | None = None) -> SceneDocument:
    """A new document for ``scene`` with ``history`` (from ``history_json()``) replayed on it."""
    doc = SceneDocument(scene, groups)
    doc.replay(history)
    return doc
