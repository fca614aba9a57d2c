"""The scene being edited: the loaded scene, which splats are still there, which are selected.

Deletes hide splats (a mask) rather than copying the scene, so undo is instant and the viewer only
gets a new visibility mask; ``edited_scene()`` builds the scene that is saved.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from engine.scene import GaussianScene

SELECT_MODES = ("replace", "add", "subtract")


class EditSession(QObject):
    scene_changed = Signal(object)  # the full scene (None when cleared)
    visibility_changed = Signal(object)  # alive mask (N,) bool
    selection_changed = Signal(object)  # selection mask (N,) bool

    def __init__(self, parent=None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.scene: GaussianScene | None = None
        self.alive = np.zeros(0, dtype=bool)
        self._saved_alive = self.alive
        self.selection = np.zeros(0, dtype=bool)

    # ----------------------------------------------------------------- scene
    def set_scene(self, scene: GaussianScene | None) -> None:
        self.scene = scene
        n = 0 if scene is None else len(scene)
        self.alive = np.ones(n, dtype=bool)
        self._saved_alive = self.alive.copy()
        self.selection = np.zeros(n, dtype=bool)
        self.undo_stack.clear()
        self.scene_changed.emit(scene)

    @property
    def has_scene(self) -> bool:
        return self.scene is not None

    @property
    def num_visible(self) -> int:
        return int(self.alive.sum())

    @property
    def num_selected(self) -> int:
        return int(self.selection.sum())

    @property
    def modified(self) -> bool:
        """Splats deleted (or restored) since the scene was opened or saved; selections don't count."""
        return not np.array_equal(self.alive, self._saved_alive)

    def mark_saved(self) -> None:
        self._saved_alive = self.alive.copy()
        self.undo_stack.setClean()

    def edited_scene(self) -> GaussianScene | None:
        """The scene without deleted splats (the scene itself when nothing was deleted)."""
        if self.scene is None:
            return None
        if self.alive.all():
            return self.scene
        return self.scene.subset(self.alive)

    # ----------------------------------------------------------------- selection
    def combine(self, mask: np.ndarray, mode: str = "replace") -> np.ndarray:
        """The selection that ``mask`` with ``mode`` would give (deleted splats never selected)."""
        if mode not in SELECT_MODES:
            raise ValueError(f"unknown selection mode {mode!r}")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.selection.shape:
            raise ValueError(f"selection mask has shape {mask.shape}, expected {self.selection.shape}")
        if mode == "add":
            mask = self.selection | mask
        elif mode == "subtract":
            mask = self.selection & ~mask
        return mask & self.alive

    def select(self, mask: np.ndarray, mode: str = "replace") -> None:
        """Change the selection as one undoable step."""
        from .commands import SelectCommand

        new = self.combine(mask, mode)
        if not np.array_equal(new, self.selection):
            self.undo_stack.push(SelectCommand(self, new))

    def select_all(self) -> None:
        self.select(self.alive.copy())

    def clear_selection(self) -> None:
        self.select(np.zeros_like(self.selection))

    def invert_selection(self) -> None:
        self.select(~self.selection & self.alive)

    def delete_selected(self) -> int:
        from .commands import DeleteSplatsCommand

        indices = np.flatnonzero(self.selection)
        if len(indices):
            self.undo_stack.push(DeleteSplatsCommand(self, indices))
        return len(indices)

    # ----------------------------------------------------------------- used by commands
    def _set_masks(self, alive: np.ndarray | None = None, selection: np.ndarray | None = None) -> None:
        if alive is not None:
            self.alive = alive
            self.visibility_changed.emit(self.alive)
        if selection is not None:
            self.selection = selection
            self.selection_changed.emit(self.selection)
