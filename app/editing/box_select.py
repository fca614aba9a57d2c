"""Box select in screen space: drag a rectangle over the viewer; Shift adds, Ctrl subtracts.

The rectangle is mapped to the pixels of ``viewer.current_camera()`` and the engine decides which
splats fall inside (``engine.selection.box_select``): the app does no projection maths itself.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtWidgets import QRubberBand, QWidget

from engine.selection import box_select


def mode_for(modifiers) -> str:
    if modifiers & Qt.KeyboardModifier.ShiftModifier:
        return "add"
    if modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier):
        return "subtract"
    return "replace"


class BoxSelectTool(QObject):
    """Active while ``set_active(True)``: filters the viewer's mouse events."""

    message = Signal(str)  # for the status bar when a selection cannot be made

    def __init__(self, viewer: QWidget, session, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.session = session
        self.active = False
        self._origin: QPoint | None = None
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, viewer)
        # the splat viewer draws into a child canvas widget, which is what receives the mouse
        canvas = getattr(viewer, "canvas", None)
        self.target: QWidget = getattr(canvas, "native", None) or viewer

    def set_active(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        if active:
            self.target.installEventFilter(self)
            self.target.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.target.removeEventFilter(self)
            self.target.unsetCursor()
            self._band.hide()
            self._origin = None

    def eventFilter(self, obj, event):
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            self._origin = event.position().toPoint()
            self._band.setGeometry(QRect(self._origin, QSize()))
            self._band.show()
            return True
        if kind == QEvent.Type.MouseMove and self._origin is not None:
            self._band.setGeometry(QRect(self._origin, event.position().toPoint()).normalized())
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._origin is not None:
            rect = QRect(self._origin, event.position().toPoint()).normalized()
            self._band.hide()
            self._origin = None
            self.select_rect(rect, mode_for(event.modifiers()))
            return True
        return False

    def select_rect(self, rect: QRect, mode: str = "replace") -> int:
        """Select the splats whose centres fall in ``rect`` (widget coordinates); returns the count."""
        if self.session.scene is None:
            return 0
        camera = self.viewer.current_camera() if hasattr(self.viewer, "current_camera") else None
        if camera is None:
            self.message.emit("Selection needs the 3D view, which is unavailable here")
            return 0
        # widget (logical) pixels -> the camera's image pixels (they differ on high-DPI screens)
        sx = camera.width / max(1, self.target.width())
        sy = camera.height / max(1, self.target.height())
        box = (rect.left() * sx, rect.top() * sy, (rect.right() + 1) * sx, (rect.bottom() + 1) * sy)
        mask = box_select(self.session.scene, camera, box, visible=self.session.alive)
        self.session.select(mask, mode)
        return int(mask.sum())
