"""The app's editing adapter (offscreen): tools map widget pixels to the engine's selections, the Objects
panel, keys, projects and the unsaved-edits question. The engine's edit maths is tested in test_edit_document."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRect, QSettings, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QWidget

from app.editing import EditSession, SelectionTools
from engine.camera_projection import project_points
from engine.edit import Delete, Select
from engine.io import load_scene, save_scene
from engine.io.project import save_project
from engine.scene import Camera, GaussianScene
from tests.factories import random_scene
from tests.scene_objects import CLICK_POINTS, OBJECTS, front_camera, objects_scene


def line_camera(width=200, height=100):
    # at z=-5 looking along +z (world), y down
    return Camera.look_at(np.array([0.0, 0.0, -5.0]), np.zeros(3), up=(0, -1, 0), fx=100, fy=100,
                          cx=width / 2, cy=height / 2, width=width, height=height)


class CameraView(QWidget):
    """A widget that reports a fixed view camera (the viewer's contract for the selection tools)."""

    def __init__(self, camera, dpr: int = 2):
        super().__init__()
        self.camera = camera
        self.resize(camera.width // dpr, camera.height // dpr)  # a high-DPI screen: image px = 2 widget px

    def current_camera(self):
        return self.camera


def test_rect_tool_maps_widget_rect_to_camera_pixels_and_modes(qtbot):
    cam = line_camera()
    view = CameraView(cam)
    qtbot.addWidget(view)
    session = EditSession()
    xs = np.linspace(-4.5, 4.5, 10)
    scene = GaussianScene.from_points(np.stack([xs, np.zeros(10), np.zeros(10)], 1), np.full((10, 3), 0.5))
    session.set_scene(scene)
    tool = SelectionTools(view, session)
    uv, _ = project_points(scene.means, cam)
    # the left half of the widget (50 x 50 logical px) is the left half of the camera image (100 x 100)
    count = tool.select_rect(QRect(0, 0, 50, 50))
    assert count == int((uv[:, 0] <= 100).sum()) == 5
    assert session.selection.tolist() == (uv[:, 0] <= 100).tolist()
    tool.select_rect(QRect(50, 0, 25, 50), "add")
    assert session.num_selected == int((uv[:, 0] <= 150).sum())
    tool.select_rect(QRect(0, 0, 25, 50), "subtract")
    assert session.selection.tolist() == ((uv[:, 0] > 50) & (uv[:, 0] <= 150)).tolist()
    session.undo()
    assert session.num_selected == int((uv[:, 0] <= 150).sum())


def _widget_point(point, cam, dpr=2) -> QPoint:
    uv, _ = project_points(np.asarray(point, dtype=np.float64)[None], cam)
    return QPoint(int(uv[0, 0] / dpr), int(uv[0, 1] / dpr))


def test_mouse_clicks_pick_objects_and_drags_draw_shapes(qtbot):
    cam = front_camera()
    view = CameraView(cam)
    qtbot.addWidget(view)
    view.show()
    session = EditSession()
    session.set_scene(objects_scene(per_object=150))
    ids = session.doc.group_ids
    tool = SelectionTools(view, session)
    for gid, point in CLICK_POINTS.items():
        QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _widget_point(point, cam))
        assert np.array_equal(session.selection, ids == gid), gid
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     _widget_point(CLICK_POINTS[1], cam))
    assert set(np.unique(ids[session.selection])) == {1, 3}
    # a lasso around the red cube's projected centre region, drawn with the mouse
    tool.set_tool("lasso")
    centre = _widget_point(CLICK_POINTS[1], cam)
    corners = [centre + QPoint(dx, dy) for dx, dy in ((-6, -6), (6, -6), (6, 6), (-6, 6))]
    QTest.mousePress(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, corners[0])
    for p in corners[1:]:
        QTest.mouseMove(view, p)
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, corners[-1])
    polygon = [(2 * p.x(), 2 * p.y()) for p in corners]
    from engine.edit.selectors import lasso_mask

    expected = lasso_mask(session.doc.arrays["means"], cam, polygon)
    assert expected.sum() > 10 and np.array_equal(session.selection, expected)


def test_objects_panel_lists_groups_selects_hides_and_renames(qtbot):
    from app.objects_panel import ObjectsPanel
    from engine.edit.groups import Group

    session = EditSession()
    panel = ObjectsPanel(session)
    qtbot.addWidget(panel)
    assert panel.tree.topLevelItemCount() == 0
    session.set_scene(objects_scene(per_object=40), {1: Group("red cube", (0.9, 0.1, 0.1))})
    tree = panel.tree
    assert tree.topLevelItemCount() == len(OBJECTS)
    item = panel.item_for(1)
    assert item.text(0) == "red cube" and item.text(1) == "40"
    assert item.checkState(0) == Qt.CheckState.Checked
    panel._on_item_clicked(item, 0)
    assert np.array_equal(session.selection, session.doc.group_ids == 1)
    session.apply(Delete())
    assert panel.item_for(1).text(1) == "0"
    session.undo()
    panel.item_for(2).setCheckState(0, Qt.CheckState.Unchecked)  # hide the sphere
    assert not session.doc.visible[session.doc.group_ids == 2].any()
    assert panel.item_for(2).checkState(0) == Qt.CheckState.Unchecked
    panel.item_for(3).setText(0, "blue box")
    assert session.doc.groups[3].name == "blue box" and panel.item_for(3).text(0) == "blue box"
    session.undo()
    assert panel.item_for(3).text(0) != "blue box"
    session.undo()
    assert panel.item_for(2).checkState(0) == Qt.CheckState.Checked


def test_scene_without_groups_lists_one_scene_object(qtbot):
    from app.objects_panel import ObjectsPanel

    session = EditSession()
    panel = ObjectsPanel(session)
    qtbot.addWidget(panel)
    session.set_scene(random_scene(30, sh_degree=0))
    assert panel.tree.topLevelItemCount() == 1 and panel.tree.topLevelItem(0).text(0) == "Scene"


# ---------------------------------------------------------------------------------------- the window


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HANDFUL_NO_GL", "1")
    from app.main_window import MainWindow
    from app.settings import Settings

    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    yield w
    w.session.set_scene(None)


def test_no_two_actions_share_a_key_and_supersplat_keys_are_bound(window):
    from PySide6.QtGui import QAction

    owners = {}
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            key = seq.toString(QKeySequence.SequenceFormat.PortableText)
            assert key not in owners, f"{key} is bound to {owners[key]!r} and {action.text()!r}"
            owners[key] = action.text()
    e = window.edit_actions
    expected = {"Ctrl+Z": e.undo, "Ctrl+Shift+Z": e.redo, "Ctrl+A": e.select_all, "Ctrl+Shift+A": e.select_none,
                "Ctrl+I": e.invert, "Del": e.delete, "Backspace": e.delete, "H": e.hide, "Shift+H": e.show_all,
                "R": e.rect_tool, "L": e.lasso_tool, "B": e.brush_tool, "1": e.move, "2": e.rotate, "3": e.scale,
                "Ctrl+D": e.duplicate, "Shift+I": e.isolate, "Ctrl+T": e.transform_dialog}
    for key, action in expected.items():
        assert owners.get(key) == action.text(), key


def test_edits_without_a_selection_say_so_in_the_status_bar(window):
    window.session.set_scene(random_scene(20, sh_degree=0))
    window.edit_actions.hide.setEnabled(True)  # the key works even where the menu item greys out
    window.edit_actions.hide.trigger()
    assert "Nothing is selected" in window.statusBar().currentMessage()
    assert not window.session.doc.can_undo


def _answer(monkeypatch, button):
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return button

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


def test_unsaved_edits_are_asked_about_on_close_and_on_opening_another_file(window, monkeypatch, tmp_path):
    window.session.set_scene(random_scene(20, sh_degree=0))
    window.session.select_all()
    asked = _answer(monkeypatch, QMessageBox.StandardButton.Cancel)
    assert window.close()  # selection changes are not edits: no question
    assert not asked
    window.show()
    window.session.apply(Delete())
    assert not window.close() and len(asked) == 1 and "not saved" in asked[0]
    other = tmp_path / "other.ply"
    save_scene(random_scene(10, sh_degree=0), other)
    assert not window.open_scene(other) and len(asked) == 2
    assert window.session.doc.num_kept == 0  # the edited scene stays
    # Save writes the edited scene, then the window closes
    _answer(monkeypatch, QMessageBox.StandardButton.Save)
    out = tmp_path / "kept.ply"
    monkeypatch.setattr("app.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), ""))
    window.session.undo()
    window.session.apply(Select.indices([0, 1, 2]))
    window.session.apply(Delete())
    assert window.close()
    assert len(load_scene(out)) == 17


def test_project_opens_with_undo_and_a_corrupt_one_keeps_the_open_scene(window, tmp_path):
    from engine.edit import SceneDocument

    doc = SceneDocument(objects_scene(per_object=30))
    doc.apply(Select.group(2))
    doc.apply(Delete())
    path = save_project(tmp_path / "s.handfulproj", doc, [front_camera()])
    assert window.open_scene(path)
    s = window.session
    assert s.doc.num_kept == 90 and s.doc.can_undo and not s.modified
    assert window.windowTitle().startswith("s.handfulproj")
    window.undo_action.trigger()
    assert s.doc.num_kept == 120 and s.modified
    # save back into the project, reopen: the undo is still there
    assert window.save()
    assert window.open_scene(path)
    assert window.session.doc.num_kept == 120 and window.session.doc.can_redo
    bad = tmp_path / "bad.handfulproj"
    bad.write_bytes(path.read_bytes()[:200])
    current = window.session.doc
    assert not window.open_scene(bad)
    assert window.session.doc is current
    text = window.banner.label.text()
    assert "bad.handfulproj" in text and "not a readable Handful project" in text and "Traceback" not in text


def test_save_and_export_write_the_edited_scene(window, tmp_path):
    src = tmp_path / "objects.ply"
    save_scene(objects_scene(per_object=25), src)
    assert window.open_scene(src)
    window.session.apply(Select.group(1))
    window.session.apply(Delete())
    assert window.save_to(tmp_path / "out.ply")
    saved = load_scene(tmp_path / "out.ply")
    assert len(saved) == 75 and 1 not in set(saved.group_ids.tolist())
    dialog = window.export_dialog()
    assert len(dialog.scene) == 75 and 1 not in set(dialog.scene.group_ids.tolist())
    dialog.reject()


def _drag(widget, start: QPoint, end: QPoint, steps: int = 6) -> None:
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        QTest.mouseMove(widget, start + (end - start) * i / steps)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_gizmo_drags_move_rotate_and_scale_the_selection_in_one_undo_step(qtbot):
    from app.editing.gizmo import Gizmo

    cam = front_camera()
    view = CameraView(cam, dpr=1)
    qtbot.addWidget(view)
    view.show()
    session = EditSession()
    session.set_scene(objects_scene(per_object=60))
    tools = SelectionTools(view, session)
    gizmo = Gizmo(view, session, view)  # installed last: it sees the mouse before the selection tools
    session.apply(Select.group(3))
    sel = session.selection.copy()
    before = session.doc.arrays["means"].copy()
    pivot = session.doc.selection_centre()

    gizmo.set_mode("move")
    centre, parts = gizmo.handles()
    x_axis = dict(parts)[0]
    grab = QPoint(*np.round(x_axis[0] + 0.7 * (x_axis[1] - x_axis[0])).astype(int))
    screen_dir = (x_axis[1] - x_axis[0]) / np.linalg.norm(x_axis[1] - x_axis[0])
    _drag(view, grab, grab + QPoint(*np.round(40 * screen_dir).astype(int)))
    moved = session.doc.arrays["means"] - before
    assert np.allclose(moved[~sel], 0) and (moved[sel, 0] > 0.05).all()
    assert np.allclose(moved[sel, 1:], 0, atol=1e-6) and np.allclose(moved[sel, 0], moved[sel, 0][0], atol=1e-5)
    assert session.doc.undo_label == "Move" and np.array_equal(session.selection, sel)  # no pick on the drag
    session.undo()
    assert np.array_equal(session.doc.arrays["means"], before)

    gizmo.set_mode("scale")
    centre, _ = gizmo.handles()
    start = QPoint(*np.round(centre).astype(int))
    _drag(view, start, start + QPoint(120, 0))  # SCALE_PX_PER_DOUBLING to the right: twice the size
    after = session.doc.arrays["means"][sel].astype(np.float64)
    assert np.allclose(after - pivot, 2.0 * (before[sel] - pivot), atol=1e-4)
    session.undo()

    gizmo.set_mode("rotate")
    centre, parts = gizmo.handles()
    ring = dict(parts)[2]  # turn about z, the axis pointing (mostly) away from the camera
    a, b = ring[3], ring[9]  # 22.5 and 67.5 degrees round the ring (off the other two rings)
    _drag(view, QPoint(*np.round(a).astype(int)), QPoint(*np.round(b).astype(int)))
    command = session.doc.commands[-1]
    assert command.kind == "transform" and session.doc.undo_label == "Rotate"
    R = np.asarray(command.rotation)
    assert np.allclose(R[2], [0, 0, 1], atol=1e-9)
    # the ring point under the mouse at the press lands under the mouse at the release
    length = 0.8 * gizmo._axis_length(pivot)
    grabbed = pivot + length * np.array([np.cos(np.radians(22.5)), np.sin(np.radians(22.5)), 0.0])
    uv, _ = project_points((pivot + R @ (grabbed - pivot))[None], cam)
    assert np.linalg.norm(uv[0] - b) < 1.5  # b was rounded to a whole pixel
    assert np.allclose(session.doc.selection_centre(), pivot, atol=1e-4)  # turned about its centre
    gizmo.set_mode(None)
    assert gizmo.handles() is None
    tools.shutdown()
    gizmo.shutdown()



def test_floater_dialog_previews_on_a_worker_then_removes_what_it_showed(qtbot):
    from app.editing.dialogs import FloaterDialog
    from engine.scene import GaussianScene as Scene

    base = objects_scene(per_object=100)
    strays = Scene.from_numpy(np.array([[6.0, -3, 4], [-6, 2, -5]]), np.tile([1.0, 0, 0, 0], (2, 1)),
                              np.full((2, 3), -3.0), np.full(2, -2.0), np.zeros((2, 4, 3)), group_ids=np.full(2, 9))
    session = EditSession()
    session.set_scene(Scene.concatenate([base, strays]))
    shown = []
    dialog = FloaterDialog(session, shown.append)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.found, timeout=20000) as blocker:
        dialog.preview()
    mask = blocker.args[0]
    assert np.array_equal(np.flatnonzero(mask), [400, 401]) and shown[-1] is mask
    assert not session.doc.can_undo  # a preview changes nothing
    dialog.accept()
    assert session.doc.num_kept == 400 and session.doc.undo_label == "Remove floaters"
    assert shown[-1] is None  # the preview highlight goes when the dialog closes
    # Remove without a preview looks first (on the worker), then removes
    session.undo()
    dialog = FloaterDialog(session, shown.append)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.finished, timeout=20000):
        dialog.accept()
    assert session.doc.num_kept == 400


def test_select_by_dialog_builds_attribute_and_volume_selections(qtbot):
    from app.editing.dialogs import SelectByDialog

    session = EditSession()
    session.set_scene(objects_scene(per_object=50))
    dialog = SelectByDialog(session)
    qtbot.addWidget(dialog)
    dialog.colour = [0.1, 0.85, 0.2]
    dialog.accept()
    assert np.array_equal(session.selection, session.doc.group_ids == 2)  # the green sphere
    dialog = SelectByDialog(session)
    qtbot.addWidget(dialog)
    dialog.kind_box.setCurrentIndex(3)  # a sphere round the selection's centre, added
    dialog.mode_box.setCurrentIndex(1)
    dialog.sphere_radius.setValue(5.0)
    assert dialog.command().params["centre"] == pytest.approx(session.doc.selection_centre().tolist(), abs=1e-3)
    dialog.accept()
    assert session.num_selected == 200
