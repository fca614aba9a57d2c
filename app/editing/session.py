"""The app's thin adapter over the engine's ``SceneDocument``: it turns the document's change reports
into Qt signals for the viewer and panels, and every no-op's message into a status-bar message.

All edit logic (selection maths, commands, undo/redo, replay) lives in ``engine.edit``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.edit import Command, Result, SceneDocument, Select
from engine.edit.groups import Group
from engine.scene import GaussianScene


class EditSession(QObject):
    scene_changed = Signal(object)  # a new document's scene (None when cleared): shown and framed
    scene_data_changed = Signal(object)  # the same document's Gaussians changed: shown, view kept
    visibility_changed = Signal(object)  # mask (N,) of splats drawn
    selection_changed = Signal(object)  # mask (N,) of selected splats
    groups_changed = Signal()
    history_changed = Signal()  # after every apply / undo / redo (labels, modified state)
    message = Signal(str)  # what an edit did, or why it did nothing

    def __init__(self, parent=None):
        super().__init__(parent)
        self.doc: SceneDocument | None = None

    # ----------------------------------------------------------------- documents
    def set_scene(self, scene: GaussianScene | None, groups: dict[int, Group] | None = None) -> None:
        self.set_document(None if scene is None else SceneDocument(scene, groups))

    def set_document(self, doc: SceneDocument | None) -> None:
        if self.doc is not None:
            self.doc.unsubscribe(self._on_document_changed)
        self.doc = doc
        if doc is not None:
            doc.subscribe(self._on_document_changed)
        self.scene_changed.emit(None if doc is None else doc.scene())
        self.groups_changed.emit()
        self.history_changed.emit()

    def _on_document_changed(self, kinds: set[str]) -> None:
        doc = self.doc
        if "scene" in kinds:
            self.scene_data_changed.emit(doc.scene())
        if "visibility" in kinds or "scene" in kinds:
            self.visibility_changed.emit(doc.visible)
        if "selection" in kinds or "scene" in kinds:
            self.selection_changed.emit(doc.selected)
        if kinds & {"groups", "visibility", "scene"}:
            self.groups_changed.emit()

    # ----------------------------------------------------------------- state
    @property
    def scene(self) -> GaussianScene | None:
        return None if self.doc is None else self.doc.scene()

    @property
    def has_scene(self) -> bool:
        return self.doc is not None

    @property
    def selection(self) -> np.ndarray:
        return np.zeros(0, bool) if self.doc is None else self.doc.selected

    @property
    def alive(self) -> np.ndarray:
        return np.zeros(0, bool) if self.doc is None else self.doc.visible

    @property
    def num_visible(self) -> int:
        return int(self.alive.sum())

    @property
    def num_selected(self) -> int:
        return 0 if self.doc is None else self.doc.num_selected

    @property
    def modified(self) -> bool:
        return self.doc is not None and self.doc.modified

    def mark_saved(self) -> None:
        if self.doc is not None:
            self.doc.mark_saved()
            self.history_changed.emit()

    def edited_scene(self) -> GaussianScene | None:
        return None if self.doc is None else self.doc.edited_scene()

    # ----------------------------------------------------------------- edits
    def apply(self, command: Command) -> Result:
        if self.doc is None:
            result = Result(False, "Open a scene first")
        else:
            result = self.doc.apply(command)
        self._report(result)
        return result

    def _report(self, result: Result) -> None:
        if result.changed:
            counted = f" ({result.count:,} splats)" if result.count else ""
            self.message.emit(f"{result.message}{counted}")
        else:
            self.message.emit(result.message)
        self.history_changed.emit()

    def undo(self) -> Result:
        result = self.doc.undo() if self.doc is not None else Result(False, "Nothing to undo")
        self._report(result)
        return result

    def redo(self) -> Result:
        result = self.doc.redo() if self.doc is not None else Result(False, "Nothing to redo")
        self._report(result)
        return result

    def select(self, how: str, params: dict | None = None, mode: str = "replace") -> Result:
        return self.apply(Select(how, params or {}, mode))

    def select_all(self) -> Result:
        return self.select("all")

    def clear_selection(self) -> Result:
        return self.select("none")

    def invert_selection(self) -> Result:
        return self.select("invert")
