"""Undoable edits (QUndoCommand objects pushed on the session's QUndoStack)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand


class SelectCommand(QUndoCommand):
    def __init__(self, session, new_selection: np.ndarray):
        count = int(new_selection.sum())
        super().__init__(f"Select {count:,} splats" if count else "Clear selection")
        self.session = session
        self.before = session.selection.copy()
        self.after = np.asarray(new_selection, dtype=bool).copy()

    def redo(self):
        self.session._set_masks(selection=self.after.copy())

    def undo(self):
        self.session._set_masks(selection=self.before.copy())


class DeleteSplatsCommand(QUndoCommand):
    """Hide splats by index; undo shows (and re-selects) them again."""

    def __init__(self, session, indices: np.ndarray):
        indices = np.asarray(indices, dtype=np.int64)
        super().__init__(f"Delete {len(indices):,} splats")
        self.session = session
        self.indices = indices
        self.selection_before = session.selection.copy()

    def redo(self):
        alive = self.session.alive.copy()
        alive[self.indices] = False
        selection = self.session.selection.copy()
        selection[self.indices] = False
        self.session._set_masks(alive=alive, selection=selection)

    def undo(self):
        alive = self.session.alive.copy()
        alive[self.indices] = True
        self.session._set_masks(alive=alive, selection=self.selection_before.copy())
