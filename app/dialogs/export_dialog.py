"""Export the scene: .ply, .spz, compressed .ply or .splat, with the estimated and actual size."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from engine.errors import HandfulError
from engine.io import estimate_size
from engine.units import human_bytes
from engine.scene import GaussianScene

# (format name for engine.io.save_scene, label, extension)
EXPORT_FORMATS = (
    ("ply", "3DGS PLY (.ply): full quality, every tool reads it", ".ply"),
    ("spz", "SPZ (.spz): about 10x smaller, Niantic / web viewers", ".spz"),
    ("compressed_ply", "Compressed PLY (.compressed.ply): SuperSplat / PlayCanvas", ".compressed.ply"),
    ("splat", "SPLAT (.splat): small, no view-dependent colour", ".splat"),
)
_EXT = {name: ext for name, _, ext in EXPORT_FORMATS}
def path_for_format(path: Path, fmt: str) -> Path:
    """``path`` with the extension of ``fmt`` (``.compressed.ply`` counts as one extension)."""
    name = path.name
    for ext in sorted(_EXT.values(), key=len, reverse=True):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return path.with_name(name + _EXT[fmt])


def export_scene(scene: GaussianScene, path: str | Path, fmt: str) -> int:
    """Write ``scene`` (atomically, through engine.io) and return the file's size in bytes."""
    from engine.io import save_scene

    path = Path(path)
    save_scene(scene.detach().to("cpu"), path, format=fmt)
    return path.stat().st_size


def _export_or_problem(scene: GaussianScene, path: Path, fmt: str) -> tuple[int | None, str]:
    """(size, "") or (None, a message for a person); safe on any thread."""
    try:
        return export_scene(scene, path, fmt), ""
    except HandfulError as e:
        return None, str(e)
    except OSError as e:
        return None, f"{path}: could not write the file ({e.strerror or e}); choose another folder"


class _ExportSignals(QObject):
    done = Signal(object, object, str)  # path, size or None, problem


class _ExportTask(QRunnable):
    def __init__(self, scene, path, fmt, signals):
        super().__init__()
        self.scene, self.path, self.fmt, self.signals = scene, path, fmt, signals

    def run(self):
        size, problem = _export_or_problem(self.scene, self.path, self.fmt)
        self.signals.done.emit(self.path, size, problem)


class ExportDialog(QDialog):
    exported = Signal(object, int)  # path, size in bytes

    def __init__(self, scene: GaussianScene, default_path: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export scene")
        self.scene = scene
        self.written: Path | None = None
        self.written_size: int | None = None
        self.error: str = ""

        self.format_box = QComboBox()
        for name, label, _ in EXPORT_FORMATS:
            self.format_box.addItem(label, name)
        self.path_edit = QLineEdit(str(path_for_format(Path(default_path), "ply")))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        self.estimate_label = QLabel()
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("File", path_row)
        form.addRow("Estimated size", self.estimate_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self._signals = _ExportSignals(self)
        self._signals.done.connect(self._finish_export)
        self.busy = False
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{len(scene):,} splats, SH degree {scene.sh_degree}"))
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    def format(self) -> str:
        return self.format_box.currentData()

    def set_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))

    def _format_changed(self) -> None:
        fmt = self.format()
        self.path_edit.setText(str(path_for_format(Path(self.path_edit.text()), fmt)))
        self.estimate_label.setText(f"about {human_bytes(estimate_size(self.scene, fmt))}")

    def _browse(self) -> None:
        fmt = self.format()
        path, _ = QFileDialog.getSaveFileName(self, "Export scene", self.path_edit.text(), f"Scene (*{_EXT[fmt]})")
        if path:
            self.path_edit.setText(str(path_for_format(Path(path), fmt)))

    def export(self) -> bool:
        """Export now, on this thread (scripts and tests); the button uses ``start_export``."""
        path, fmt = Path(self.path_edit.text()).expanduser(), self.format()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            size, problem = _export_or_problem(self.scene, path, fmt)
        finally:
            QApplication.restoreOverrideCursor()
        return self._finish_export(path, size, problem)

    def start_export(self) -> None:
        """Export on a thread-pool thread (compressing millions of splats takes seconds)."""
        if self.busy:
            return
        self.busy = True
        self.export_button.setEnabled(False)
        self.result_label.setText("Exporting…")
        path = Path(self.path_edit.text()).expanduser()
        QThreadPool.globalInstance().start(_ExportTask(self.scene, path, self.format(), self._signals))

    def _finish_export(self, path: Path, size: int | None, problem: str) -> bool:
        self.busy = False
        self.export_button.setEnabled(True)
        if problem:
            self.error = problem
            self.result_label.setText(f"Not exported: {problem}")
            return False
        self.written, self.written_size, self.error = path, size, ""
        fmt = self.format()
        self.result_label.setText(
            f"Wrote {path.name}: {human_bytes(size)} (estimated {human_bytes(estimate_size(self.scene, fmt))})"
        )
        self.exported.emit(path, size)
        return True
