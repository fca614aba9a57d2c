"""What a new user meets first in the window (offscreen, placeholder view): shortcuts that fire, the
first-start banner, the preset the window starts with and what each preset says it costs."""

from collections import defaultdict

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from app.main_window import MainWindow, PlaceholderViewer
from app.settings import Settings
from app.theme import SAMPLE
from tests.app_helpers import settings, window  # noqa: F401 (fixtures)
from tests.factories import random_scene


@pytest.fixture
def first_start(qtbot, tmp_path):
    """A window started for the first time: it offers the bundled sample."""
    if not (SAMPLE / "images").is_dir():
        pytest.skip("resources/sample is not there")
    w = MainWindow(settings=Settings(QSettings(str(tmp_path / "first.ini"), QSettings.Format.IniFormat)),
                   viewer=PlaceholderViewer("no GL"))
    w.show()
    assert "New to Handful?" in w.banner.text()
    yield w
    w.session.set_scene(None)
    w.close()


def _key_owners(window) -> dict[str, list[str]]:
    """Every key sequence bound in the window, with the names of the actions and shortcuts on it."""
    owners = defaultdict(list)
    for action in window.findChildren(QAction):
        for seq in action.shortcuts():
            if not seq.isEmpty():
                owners[seq.toString(QKeySequence.SequenceFormat.PortableText)].append(action.text())
    for shortcut in window.findChildren(QShortcut):
        for seq in shortcut.keys():
            if not seq.isEmpty():
                owners[seq.toString(QKeySequence.SequenceFormat.PortableText)].append(f"shortcut {shortcut.objectName()}")
    return owners


def test_no_two_actions_share_a_key_sequence(window):
    owners = _key_owners(window)
    assert len(owners) >= 15  # the window's actions really were collected
    clashes = {seq: names for seq, names in owners.items() if len(names) > 1}
    assert clashes == {}


def test_save_as_and_screenshot_shortcuts_each_open_their_dialog(qtbot, window, monkeypatch):
    titles = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda parent, title, *a, **k: (titles.append(title), ("", ""))[1])
    window.session.set_scene(random_scene(50, sh_degree=0))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    save_as = window.save_as_action.shortcut()
    shot = window.screenshot_action.shortcut()
    assert save_as != shot
    for seq in (save_as, shot):
        combo = seq[0]
        QTest.keyClick(window, combo.key(), combo.keyboardModifiers())
    assert titles == ["Save scene", "Save screenshot"]


def test_welcome_banner_goes_away_when_a_scene_opens(first_start, tmp_path):
    from engine.io import save_scene

    path = tmp_path / "scene.ply"
    save_scene(random_scene(40, sh_degree=0), path)
    assert first_start.open_scene(path)
    assert "New to Handful?" not in first_start.banner.text()
    # other messages are not hidden by a scene: only the offer for an empty window is
    first_start.show_message("something to read", "warning")
    first_start.scene_shown.emit(first_start.session.edited_scene())
    assert first_start.banner.text() == "something to read"


def test_welcome_banner_goes_away_when_a_job_runs(first_start):
    first_start.runner.running_changed.emit(True)  # what the runner says when a job starts
    assert first_start.banner.text() == ""


@pytest.mark.parametrize("cuda,expected", [(False, "preview"), (True, "standard")], ids=["cpu", "gpu"])
def test_a_new_window_starts_with_the_preset_for_the_device(qtbot, tmp_path, monkeypatch, cuda, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    settings = Settings(QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings=settings, viewer=PlaceholderViewer("no GL"))
    try:
        assert window.import_panel.preset() == expected
        assert window.job_options().preset == expected
        window.import_panel.set_preset("high")  # a choice is remembered over the device's default
        assert Settings(settings.store).preset == "high"
    finally:
        window.close()


def test_the_sample_switches_to_preview(qtbot, window):
    if not (SAMPLE / "images").is_dir():
        pytest.skip("resources/sample is not there")
    window.import_panel.set_preset("high")
    window.load_sample()
    qtbot.waitUntil(lambda: not window.import_panel.checking, timeout=10000)
    assert window.import_panel.preset() == "preview" and window.job_options().preset == "preview"
    assert "Preview" in window.banner.text() and "two minutes" not in window.banner.text()


def test_each_preset_says_what_it_does(qtbot, window):
    from engine.train import preset

    panel = window.import_panel
    panel.set_device("cpu")
    lines = {}
    for name in ("preview", "standard", "high"):
        panel.set_preset(name)
        cfg = preset(name, num_images=20, device="cpu")
        lines[name] = panel.preset_cost.text()
        assert lines[name].startswith("On the CPU for 20 photos:")
        assert f"{cfg.iterations:,} steps" in lines[name] and f"{cfg.cap_max:,} splats" in lines[name]
    assert len(set(lines.values())) == 3
