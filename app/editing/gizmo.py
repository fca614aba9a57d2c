"""The on-screen move / rotate / scale gizmo over the selection (keys 1 / 2 / 3, as in SuperSplat).

Drawn as a transparent overlay on the 3D view at the selection's centre: three world axes (move), three
rings (rotate about an axis) or one handle (uniform scale). Dragging a handle shows the amount while the
mouse moves and applies one ``engine.edit.Transform`` on release, so a drag is one undo step. Handles
are placed with the engine's projection (``engine.camera_projection``); drags elsewhere pass through to
the view (orbit) and the selection tools.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from engine.camera_projection import project_points, widget_to_image_scale
from engine.edit import Transform
from engine.edit.transform import rotation_from_euler_degrees

MODES = ("move", "rotate", "scale")
AXIS_COLOURS = (QColor(230, 70, 70), QColor(90, 200, 90), QColor(80, 130, 240))
HANDLE_PX = 90  # on-screen length of an axis (widget pixels)
GRAB_PX = 8  # how close the mouse must be to a handle to take it
SCALE_PX_PER_DOUBLING = 120.0  # dragging right / up by this much doubles the size
PREVIEW_INTERVAL_S = 0.06  # the view shows the dragged result at most this often (it re-packs the splats)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    s = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + s * ab - p))


class _GizmoOverlay(QWidget):
    def __init__(self, gizmo: "Gizmo", parent: QWidget):
        super().__init__(parent)
        self.gizmo = gizmo
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        shape = self.gizmo.handles()
        if shape is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        centre, parts = shape
        for axis, points in parts:
            colour = QColor(255, 220, 0) if axis == self.gizmo.active_axis else AXIS_COLOURS[axis % 3]
            painter.setPen(QPen(colour, 2.5))
            painter.drawPolyline(QPolygonF([QPointF(*p) for p in points]))
        if self.gizmo.mode == "scale":
            painter.setPen(QPen(QColor(255, 220, 0) if self.gizmo.active_axis == 3 else QColor(240, 240, 240), 2))
            painter.drawRect(int(centre[0]) - 6, int(centre[1]) - 6, 12, 12)
        if self.gizmo.readout:
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(QPointF(centre[0] + 12, centre[1] - 12), self.gizmo.readout)
        painter.end()


class Gizmo(QObject):
    mode_changed = Signal(str)

    def __init__(self, viewer: QWidget, session, target: QWidget, parent=None):
        super().__init__(parent)
        self.viewer, self.session, self.target = viewer, session, target
        self.mode: str | None = None
        self.active_axis: int | None = None  # 0-2 an axis, 3 the scale handle
        self.readout = ""
        self._press: np.ndarray | None = None
        self._pivot = np.zeros(3)
        self._last_preview = 0.0
        self._previewing = False
        self._overlay = _GizmoOverlay(self, target)
        self._overlay.hide()
        target.installEventFilter(self)
        session.selection_changed.connect(lambda _: self.refresh())
        session.scene_data_changed.connect(lambda _: self.refresh())
        if hasattr(viewer, "drawn"):
            viewer.drawn.connect(self.refresh)  # the view moved

    def set_mode(self, mode: str | None) -> None:
        """'move', 'rotate', 'scale', or None (no gizmo)."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"unknown gizmo mode {mode!r}")
        self.mode = mode
        self._end_drag()
        self.refresh()
        self.mode_changed.emit(self.mode or "")

    def shutdown(self) -> None:
        self.target.removeEventFilter(self)

    def refresh(self) -> None:
        shown = self.mode is not None and self.session.num_selected > 0 and self._camera() is not None
        if shown:
            self._overlay.setGeometry(self.target.rect())
            self._overlay.show()
            self._overlay.raise_()
            self._overlay.update()
        else:
            self._overlay.hide()

    # ----------------------------------------------------------------- geometry (widget pixels)
    def _camera(self):
        camera = self.viewer.current_camera() if hasattr(self.viewer, "current_camera") else None
        if camera is None:
            return None
        sx, sy = widget_to_image_scale(camera, self.target.width(), self.target.height())
        return camera, sx, sy

    def _to_widget(self, points: np.ndarray) -> np.ndarray | None:
        view = self._camera()
        if view is None:
            return None
        camera, sx, sy = view
        uv, z = project_points(points, camera)
        if not np.isfinite(uv).all():
            return None
        return uv / [sx, sy]

    def _axis_length(self, pivot: np.ndarray) -> float:
        """World length that spans HANDLE_PX widget pixels at the pivot's depth."""
        camera, sx, _ = self._camera()
        depth = float((camera.R @ pivot + camera.t)[2])
        return max(depth, 1e-6) * HANDLE_PX * sx / camera.fx

    def handles(self):
        """(centre, [(axis, polyline points)]) in widget pixels, or None when nothing is shown."""
        doc = self.session.doc
        if self.mode is None or doc is None or not doc.num_selected or self._camera() is None:
            return None
        pivot = doc.selection_centre() if self._press is None else self._pivot
        centre = self._to_widget(pivot[None])
        if centre is None:
            return None
        length = self._axis_length(pivot)
        parts = []
        for axis in range(3):
            direction = np.eye(3)[axis]
            if self.mode == "rotate":
                a, b = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
                u = np.linspace(0, 2 * math.pi, 49)[:, None]
                ring = pivot + 0.8 * length * (np.cos(u) * a + np.sin(u) * b)
                pts = self._to_widget(ring)
            else:
                pts = self._to_widget(np.stack([pivot, pivot + length * direction]))
            if pts is not None:
                parts.append((axis, pts))
        return centre[0], parts

    def _hit(self, pos: np.ndarray) -> int | None:
        shape = self.handles()
        if shape is None:
            return None
        centre, parts = shape
        if self.mode == "scale" and np.abs(pos - centre).max() <= GRAB_PX:
            return 3
        best, best_d = None, GRAB_PX
        for axis, pts in parts:
            d = min(_segment_distance(pos, a, b) for a, b in zip(pts[:-1], pts[1:]))
            if d <= best_d:
                best, best_d = axis, d
        return best

    # ----------------------------------------------------------------- the drag
    def command_for(self, start: np.ndarray, end: np.ndarray) -> Transform | None:
        """The transform a drag of the active handle from ``start`` to ``end`` (widget pixels) makes."""
        pivot, axis = self._pivot, self.active_axis
        if axis is None:
            return None
        if self.mode == "scale":
            delta = (end[0] - start[0]) - (end[1] - start[1])
            return Transform(scale=float(2.0 ** (delta / SCALE_PX_PER_DOUBLING)), pivot=pivot.tolist())
        if self.mode == "move":
            length = self._axis_length(pivot)
            ends = self._to_widget(np.stack([pivot, pivot + length * np.eye(3)[axis]]))
            if ends is None:
                return None
            screen_axis = ends[1] - ends[0]
            px = float(np.dot(screen_axis, screen_axis))
            if px < 1e-6:
                return None
            # the world shift along the axis whose projection best matches the mouse's move
            amount = float(np.dot(end - start, screen_axis)) / px * length
            return Transform(shift=(np.eye(3)[axis] * amount).tolist(), pivot=pivot.tolist())
        angle = self._ring_angle(start, end, axis)
        if angle is None:
            return None
        angles = np.zeros(3)
        angles[axis] = angle
        return Transform(rotation=rotation_from_euler_degrees(angles).tolist(), pivot=pivot.tolist())

    def _on_ring_plane(self, pos: np.ndarray, axis: int) -> np.ndarray | None:
        """Where the mouse ray through widget point ``pos`` meets the plane of ring ``axis``."""
        camera, sx, sy = self._camera()
        u, v = pos[0] * sx, pos[1] * sy
        direction = camera.R.T @ np.array([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, 1.0])
        normal = np.eye(3)[axis]
        facing = float(normal @ direction)
        if abs(facing) < 1e-3 * np.linalg.norm(direction):
            return None  # the ring is seen edge-on
        t = float(normal @ (self._pivot - camera.center)) / facing
        return camera.center + t * direction if t > 0 else None

    def _ring_angle(self, start: np.ndarray, end: np.ndarray, axis: int) -> float | None:
        """Degrees about ``axis`` from the press to the mouse, measured in the ring's own plane so the
        grabbed point of the ring follows the mouse exactly, whatever the perspective."""
        p0, p1 = self._on_ring_plane(start, axis), self._on_ring_plane(end, axis)
        if p0 is None or p1 is None:
            return None
        v0, v1 = p0 - self._pivot, p1 - self._pivot
        normal = np.eye(3)[axis]
        return math.degrees(math.atan2(float(normal @ np.cross(v0, v1)), float(v0 @ v1)))

    def _readout_for(self, command: Transform | None) -> str:
        if command is None:
            return ""
        if self.mode == "scale":
            return f"x{command.scale:.3g}"
        if self.mode == "move":
            return "move " + ", ".join(f"{v:+.3g}" for v in command.shift)
        from scipy.spatial.transform import Rotation

        return f"{np.degrees(Rotation.from_matrix(command.rotation).magnitude()):.1f}°"

    def _end_drag(self) -> None:
        self._press = None
        self.active_axis = None
        self.readout = ""

    def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
        kind = event.type()
        if self.mode is None or kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                                             QEvent.Type.MouseButtonRelease):
            return False
        pos = np.array([event.position().x(), event.position().y()])
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() != Qt.MouseButton.LeftButton:
                return False
            axis = self._hit(pos)
            if axis is None:
                return False
            self._pivot = self.session.doc.selection_centre()
            self._press, self.active_axis = pos, axis
            self._overlay.update()
            return True
        if self._press is None:
            return False
        command = self.command_for(self._press, pos)
        if kind == QEvent.Type.MouseMove:
            self.readout = self._readout_for(command)
            self._overlay.update()
            self._preview(command)
            return True
        self._end_drag()
        applied = command is not None and self.session.apply(command).changed
        if self._previewing and not applied and hasattr(self.viewer, "update_scene"):
            self.viewer.update_scene(self.session.doc.scene())  # back to the document's splats
        self._previewing = False
        self.refresh()
        return True

    def _preview(self, command: Transform | None) -> None:
        """Show the dragged result in the view (not in the document: the release makes the one edit)."""
        now = time.monotonic()
        if command is None or not hasattr(self.viewer, "update_scene") or now - self._last_preview < PREVIEW_INTERVAL_S:
            return
        scene = self.session.doc.preview(replace(command, turn_sh=False))  # SH turns on release
        if scene is not None:
            self._last_preview = now
            self._previewing = True
            self.viewer.update_scene(scene)
