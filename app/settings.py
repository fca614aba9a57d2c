"""Persistent settings (QSettings, INI format) and the recent-projects list.

Tests and portable installs redirect the store to a folder with ``use_settings_folder(path)`` or the
``HANDFUL_SETTINGS_DIR`` environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from engine.stages.priors import AUTO, PRIORS
from engine.train import default_preset

from . import APPLICATION, ORGANIZATION

MAX_RECENT = 10
PRESETS = ("preview", "standard", "high")
DEVICES = ("auto", "cpu", "cuda")


def use_settings_folder(folder: str | Path) -> None:
    """Store settings as an INI file under ``folder`` (for tests and portable use)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))


class Settings:
    """Typed access to the few things Handful remembers between runs."""

    def __init__(self, qsettings: QSettings | None = None):
        if qsettings is None:
            folder = os.environ.get("HANDFUL_SETTINGS_DIR")
            if folder:
                use_settings_folder(folder)
            qsettings = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
            )
        self.store = qsettings

    # ----------------------------------------------------------------- plain values
    def _choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = str(self.store.value(key, default))
        return value if value in allowed else default

    @property
    def preset(self) -> str:
        """The chosen preset; until one is chosen, Preview on a CPU and Standard on a GPU."""
        return self._choice("job/preset", PRESETS, default_preset(self.device))

    @preset.setter
    def preset(self, value: str) -> None:
        self.store.setValue("job/preset", value)

    @property
    def device(self) -> str:
        return self._choice("job/device", DEVICES, "auto")

    @device.setter
    def device(self, value: str) -> None:
        self.store.setValue("job/device", value)

    @property
    def priors(self) -> str:
        return self._choice("job/priors", (AUTO,) + PRIORS, AUTO)

    @priors.setter
    def priors(self, value: str) -> None:
        self.store.setValue("job/priors", value)

    @property
    def refine_poses(self) -> bool:
        return str(self.store.value("job/refine_poses", "false")).lower() == "true"

    @refine_poses.setter
    def refine_poses(self, value: bool) -> None:
        self.store.setValue("job/refine_poses", "true" if value else "false")

    @property
    def projects_folder(self) -> Path:
        value = self.store.value("paths/projects")
        if value:
            return Path(str(value))
        docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        return Path(docs or Path.home()) / "Handful"

    @projects_folder.setter
    def projects_folder(self, value: str | Path) -> None:
        self.store.setValue("paths/projects", str(value))

    @property
    def last_folder(self) -> str:
        return str(self.store.value("paths/last_folder", "") or "")

    @last_folder.setter
    def last_folder(self, value: str | Path) -> None:
        self.store.setValue("paths/last_folder", str(value))

    @property
    def sample_offered(self) -> bool:
        return _to_bool(self.store.value("ui/sample_offered", False))

    @sample_offered.setter
    def sample_offered(self, value: bool) -> None:
        self.store.setValue("ui/sample_offered", bool(value))

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geometry = self.store.value("window/geometry")
        state = self.store.value("window/state")
        return (geometry if isinstance(geometry, QByteArray) else None,
                state if isinstance(state, QByteArray) else None)

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    # ----------------------------------------------------------------- recent projects
    def recent_files(self) -> list[Path]:
        value = self.store.value("recent/files", [])
        if isinstance(value, str):
            value = [value]
        return [Path(str(v)) for v in (value or []) if v]

    def add_recent_file(self, path: str | Path) -> list[Path]:
        path = Path(path).resolve()
        files = [path] + [p for p in self.recent_files() if p != path]
        files = files[:MAX_RECENT]
        self.store.setValue("recent/files", [str(p) for p in files])
        return files

    def remove_recent_file(self, path: str | Path) -> None:
        path = Path(path)
        self.store.setValue("recent/files", [str(p) for p in self.recent_files() if p != path])

    def clear_recent_files(self) -> None:
        self.store.setValue("recent/files", [])

    def sync(self) -> None:
        self.store.sync()


def _to_bool(value) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)
