"""The main window without OpenGL (offscreen, placeholder view): drops, bad files, open, export, edit."""

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from app.dialogs.export_dialog import EXPORT_FORMATS, ExportDialog, path_for_format
from engine.io import estimate_size
from app.main_window import MainWindow, PlaceholderViewer
from app.settings import Settings
from engine.edit import Select
from engine.io import FORMATS, load_scene, save_scene
from tests.app_helpers import drop_paths, settings, window, write_photos  # noqa: F401 (fixtures)
from tests.factories import random_scene


def wait_checked(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.checking, timeout=10000)


def test_dropped_photos_get_thumbnails_and_enable_reconstruct(qtbot, window, tmp_path):
    photos = write_photos(tmp_path / "shots", 3)
    panel = window.import_panel
    assert not panel.reconstruct_button.isEnabled()
    assert drop_paths(panel.drop_area, photos)
    wait_checked(qtbot, panel)
    assert panel.good_inputs() == [p.resolve() for p in photos]
    assert panel.list.count() == 3
    assert not panel.list.item(0).icon().isNull()
    assert "64×48" in panel.list.item(0).toolTip()
    assert panel.reconstruct_button.isEnabled()
    assert "3 usable files" in panel.summary.text()


def test_dropped_folder_expands_to_its_photos(qtbot, window, tmp_path):
    write_photos(tmp_path / "shots", 4)
    (tmp_path / "shots" / "notes.txt").write_text("not a photo")
    drop_paths(window, [tmp_path / "shots"])  # anywhere on the window works too
    wait_checked(qtbot, window.import_panel)
    assert len(window.import_panel.good_inputs()) == 4


def test_bad_files_are_rejected_with_a_message(qtbot, window, tmp_path):
    good = write_photos(tmp_path, 1)[0]
    fake = tmp_path / "broken.jpg"
    fake.write_bytes(b"this is not a jpeg at all" * 10)
    text = tmp_path / "readme.txt"
    text.write_text("hello")
    drop_paths(window.import_panel.drop_area, [good, fake, text])
    wait_checked(qtbot, window.import_panel)
    panel = window.import_panel
    assert panel.good_inputs() == [good.resolve()]
    bad = panel.bad_inputs()
    assert [b.path.name for b in bad] == ["broken.jpg"]
    assert "not an image" in bad[0].message
    assert "skipped" in panel.summary.text()
    # the unknown type never became an input and the person was told what to drop instead
    assert window.banner.isVisible()
    assert "readme.txt" in window.banner.text() and "JPEG" in window.banner.text()
    assert "Traceback" not in window.banner.text()


def test_heic_photos_from_a_phone_are_accepted_with_thumbnails(qtbot, window, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    path = tmp_path / "IMG_0042.HEIC"
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (200, 40, 40)
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(path, quality=90)
    window.import_panel.add_paths([path])
    wait_checked(qtbot, window.import_panel)
    assert window.import_panel.good_inputs() == [path.resolve()]
    item = window.import_panel.list.item(0)
    assert not item.icon().isNull() and "64×48" in item.toolTip()


def test_reconstruct_without_photos_says_what_to_do(window):
    assert window.start_reconstruction() is False
    assert "Add photos first" in window.banner.text()


def test_dropped_scene_file_opens_in_viewer_and_recent(qtbot, window, tmp_path):
    scene = random_scene(300, sh_degree=1)
    path = tmp_path / "thing.ply"
    save_scene(scene, path)
    with qtbot.waitSignal(window.scene_shown, timeout=10000):
        drop_paths(window.import_panel.drop_area, [path])  # read on a thread-pool thread
    assert window.session.scene is not None and len(window.session.scene) == 300
    assert window.viewer.scene is window.session.scene
    assert window.current_path == path
    assert window.settings.recent_files()[0] == path.resolve()
    assert window.import_panel.files == {}
    assert "thing.ply" in window.windowTitle()


def test_bad_scene_file_gives_message_not_traceback(qtbot, window, tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nproperty float x\nend_header\n\x00")
    assert window.open_scene(bad) is False
    text = window.banner.text()
    assert "broken.ply" in text and "Traceback" not in text
    assert window.session.scene is None
    window.banner.dismiss()
    assert window.open_scene(bad, background=True)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    assert "broken.ply" in window.banner.text() and window.session.scene is None


def test_open_recent_of_missing_file_is_removed_with_message(window, tmp_path):
    gone = tmp_path / "gone.ply"
    window.settings.add_recent_file(gone)
    window._open_recent(gone.resolve())
    assert "gone" in window.banner.text()
    assert window.settings.recent_files() == []


@pytest.mark.parametrize("fmt", [f for f, _, _ in EXPORT_FORMATS])
def test_export_writes_a_file_that_reads_back_with_same_count(qtbot, tmp_path, qapp, fmt):
    if fmt not in FORMATS:
        pytest.skip(f"engine.io has no {fmt} writer yet")
    scene = random_scene(700, sh_degree=2, seed=3)
    scene.opacity_logits = scene.opacity_logits.clamp(min=-5.0)  # all visible: SOG leaves out what no renderer draws
    dialog = ExportDialog(scene, tmp_path / "out.ply")
    qtbot.addWidget(dialog)
    dialog.set_format(fmt)
    assert dialog.path_edit.text().endswith(dict((f, e) for f, _, e in EXPORT_FORMATS)[fmt])
    assert dialog.estimate_label.text().startswith("about ")
    assert dialog.export(), dialog.error
    assert dialog.written.is_file()
    assert dialog.written_size == dialog.written.stat().st_size
    assert len(load_scene(dialog.written)) == 700
    assert "Wrote" in dialog.result_label.text()
    estimate = estimate_size(scene, fmt)
    assert 0.5 * dialog.written_size < estimate < 2.0 * dialog.written_size


def test_export_to_unwritable_place_reports_error(qtbot, tmp_path, qapp):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    dialog = ExportDialog(random_scene(10), tmp_path / "out.ply")
    qtbot.addWidget(dialog)
    dialog.set_path(blocker / "sub" / "out.ply")
    assert dialog.export() is False
    assert "Not exported" in dialog.result_label.text()


def test_path_for_format_swaps_compound_extensions():
    assert path_for_format(Path("/a/b.compressed.ply"), "spz") == Path("/a/b.spz")
    assert path_for_format(Path("/a/b.ply"), "compressed_ply") == Path("/a/b.compressed.ply")
    assert path_for_format(Path("/a/b"), "splat") == Path("/a/b.splat")


def test_undo_redo_of_delete_and_save_writes_edited_scene(window, tmp_path):
    scene = random_scene(100, sh_degree=0)
    src = tmp_path / "scene.ply"
    save_scene(scene, src)
    assert window.open_scene(src)
    session = window.session
    session.apply(Select.indices(np.arange(10, 40)))
    assert session.num_selected == 30
    assert window.delete_action.isEnabled()
    window.delete_selected()
    assert session.num_visible == 70 and session.num_selected == 0
    assert window.viewer.visible_mask is not None and not window.viewer.visible_mask[10:40].any()
    assert window.windowTitle().startswith("scene.ply*")
    window.undo_action.trigger()
    assert session.num_visible == 100 and session.num_selected == 30
    assert window.viewer.visible_mask is None
    window.redo_action.trigger()
    assert session.num_visible == 70
    out = tmp_path / "edited.ply"
    assert window.save_to(out)
    saved = load_scene(out)
    assert len(saved) == 70
    expected = scene.means[np.r_[0:10, 40:100]]
    assert np.allclose(saved.means.numpy(), expected.numpy())
    assert not session.modified and not window.windowTitle().startswith("edited.ply*")
    # undo history: select, delete
    assert [c.kind for c in session.doc.commands] == ["select", "delete"]


def test_screenshot_of_window_is_a_png_of_its_size(window, tmp_path):
    from PySide6.QtGui import QImage

    window.resize(640, 480)
    out = window.save_screenshot(tmp_path / "shot.png")
    image = QImage(str(out))
    assert not image.isNull()
    assert (image.width(), image.height()) == (window.width() * image.devicePixelRatio(),
                                                window.height() * image.devicePixelRatio()) or \
        (image.width(), image.height()) == (window.width(), window.height())


def test_settings_follow_the_controls(window, settings):
    window.import_panel.set_preset("high")
    window.import_panel.set_device("cpu")
    assert settings.refine_poses is False and window.job_options().refine_poses is False
    window.import_panel.set_refine_poses(True)
    settings.sync()
    assert settings.preset == "high" and settings.device == "cpu" and settings.refine_poses is True
    options = window.job_options()
    assert (options.preset, options.device, options.refine_poses) == ("high", "cpu", True)


def test_priors_choice_says_what_it_costs_and_what_ran(window, settings):
    panel = window.import_panel
    assert panel.priors() == "auto" and window.job_options().priors == "auto"
    panel.set_preset("preview")
    assert panel.priors_cost.text().startswith("Auto picks Off for 20 photos")  # no photos yet: a typical set
    panel.set_priors("full")
    assert "repair round" in panel.priors_cost.text() and "depth map per photo" in panel.priors_cost.text()
    panel.set_priors("off")
    assert panel.priors_cost.text() == "plain training, no extra stages."
    settings.sync()
    assert settings.priors == "off" and window.job_options().priors == "off"
    assert panel.priors_ran.isHidden()
    window.import_panel.show_priors_ran({"level": "fast", "reason": "auto: 3 training photos on Preview",
                                         "ran": ["depth: plane sweep (multi-view)", "training: drop-gaussian"]})
    assert not panel.priors_ran.isHidden()
    assert panel.priors_ran.text() == ("Priors fast (auto: 3 training photos on Preview): depth: plane sweep "
                                       "(multi-view); training: drop-gaussian.")
    window.import_panel.show_priors_ran(None)
    assert panel.priors_ran.isHidden()


def test_sample_offer_adds_the_sample_photos(qtbot, window):
    from app.theme import SAMPLE

    if not (SAMPLE / "images").is_dir():
        pytest.skip("resources/sample is not there")
    window.load_sample()
    wait_checked(qtbot, window.import_panel)
    assert len(window.import_panel.good_inputs()) == len(list((SAMPLE / "images").iterdir()))
    assert window.job_cameras is None  # the sample's cameras are estimated, as for anyone's photos


def test_video_gets_a_thumbnail_and_a_fake_video_a_warning(qtbot, window, tmp_path):
    import cv2

    video = tmp_path / "walkaround.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 60))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MP4")
    for i in range(5):
        writer.write(np.full((60, 80, 3), 40 * i, dtype=np.uint8))
    writer.release()
    fake = tmp_path / "fake.mov"
    fake.write_bytes(b"\x00" * 500)
    window.import_panel.add_paths([video, fake])
    wait_checked(qtbot, window.import_panel)
    assert window.import_panel.good_inputs() == [video.resolve()]
    assert "80×60" in window.import_panel.list.item(0).toolTip()
    assert [b.path.name for b in window.import_panel.bad_inputs()] == ["fake.mov"]
    assert "not a video" in window.import_panel.bad_inputs()[0].message


def test_first_start_offers_the_sample_once(qtbot, tmp_path):
    from app.theme import SAMPLE

    if not (SAMPLE / "images").is_dir():
        pytest.skip("resources/sample is not there")
    settings = Settings(QSettings(str(tmp_path / "first.ini"), QSettings.Format.IniFormat))
    first = MainWindow(settings=settings, viewer=PlaceholderViewer("no GL"))
    first.show()
    assert "bundled sample" in first.banner.text()
    assert first.import_panel.sample_button.isVisible()
    first.banner.action.click()
    wait_checked(qtbot, first.import_panel)
    assert first.import_panel.good_inputs() and not first.import_panel.sample_button.isVisible()
    first.close()
    second = MainWindow(settings=settings, viewer=PlaceholderViewer("no GL"))
    second.show()
    assert second.banner.text() == ""
    second.close()


def test_export_button_writes_in_the_background(qtbot, tmp_path, qapp):
    scene = random_scene(300, sh_degree=1)
    dialog = ExportDialog(scene, tmp_path / "bg.ply")
    qtbot.addWidget(dialog)
    dialog.set_format("splat")
    with qtbot.waitSignal(dialog.exported, timeout=10000) as done:
        dialog.export_button.click()
        assert dialog.busy and not dialog.export_button.isEnabled()
    path, size = done.args
    assert path == tmp_path / "bg.splat" and size == 300 * 32
    assert len(load_scene(path)) == 300 and dialog.export_button.isEnabled()
