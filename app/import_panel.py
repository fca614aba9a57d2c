"""The left panel: a drop area for photos, folders, videos and scene files, thumbnails with warnings
on files that cannot be used, the quality preset and device choice, and the Reconstruct button.

Thumbnails are decoded on a thread pool (QImageReader with a scaled size, so a 50 MP photo costs a
thumbnail's worth of memory; formats Qt has no plugin for, such as HEIC, through the engine's decoder),
never on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.ingest import IMAGE_EXTENSIONS as IMAGE_SUFFIXES
from engine.ingest import VIDEO_EXTENSIONS as VIDEO_SUFFIXES
from engine.stages.priors import describe_priors, describe_priors_ran
from engine.train import describe_preset

from .theme import icon

# a project (engine.io.project.EXTENSION) opens like a scene
SCENE_SUFFIXES = {".ply", ".spz", ".splat", ".handfulproj"}
THUMB_SIZE = 96
MAX_THUMB_SOURCE_PIXELS = 200_000_000  # refuse to decode absurd images even for a thumbnail

PRESET_LABELS = (("Preview", "preview"), ("Standard", "standard"), ("High", "high"))
PRIORS_LABELS = (("Auto", "auto"), ("Off", "off"), ("Fast", "fast"), ("Full", "full"))
TYPICAL_PHOTOS = 20  # what the preset line describes before any photo is added


def classify(path: Path) -> str:
    """'image', 'video', 'scene', 'folder' or 'unknown' (by name; contents are checked later)."""
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in SCENE_SUFFIXES:
        return "scene"
    return "unknown"


def expand_folder(folder: Path) -> list[Path]:
    """The photos and videos directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and classify(p) in ("image", "video"))


@dataclass
class InputFile:
    path: Path
    kind: str  # image | video
    ok: bool | None = None  # None while its thumbnail is being checked
    message: str = ""
    size: tuple[int, int] | None = None


class _ThumbnailSignals(QObject):
    done = Signal(str, object, str, object)  # path, QImage or None, problem ("" when fine), (w, h)


class _ThumbnailTask(QRunnable):
    def __init__(self, path: Path, kind: str, signals: _ThumbnailSignals):
        super().__init__()
        self.path, self.kind, self.signals = path, kind, signals

    def run(self):  # worker thread
        try:
            image, problem, size = (_image_thumbnail if self.kind == "image" else _video_thumbnail)(self.path)
        except Exception as e:  # any decoder failure becomes a warning on that one file
            image, problem, size = None, f"cannot be read ({e})", None
        self.signals.done.emit(str(self.path), image, problem, size)


def _image_thumbnail(path: Path):
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    if not reader.canRead():  # no Qt plugin for it (HEIC, AVIF): the engine's decoder reads it
        return _engine_thumbnail(path)
    size = reader.size()
    if size.isValid():
        if size.width() * size.height() > MAX_THUMB_SOURCE_PIXELS:
            return None, f"is too large ({size.width()}x{size.height()} pixels)", None
        reader.setScaledSize(size.scaled(THUMB_SIZE, THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        return None, f"cannot be decoded ({reader.errorString()}); the file may be damaged", None
    return image, "", (size.width(), size.height()) if size.isValid() else None


def _engine_thumbnail(path: Path):
    from engine.errors import HandfulError
    from engine.ingest import composite, decode_image

    try:
        decoded = decode_image(path, max_long_edge=4 * THUMB_SIZE)
    except HandfulError as e:
        return None, f"cannot be read: {e.message}" + (f" ({e.hint})" if e.hint else ""), None
    rgb = np.ascontiguousarray(composite(decoded.pixels))
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).scaled(
        THUMB_SIZE, THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image, "", decoded.original_size


def _video_thumbnail(path: Path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            return None, "is not a video Handful can read (try MP4 or MOV, or extract frames)", None
        h, w = frame.shape[:2]
        scale = THUMB_SIZE / max(h, w)
        small = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()
        return image, "", (w, h)
    finally:
        cap.release()


class DropArea(QFrame):
    """Accepts dropped files and folders (URL mime data) and reports their paths."""

    paths_dropped = Signal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("DropArea")
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self.setProperty("dragging", True)
            self.style().polish(self)
        else:
            event.ignore()

    def dragMoveEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragLeaveEvent(self, event):
        self.setProperty("dragging", False)
        self.style().polish(self)

    def dropEvent(self, event):
        self.setProperty("dragging", False)
        self.style().polish(self)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.paths_dropped.emit(paths)
        else:
            event.ignore()


class ImportPanel(QWidget):
    """Inputs for a reconstruction. Scene files are not kept here: they are handed on to be opened."""

    scene_files_dropped = Signal(list)
    inputs_changed = Signal()
    reconstruct_requested = Signal()
    sample_requested = Signal()
    rejected = Signal(str)  # a message for a person about files that were not added

    def __init__(self, parent=None, sample_available: bool = False):
        super().__init__(parent)
        self.setObjectName("ImportPanel")
        self.files: dict[Path, InputFile] = {}
        self._signals = _ThumbnailSignals(self)
        self._signals.done.connect(self._on_thumbnail)
        self._pending = 0
        self._running = False
        self._sample_available = sample_available

        self.drop_area = DropArea(self)
        self.drop_area.paths_dropped.connect(self.add_paths)
        hint = QLabel("Drop photos, a folder or a video here\n(or a .ply / .spz / .splat scene to open it)")
        hint.setObjectName("DropHint")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        self.sample_button = QPushButton("Try the bundled sample")
        self.sample_button.setObjectName("SampleButton")
        self.sample_button.setVisible(sample_available)
        self.sample_button.clicked.connect(self.sample_requested)
        self.list = QListWidget()
        self.list.setObjectName("Thumbnails")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setSpacing(4)
        self.list.setWordWrap(True)
        self.list.setAcceptDrops(False)
        drop_layout = QVBoxLayout(self.drop_area)
        drop_layout.addWidget(hint)
        drop_layout.addWidget(self.sample_button, 0, Qt.AlignmentFlag.AlignHCenter)
        drop_layout.addWidget(self.list, 1)

        self.summary = QLabel("No photos yet")
        self.summary.setObjectName("InputSummary")
        self.summary.setWordWrap(True)
        remove = QPushButton("Remove")
        remove.setToolTip("Remove the selected files (Delete)")
        remove.clicked.connect(self.remove_selected)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear)
        row = QHBoxLayout()
        row.addWidget(remove)
        row.addWidget(clear)
        row.addStretch(1)

        self.preset_box = QComboBox()
        for label, value in PRESET_LABELS:
            self.preset_box.addItem(label, value)
        self.preset_box.setToolTip("Preview: fast, rough. Standard: balanced. High: slow, sharpest.")
        self.device_box = QComboBox()
        self.device_box.addItem("Auto", "auto")
        self.device_box.addItem("CPU", "cpu")
        if _cuda_available():
            self.device_box.addItem("CUDA (GPU)", "cuda")
        self.refine_poses_box = QCheckBox("Refine camera poses")
        self.refine_poses_box.setToolTip(
            "Learn a small correction to each photo's camera while training. Helps when the estimated "
            "cameras are off (blurred or doubled edges); with well-estimated cameras it changes little. "
            "Needs at least 6 photos."
        )
        self.priors_box = QComboBox()
        for label, value in PRIORS_LABELS:
            self.priors_box.addItem(label, value)
        self.priors_box.setToolTip(
            "Help for captures of a few photos. Fast: depth maps from the photos, dense starting points and "
            "depth/dropout terms in training. Full: also repairs views between the photos and trains on them. "
            "Auto: on for a dozen photos or fewer."
        )
        self.priors_cost = QLabel()
        self.priors_cost.setObjectName("PriorsCost")
        self.priors_cost.setWordWrap(True)
        self.priors_ran = QLabel()  # which priors and backends the last job ran
        self.priors_ran.setObjectName("PriorsRan")
        self.priors_ran.setWordWrap(True)
        self.priors_ran.hide()
        self.preset_cost = QLabel()
        self.preset_cost.setObjectName("PresetCost")
        self.preset_cost.setWordWrap(True)
        self.preset_box.currentIndexChanged.connect(self._update_preset_cost)
        self.device_box.currentIndexChanged.connect(self._update_preset_cost)
        self.inputs_changed.connect(self._update_preset_cost)
        for changed in (self.priors_box.currentIndexChanged, self.preset_box.currentIndexChanged):
            changed.connect(self._update_priors_cost)
        self.inputs_changed.connect(self._update_priors_cost)
        form = QFormLayout()
        form.addRow("Quality", self.preset_box)
        form.addRow("", self.preset_cost)
        form.addRow("Device", self.device_box)
        form.addRow("Priors", self.priors_box)
        form.addRow("", self.priors_cost)
        form.addRow("", self.priors_ran)
        form.addRow("", self.refine_poses_box)

        self.reconstruct_button = QPushButton(icon("reconstruct"), "Reconstruct")
        self.reconstruct_button.setObjectName("PrimaryButton")
        self.reconstruct_button.setEnabled(False)
        self.reconstruct_button.clicked.connect(self.reconstruct_requested)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.drop_area, 1)
        layout.addWidget(self.summary)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(self.reconstruct_button)
        self._update_preset_cost()
        self._update_priors_cost()

    # ----------------------------------------------------------------- public API
    def preset(self) -> str:
        return self.preset_box.currentData()

    def set_preset(self, value: str) -> None:
        i = self.preset_box.findData(value)
        if i >= 0:
            self.preset_box.setCurrentIndex(i)

    def device(self) -> str:
        return self.device_box.currentData()

    def set_device(self, value: str) -> None:
        i = self.device_box.findData(value)
        if i >= 0:
            self.device_box.setCurrentIndex(i)

    def priors(self) -> str:
        return self.priors_box.currentData()

    def set_priors(self, value: str) -> None:
        i = self.priors_box.findData(value)
        if i >= 0:
            self.priors_box.setCurrentIndex(i)

    def show_priors_ran(self, report: dict | None) -> None:
        """After a job: which priors ran, with which backend (report.json's "priors")."""
        text = describe_priors_ran(report)
        self.priors_ran.setText(text)
        self.priors_ran.setVisible(bool(text))

    def refine_poses(self) -> bool:
        return self.refine_poses_box.isChecked()

    def set_refine_poses(self, value: bool) -> None:
        self.refine_poses_box.setChecked(bool(value))

    def good_inputs(self) -> list[Path]:
        return [f.path for f in self.files.values() if f.ok]

    def bad_inputs(self) -> list[InputFile]:
        return [f for f in self.files.values() if f.ok is False]

    @property
    def checking(self) -> bool:
        return self._pending > 0

    def set_running(self, running: bool) -> None:
        self._running = running
        self._update_summary()

    def add_paths(self, paths: list[Path]) -> list[str]:
        """Add photos/videos (folders expand to what they hold); scene files are handed on.

        Returns the problems found straight away (unknown types, missing files); unreadable contents
        are found by the thumbnail check and shown on the file's tile.
        """
        problems: list[str] = []
        scenes: list[Path] = []
        for path in map(Path, paths):
            kind = classify(path) if path.exists() else "missing"
            if kind == "missing":
                problems.append(f"{path}: does not exist (was it moved or deleted?)")
            elif kind == "scene":
                scenes.append(path)
            elif kind == "folder":
                found = expand_folder(path)
                if not found:
                    problems.append(f"{path}: holds no photos or videos (JPEG, HEIC, PNG, TIFF, WebP, MP4, MOV)")
                for p in found:
                    self._add_file(p, classify(p))
            elif kind == "unknown":
                problems.append(
                    f"{path.name}: is not a photo, video or scene file; drop JPEG/HEIC/PNG/TIFF photos, "
                    "a video (MP4, MOV) or a .ply/.spz/.splat scene"
                )
            else:
                self._add_file(path, kind)
        if scenes:
            self.scene_files_dropped.emit(scenes)
        if problems:
            self.rejected.emit("; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else ""))
        self._update_summary()
        self.inputs_changed.emit()
        return problems

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.files.pop(Path(item.data(Qt.ItemDataRole.UserRole)), None)
            self.list.takeItem(self.list.row(item))
        self._update_summary()
        self.inputs_changed.emit()

    def clear(self) -> None:
        self.files.clear()
        self.list.clear()
        self._update_summary()
        self.inputs_changed.emit()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.remove_selected()
        else:
            super().keyPressEvent(event)

    # ----------------------------------------------------------------- internals
    def _add_file(self, path: Path, kind: str) -> None:
        path = path.resolve()
        if path in self.files:
            return
        self.files[path] = InputFile(path, kind)
        item = QListWidgetItem(icon("video" if kind == "video" else "image"), path.name)
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        item.setToolTip(f"{path}\nchecking…")
        item.setSizeHint(QSize(THUMB_SIZE + 16, THUMB_SIZE + 36))
        self.list.addItem(item)
        self._pending += 1
        QThreadPool.globalInstance().start(_ThumbnailTask(path, kind, self._signals))

    def _item_for(self, path: Path) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if Path(item.data(Qt.ItemDataRole.UserRole)) == path:
                return item
        return None

    def _on_thumbnail(self, path_str: str, image, problem: str, size) -> None:
        self._pending = max(0, self._pending - 1)
        path = Path(path_str)
        entry = self.files.get(path)
        if entry is None:  # removed while its thumbnail was loading
            self._update_summary()
            return
        entry.ok = not problem
        entry.message = problem
        entry.size = tuple(size) if size else None
        item = self._item_for(path)
        if item is not None:
            if problem:
                item.setIcon(icon("warning"))
                item.setToolTip(f"{path}\n{path.name} {problem}. It will be skipped.")
                item.setForeground(Qt.GlobalColor.red)
            else:
                item.setIcon(QIcon(QPixmap.fromImage(image)))
                dims = f"{size[0]}×{size[1]}" if size else ""
                item.setToolTip(f"{path}\n{dims}")
        self._update_summary()
        self.inputs_changed.emit()

    def _update_preset_cost(self) -> None:
        """What the chosen preset does with these photos on this device (its steps, resolution, splats)."""
        count = len(self.good_inputs())
        device = self.device()
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        where = "a GPU" if device == "cuda" else "the CPU"
        photos = f"{count} input{'s' if count != 1 else ''}" if count else f"{TYPICAL_PHOTOS} photos"
        self.preset_cost.setText(f"On {where} for {photos}: {describe_preset(self.preset(), count or TYPICAL_PHOTOS, device)}.")

    def _update_priors_cost(self) -> None:
        """What the priors choice adds for these photos with this preset."""
        count = len(self.good_inputs()) or TYPICAL_PHOTOS
        self.priors_cost.setText(describe_priors(self.priors(), self.preset(), count) + ".")

    def _update_summary(self) -> None:
        good = len(self.good_inputs())
        bad = self.bad_inputs()
        parts = []
        if not self.files:
            parts.append("No photos yet")
        else:
            parts.append(f"{good} usable file{'s' if good != 1 else ''}")
        if self._pending:
            parts.append(f"checking {self._pending}…")
        if bad:
            parts.append(f"{len(bad)} skipped (not readable; hover for details)")
        self.summary.setText(", ".join(parts))
        self.sample_button.setVisible(self._sample_available and not self.files)
        self.reconstruct_button.setEnabled(good > 0 and not self._running)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False
