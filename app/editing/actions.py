"""The window's edit actions, menus and keys, bound as in SuperSplat where it has the action:
Ctrl+Z / Ctrl+Shift+Z undo and redo, Ctrl+A / Ctrl+Shift+A select all and none, Ctrl+I invert, Delete
or Backspace delete, H hides the selection and Shift+H shows everything again (SuperSplat's lock and
unlock), R / L / B the rectangle, lasso and brush tools, 1 / 2 / 3 the move, rotate and scale gizmo.

Keys SuperSplat leaves free are chosen so that no two actions share one: Ctrl+D duplicate, Shift+I
isolate, Ctrl+T the numeric transform dialog. Pressing a tool's key again goes back to the click-to-pick
tool (and a gizmo's key again hides the gizmo).
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QColorDialog, QInputDialog, QMainWindow

from engine.edit import Brightness, Delete, Duplicate, Hide, Isolate, Recolour, ShowAll, Transform

from ..theme import icon
from .dialogs import FloaterDialog, SelectByDialog, TransformDialog
from .gizmo import Gizmo
from .select_tools import SelectionTools


class EditActions:
    def __init__(self, window: QMainWindow, session, tools: SelectionTools, show_preview):
        self.window, self.session, self.tools = window, session, tools
        self._show_preview = show_preview
        a = self._action
        self.undo = a("&Undo", session.undo, "Ctrl+Z", "undo")
        self.redo = a("&Redo", session.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
        self.select_all = a("Select &All", session.select_all, "Ctrl+A")
        self.select_none = a("Select &None", session.clear_selection, "Ctrl+Shift+A")
        self.invert = a("&Invert Selection", session.invert_selection, "Ctrl+I")
        self.grow = a("&Grow Selection", lambda: self._grow("grow"), tip="Add the splats next to the selection")
        self.shrink = a("S&hrink Selection", lambda: self._grow("shrink"), tip="Drop the selection's rim")
        self.select_by = a("Select &By…", self.select_by_dialog,
                           tip="Select by colour, opacity or size, or inside a sphere or box")
        self.delete = a("&Delete Selected", lambda: session.apply(Delete()), ["Delete", "Backspace"], "delete")
        self.hide = a("&Hide Selected", lambda: session.apply(Hide()), "H")
        self.show_all = a("&Show All", lambda: session.apply(ShowAll()), "Shift+H")
        self.isolate = a("Is&olate Selected", lambda: session.apply(Isolate()), "Shift+I",
                         tip="Hide everything but the selection")
        self.duplicate = a("D&uplicate Selected", lambda: session.apply(Duplicate()), "Ctrl+D")
        self.gizmo = Gizmo(tools.viewer, session, tools.target, window)
        self.gizmo_group = QActionGroup(window)
        self.gizmo_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.move = a("&Move", None, "1", checkable=True, tip="Drag an arrow of the gizmo to move the selection")
        self.rotate = a("R&otate", None, "2", checkable=True, tip="Drag a ring of the gizmo to turn the selection")
        self.scale = a("Sc&ale", None, "3", checkable=True, tip="Drag the gizmo's square to resize the selection")
        for mode, action in (("move", self.move), ("rotate", self.rotate), ("scale", self.scale)):
            self.gizmo_group.addAction(action)
            action.toggled.connect(lambda on, m=mode: self._gizmo_toggled(m, on))
        self.transform_dialog = a("&Transform…", lambda: self.transform("move"), "Ctrl+T",
                                  tip="Move, rotate and scale the selection by numbers")
        self.recolour = a("Re&colour…", self.recolour_dialog)
        self.brightness = a("&Brightness…", self.brightness_dialog)
        self.floaters = a("Clean Up &Floaters…", self.floater_dialog,
                          tip="Find isolated, faint or far-away splats, preview them, remove them")

        self.tool_group = QActionGroup(window)
        self.tool_group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.rect_tool = a("&Rectangle Select", None, "R", "select", checkable=True,
                           tip="Drag a rectangle over splats (Shift adds, Ctrl removes)")
        self.lasso_tool = a("&Lasso Select", None, "L", "lasso", checkable=True, tip="Draw around splats to select them")
        self.brush_tool = a("&Brush Select", None, "B", "brush", checkable=True, tip="Paint over splats to select them")
        for tool, action in (("rect", self.rect_tool), ("lasso", self.lasso_tool), ("brush", self.brush_tool)):
            self.tool_group.addAction(action)
            action.toggled.connect(lambda on, t=tool: self._tool_toggled(t, on))
        tools.tool_changed.connect(self._sync_tool)

        self.needs_scene = [self.select_all, self.select_none, self.invert, self.rect_tool, self.lasso_tool,
                            self.brush_tool, self.floaters, self.move, self.rotate, self.scale, self.select_by]
        self.needs_selection = [self.delete, self.hide, self.isolate, self.duplicate, self.transform_dialog,
                                self.recolour, self.brightness, self.grow, self.shrink]
        session.history_changed.connect(self.update)
        session.selection_changed.connect(lambda _: self.update())
        self.update()

    def _action(self, text, slot=None, shortcut=None, icon_name=None, checkable=False, tip=None) -> QAction:
        action = QAction(text, self.window)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(k) for k in keys])
        action.setCheckable(checkable)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot:
            action.triggered.connect(lambda _=False: slot())
        return action

    # ----------------------------------------------------------------- menus
    def fill_edit_menu(self, menu) -> None:
        menu.addActions([self.undo, self.redo])
        menu.addSeparator()
        menu.addActions([self.delete, self.duplicate, self.hide, self.show_all, self.isolate])
        menu.addSeparator()
        menu.addActions([self.move, self.rotate, self.scale, self.transform_dialog, self.recolour, self.brightness])
        menu.addSeparator()
        menu.addAction(self.floaters)

    def fill_select_menu(self, menu) -> None:
        menu.addActions([self.select_all, self.select_none, self.invert, self.grow, self.shrink, self.select_by])
        menu.addSeparator()
        menu.addActions([self.rect_tool, self.lasso_tool, self.brush_tool])

    # ----------------------------------------------------------------- state
    def update(self) -> None:
        doc = self.session.doc
        for action in self.needs_scene:
            action.setEnabled(doc is not None)
        for action in self.needs_selection:
            action.setEnabled(doc is not None and doc.num_selected > 0)
        self.undo.setEnabled(doc is not None and doc.can_undo)
        self.redo.setEnabled(doc is not None and doc.can_redo)
        self.undo.setText(f"&Undo {doc.undo_label}" if doc is not None and doc.can_undo else "&Undo")
        self.redo.setText(f"&Redo {doc.redo_label}" if doc is not None and doc.can_redo else "&Redo")

    def _tool_toggled(self, tool: str, on: bool) -> None:
        if on:
            self.tools.set_tool(tool)
        elif self.tools.tool == tool:
            self.tools.set_tool("pick")

    def _gizmo_toggled(self, mode: str, on: bool) -> None:
        if on:
            self.gizmo.set_mode(mode)
        elif self.gizmo.mode == mode:
            self.gizmo.set_mode(None)

    def _sync_tool(self, tool: str) -> None:
        for name, action in (("rect", self.rect_tool), ("lasso", self.lasso_tool), ("brush", self.brush_tool)):
            if action.isChecked() != (name == tool):
                action.blockSignals(True)
                action.setChecked(name == tool)
                action.blockSignals(False)

    # ----------------------------------------------------------------- edits with parameters
    def _grow(self, how: str) -> None:
        doc = self.session.doc
        if doc is not None:
            self.session.select(how, {"distance": 2.0 * doc.typical_spacing()})

    def transform(self, focus: str = "move"):
        if self.session.doc is None or not self.session.num_selected:
            self.session.apply(Transform())  # says that nothing is selected
            return None
        dialog = TransformDialog(self.session, focus, self.window)
        dialog.open()
        return dialog

    def recolour_dialog(self) -> None:
        if not self.session.num_selected:
            self.session.apply(Recolour())  # says that nothing is selected
            return
        colour = QColorDialog.getColor(parent=self.window, title="Recolour Selection")
        if colour.isValid():
            self.session.apply(Recolour([colour.redF(), colour.greenF(), colour.blueF()], 1.0))

    def brightness_dialog(self) -> None:
        if not self.session.num_selected:
            self.session.apply(Brightness())
            return
        factor, ok = QInputDialog.getDouble(self.window, "Brightness", "Multiply the colour by", 1.2, 0.0, 10.0, 2)
        if ok:
            self.session.apply(Brightness(factor))

    def select_by_dialog(self):
        if self.session.doc is None:
            return None
        dialog = SelectByDialog(self.session, self.window)
        dialog.open()
        return dialog

    def floater_dialog(self):
        if self.session.doc is None:
            return None
        dialog = FloaterDialog(self.session, self._show_preview, self.window)
        dialog.open()
        return dialog
