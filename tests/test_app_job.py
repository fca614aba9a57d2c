"""End to end in the window: dropped photos + known cameras -> a real engine job -> splats in the view;
cancel mid-job leaves the app usable with the last snapshot kept."""

import os
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, Qt, QTimer

from app.main_window import MainWindow, PlaceholderViewer
from app.settings import Settings
from tests.app_helpers import drop_paths
from tests.factories import orbit_cameras, random_scene

job = pytest.importorskip("engine.job")


@pytest.fixture(scope="module")
def synthetic_photos(tmp_path_factory):
    """Six 64x48 renders of a random scene, and the COLMAP model of their cameras (with points)."""
    import cv2

    from engine.io import colmap
    from engine.render import render
    from engine.scene import CameraRig, PointCloud

    root = tmp_path_factory.mktemp("synthetic")
    scene = random_scene(2000, sh_degree=0, seed=1)
    cams = orbit_cameras(6, width=64, image_height=48)
    (root / "photos").mkdir()
    with torch.no_grad():
        for cam in cams:
            rgb = render(scene, cam, background=torch.zeros(3), sh_degree=0).rgb.clamp(0, 1).numpy()
            cv2.imwrite(str(root / "photos" / cam.name), cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    colmap.write_text(CameraRig(cams, PointCloud(scene.means.numpy(), scene.colors_dc.numpy())), root / "sparse")
    return sorted((root / "photos").iterdir()), root / "sparse"


@pytest.fixture
def window(qtbot, tmp_path):
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.projects_folder = tmp_path / "projects"
    w = MainWindow(settings=settings, viewer=PlaceholderViewer("tests run without OpenGL"))
    w.show()
    yield w
    w.runner.cancel()
    w.runner.wait(30000)
    w.session.set_scene(None)  # no unsaved-edits question at close
    w.close()


class FrameGaps:
    """Longest wait between ticks of a 10 ms timer on the GUI thread (a stand-in for frame time)."""

    def __init__(self):
        self.longest = 0.0
        self.ticks = 0
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self):
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last)
        self.ticks += 1
        self._last = now


def test_drop_reconstruct_shows_splats(qtbot, window, synthetic_photos):
    photos, sparse = synthetic_photos
    assert drop_paths(window.import_panel.drop_area, photos)
    qtbot.waitUntil(lambda: len(window.import_panel.good_inputs()) == len(photos), timeout=10000)
    window.job_options = lambda: job.JobOptions(preset="preview", cameras=sparse, iterations=6, eval_every=0,
                                                until="train", priors="off")
    snapshots = []
    window.runner.snapshot.connect(lambda scene, step, cams: snapshots.append((len(scene), step, cams)))
    gaps = FrameGaps()
    with qtbot.waitSignal(window.runner.finished, timeout=240000):
        qtbot.mouseClick(window.import_panel.reconstruct_button, Qt.MouseButton.LeftButton)
        assert window.runner.running
        job_thread = window.runner._thread
        assert not window.import_panel.reconstruct_button.isEnabled()
    gaps.timer.stop()
    assert snapshots, "training snapshots reach the viewer"
    assert snapshots[0][2] and len(snapshots[0][2]) == len(photos)  # cameras come with them
    scene = window.session.scene
    assert scene is not None and len(scene) > 0
    assert window.viewer.scene is scene
    assert (window.job_out_dir / "scene.ply").is_file()
    assert window.current_path == window.job_out_dir / "scene.ply"
    assert window.settings.recent_files()[0] == (window.job_out_dir / "scene.ply").resolve()
    assert "Reconstruction finished" in window.banner.text()
    assert window.progress_panel.stage.text() == "Done"
    assert window.import_panel.reconstruct_button.isEnabled()
    print(f"longest GUI-thread gap during the job: {gaps.longest * 1000:.0f} ms")
    # the job ran in its own process, so the GUI thread never waited on it (44 ms gaps measured on a busy
    # shared 2-core machine; 718 ms when the job ran in a thread of this process). A gap threshold would be
    # a timing assertion, so the test checks the cause: another process did the work, and the timer kept ticking.
    child = job_thread.process
    assert child is not None and child.pid != os.getpid() and child.exitcode == 0
    assert gaps.ticks > 0


def test_cancel_mid_job_keeps_last_snapshot_and_app_usable(qtbot, window, synthetic_photos, tmp_path):
    photos, sparse = synthetic_photos
    window.import_panel.add_paths(photos)
    qtbot.waitUntil(lambda: len(window.import_panel.good_inputs()) == len(photos), timeout=10000)
    window.job_options = lambda: job.JobOptions(preset="preview", cameras=sparse, iterations=5000,
                                                eval_every=0, until="train", priors="off")
    with qtbot.waitSignal(window.runner.snapshot, timeout=120000):
        assert window.start_reconstruction()
    with qtbot.waitSignal(window.runner.running_changed, timeout=60000,
                          check_params_cb=lambda running: running is False):
        qtbot.mouseClick(window.progress_panel.cancel_button, Qt.MouseButton.LeftButton)
    assert window.progress_panel.stage.text() == "Cancelled"
    assert "ancel" in window.banner.text() and str(window.job_out_dir) in window.banner.text()
    assert window.session.scene is not None and len(window.session.scene) > 0  # the last snapshot stays
    assert (window.job_out_dir / "job.json").is_file()  # finished stages are kept
    # still usable: the kept scene saves, and another job can start
    out = tmp_path / "kept.ply"
    assert window.save_to(out)
    from engine.io import load_scene

    assert len(load_scene(out)) == len(window.session.scene)
    assert window.import_panel.reconstruct_button.isEnabled()
