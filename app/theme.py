"""The dark theme (palette + app/style.qss) and icons from resources/icons."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication


def _root() -> Path:
    # PyInstaller unpacks data next to the executable (sys._MEIPASS); otherwise the repository root.
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) if base else Path(__file__).resolve().parent.parent


RESOURCES = _root() / "resources"
ICONS = RESOURCES / "icons"
SAMPLE = RESOURCES / "sample"
STYLE_SHEET = Path(__file__).with_name("style.qss")

ACCENT = "#5b8cff"


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    path = ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1b1e26",
        QPalette.ColorRole.WindowText: "#d8dce6",
        QPalette.ColorRole.Base: "#14161c",
        QPalette.ColorRole.AlternateBase: "#1f232c",
        QPalette.ColorRole.ToolTipBase: "#262a35",
        QPalette.ColorRole.ToolTipText: "#e8ebf2",
        QPalette.ColorRole.Text: "#d8dce6",
        QPalette.ColorRole.Button: "#262a35",
        QPalette.ColorRole.ButtonText: "#d8dce6",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: "#7a8191",
    }
    for role, colour in colours.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d6372"))
    app.setPalette(p)
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))
