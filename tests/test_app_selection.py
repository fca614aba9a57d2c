"""Box selection: the engine's projection maths and the app's box tool over a view camera."""

import numpy as np
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QWidget

from app.editing import BoxSelectTool, EditSession
from engine.scene import Camera, GaussianScene
from engine.selection import box_select, project_points
from tests.factories import orbit_cameras, random_scene


def front_camera(width=200, height=100):
    # at z=-5 looking along +z (world), y down
    return Camera.look_at(np.array([0.0, 0.0, -5.0]), np.zeros(3), up=(0, -1, 0), fx=100, fy=100,
                          cx=width / 2, cy=height / 2, width=width, height=height)


def test_projection_matches_pinhole_maths():
    cam = orbit_cameras(1, width=64, image_height=48)[0]
    pts = np.random.default_rng(0).uniform(-1, 1, size=(50, 3))
    uv, z = project_points(pts, cam)
    cam_pts = pts @ cam.R.T + cam.t
    assert np.allclose(z, cam_pts[:, 2])
    assert np.allclose(uv[:, 0], cam.fx * cam_pts[:, 0] / cam_pts[:, 2] + cam.cx)
    assert np.allclose(uv[:, 1], cam.fy * cam_pts[:, 1] / cam_pts[:, 2] + cam.cy)


def test_box_select_picks_points_in_box_and_in_front_only():
    cam = front_camera()
    pts = np.array([
        [0.0, 0.0, 0.0],     # centre of the image
        [1.0, 0.0, 0.0],     # 20 px to the right of centre
        [0.0, 0.0, -10.0],   # behind the camera, would project to the centre
        [-3.0, 0.0, 0.0],    # far left
    ])
    uv, _ = project_points(pts, cam)
    assert np.allclose(uv[0], [100, 50]) and np.allclose(uv[1], [120, 50])
    mask = box_select(pts, cam, (90, 40, 110, 60))
    assert mask.tolist() == [True, False, False, False]
    mask = box_select(pts, cam, (130, 60, 90, 40))  # corners in any order
    assert mask.tolist() == [True, True, False, False]
    assert box_select(pts, cam, (0, 0, 200, 100), visible=np.array([False, True, True, True])).tolist() == \
        [False, True, False, True]


class CameraView(QWidget):
    """A widget that reports a fixed view camera (the viewer's contract for box selection)."""

    def __init__(self, camera):
        super().__init__()
        self.camera = camera
        self.resize(camera.width // 2, camera.height // 2)  # a 2x high-DPI screen

    def current_camera(self):
        return self.camera


def test_box_tool_maps_widget_rect_to_camera_pixels_and_modes(qtbot):
    cam = front_camera()
    view = CameraView(cam)
    qtbot.addWidget(view)
    session = EditSession()
    xs = np.linspace(-4.5, 4.5, 10)
    scene = GaussianScene.from_points(np.stack([xs, np.zeros(10), np.zeros(10)], 1), np.full((10, 3), 0.5))
    session.set_scene(scene)
    tool = BoxSelectTool(view, session)
    uv, _ = project_points(scene.means, cam)
    # the left half of the widget (50 x 50 logical px) is the left half of the camera image (100 x 100)
    count = tool.select_rect(QRect(0, 0, 50, 50))
    assert count == int((uv[:, 0] <= 100).sum()) == 5
    assert session.selection.tolist() == (uv[:, 0] <= 100).tolist()
    tool.select_rect(QRect(50, 0, 25, 50), "add")
    assert session.num_selected == int((uv[:, 0] <= 150).sum())
    tool.select_rect(QRect(0, 0, 25, 50), "subtract")
    assert session.selection.tolist() == ((uv[:, 0] > 50) & (uv[:, 0] <= 150)).tolist()
    session.undo_stack.undo()
    assert session.num_selected == int((uv[:, 0] <= 150).sum())


def test_deleted_splats_are_not_reselected(qtbot):
    session = EditSession()
    session.set_scene(random_scene(20, sh_degree=0))
    first = np.zeros(20, bool)
    first[:5] = True
    session.select(first)
    session.delete_selected()
    session.select_all()
    assert session.num_selected == 15 and not session.selection[:5].any()
    session.invert_selection()
    assert session.num_selected == 0


def test_only_deletes_count_as_unsaved_edits():
    session = EditSession()
    session.set_scene(random_scene(10, sh_degree=0))
    session.select_all()
    assert not session.modified
    session.delete_selected()
    assert session.modified
    session.undo_stack.undo()
    assert not session.modified
    session.undo_stack.redo()
    session.mark_saved()
    assert not session.modified
