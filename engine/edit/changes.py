"""What an edit did to a document's arrays, kept so that undo and redo restore it bit for bit.

Arrays are never written in place: a change swaps in new arrays (copy on write), so a scene handed to
the viewer (which shares the arrays' memory) never sees a half-made edit, and the old values kept here
are exact copies of what was there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Patch:
    """Rows ``index`` of array ``name`` go from ``old`` to ``new`` (``index`` None: the whole array)."""

    name: str
    index: np.ndarray | None
    old: np.ndarray
    new: np.ndarray

    def put(self, arrays: dict[str, np.ndarray], forward: bool) -> None:
        values = self.new if forward else self.old
        if self.index is None:
            arrays[self.name] = values
            return
        target = arrays[self.name].copy()
        target[self.index] = values
        arrays[self.name] = target


@dataclass
class Change:
    """One command's effect: rows appended (duplicate), array patches, and group metadata swapped."""

    patches: list[Patch] = field(default_factory=list)
    appended: dict[str, np.ndarray] | None = None  # name -> rows added at the end
    groups_before: dict | None = None
    groups_after: dict | None = None
    count: int = 0  # splats the edit acted on (reported to the person)
    old_count: int = 0  # rows before ``appended`` was added

    def patch(self, arrays: dict[str, np.ndarray], name: str, index: np.ndarray | None, new: np.ndarray) -> None:
        """Record a patch against ``arrays`` (the state the change starts from).

        A whole boolean mask (a selection, say) is kept as the rows that flip when they are few: a click
        history on a million splats then holds kilobytes per step, not two full masks."""
        current = arrays[name]
        if index is None and current.dtype == bool and len(new) == len(current):
            flipped = np.flatnonzero(current != new).astype(np.int64)
            if 10 * len(flipped) < len(current):
                self.patches.append(Patch(name, flipped, current[flipped], new[flipped]))
                return
        old = current if index is None else current[index].copy()
        self.patches.append(Patch(name, index, old, new))

    @property
    def touched(self) -> set[str]:
        names = {p.name for p in self.patches}
        if self.appended is not None:
            names |= set(self.appended)
        if self.groups_before is not None:
            names.add("groups")
        return names

    def apply(self, arrays: dict[str, np.ndarray], groups: dict) -> dict:
        if self.appended is not None:
            for name, rows in self.appended.items():
                arrays[name] = np.concatenate([arrays[name], rows])
        for p in self.patches:
            p.put(arrays, forward=True)
        return dict(self.groups_after) if self.groups_after is not None else groups

    def revert(self, arrays: dict[str, np.ndarray], groups: dict) -> dict:
        for p in reversed(self.patches):
            p.put(arrays, forward=False)
        if self.appended is not None:
            for name in self.appended:
                if len(arrays[name]) > self.old_count:
                    arrays[name] = arrays[name][: self.old_count].copy()
        return dict(self.groups_before) if self.groups_before is not None else groups
