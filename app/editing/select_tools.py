"""Selecting in the 3D view: a click picks the object under the cursor; the rectangle, lasso and brush
tools drag a shape. Shift adds, Ctrl removes, Shift+Ctrl intersects (as in SuperSplat).

The tools only turn mouse positions into the viewer camera's image pixels and hand them to the engine
(``engine.edit.Select``): which splats a shape covers, and which one is under the cursor, is decided
there, with the same projection maths the viewer draws with.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QWidget

from engine.camera_projection import widget_to_image_scale
from engine.edit import Select

CLICK_SLOP_PX = 4
DEFAULT_BRUSH_RADIUS_PX = 24
TOOLS = ("pick", "rect", "lasso", "brush")


def mode_for(modifiers) -> str:
    shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
    ctrl = bool(modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier))
    if shift and ctrl:
        return "intersect"
    return "add" if shift else "subtract" if ctrl else "replace"


class _ShapeOverlay(QWidget):
    """Draws the shape being dragged over the 3D view (transparent to the mouse)."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.points: list[QPointF] = []
        self.kind = "rect"
        self.brush_radius = DEFAULT_BRUSH_RADIUS_PX
        self.hide()

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        if not self.points:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(QColor(255, 200, 0), 1.5, Qt.PenStyle.DashLine)
        painter.setPen(pen)
        if self.kind == "rect":
            painter.drawRect(QRect(self.points[0].toPoint(), self.points[-1].toPoint()).normalized())
        elif self.kind == "lasso":
            path = QPainterPath(self.points[0])
            for p in self.points[1:]:
                path.lineTo(p)
            path.closeSubpath()
            painter.fillPath(path, QColor(255, 200, 0, 40))
            painter.drawPath(path)
        else:
            painter.setBrush(QColor(255, 200, 0, 50))
            painter.setPen(Qt.PenStyle.NoPen)
            for p in self.points:
                painter.drawEllipse(p, self.brush_radius, self.brush_radius)
        painter.end()


class SelectionTools(QObject):
    """Watches the viewer's mouse events. The pick tool lets drags through (they orbit the view) and
    selects on a click; the shape tools take left-button drags for themselves."""

    message = Signal(str)  # for the status bar when a selection cannot be made
    tool_changed = Signal(str)

    def __init__(self, viewer: QWidget, session, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.session = session
        self.tool = "pick"
        self.brush_radius = DEFAULT_BRUSH_RADIUS_PX
        canvas = getattr(viewer, "canvas", None)  # the splat viewer draws into a child canvas widget
        self.target: QWidget = getattr(canvas, "native", None) or viewer
        self._overlay = _ShapeOverlay(self.target)
        self._press: QPointF | None = None
        self._dragging = False
        self.target.installEventFilter(self)

    # ----------------------------------------------------------------- tool choice
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown selection tool {tool!r}")
        self.tool = tool
        self._cancel()
        if tool == "pick":
            self.target.unsetCursor()
        else:
            self.target.setCursor(Qt.CursorShape.CrossCursor)
        self.tool_changed.emit(tool)

    def set_active(self, active: bool) -> None:
        """The rectangle tool on or off (the toolbar's box select button)."""
        self.set_tool("rect" if active else "pick")

    @property
    def active(self) -> bool:
        return self.tool != "pick"

    def shutdown(self) -> None:
        self.target.removeEventFilter(self)
        self._cancel()

    def _cancel(self) -> None:
        self._press = None
        self._dragging = False
        self._overlay.points = []
        self._overlay.hide()

    # ----------------------------------------------------------------- events
    def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
        kind = event.type()
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return False
        shape_tool = self.tool != "pick"
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() != Qt.MouseButton.LeftButton:
                return False
            self._press = event.position()
            self._dragging = False
            if shape_tool:
                self._overlay.kind = self.tool
                self._overlay.brush_radius = self.brush_radius
                self._overlay.points = [self._press]
                self._overlay.setGeometry(self.target.rect())
                self._overlay.show()
                self._overlay.raise_()
            return shape_tool
        if self._press is None:
            return False
        pos = event.position()
        if kind == QEvent.Type.MouseMove:
            if (pos - self._press).manhattanLength() > CLICK_SLOP_PX:
                self._dragging = True
            if shape_tool:
                if self.tool == "rect":
                    self._overlay.points = [self._press, pos]
                else:
                    self._overlay.points.append(pos)
                self._overlay.update()
            return shape_tool
        # release
        points = self._overlay.points + [pos] if shape_tool else []
        dragged, press = self._dragging, self._press
        self._cancel()
        mode = mode_for(event.modifiers())
        if not dragged and self.tool != "brush":
            self.click(press.x(), press.y(), mode)
        elif shape_tool:
            self._finish_shape(points, mode)
        return shape_tool

    # ----------------------------------------------------------------- selecting (widget coordinates)
    def _view(self):
        """(camera, image pixels per widget pixel in x, in y), or None when no selection can be made."""
        if not self.session.has_scene:
            return None
        camera = self.viewer.current_camera() if hasattr(self.viewer, "current_camera") else None
        if camera is None:
            self.message.emit("Selection needs the 3D view, which is unavailable here")
            return None
        return (camera, *widget_to_image_scale(camera, self.target.width(), self.target.height()))

    def click(self, x: float, y: float, mode: str = "replace"):
        """Select the object under widget point (x, y)."""
        view = self._view()
        if view is None:
            return None
        camera, sx, sy = view
        # widget pixel (i, j) covers [i, i+1) x [j, j+1): aim at its centre
        return self.session.apply(Select.pick(camera, (x + 0.5) * sx, (y + 0.5) * sy, mode))

    def select_rect(self, rect: QRect, mode: str = "replace") -> int:
        """Select the splats whose centres fall in ``rect`` (widget coordinates); returns the count."""
        view = self._view()
        if view is None:
            return 0
        camera, sx, sy = view
        box = (rect.left() * sx, rect.top() * sy, (rect.right() + 1) * sx, (rect.bottom() + 1) * sy)
        self.session.apply(Select.rect(camera, box, mode))
        return self.session.num_selected

    def select_lasso(self, points: list[QPointF], mode: str = "replace"):
        view = self._view()
        if view is None:
            return None
        camera, sx, sy = view
        return self.session.apply(Select.lasso(camera, [(p.x() * sx, p.y() * sy) for p in points], mode))

    def select_brush(self, points: list[QPointF], mode: str = "replace"):
        view = self._view()
        if view is None:
            return None
        camera, sx, sy = view
        stroke = [(p.x() * sx, p.y() * sy) for p in points]
        return self.session.apply(Select.brush(camera, stroke, self.brush_radius * sx, mode))

    def _finish_shape(self, points: list[QPointF], mode: str) -> None:
        if self.tool == "rect":
            self.select_rect(QRect(points[0].toPoint(), points[-1].toPoint()).normalized(), mode)
        elif self.tool == "lasso":
            self.select_lasso(points, mode)
        else:
            self.select_brush(points, mode)


__all__ = ["SelectionTools", "mode_for", "TOOLS"]
