"""The Objects panel: one row per object group (colour swatch, name, splat count, a visibility box).

Clicking a row selects that object (Shift adds, Ctrl removes); the box hides or shows it; double-click
renames it. Every change goes through the session as an undoable command; the panel redraws from the
document whenever its groups or visibility change.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QApplication, QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.edit import RenameGroup, Select, SetGroupVisible

from .editing.select_tools import mode_for

GROUP_ID_ROLE = Qt.ItemDataRole.UserRole


def swatch(colour, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor.fromRgbF(*[min(max(float(c), 0.0), 1.0) for c in colour]))
    return QIcon(pixmap)


class ObjectsPanel(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.tree = QTreeWidget()
        self.tree.setObjectName("ObjectsTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Object", "Splats"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setEditTriggers(QTreeWidget.EditTrigger.DoubleClicked | QTreeWidget.EditTrigger.EditKeyPressed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._filling = False
        self.tree.itemChanged.connect(self._on_item_changed)
        self.tree.itemClicked.connect(self._on_item_clicked)
        session.groups_changed.connect(self.refresh)
        self.refresh()

    # ----------------------------------------------------------------- showing
    def refresh(self) -> None:
        doc = self.session.doc
        self._filling = True
        try:
            self.tree.clear()
            if doc is None:
                return
            counts = doc.group_counts()
            for gid, group in sorted(doc.groups.items()):
                item = QTreeWidgetItem([group.name, f"{counts.get(gid, 0):,}"])
                item.setData(0, GROUP_ID_ROLE, gid)
                item.setIcon(0, swatch(group.colour))
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
                item.setCheckState(0, Qt.CheckState.Checked if doc.group_visible(gid) else Qt.CheckState.Unchecked)
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(0, f"Object {gid}: click to select, double-click to rename, the box shows or hides it")
                self.tree.addTopLevelItem(item)
        finally:
            self._filling = False

    def item_for(self, group_id: int) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, GROUP_ID_ROLE) == group_id:
                return item
        return None

    # ----------------------------------------------------------------- editing
    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0 or self.session.doc is None:
            return
        gid = item.data(0, GROUP_ID_ROLE)
        group = self.session.doc.groups.get(gid)
        if group is None:
            return
        visible = item.checkState(0) == Qt.CheckState.Checked
        if visible != self.session.doc.group_visible(gid):
            self.session.apply(SetGroupVisible(gid, visible))
        elif item.text(0) != group.name:
            if not self.session.apply(RenameGroup(gid, item.text(0))).changed:
                self.refresh()  # an empty name: show the old one again

    def _on_item_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        if self.session.doc is None:
            return
        gid = item.data(0, GROUP_ID_ROLE)
        self.session.apply(Select.group(gid, mode_for(QApplication.keyboardModifiers())))
