"""The window with the real splat viewer (OpenGL under Xvfb): box select and delete on what is drawn,
and live snapshots streaming into the view without long stalls of the GUI thread."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

# As in tests/test_viewer.py: the GL canvas needs X (conftest defaults to offscreen); decide before Qt starts.
_SKIP_REASON = None
if not os.environ.get("DISPLAY"):
    _SKIP_REASON = "GL window tests need an X display: run under xvfb-run -a"
else:
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    elif QApplication.instance().platformName() != "xcb":
        _SKIP_REASON = f"a QApplication already runs on {QApplication.instance().platformName()!r}; GL tests need xcb"

pytestmark = [pytest.mark.gl, pytest.mark.filterwarnings("ignore:Function.*deprecated:DeprecationWarning"),
              pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")]

from engine import events as ev  # noqa: E402
from engine.io import save_scene  # noqa: E402
from engine.camera_projection import project_points  # noqa: E402
from engine.edit.selectors import rect_mask  # noqa: E402
from tests.factories import random_scene  # noqa: E402
from tests.scene_objects import CLICK_POINTS, front_camera, objects_scene  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow, PlaceholderViewer
    from app.settings import Settings

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    w = MainWindow(settings=settings)
    if isinstance(w.viewer, PlaceholderViewer):
        pytest.skip(f"the splat viewer is unavailable: {w.viewer.reason}")
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.runner.cancel()
    w.runner.wait(30000)
    w.session.set_scene(None)  # no unsaved-edits question at close
    w.close()


def test_box_select_and_delete_on_the_drawn_view(qtbot, window, tmp_path):
    from PySide6.QtCore import QRect

    path = tmp_path / "cube.ply"
    save_scene(random_scene(4000, sh_degree=0, seed=5), path)
    with qtbot.waitSignal(window.viewer.drawn, timeout=10000):
        assert window.open_scene(path)
    target = window.select_tool.target
    camera = window.viewer.current_camera()
    # the left half of the view, in widget coordinates
    rect = QRect(0, 0, target.width() // 2, target.height())
    count = window.select_tool.select_rect(rect)
    sx = camera.width / target.width()
    expected = rect_mask(window.session.scene.means.numpy(), camera, (0, 0, rect.width() * sx, camera.height))
    assert count == int(expected.sum()) and 0.2 * 4000 < count < 0.8 * 4000
    assert np.array_equal(window.session.selection, expected)
    window.delete_selected()
    assert window.session.num_visible == 4000 - count
    assert window.viewer.wait_until_sorted(60)
    after_delete = window.viewer.grab()
    window.undo_action.trigger()
    assert window.viewer.wait_until_sorted(60)
    restored = window.viewer.grab()
    h, w = after_delete.shape[:2]
    left = (slice(h // 4, 3 * h // 4), slice(w // 8, 3 * w // 8))
    # the deleted half goes dark, and comes back on undo
    assert after_delete[left].mean() < 0.5 * restored[left].mean()


def test_clicking_each_object_in_the_view_selects_and_highlights_it(qtbot, window, tmp_path):
    """A synthetic scene of known objects: a real mouse click on each, through the GL viewer's canvas."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    path = tmp_path / "objects.ply"
    save_scene(objects_scene(per_object=300), path)
    with qtbot.waitSignal(window.viewer.drawn, timeout=10000):
        assert window.open_scene(path)
    window.viewer.view_camera(front_camera())
    assert window.viewer.wait_until_sorted(60)
    target = window.select_tool.target
    camera = window.viewer.current_camera()
    ids = window.session.doc.group_ids
    scale = camera.width / target.width()
    for gid, point in CLICK_POINTS.items():
        uv, _ = project_points(np.asarray(point, dtype=np.float64)[None], camera)
        pos = QPoint(int(uv[0, 0] / scale), int(uv[0, 1] / scale))
        QTest.mouseClick(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        assert np.array_equal(window.session.selection, ids == gid), gid
        assert window.viewer._highlight is not None and np.array_equal(window.viewer._highlight > 0, ids == gid)
    # the move gizmo over the GL view: a drag along x previews in the view, then makes one edit
    gizmo = window.edit_actions.gizmo
    window.edit_actions.move.trigger()
    assert gizmo.mode == "move" and gizmo._overlay.isVisible()
    before = window.session.doc.arrays["means"].copy()
    _, parts = gizmo.handles()
    a, b = dict(parts)[0]
    start = QPoint(*np.round(a + 0.7 * (b - a)).astype(int))
    end = start + QPoint(*np.round(30 * (b - a) / np.linalg.norm(b - a)).astype(int))
    QTest.mousePress(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 6):
        QTest.qWait(70)
        QTest.mouseMove(target, start + (end - start) * i / 5)
    drawn = window.viewer._source.scene.means.numpy()
    assert (drawn[ids == 3, 0] > before[ids == 3, 0]).all()  # the preview is drawn, the document unchanged
    assert np.array_equal(window.session.doc.arrays["means"], before)
    QTest.mouseRelease(target, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    moved = window.session.doc.arrays["means"] - before
    assert (moved[ids == 3, 0] > 0).all() and np.allclose(moved[ids != 3], 0)
    assert np.array_equal(window.viewer._source.scene.means.numpy(), window.session.doc.arrays["means"])
    assert window.viewer.wait_until_sorted(60)
    window.edit_actions.move.trigger()
    assert gizmo.mode is None
    # the Objects panel's row for the last one, and Delete removes it from the drawn view
    assert window.objects_panel.item_for(3) is not None
    window.delete_action.trigger()
    assert not window.viewer._visible[ids == 3].any() and window.viewer._visible[ids != 3].all()


def test_a_new_scene_of_the_same_size_starts_shown_and_unselected(qtbot, window, tmp_path):
    from engine.edit import Delete, Select

    first, second = tmp_path / "a.ply", tmp_path / "b.ply"
    save_scene(random_scene(500, sh_degree=0, seed=1), first)
    save_scene(random_scene(500, sh_degree=0, seed=2), second)
    assert window.open_scene(first)
    window.session.apply(Select.indices(range(100)))
    window.session.apply(Delete())
    window.session.apply(Select.indices([200]))
    assert window.viewer._visible is not None and window.viewer._highlight is not None
    window.session.mark_saved()
    assert window.open_scene(second)
    assert window.viewer._visible is None and window.viewer._highlight is None


def streaming_job(inputs, out_dir, options, *, emit, cancel):
    """Snapshots of a growing scene as fast as they can be made (module level: runs in a job process).
    Small splats, as in a trained scene: big ones would measure Mesa's software rasteriser instead."""
    from engine.scene import GaussianScene

    emit(ev.StageStarted("train", 0, 1))
    end = time.time() + options["seconds"]
    step = 0
    rng = np.random.default_rng(0)
    while time.time() < end and not cancel.cancelled:
        n = options["splats"] + step
        scene = GaussianScene.from_points(rng.uniform(-1, 1, (n, 3)), rng.uniform(0, 1, (n, 3)), scale=0.01,
                                          opacity=0.8)
        emit(ev.Snapshot(scene, step))
        emit(ev.Progress("train", step, 10_000))
        step += 1
    return None


def test_streamed_snapshots_keep_the_gui_thread_responsive(qtbot, window):
    """Between ticks of a 10 ms timer the GUI thread does the app's work plus GL draws. Under Xvfb the
    draws run on Mesa's software rasteriser (100-400 ms for 30k splats on 2 shared cores; about a
    millisecond on a GPU), so they are timed separately and printed. What is asserted is structural, not a
    time budget (which a loaded machine can break): the GUI thread kept serving its timer while the snapshots
    streamed in, at least once per snapshot shown."""
    from PySide6.QtCore import QTimer

    viewer = window.viewer
    drawing = {"total": 0.0}
    original_draw = viewer._on_draw

    def timed_draw(event):
        t0 = time.perf_counter()
        original_draw(event)
        drawing["total"] += time.perf_counter() - t0

    viewer.canvas.events.draw.disconnect(original_draw)
    viewer.canvas.events.draw.connect(timed_draw)
    window.runner._job_fn = streaming_job
    gaps, app_work = [], []
    last = {"t": time.perf_counter(), "draw": 0.0}

    def tick():
        now = time.perf_counter()
        gap = now - last["t"]
        gaps.append(gap)
        app_work.append(gap - (drawing["total"] - last["draw"]))
        last["t"], last["draw"] = now, drawing["total"]

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    shown = []
    shown_at = []  # the number of timer ticks served when each snapshot was shown
    window.scene_shown.connect(lambda scene: (shown.append(len(scene)), shown_at.append(len(gaps))))
    with qtbot.waitSignal(window.runner.snapshot, timeout=60000):
        window.runner.start([], window.settings.projects_folder / "stream", {"seconds": 4.0, "splats": 30000})
    timer.start()
    last["t"], last["draw"] = time.perf_counter(), drawing["total"]
    with qtbot.waitSignal(window.runner.running_changed, timeout=60000, check_params_cb=lambda r: r is False):
        pass
    timer.stop()
    assert len(shown) >= 5
    gaps.sort()
    app_work.sort()
    print(f"GUI ticks {len(gaps)}; gaps median {gaps[len(gaps) // 2] * 1000:.0f} ms, max {gaps[-1] * 1000:.0f} ms; "
          f"without GL draws p95 {app_work[int(len(app_work) * 0.95)] * 1000:.0f} ms, "
          f"max {app_work[-1] * 1000:.0f} ms; snapshots shown {len(shown)}")
    # the timer kept ticking while snapshots streamed in: at least once per snapshot shown
    assert shown_at[-1] - shown_at[0] >= len(shown) - 1, shown_at
