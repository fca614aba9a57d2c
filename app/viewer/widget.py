"""SplatViewer: a Qt widget drawing a GaussianScene live with vispy (one EWA-shaped triangle per splat).

Threads: the GUI thread only uploads buffers and draws; packing a new scene into rows, depth
sorting and gathering rows into draw order run on a ``SortWorker``. Until a result arrives the
previous order keeps being drawn, so navigation never waits for a sort.

Level of detail: when drawing every splat costs more than LOD_FRAME_MS, each sort job also ranks
the splats in view by opacity x projected area and gathers the best ``budget`` of them, still back
to front; frames drawn while the view moves use that reduced order, the still view (the settle
timer draws one MOTION_SETTLE_S after the last input) and ``grab()`` always draw every splat.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from .backend import ensure_backend

ensure_backend()

from PySide6 import QtCore, QtWidgets  # noqa: E402
from vispy import app as vispy_app  # noqa: E402
from vispy import gloo  # noqa: E402
from vispy.gloo import gl  # noqa: E402

from engine.bounds import bounding_sphere, bulk_bounds, weighted_bounds  # noqa: E402
from engine.scene import Camera, GaussianScene  # noqa: E402

from . import splat_data  # noqa: E402
from .depth_sort import SortJob, SortResult, SortWorker, sort_and_gather  # noqa: E402
from .frustums import frustum_depth, frustum_lines, pick_frustum  # noqa: E402
from .gl_camera import gl_uniform, opencv_to_gl_clip, side_planes  # noqa: E402
from .navigation import ViewState  # noqa: E402

logger = logging.getLogger(__name__)
SHADER_DIR = Path(__file__).resolve().parents[2] / "resources" / "shaders"
RESORT_ANGLE_DEG = 0.25  # depth keys only depend on the optical axis: re-sort when it turned this much
CLICK_SLOP_PX = 4
FRAME_BUDGET_MS = 40.0  # moving frames aim at 25 fps
MOTION_SETTLE_S = 0.25  # the view counts as moving this long after the last input
MIN_DRAW_SCALE = 0.35
# Level of detail while moving: the worker also gathers the most important splats into a reduced
# back-to-front order, sized so that a moving frame costs about LOD_FRAME_MS (vertex work, per splat,
# dominates under llvmpipe); the still view and grab() always draw every splat.
LOD_FRAME_MS = 25.0
LOD_MIN_FRACTION = 0.05  # never fewer than this share of the splats
LOD_MIN_SPLATS = 20_000  # smaller scenes draw fast enough whole
LOD_RESORT_MOVE = 0.05  # re-rank when the eye moved this share of the scene radius
FLY_KEYS = {"W": (1, 0, 0), "S": (-1, 0, 0), "D": (0, 1, 0), "A": (0, -1, 0), "Q": (0, 0, 1), "E": (0, 0, -1)}
FRUSTUM_COLOR = (0.35, 0.8, 1.0, 1.0)


_QUAD_CORNERS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], dtype=np.float32)
# an equilateral triangle whose inscribed circle is the unit circle: one triangle bounds a splat
_TRIANGLE_CORNERS = np.array([[0, 2], [-math.sqrt(3), -1], [math.sqrt(3), -1]], dtype=np.float32)


def _shader(name: str) -> str:
    return (SHADER_DIR / name).read_text()


class _SceneSource:
    """A scene plus its packed rows and SH texture, both made lazily (on the worker) and cached."""

    def __init__(self, scene: GaussianScene, generation: int):
        self.scene = scene
        self.generation = generation
        self.count = len(scene)
        self.sh_degree = scene.sh_degree
        self._lock = threading.Lock()
        self._rows: np.ndarray | None = None
        self._sh: tuple[int, np.ndarray | None] | None = None

    def rows(self) -> np.ndarray:
        with self._lock:
            if self._rows is None:
                self._rows = splat_data.pack_rows(self.scene)
            return self._rows

    def sh_texture(self, max_size: int) -> np.ndarray | None:
        with self._lock:
            if self._sh is None or self._sh[0] != max_size:
                self._sh = (max_size, splat_data.sh_texture(self.scene, max_size))
            return self._sh[1]


class SplatViewer(QtWidgets.QWidget):
    """Live Gaussian-splat view. Signals: ``camera_clicked(int)`` (a frustum was clicked),
    ``stats_changed(dict)`` (fps, splats, sort_ms), ``drawn()`` (after every paint)."""

    camera_clicked = QtCore.Signal(int)
    stats_changed = QtCore.Signal(dict)
    drawn = QtCore.Signal()
    _sort_ready = QtCore.Signal(object)

    def __init__(self, parent: QtWidgets.QWidget | None = None, background=(0.0, 0.0, 0.0)):
        super().__init__(parent)
        self.background = tuple(float(c) for c in background)
        self._canvas = vispy_app.Canvas(keys=None, parent=self, size=(640, 480), show=False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._canvas.native)
        self._overlay = QtWidgets.QLabel(self)
        self._overlay.setStyleSheet("color: white; background: rgba(0,0,0,120); padding: 2px 6px;")
        self._overlay.move(6, 6)
        self._overlay.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)

        self._view = ViewState()
        self._source: _SceneSource | None = None
        self._generation = 0
        self._visible: np.ndarray | None = None
        self._highlight: np.ndarray | None = None
        self._cameras: list[Camera] = []
        self._frustum_depth = 0.1

        self._splats = gloo.Program(_shader("splat.vert"), _shader("splat.frag"))
        self._rows_texture: gloo.Texture2D | None = None
        self._corner_capacity = 0
        self._index_buffer: gloo.IndexBuffer | None = None
        self.level_of_detail = True
        self.lod_min_splats = LOD_MIN_SPLATS
        self.lod_budget: int | None = None  # splats drawn while moving; None: chosen from measured frame times
        self._lod_rows: np.ndarray | None = None  # the uploaded reduced order's rows (kept for inspection)
        self._lod_texture: gloo.Texture2D | None = None
        self._lod_index_buffer: gloo.IndexBuffer | None = None
        self._lod_count = 0  # splats in the uploaded reduced order; 0: none (draw every splat)
        self._pending_full: tuple[np.ndarray, int] | None = None  # full rows uploaded on the next full frame
        self._last_drawn_splats = 0
        self._ms_per_splat = 0.0  # smoothed cost of a full-resolution frame per splat drawn (full or reduced)
        self._splats["u_sh"] = gloo.Texture2D(np.zeros((1, 1, 3), np.float32), internalformat="rgb32f", interpolation="nearest")
        self._splats["u_sh_degree"] = 0
        self._drawn_count = 0
        self._drawn_generation = -1
        self._sorted_axis: np.ndarray | None = None
        self._sorted_eye: np.ndarray | None = None
        self._sh_generation = -1
        self._lines = gloo.Program(_shader("lines.vert"), _shader("lines.frag"))
        self._blit = gloo.Program(_shader("blit.vert"), _shader("blit.frag"))
        self._blit["a_position"] = _QUAD_CORNERS
        self._target_fbo: gloo.FrameBuffer | None = None
        self._target_shape = (0, 0)
        self.adaptive_resolution = True
        self._full_frame_ms = 0.0  # smoothed cost of a full-resolution frame
        self._last_motion = -1e9
        self._settle_timer = QtCore.QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(int(MOTION_SETTLE_S * 1000) + 20)
        self._settle_timer.timeout.connect(self._canvas.update)  # the full-resolution frame after moving
        self._line_count = 0
        self._max_texture_size: int | None = None  # known after the first draw

        self._worker = SortWorker(self._sort_ready.emit, self._sort_on_worker)
        self._awaiting_result = False  # a job was submitted and its result is not applied yet
        self._sort_ready.connect(self._apply_sort_result, QtCore.Qt.ConnectionType.QueuedConnection)
        self._last_sort_ms = 0.0
        self._last_job_ms = 0.0
        self._frame_ms: deque[float] = deque(maxlen=30)  # what the last frames cost to draw
        self._last_stats = 0.0

        self._press_pos = None
        self._last_pos = None
        self._held_keys: set[str] = set()
        self._fly_timer = QtCore.QTimer(self)
        self._fly_timer.setInterval(16)
        self._fly_timer.timeout.connect(self._fly_step)
        self._fly_clock = time.perf_counter()

        ev = self._canvas.events
        ev.draw.connect(self._on_draw)
        ev.mouse_press.connect(self._on_mouse_press)
        ev.mouse_move.connect(self._on_mouse_move)
        ev.mouse_release.connect(self._on_mouse_release)
        ev.mouse_wheel.connect(self._on_mouse_wheel)
        ev.key_press.connect(self._on_key_press)
        ev.key_release.connect(self._on_key_release)
        self._update_overlay()

    # ================================================================== public API
    def set_scene(self, scene: GaussianScene, frame: bool = True) -> None:
        """Show ``scene``; with ``frame`` the view moves to the opening view (``reset_view``)."""
        self._set_source(scene)
        if frame:
            self.reset_view()

    def update_scene(self, scene: GaussianScene) -> None:
        """Replace the splats but keep the view (training snapshots). Cheap on the GUI thread:
        packing and sorting happen on the worker; the old splats are drawn until then."""
        self._set_source(scene)

    def clear(self) -> None:
        self._source = None
        self._generation += 1
        self._visible = self._highlight = None
        self._drawn_count = 0
        self._lod_count = 0
        self._lod_rows = self._pending_full = None
        self._drawn_generation = self._generation
        self._update_overlay()
        self._canvas.update()

    def set_cameras(self, cameras: list[Camera]) -> None:
        self._cameras = list(cameras)
        self._frustum_depth = frustum_depth(self._cameras, self._view.scene_radius)
        lines = frustum_lines(self._cameras, self._frustum_depth)
        self._line_count = len(lines)
        if self._line_count:
            colors = np.tile(np.array(FRUSTUM_COLOR, np.float32), (self._line_count, 1))
            self._lines["a_position"] = gloo.VertexBuffer(lines)
            self._lines["a_color"] = gloo.VertexBuffer(colors)
        self._canvas.update()

    def frame_all(self) -> None:
        center, radius = self._scene_sphere()
        w, h = self._size()
        self._view.frame(center, radius, w, h)
        if self._cameras:
            self.set_cameras(self._cameras)
        self._canvas.update()

    def reset_view(self) -> None:
        """The opening view. With input cameras: the first photo's viewpoint and lens (unlike bounds, a
        photo's viewpoint is never fooled by far-away background Gaussians). Without: looking along +z
        with the default lens, framing the bulk of the scene."""
        if not self._cameras:
            self._view.R = np.eye(3)
            self._view.up = np.array([0.0, -1.0, 0.0])
            self._view.relative_intrinsics = None
            self.frame_all()
            return
        center, radius = self._scene_sphere()
        self._view.scene_radius = radius
        self._view.pivot = center  # the orbit pivot goes in front of the photo at the scene's distance
        self._view.set_camera(self._cameras[0])
        self.set_cameras(self._cameras)  # frustum size follows the scene radius

    def view_camera(self, camera: Camera) -> None:
        """Make the view exactly ``camera`` (its intrinsics scaled to this widget's size)."""
        self._view.set_camera(camera)
        self._canvas.update()

    def current_camera(self) -> Camera:
        w, h = self._size()
        return self._view.camera(w, h)

    def grab(self, wait_for_sort: bool = True, timeout: float = 10.0) -> np.ndarray:
        """(H, W, 3) uint8 read back from the GL framebuffer after a draw; by default waits
        (up to ``timeout`` s) until the splats are sorted for the current view first."""
        if wait_for_sort:
            self.wait_until_sorted(timeout)
        self._last_motion = -1e9  # a screenshot is always drawn at full resolution
        image = self._canvas.render(alpha=False)
        return np.ascontiguousarray(image[..., :3])

    def wait_until_sorted(self, timeout: float = 10.0) -> bool:
        """Block until the latest scene is uploaded in the order for the current view (tests, screenshots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._request_sort_if_needed()
            self._worker.wait_idle(max(0.0, deadline - time.monotonic()))
            QtCore.QCoreApplication.processEvents()
            QtCore.QCoreApplication.sendPostedEvents()
            if not self._needs_sort() and not self._awaiting_result:
                return True
            time.sleep(0.002)
        return False

    def set_highlight(self, mask: np.ndarray | None) -> None:
        """Tint the splats where ``mask`` is True (None clears)."""
        self._highlight = None if mask is None else self._checked_mask(mask).astype(np.float32)
        self._generation += 1
        self._request_sort_if_needed()

    def set_visible_mask(self, mask: np.ndarray | None) -> None:
        """Hide splats where ``mask`` is False (None shows all); nothing is re-packed, only re-ordered."""
        self._visible = None if mask is None else self._checked_mask(mask)
        self._generation += 1
        self._request_sort_if_needed()

    @property
    def canvas(self):
        return self._canvas

    @property
    def splat_count(self) -> int:
        return 0 if self._source is None else self._source.count

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._worker.stop()
        super().closeEvent(event)

    # ================================================================== scene + sorting
    def _set_source(self, scene: GaussianScene) -> None:
        self._generation += 1
        self._source = _SceneSource(scene.detach(), self._generation)
        if self._visible is not None and len(self._visible) != len(scene):
            self._visible = None
        if self._highlight is not None and len(self._highlight) != len(scene):
            self._highlight = None
        self._request_sort_if_needed()

    def _checked_mask(self, mask) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool).reshape(-1)
        if self._source is None or len(mask) != self._source.count:
            raise ValueError(f"mask has {len(mask)} entries but the scene has {self.splat_count} splats")
        return mask

    def _scene_sphere(self) -> tuple[np.ndarray, float]:
        """The sphere around the bulk of the splats (floaters left out), else around the cameras."""
        if self._source is not None and self._source.count:
            return bounding_sphere(*bulk_bounds(self._source.scene))
        if self._cameras:
            return bounding_sphere(*weighted_bounds(np.array([c.center for c in self._cameras]), coverage=1.0))
        return np.zeros(3), 1.0

    def _needs_sort(self) -> bool:
        if self._source is None:
            return False
        if self._drawn_generation != self._generation or self._sorted_axis is None:
            return True
        cos = float(np.clip(self._sorted_axis @ self._view.R[2], -1, 1))
        if math.degrees(math.acos(cos)) > RESORT_ANGLE_DEG:
            return True
        # the order only depends on the axis, but the reduced order ranks by distance too
        if self._lod_count and self._sorted_eye is not None:
            moved = float(np.linalg.norm(self._view.center - self._sorted_eye))
            return moved > LOD_RESORT_MOVE * self._view.scene_radius
        return False

    def _request_sort_if_needed(self) -> None:
        if self._awaiting_result or not self._needs_sort():
            return
        self._awaiting_result = True
        self._worker.submit(self._sort_job())

    def _sort_job(self) -> SortJob:
        """The sort the current scene, masks and view need."""
        src = self._source
        return SortJob(
            generation=self._generation,
            packed=src.rows,
            R=self._view.R.copy(),
            t=self._view.t.copy(),
            visible=self._visible,
            highlight=self._highlight,
            highlight_column=splat_data.COL_HIGHLIGHT,
            pad_multiple=splat_data.SPLATS_PER_TEXTURE_ROW,
            extra=src,
            lod_budget=self._lod_budget(),
            near=max(self._view.near_far()[0], 0.01),
            planes=self._world_side_planes(),
        )

    def _world_side_planes(self) -> np.ndarray:
        """The view's four image-border planes in world space, rows (n, d) with n . x + d >= 0 inside."""
        cam = self.current_camera()
        normals = side_planes(cam)[:, :3]  # OpenCV camera space: n . (R x + t)
        return np.column_stack([normals @ cam.R, normals @ cam.t])

    def _lod_budget(self) -> int:
        """Splats a moving frame can afford, from the measured cost of the last full frames (0: all)."""
        src = self._source
        if not self.level_of_detail or src is None or src.count < self.lod_min_splats:
            return 0
        if self.lod_budget is not None:
            return self.lod_budget if 0 < self.lod_budget < src.count else 0
        # the reduced orders favour large splats, so their frames measure their own cost per splat
        per_splat = self._ms_per_splat or self._full_frame_ms / src.count
        if per_splat * src.count <= LOD_FRAME_MS:
            return 0
        budget = max(int(LOD_FRAME_MS / per_splat), int(LOD_MIN_FRACTION * src.count))
        return budget if budget < src.count else 0

    def _sort_on_worker(self, job: SortJob) -> SortResult | None:
        try:
            result = sort_and_gather(job)
            job.extra.sh_texture(self._max_texture_size or 8192)  # made here so the GUI thread only uploads
            return result
        except Exception:  # keep drawing the previous order rather than stop the viewer
            logger.exception("preparing splats for drawing failed")
            return None

    @QtCore.Slot(object)
    def _apply_sort_result(self, result: SortResult) -> None:
        self._awaiting_result = False
        if result is None:
            return
        src: _SceneSource = result.extra
        if src is not self._source:
            self._canvas.update()  # a newer scene (or clear) replaced this one meanwhile
            return
        if src.generation != self._sh_generation:
            tex = src.sh_texture(self._max_texture_size or 8192)
            if tex is None:
                self._splats["u_sh_degree"] = 0
            else:
                self._splats["u_sh"] = gloo.Texture2D(tex, internalformat="rgb32f", interpolation="nearest")
                self._splats["u_sh_degree"] = src.sh_degree
            self._sh_generation = src.generation
        if result.lod_rows is not None:
            # moving frames draw the reduced order at once; the full rows wait for a full frame
            self._lod_texture = self._upload_texture(self._lod_texture, result.lod_rows)
            self._lod_index_buffer = self._index_buffer_for(self._lod_index_buffer, result.lod_count)
            self._lod_count = result.lod_count
            self._lod_rows = result.lod_rows
            self._drawn_count = result.count
            self._pending_full = (result.rows, result.count)
        else:
            self._lod_count = 0
            self._lod_rows = self._pending_full = None
            self._upload_rows(result.rows, result.count)
        self._drawn_generation = result.generation
        self._sorted_axis = np.asarray(result.R[2], dtype=np.float64)
        self._sorted_eye = -np.asarray(result.R, dtype=np.float64).T @ np.asarray(result.t, dtype=np.float64)
        self._last_sort_ms = result.sort_ms
        self._last_job_ms = result.total_ms
        self._update_overlay()
        self._canvas.update()

    def _upload_rows(self, rows: np.ndarray, count: int) -> None:
        self._drawn_count = count
        if not count:
            return
        self._rows_texture = self._upload_texture(self._rows_texture, rows)
        self._index_buffer = self._index_buffer_for(self._index_buffer, count)

    @staticmethod
    def _upload_texture(texture: gloo.Texture2D | None, rows: np.ndarray) -> gloo.Texture2D:
        texels = np.ascontiguousarray(rows).reshape(-1, 4 * splat_data.SPLATS_PER_TEXTURE_ROW, 4)
        if texture is None:
            return gloo.Texture2D(texels, internalformat="rgba32f", interpolation="nearest")
        texture.set_data(texels)
        return texture

    def _index_buffer_for(self, buffer: gloo.IndexBuffer | None, count: int) -> gloo.IndexBuffer:
        if count > self._corner_capacity:  # static corner attribute, grown by doubling
            self._corner_capacity = max(count, 2 * self._corner_capacity)
            self._splats["a_corner"] = gloo.VertexBuffer(np.tile(_TRIANGLE_CORNERS, (self._corner_capacity, 1)))
        if buffer is None or buffer.size != 3 * count:  # vispy draws as many vertices as the index buffer lists
            buffer = gloo.IndexBuffer(np.arange(3 * count, dtype=np.uint32))
        return buffer

    # ================================================================== drawing
    def _size(self) -> tuple[int, int]:
        w, h = self._canvas.physical_size
        return max(int(w), 1), max(int(h), 1)

    def _on_draw(self, event) -> None:
        if self._max_texture_size is None:
            self._max_texture_size = int(gl.glGetParameter(gl.GL_MAX_TEXTURE_SIZE))
        start = time.perf_counter()
        w, h = self._size()
        cam = self.current_camera()
        near, far = self._view.near_far()
        lod = self._draws_lod()
        scale = self._draw_scale()
        gloo.set_state(depth_test=False, blend=True, blend_func=("one", "one_minus_src_alpha"), cull_face=False)
        drawn = cam if scale >= 1.0 else cam.resized(max(1, round(w * scale)), max(1, round(h * scale)))
        with self._draw_target(drawn.width, drawn.height):
            self._draw_splats(drawn, near, far, lod)
        gloo.set_viewport(0, 0, w, h)
        gloo.set_state(blend=False)
        self._blit.draw("triangle_strip")
        if self._line_count:
            gloo.set_state(blend=False)
            self._lines["u_viewmat"] = gl_uniform(cam.world_to_camera)
            self._lines["u_cam_to_clip"] = gl_uniform(opencv_to_gl_clip(cam, near, far))
            self._lines.draw("lines")
        gl.glFinish()  # GL (llvmpipe too) draws asynchronously: finish to learn what a frame costs
        frame_ms = (time.perf_counter() - start) * 1000
        self._frame_ms.append(frame_ms)
        if scale == 1.0 and (self.adaptive_resolution or self.level_of_detail):
            if not lod:
                self._full_frame_ms = 0.7 * self._full_frame_ms + 0.3 * frame_ms
            if self._last_drawn_splats:
                per_splat = frame_ms / self._last_drawn_splats
                self._ms_per_splat = 0.7 * self._ms_per_splat + 0.3 * per_splat if self._ms_per_splat else per_splat
        self._request_sort_if_needed()
        self._emit_stats()
        self.drawn.emit()

    def _draw_splats(self, cam: Camera, near: float, far: float, lod: bool = False) -> None:
        gloo.set_viewport(0, 0, cam.width, cam.height)
        gloo.clear(color=self.background + (1.0,))
        self._last_drawn_splats = 0
        if self._source is None or not self._drawn_count:
            return
        p = self._splats
        if lod:
            p["u_rows"], indices, self._last_drawn_splats = self._lod_texture, self._lod_index_buffer, self._lod_count
        else:
            if self._pending_full is not None:
                self._upload_rows(*self._pending_full)
                self._pending_full = None
            p["u_rows"], indices, self._last_drawn_splats = self._rows_texture, self._index_buffer, self._drawn_count
        p["u_viewmat"] = gl_uniform(cam.world_to_camera)
        p["u_cam_to_clip"] = gl_uniform(opencv_to_gl_clip(cam, near, far))
        p["u_side_planes"] = gl_uniform(side_planes(cam))
        p["u_intrinsics"] = (cam.fx, cam.fy, cam.cx, cam.cy)
        p["u_size"] = (float(cam.width), float(cam.height))
        p["u_eye"] = tuple(cam.center)
        p["u_near"] = max(near, 0.01)
        p.draw("triangles", indices)

    # While the view moves, frames slower than the target are drawn at a lower resolution and
    # scaled up (fragment work falls with the pixel count); the still view is always full size.
    def _draw_scale(self) -> float:
        if not self.adaptive_resolution or not self._is_moving():
            return 1.0
        expected_ms = self._full_frame_ms
        if self._draws_lod():
            expected_ms = (self._ms_per_splat * self._lod_count) or expected_ms * self._lod_count / max(self._drawn_count, 1)
        if expected_ms <= FRAME_BUDGET_MS:
            return 1.0
        return float(np.clip(math.sqrt(FRAME_BUDGET_MS / expected_ms), MIN_DRAW_SCALE, 1.0))

    def _is_moving(self) -> bool:
        return time.perf_counter() - self._last_motion <= MOTION_SETTLE_S

    def _draws_lod(self) -> bool:
        """A moving view with a reduced order ready draws that instead of every splat."""
        return self.level_of_detail and self._lod_count > 0 and self._is_moving()

    def _draw_scale_when_moving(self) -> float:
        last, self._last_motion = self._last_motion, time.perf_counter()
        try:
            return self._draw_scale()
        finally:
            self._last_motion = last

    def _note_motion(self) -> None:
        self._last_motion = time.perf_counter()
        self._settle_timer.start()

    def _draw_target(self, width: int, height: int) -> gloo.FrameBuffer:
        """A half-float colour buffer the splats blend into, then copied to the window (scaled up when
        drawn small). An 8-bit window buffer would clamp every splat's colour to 1 before blending,
        where the reference renderer (and gsplat) only clamp the final pixel: bright view-dependent
        colours came out too dark."""
        if self._target_fbo is None or self._target_shape != (height, width):
            color = gloo.Texture2D((height, width, 4), format="rgba", internalformat="rgba16f",
                                   interpolation="linear")
            self._target_fbo = gloo.FrameBuffer(color)
            self._blit["u_image"] = color
            self._target_shape = (height, width)
        return self._target_fbo

    def fps(self) -> float:
        """Frames a second the view draws at, from what its last frames cost. The view draws on demand
        (nothing while it is still), so counting frames in the last second read 0 whenever it was still."""
        if not self._frame_ms:
            return 0.0
        return 1000.0 / max(float(np.median(self._frame_ms)), 1e-3)

    def _emit_stats(self) -> None:
        now = time.perf_counter()
        if now - self._last_stats < 0.5:
            return
        self._last_stats = now
        self._update_overlay()
        self.stats_changed.emit(
            {"fps": self.fps(), "splats": self.splat_count, "drawn": self._last_drawn_splats, "sort_ms": self._last_sort_ms}
        )

    def _update_overlay(self) -> None:
        drawn = self._last_drawn_splats
        reduced = f" (moving: {drawn:,} drawn)" if 0 < drawn < self.splat_count else ""
        self._overlay.setText(f"{self.splat_count:,} splats{reduced}   {self.fps():.1f} fps   sort {self._last_sort_ms:.1f} ms")
        self._overlay.adjustSize()
        self._overlay.raise_()

    # ================================================================== input
    def _pixel_scale(self) -> float:
        return float(self._canvas.pixel_scale) or 1.0

    def _on_mouse_press(self, event) -> None:
        self._press_pos = self._last_pos = np.asarray(event.pos, dtype=np.float64)

    def _on_mouse_move(self, event) -> None:
        if self._last_pos is not None and event.is_dragging:
            self._drag_to(np.asarray(event.pos, dtype=np.float64), event.button, event.modifiers)

    def _drag_to(self, pos: np.ndarray, button, modifiers) -> None:
        # vispy drops moves closer than 10 ms apart; deltas come from absolute positions, so none is lost
        dx, dy = (pos - self._last_pos) * self._pixel_scale()
        self._last_pos = pos
        if dx == 0 and dy == 0:
            return
        shift = "Shift" in [getattr(k, "name", k) for k in (modifiers or ())]
        if button == 1 and not shift:
            self._view.orbit(dx, dy)
        else:
            self._view.pan(dx, dy, self.current_camera().fy)
        self._note_motion()
        self._canvas.update()

    def _on_mouse_release(self, event) -> None:
        pos = np.asarray(event.pos, dtype=np.float64)
        if self._press_pos is not None and event.button == 1 and np.abs(pos - self._press_pos).max() <= CLICK_SLOP_PX:
            self.click_at(*(pos * self._pixel_scale()))
        elif self._last_pos is not None:
            self._drag_to(pos, event.button, event.modifiers)
        self._press_pos = self._last_pos = None

    def click_at(self, x: float, y: float) -> int | None:
        """Treat a click at pixel (x, y): if it hits a camera frustum, view that camera and emit
        ``camera_clicked``; returns the camera index or None."""
        index = pick_frustum(self._cameras, self._frustum_depth, self.current_camera(), x, y)
        if index is not None:
            self.view_camera(self._cameras[index])
            self.camera_clicked.emit(index)
        return index

    def _on_mouse_wheel(self, event) -> None:
        self._view.zoom(float(event.delta[1]))
        self._note_motion()
        self._canvas.update()

    def _on_key_press(self, event) -> None:
        name = getattr(event.key, "name", None)
        if name in FLY_KEYS:
            if not self._held_keys:
                self._fly_clock = time.perf_counter()
                self._fly_timer.start()
            self._held_keys.add(name)
        elif name == "F":
            self.frame_all()
        elif name in ("R", "Home"):
            self.reset_view()

    def _on_key_release(self, event) -> None:
        self._held_keys.discard(getattr(event.key, "name", None))
        if not self._held_keys:
            self._fly_timer.stop()

    def _fly_step(self) -> None:
        now = time.perf_counter()
        dt, self._fly_clock = min(now - self._fly_clock, 0.1), now
        move = np.sum([FLY_KEYS[k] for k in self._held_keys], axis=0) if self._held_keys else np.zeros(3)
        self._view.fly(*move, seconds=dt)
        self._note_motion()
        self._canvas.update()
