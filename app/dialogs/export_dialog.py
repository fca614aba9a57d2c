"""Export the scene (.ply, .spz, compressed .ply, .splat, SOG, glTF, .handful), with the estimated size
and expected quality of each format and compression setting before writing; compression runs on a
worker thread with progress and can be cancelled."""

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
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from engine.compress.quality import QUALITIES, predicted_bytes
from engine.errors import Cancelled, HandfulError
from engine.events import CancelToken, Progress
from engine.io import estimate_size
from engine.units import human_bytes
from engine.scene import GaussianScene

# (format name for engine.io.save_scene, label, extension)
EXPORT_FORMATS = (
    ("ply", "3DGS PLY (.ply): full quality, every tool reads it", ".ply"),
    ("spz", "SPZ (.spz): about 10x smaller, Niantic / web viewers", ".spz"),
    ("compressed_ply", "Compressed PLY (.compressed.ply): SuperSplat / PlayCanvas", ".compressed.ply"),
    ("splat", "SPLAT (.splat): small, no view-dependent colour", ".splat"),
    ("sog", "SOG (.sog): PlayCanvas / SuperSplat web scenes, about 13x smaller", ".sog"),
    ("gltf", "glTF (.glb): KHR_gaussian_splatting, glTF tools and engines", ".glb"),
    ("handful", "Handful (.handful): Handful's own file, lossless or compressed", ".handful"),
)
# Quality of each format's renders against the uncompressed scene, measured by
# benchmarks/compress_bench.py on trained scenes (PSNR of held-out renders, dB; higher is closer).
EXPECTED_QUALITY = {
    "ply": "lossless",
    "gltf": "lossless (float32)",
    "handful": "lossless",
    "spz": "about 47-52 dB from the original (8-bit colours, 24-bit positions)",
    "compressed_ply": "about 33-46 dB from the original (11/10/11-bit chunks)",
    "splat": "base colour only; view-dependent colour is dropped",
    "sog": "about 27-52 dB from the original (16-bit positions, 256-word codebooks)",
}
COMPRESSION_CHOICES = (("none", "None (lossless)"),) + tuple(
    (name, f"{name.capitalize()}: prune and quantise") for name in ("high", "medium", "low"))
_EXT = {name: ext for name, _, ext in EXPORT_FORMATS}
def path_for_format(path: Path, fmt: str) -> Path:
    """``path`` with the extension of ``fmt`` (``.compressed.ply`` counts as one extension)."""
    name = path.name
    for ext in sorted(_EXT.values(), key=len, reverse=True):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return path.with_name(name + _EXT[fmt])


def export_scene(scene: GaussianScene, path: str | Path, fmt: str, quality: str | None = None,
                 on_event=None, cancel: CancelToken | None = None) -> int:
    """Write ``scene`` (atomically, through engine.io) and return the file's size in bytes; with a
    ``quality`` (``.handful`` only) the scene is compressed first (engine.compress)."""
    from engine.io import save_scene

    path = Path(path)
    scene = scene.detach().to("cpu")
    if quality is not None and fmt == "handful":
        from engine.compress.pipeline import compress
        from engine.io.atomic import atomic_write_bytes

        data, _, _ = compress(scene, quality, on_event=on_event, cancel=cancel)
        atomic_write_bytes(path, data)
    else:
        save_scene(scene, path, format=fmt)
    return path.stat().st_size


def _export_or_problem(scene: GaussianScene, path: Path, fmt: str, quality: str | None = None,
                       on_event=None, cancel=None) -> tuple[int | None, str]:
    """(size, "") or (None, a message for a person); safe on any thread."""
    try:
        return export_scene(scene, path, fmt, quality, on_event, cancel), ""
    except Cancelled:
        return None, "cancelled; nothing was written"
    except HandfulError as e:
        return None, str(e)
    except OSError as e:
        return None, f"{path}: could not write the file ({e.strerror or e}); choose another folder"


class _ExportSignals(QObject):
    done = Signal(object, object, str)  # path, size or None, problem
    progress = Signal(float, float, str)  # done, total, message


class _ExportTask(QRunnable):
    def __init__(self, scene, path, fmt, quality, cancel, signals):
        super().__init__()
        self.scene, self.path, self.fmt, self.quality, self.cancel = scene, path, fmt, quality, cancel
        self.signals = signals

    def run(self):
        def on_event(event):
            if isinstance(event, Progress):
                self.signals.progress.emit(float(event.done), float(event.total), event.message)

        size, problem = _export_or_problem(self.scene, self.path, self.fmt, self.quality, on_event, self.cancel)
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
        self.compression_box = QComboBox()
        for name, label in COMPRESSION_CHOICES:
            self.compression_box.addItem(label, name)
        self.estimate_label = QLabel()
        self.quality_label = QLabel()
        self.quality_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self._cancel: CancelToken | None = None
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("File", path_row)
        form.addRow("Compression", self.compression_box)
        form.addRow("Estimated size", self.estimate_label)
        form.addRow("Expected quality", self.quality_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = self.buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_export)
        self._signals = _ExportSignals(self)
        self._signals.done.connect(self._finish_export)
        self._signals.progress.connect(self._show_progress)
        self.busy = False
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{len(scene):,} splats, SH degree {scene.sh_degree}"))
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)
        self.format_box.currentIndexChanged.connect(self._format_changed)
        self.compression_box.currentIndexChanged.connect(self._update_estimate)
        self._format_changed()

    def format(self) -> str:
        return self.format_box.currentData()

    def set_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))

    def quality(self) -> str | None:
        """The compression quality (low / medium / high) for .handful, or None for lossless."""
        choice = self.compression_box.currentData()
        return None if choice == "none" or self.format() != "handful" else choice

    def set_quality(self, quality: str | None) -> None:
        self.compression_box.setCurrentIndex(self.compression_box.findData(quality or "none"))

    def estimate(self) -> tuple[int, str]:
        """(bytes, expected quality) of the current format and compression, before anything is written."""
        fmt, quality = self.format(), self.quality()
        if quality is None:
            return estimate_size(self.scene, fmt), EXPECTED_QUALITY[fmt]
        q = QUALITIES[quality]
        return predicted_bytes(len(self.scene), quality), (
            f"about {q.expected_psnr_vs_original:.0f} dB from the original; keeps about "
            f"{q.expected_kept_fraction:.0%} of the splats (those that contribute most)")

    def _format_changed(self) -> None:
        fmt = self.format()
        self.path_edit.setText(str(path_for_format(Path(self.path_edit.text()), fmt)))
        self.compression_box.setEnabled(fmt == "handful")
        self._update_estimate()

    def _update_estimate(self) -> None:
        size, quality = self.estimate()
        self.estimate_label.setText(f"about {human_bytes(size)}")
        self.quality_label.setText(quality)

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
            size, problem = _export_or_problem(self.scene, path, fmt, self.quality())
        finally:
            QApplication.restoreOverrideCursor()
        return self._finish_export(path, size, problem)

    def start_export(self) -> None:
        """Export on a thread-pool thread (compressing millions of splats takes seconds)."""
        if self.busy:
            return
        self.busy = True
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.result_label.setText("Exporting…")
        self.progress_bar.setRange(0, 0)
        self.progress_bar.setVisible(True)
        self._cancel = CancelToken()
        path = Path(self.path_edit.text()).expanduser()
        task = _ExportTask(self.scene, path, self.format(), self.quality(), self._cancel, self._signals)
        QThreadPool.globalInstance().start(task)

    def cancel_export(self) -> None:
        """Stop a running compression at its next step; the file is not written."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.result_label.setText("Cancelling…")

    def _show_progress(self, done: float, total: float, message: str) -> None:
        if total > 0:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * min(done / total, 1.0)))
        if message:
            self.result_label.setText(f"Exporting… {message}")

    def _finish_export(self, path: Path, size: int | None, problem: str) -> bool:
        self.busy = False
        self._cancel = None
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setVisible(False)
        if problem:
            self.error = problem
            self.result_label.setText(f"Not exported: {problem}")
            return False
        self.written, self.written_size, self.error = path, size, ""
        self.result_label.setText(f"Wrote {path.name}: {human_bytes(size)} (estimated {human_bytes(self.estimate()[0])})")
        self.exported.emit(path, size)
        return True
