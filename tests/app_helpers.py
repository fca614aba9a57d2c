"""Helpers for the app tests: a window with settings in a temp folder, simulated drops, test photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication


@pytest.fixture
def settings(tmp_path, qapp):
    """Settings in a temporary INI file, projects in a temporary folder (import it into a test module)."""
    from app.settings import Settings

    s = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    s.projects_folder = tmp_path / "projects"
    return s


@pytest.fixture
def window(qtbot, settings):
    """The main window with those settings and the placeholder view (no OpenGL)."""
    from app.main_window import MainWindow, PlaceholderViewer

    w = MainWindow(settings=settings, viewer=PlaceholderViewer("tests run without OpenGL"))
    w.show()
    yield w
    w.session.set_scene(None)  # no unsaved-edits question at close
    w.close()


def drop_paths(widget, paths) -> bool:
    """Send a drag-enter and a drop of ``paths`` (file URLs) to ``widget``; returns whether accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(Path(p).resolve())) for p in paths])
    centre = widget.rect().center()
    enter = QDragEnterEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def write_photos(folder: Path, count: int = 3, size=(64, 48), seed: int = 0) -> list[Path]:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        img = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"photo_{i:02d}.png"
        assert cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


__all__ = ["drop_paths", "write_photos", "settings", "window"]
