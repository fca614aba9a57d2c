"""The Handful main window: inputs on the left, the 3D view in the centre, progress and log panels.

Everything slow runs elsewhere: the job on a QThread (JobRunner), thumbnails on a thread pool. The
window only reacts to signals, shows messages with a next step (a banner, never a traceback) and
sends details to the log panel.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice, QObject, QRect, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from engine.edit import Delete, read_groups
from engine.errors import HandfulError
from engine.io.project import EXTENSION as PROJECT_EXTENSION
from engine.io.project import Project, is_project, load_project, save_project
from engine.io.atomic import atomic_write_bytes

from . import APPLICATION
from .dialogs.about import show_about
from .dialogs.export_dialog import ExportDialog, export_scene
from .dialogs.messages import Banner
from .editing import EditSession, SelectionTools
from .editing.actions import EditActions
from .import_panel import SCENE_SUFFIXES, ImportPanel
from .job_runner import JobRunner
from .log_panel import LogPanel
from .objects_panel import ObjectsPanel
from .progress_panel import ProgressPanel, format_metrics
from .settings import Settings
from .theme import SAMPLE, icon

log = logging.getLogger(__name__)

SCENE_FILTER = "Splat scenes and projects (*.ply *.spz *.splat *.handfulproj);;All files (*)"
SAVE_FILTER = "Splat scenes (*.ply *.spz *.splat);;Handful project (*.handfulproj);;All files (*)"


class PlaceholderViewer(QLabel):
    """Stands in for the 3D view when OpenGL (or the viewer module) is unavailable; keeps the scene so
    that saving, exporting and editing still work, and reports 'drawn' once it shows a summary."""

    camera_clicked = Signal(int)
    stats_changed = Signal(dict)
    drawn = Signal()

    def __init__(self, reason: str, parent=None):
        super().__init__(parent)
        self.setObjectName("ViewerPlaceholder")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setMinimumSize(160, 120)
        self.reason = reason
        self.scene = None
        self.cameras = []
        self.visible_mask = None
        self.highlight = None
        self._refresh()

    def _refresh(self):
        lines = [f"3D view unavailable: {self.reason}"]
        if self.scene is not None:
            shown = len(self.scene) if self.visible_mask is None else int(np.count_nonzero(self.visible_mask))
            lines.append(f"Scene loaded: {shown:,} splats")
        self.setText("\n\n".join(lines))

    def set_scene(self, scene, frame=True):
        self.scene, self.visible_mask, self.highlight = scene, None, None
        self._refresh()
        self.stats_changed.emit({"splats": 0 if scene is None else len(scene)})
        self.drawn.emit()

    def update_scene(self, scene):
        self.set_scene(scene, frame=False)

    def clear(self):
        self.set_scene(None)

    def set_cameras(self, cameras):
        self.cameras = list(cameras or [])

    def frame_all(self):
        pass

    def reset_view(self):
        pass

    def view_camera(self, camera):
        pass

    def current_camera(self):
        return None

    def set_highlight(self, mask):
        self.highlight = mask

    def set_visible_mask(self, mask):
        self.visible_mask = mask
        self._refresh()


def make_viewer(parent=None) -> QWidget:
    """The splat viewer, or a placeholder saying why it is unavailable (no OpenGL, missing module)."""
    if os.environ.get("HANDFUL_NO_GL"):
        return PlaceholderViewer("disabled by HANDFUL_NO_GL", parent)
    try:
        from .viewer import SplatViewer

        return SplatViewer(parent)
    except Exception as e:  # ImportError, or no usable OpenGL on this machine
        log.warning("3D view unavailable: %s", e)
        return PlaceholderViewer(f"{type(e).__name__}: {e}", parent)


class MainWindow(QMainWindow):
    scene_shown = Signal(object)  # emitted when a scene (opened, snapshot or result) reaches the viewer

    def __init__(self, settings: Settings | None = None, viewer: QWidget | None = None, job_fn=None,
                 job_isolation: str = "process"):
        super().__init__()
        self.settings = settings or Settings()
        self.setWindowTitle(APPLICATION)
        self.setWindowIcon(icon("handful"))
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self.current_path: Path | None = None
        self.job_out_dir: Path | None = None
        self.job_cameras: Path | None = None  # known cameras for the inputs: pose estimation is skipped
        self.session_cameras: list = []  # the open scene's cameras (saved in a project)
        self._last_snapshot = None
        self._snapshot_count = 0
        self._loading: Path | None = None
        self._load_signals = _LoadSignals(self)
        self._load_signals.done.connect(self._on_scene_loaded)

        self.viewer = viewer if viewer is not None else make_viewer(self)
        self.banner = Banner()
        self.banner.action_triggered.connect(self._on_banner_action)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.viewer, 1)
        self.setCentralWidget(central)

        sample_ok = (SAMPLE / "images").is_dir() and any((SAMPLE / "images").iterdir())
        self.import_panel = ImportPanel(sample_available=sample_ok)
        self.import_panel.set_preset(self.settings.preset)
        self.import_panel.set_device(self.settings.device)
        self.import_panel.set_refine_poses(self.settings.refine_poses)
        self.import_panel.set_priors(self.settings.priors)
        self.progress_panel = ProgressPanel()
        self.log_panel = LogPanel()
        self.log_panel.attach_logging("engine")
        self.log_panel.attach_logging("app")
        scroll = QScrollArea()  # small windows (and --size) scroll the inputs rather than growing
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.import_panel)
        self.import_dock = self._dock("Inputs", scroll, Qt.DockWidgetArea.LeftDockWidgetArea, "InputsDock")
        self.progress_dock = self._dock("Progress", self.progress_panel, Qt.DockWidgetArea.RightDockWidgetArea,
                                        "ProgressDock")
        self.log_dock = self._dock("Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea, "LogDock")
        self.resizeDocks([self.import_dock, self.progress_dock], [300, 280], Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock], [150], Qt.Orientation.Vertical)

        self.session = EditSession(self)
        self.select_tool = SelectionTools(self.viewer, self.session, self)
        self.objects_panel = ObjectsPanel(self.session)
        self.objects_dock = self._dock("Objects", self.objects_panel, Qt.DockWidgetArea.RightDockWidgetArea,
                                       "ObjectsDock")
        self.runner = JobRunner(self, job_fn=job_fn, isolation=job_isolation)
        self._build_actions()
        self._connect()
        self._restore_state()
        self._update_actions()
        self._welcome_text = ""
        if sample_ok and not self.settings.sample_offered:
            # first start: offer the bundled sample once (it stays on the Inputs panel while empty)
            self.settings.sample_offered = True
            self._welcome_text = ("New to Handful? Reconstruct the bundled sample to see how it works, "
                                  "or drop your own photos on the Inputs panel.")
            self.banner.show_message(self._welcome_text, "info", ("Try the sample", "sample"), timeout_ms=0)

    # ----------------------------------------------------------------- construction
    def _dock(self, title, widget, area, name) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text, slot=None, shortcut=None, icon_name=None, checkable=False, tip=None) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if checkable:
            action.setCheckable(True)
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        if slot:
            action.triggered.connect(slot)
        return action

    def _build_actions(self):
        S = QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.open_dialog, S.Open, "open", tip="Open a splat scene")
        self.add_photos_action = self._action("&Add Photos…", self.add_photos_dialog, "Ctrl+Shift+O", "image")
        self.save_action = self._action("&Save", self.save, S.Save, "save", tip="Save the edited scene")
        self.save_as_action = self._action("Save &As…", self.save_as_dialog, S.SaveAs)
        self.save_project_action = self._action("Save &Project As…", self.save_project_dialog,
                                                tip="Save the scene, cameras, objects and edit history in one file")
        self.export_action = self._action("&Export…", self.export_dialog, "Ctrl+E", "export",
                                          tip="Export as .ply, .spz, compressed .ply or .splat")
        # Ctrl+Shift+S is the platforms' Save As: a second action on it made both ambiguous (neither fired)
        self.screenshot_action = self._action("Save Scree&nshot…", self.screenshot_dialog, "Ctrl+Alt+S",
                                              "screenshot")
        self.quit_action = self._action("&Quit", self.close, S.Quit)
        self.edit_actions = e = EditActions(self, self.session, self.select_tool, self._show_preview)
        self.undo_action, self.redo_action, self.delete_action = e.undo, e.redo, e.delete
        self.select_action, self.select_all_action, self.clear_selection_action = e.rect_tool, e.select_all, e.select_none
        self.invert_action = e.invert
        self.frame_action = self._action("&Frame All", self._frame_all, "F", "frame")
        self.reset_view_action = self._action("&Reset View", self._reset_view, "Home")
        self.reconstruct_action = self._action("&Reconstruct", self.start_reconstruction, "Ctrl+R", "reconstruct")
        self.cancel_action = self._action("&Cancel Job", self.cancel_job, "Esc", "cancel")
        self.about_action = self._action("&About Handful", lambda: show_about(self))

        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.open_action, self.add_photos_action])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        file_menu.addSeparator()
        file_menu.addActions([self.save_action, self.save_as_action, self.save_project_action, self.export_action,
                              self.screenshot_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.edit_actions.fill_edit_menu(bar.addMenu("&Edit"))
        self.edit_actions.fill_select_menu(bar.addMenu("&Select"))
        view_menu = bar.addMenu("&View")
        view_menu.addActions([self.frame_action, self.reset_view_action])
        view_menu.addSeparator()
        for dock in (self.import_dock, self.progress_dock, self.objects_dock, self.log_dock):
            view_menu.addAction(dock.toggleViewAction())
        job_menu = bar.addMenu("&Job")
        job_menu.addActions([self.reconstruct_action, self.cancel_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

        tools = QToolBar("Tools", self)
        tools.setObjectName("MainToolbar")
        tools.setMovable(False)
        tools.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        tools.addActions([self.open_action, self.save_action, self.export_action])
        tools.addSeparator()
        tools.addActions([self.select_action, self.edit_actions.lasso_tool, self.edit_actions.brush_tool,
                          self.delete_action, self.undo_action, self.redo_action])
        tools.addSeparator()
        tools.addActions([self.frame_action, self.screenshot_action])
        self.addToolBar(tools)

        self.splat_label = QLabel("")
        self.statusBar().addPermanentWidget(self.splat_label)

    def _connect(self):
        p = self.import_panel
        p.scene_files_dropped.connect(lambda paths: self.open_scene(paths[0], background=True))
        p.reconstruct_requested.connect(self.start_reconstruction)
        p.sample_requested.connect(self.load_sample)
        p.rejected.connect(lambda text: self.show_message(text, "warning"))
        p.inputs_changed.connect(self._on_inputs_changed)
        p.preset_box.currentIndexChanged.connect(lambda: setattr(self.settings, "preset", p.preset()))
        p.device_box.currentIndexChanged.connect(lambda: setattr(self.settings, "device", p.device()))
        p.refine_poses_box.toggled.connect(lambda on: setattr(self.settings, "refine_poses", on))
        p.priors_box.currentIndexChanged.connect(lambda: setattr(self.settings, "priors", p.priors()))

        r = self.runner
        r.started.connect(self.progress_panel.job_started)
        r.stage_started.connect(self.progress_panel.stage_started)
        r.stage_started.connect(lambda s, i, n: self.log_panel.info(f"stage {i + 1}/{n}: {s}"))
        r.stage_finished.connect(lambda s, sec: self.log_panel.info(f"stage {s} finished in {sec:.1f} s"))
        r.progress.connect(self.progress_panel.progress)
        r.metrics.connect(self.progress_panel.metrics_changed)
        r.metrics.connect(lambda step, v: self.log_panel.info(f"step {step}: {format_metrics(v)}")
                          if step % 100 == 0 else None)
        r.warning.connect(self._on_job_warning)
        r.snapshot.connect(self._on_snapshot)
        r.finished.connect(self._on_job_finished)
        r.failed.connect(self._on_job_failed)
        r.cancelled.connect(self._on_job_cancelled)
        r.running_changed.connect(self._on_running_changed)
        r.log_line.connect(self.log_panel.append)
        self.progress_panel.cancel_requested.connect(self.cancel_job)
        self.scene_shown.connect(self._hide_welcome)
        r.running_changed.connect(lambda running: self._hide_welcome() if running else None)

        s = self.session
        s.scene_changed.connect(self._on_session_scene)
        s.scene_data_changed.connect(self.viewer.update_scene)
        s.visibility_changed.connect(self._on_visibility)
        s.selection_changed.connect(self._on_selection)
        s.history_changed.connect(self._update_title)
        s.history_changed.connect(self._update_actions)
        s.message.connect(lambda t: self.statusBar().showMessage(t, 5000))
        self.select_tool.message.connect(lambda t: self.statusBar().showMessage(t, 5000))
        if hasattr(self.viewer, "stats_changed"):
            self.viewer.stats_changed.connect(self._on_viewer_stats)

    def _restore_state(self):
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    # ----------------------------------------------------------------- messages
    def show_message(self, text: str, level: str = "error", action: tuple[str, str] | None = None) -> None:
        self.banner.show_message(text, level, action)
        getattr(self.log_panel, "error" if level == "error" else "warning" if level == "warning" else "info")(text)

    def _hide_welcome(self, *_):
        """The first-start offer is for an empty window: once a scene shows or a job runs it is in the way."""
        if self._welcome_text and self.banner.text() == self._welcome_text:
            self.banner.dismiss()

    def _on_banner_action(self, key: str):
        if key == "export":
            self.export_dialog()
        elif key == "log":
            self.log_dock.show()
            self.log_dock.raise_()
        elif key == "sample":
            self.load_sample()

    # ----------------------------------------------------------------- drops and files
    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.handle_paths(paths)

    def handle_paths(self, paths: list[Path]) -> None:
        """Files from the command line or a drop: a single scene opens; photos go to the inputs."""
        self.import_panel.add_paths([Path(p) for p in paths])

    def open_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open scene", self.settings.last_folder, SCENE_FILTER)
        if path:
            self.open_scene(Path(path), background=True)

    def add_photos_dialog(self):
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Add photos or videos", self.settings.last_folder,
            "Photos and videos (*.jpg *.jpeg *.png *.tif *.tiff *.webp *.bmp *.mp4 *.mov *.avi *.mkv *.webm)")
        if paths:
            self.settings.last_folder = str(Path(paths[0]).parent)
            self.import_panel.add_paths([Path(p) for p in paths])

    def open_scene(self, path: str | Path, background: bool = False) -> bool:
        """Show a scene file in the viewer; a bad file gives a message (and False), never a traceback.

        With ``background`` the file is read on a thread-pool thread (large files take seconds) and
        the result arrives later (``scene_shown``, or a message); the return value then only says
        whether loading started.
        """
        path = Path(path)
        if not self.confirm_discard():
            return False
        if not background:
            return self._show_loaded_scene(path, *_load_scene_file(path))
        if self._loading is not None:
            self.statusBar().showMessage("Still opening the previous file…", 3000)
            return False
        self._loading = path
        self.statusBar().showMessage(f"Opening {path.name}…")
        task = _SceneLoadTask(path, self._load_signals)
        QThreadPool.globalInstance().start(task)
        return True

    def _on_scene_loaded(self, path_str: str, scene, problem: str):
        self._loading = None
        self._show_loaded_scene(Path(path_str), scene, problem)

    def _show_loaded_scene(self, path: Path, scene, problem: str) -> bool:
        if problem:  # the open scene (and its edits) stay as they were
            self.statusBar().clearMessage()
            self.show_message(problem, "error")
            return False
        self.current_path = path
        self.job_out_dir = None
        self.settings.add_recent_file(path)
        self.settings.last_folder = str(path.parent)
        if isinstance(scene, Project):
            return self._show_project(path, scene)
        self.session.set_scene(scene, self._groups_next_to(path))
        scene = self.session.scene  # the document's: edits update it in place of the file's
        cameras = self._job_cameras_next_to(path)
        self.session_cameras = cameras
        self.viewer.set_cameras(cameras)
        self.viewer.set_scene(scene, frame=True)  # the opening view: the first photo's, when there are cameras
        self.scene_shown.emit(scene)
        self.log_panel.info(f"opened {path}: {scene.describe()}")
        self.statusBar().showMessage(f"Opened {path.name}", 5000)
        self._update_title()
        return True

    def _show_project(self, path: Path, project: Project) -> bool:
        doc = project.document
        self.session.set_document(doc)
        self.session_cameras = project.cameras
        self.viewer.set_cameras(project.cameras)
        self.viewer.set_scene(doc.scene(), frame=True)
        self._on_visibility(doc.visible)
        self._on_selection(doc.selected)
        self.scene_shown.emit(doc.scene())
        self.log_panel.info(f"opened project {path}: {doc.edited_scene().describe()}, {doc.position} edits")
        self.statusBar().showMessage(f"Opened {path.name}", 5000)
        self._update_title()
        return True

    def _groups_next_to(self, scene_path: Path):
        """Object names and colours from the grouping stage's groups.json beside the scene, if any."""
        path = scene_path.parent / "groups.json"
        if not path.is_file():
            return None
        try:
            return read_groups(path)
        except HandfulError as e:
            self.log_panel.warning(f"object names were not loaded: {e}")
            return None

    def _job_cameras_next_to(self, scene_path: Path) -> list:
        """The cameras of the job that made ``scene_path`` (its folder's sparse/ model), if any."""
        sparse = scene_path.parent / "sparse"
        if not (sparse / "cameras.txt").is_file() and not (sparse / "cameras.bin").is_file():
            return []
        try:
            from engine.io import load_cameras

            return load_cameras(sparse)
        except HandfulError as e:
            self.log_panel.warning(f"cameras next to the scene were not shown: {e}")
            return []

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(path.name)
            action.setToolTip(str(path))
            action.setData(str(path))
            action.triggered.connect(lambda _=False, p=path: self._open_recent(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent", self.settings.clear_recent_files)
        else:
            self.recent_menu.addAction("No recent scenes").setEnabled(False)

    def _open_recent(self, path: Path):
        if not path.exists():
            self.settings.remove_recent_file(path)
            self.show_message(f"{path}: the file is gone (moved or deleted); removed it from Open Recent",
                              "warning")
            return
        self.open_scene(path, background=True)

    def load_sample(self):
        images = SAMPLE / "images"
        if not images.is_dir():
            self.show_message("The bundled sample is missing from this installation; reinstall Handful "
                              "or drop your own photos", "warning")
            return
        self.import_panel.add_paths([images])
        self.import_panel.set_preset("preview")  # the quickest look: a first run should not take an hour
        # the sample goes through the real pipeline (its photos carry their focal length in EXIF, so
        # pose estimation takes seconds); its transforms.json holds the true cameras for tests only
        self.job_cameras = None
        self.settings.sample_offered = True
        self.show_message("Sample photos added with the Preview quality, the quickest: press Reconstruct.", "info")

    # ----------------------------------------------------------------- saving
    def confirm_discard(self) -> bool:
        """Before the edits would be lost (close, open another file, reconstruct): save, discard or cancel."""
        if not self.session.modified:
            return True
        B = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Unsaved edits", "The scene has edits that are not saved. Save them first?",
            B.Save | B.Discard | B.Cancel, B.Save)
        if answer == B.Save:
            return self.save()
        return answer == B.Discard

    def save(self) -> bool:
        if self.current_path is None or self.current_path.suffix.lower() not in SCENE_SUFFIXES:
            return self.save_as_dialog()
        return self.save_to(self.current_path)

    def save_to(self, path: str | Path, fmt: str | None = None) -> bool:
        scene = self.session.edited_scene()
        if scene is None:
            self.show_message("There is no scene to save yet: open one or reconstruct from photos", "warning")
            return False
        path = Path(path)
        if is_project(path):
            return self.save_project_to(path)
        try:
            size = export_scene(scene, path, fmt or _format_for(path))
        except HandfulError as e:
            self.show_message(f"Not saved. {e}", "error")
            return False
        except OSError as e:
            self.show_message(f"{path}: could not write the file ({e.strerror or e}); choose another folder",
                              "error")
            return False
        return self._saved(path, f"saved {len(scene):,} splats to {path} ({size:,} bytes)")

    def _saved(self, path: Path, log_text: str) -> bool:
        self.current_path = path
        self.session.mark_saved()
        self.settings.add_recent_file(path)
        self.log_panel.info(log_text)
        self.statusBar().showMessage(f"Saved {path.name}", 5000)
        self._update_title()
        return True

    def save_as_dialog(self) -> bool:
        start = str(self.current_path or self.settings.projects_folder / "scene.ply")
        path, _ = QFileDialog.getSaveFileName(self, "Save scene", start, SAVE_FILTER)
        return bool(path) and self.save_to(Path(path))

    def save_project_to(self, path: str | Path) -> bool:
        """The whole session (scene, cameras, objects, edit history) in one file; reopening restores undo."""
        path = Path(path)
        if self.session.doc is None:
            self.show_message("There is no scene to save yet: open one or reconstruct from photos", "warning")
            return False
        try:
            source = None if self.current_path is None or is_project(self.current_path) else self.current_path
            save_project(path, self.session.doc, self.session_cameras, source)
        except HandfulError as e:
            self.show_message(f"Not saved. {e}", "error")
            return False
        return self._saved(path, f"saved the project {path} ({self.session.doc.position} edits)")

    def save_project_dialog(self) -> bool:
        base = self.current_path or self.settings.projects_folder / "scene.ply"
        start = str(base.with_name(base.name.split(".")[0] + PROJECT_EXTENSION))
        path, _ = QFileDialog.getSaveFileName(self, "Save project", start,
                                              f"Handful project (*{PROJECT_EXTENSION})")
        if not path:
            return False
        path = Path(path)
        if not is_project(path):
            path = path.with_name(path.name + PROJECT_EXTENSION)
        return self.save_project_to(path)

    def export_dialog(self):
        scene = self.session.edited_scene()
        if scene is None:
            self.show_message("There is no scene to export yet: open one or reconstruct from photos", "warning")
            return None
        base = self.current_path or (self.settings.projects_folder / "scene.ply")
        dialog = ExportDialog(scene, base.with_name(base.name.split(".")[0] + "-export.ply"), self)
        dialog.finished.connect(lambda _: self._after_export(dialog))
        dialog.open()
        return dialog

    def _after_export(self, dialog: ExportDialog):
        if dialog.written is not None:
            self.log_panel.info(f"exported {dialog.written} ({dialog.written_size:,} bytes)")

    def grab_image(self):
        """The window as a QImage, with the 3D view read back from its own framebuffer (a plain
        widget grab does not reliably include OpenGL content)."""
        image = self.grab().toImage()
        try:
            frame = self.viewer.grab()
        except Exception as e:  # a broken GL read-back still leaves the rest of the window
            log.warning("could not read back the 3D view: %s", e)
            return image
        if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.size:
            frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
            h, w = frame.shape[:2]
            view = QImage(frame.data, w, h, frame.strides[0], QImage.Format.Format_RGB888).copy()
            # the painter works in logical pixels; the image's device pixel ratio maps them
            target = QRect(self.viewer.mapTo(self, self.viewer.rect().topLeft()), self.viewer.size())
            painter = QPainter(image)
            painter.drawImage(target, view)
            painter.end()
        return image

    def save_screenshot(self, path: str | Path) -> Path:
        """The window as a PNG (atomic write); raises HandfulError when it cannot be written."""
        from engine.errors import InputError

        path = Path(path)
        image = self.grab_image()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            raise InputError("could not encode the screenshot as PNG", path)
        try:
            atomic_write_bytes(path, bytes(buffer.data()))
        except OSError as e:
            raise InputError(f"could not write the screenshot ({e.strerror or e})", path,
                             "choose a folder you can write to") from e
        return path

    def screenshot_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(self.settings.projects_folder /
                                                                           "screenshot.png"), "PNG (*.png)")
        if path:
            try:
                self.save_screenshot(path)
                self.statusBar().showMessage(f"Saved {Path(path).name}", 5000)
            except HandfulError as e:
                self.show_message(str(e), "error")

    # ----------------------------------------------------------------- editing
    def delete_selected(self):
        result = self.session.apply(Delete())
        if result.changed:
            self.statusBar().showMessage(f"Deleted {result.count:,} splats (Undo brings them back)", 5000)
        return result

    def _show_preview(self, mask):
        """Highlight what a dialog would act on (a floater preview); None shows the selection again."""
        if mask is None:
            mask = self.session.selection if self.session.num_selected else None
        self.viewer.set_highlight(mask)

    def _on_session_scene(self, scene):
        # a new document starts with everything shown and nothing selected, even at the old one's size
        self.viewer.set_visible_mask(None)
        self.viewer.set_highlight(None)
        self._update_actions()
        self._update_title()
        self._update_splat_label()

    def _on_visibility(self, alive):
        self.viewer.set_visible_mask(None if alive.all() else alive.copy())
        self._update_splat_label()
        self._update_title()

    def _on_selection(self, selection):
        self.viewer.set_highlight(selection.copy() if selection.any() else None)
        self._update_splat_label()
        self._update_actions()

    def _on_viewer_stats(self, stats: dict):
        fps = stats.get("fps")
        if fps:
            self.statusBar().showMessage(f"{fps:.1f} FPS" if fps < 10 else f"{fps:.0f} FPS", 2000)

    def _frame_all(self):
        self.viewer.frame_all()

    def _reset_view(self):
        self.viewer.reset_view()

    # ----------------------------------------------------------------- the job
    def _on_inputs_changed(self):
        if not self.import_panel.files:
            self.job_cameras = None

    def job_options(self):
        from engine.job import JobOptions

        return JobOptions(preset=self.import_panel.preset(), device=self.import_panel.device(),
                          cameras=self.job_cameras, refine_poses=self.import_panel.refine_poses(),
                          priors=self.import_panel.priors())

    def new_job_folder(self) -> Path:
        inputs = self.import_panel.good_inputs()
        stem = inputs[0].parent.name if inputs else "project"
        if stem in ("images", "photos", ""):
            stem = inputs[0].parent.parent.name if inputs else "project"
        return self.settings.projects_folder / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

    def start_reconstruction(self, options=None, out_dir: Path | None = None) -> bool:
        if self.runner.running:
            return False
        inputs = self.import_panel.good_inputs()
        if not inputs:
            self.show_message("Add photos first: drop them on the Inputs panel (or try the bundled sample)",
                              "warning", ("Use sample", "sample") if self.import_panel._sample_available else None)
            return False
        if not self.confirm_discard():
            return False
        try:
            options = options or self.job_options()
        except HandfulError as e:
            self.show_message(str(e), "error")
            return False
        self.job_out_dir = Path(out_dir) if out_dir else self.new_job_folder()
        self.banner.dismiss()
        self._last_snapshot = None
        self._snapshot_count = 0
        self.log_panel.info(f"reconstructing {len(inputs)} files into {self.job_out_dir} "
                            f"(preset {options.preset}, device {options.device})")
        self.runner.start(inputs, self.job_out_dir, options)
        return True

    def cancel_job(self):
        if self.runner.running:
            self.log_panel.info("cancelling: the job stops at the next safe point")
            self.runner.cancel()

    def _on_running_changed(self, running: bool):
        self.import_panel.set_running(running)
        self._update_actions()

    def _on_job_warning(self, message: str, path: str):
        self.log_panel.warning(f"{path}: {message}" if path else message)

    def _on_snapshot(self, scene, step: int, cameras):
        first = self._last_snapshot is None
        self._last_snapshot = scene
        self._snapshot_count += 1
        if first:
            if cameras:
                self.viewer.set_cameras(cameras)
            self.viewer.set_scene(scene, frame=True)
        else:
            self.viewer.update_scene(scene)
        self.splat_label.setText(f"{len(scene):,} splats · step {step:,}")
        self.scene_shown.emit(scene)

    def _keep_last_snapshot(self):
        """After a failed or cancelled job the last snapshot stays and can be saved or exported."""
        if self._last_snapshot is not None:
            self.session.set_scene(self._last_snapshot)

    def _on_job_finished(self, result):
        self.progress_panel.job_succeeded()
        scene = getattr(result, "scene", None)
        if scene is None:
            stopped = getattr(result, "stopped_after", None)
            self.show_message(f"Job finished after the {stopped or 'last'} stage; results are in "
                              f"{getattr(result, 'out_dir', self.job_out_dir)}", "info")
            return
        cameras = getattr(result, "cameras", None)
        self.session_cameras = list(cameras or [])
        if cameras:
            self.viewer.set_cameras(cameras)
        self.session.set_scene(scene, self._groups_next_to(Path(result.scene_path))
                               if getattr(result, "scene_path", None) else None)
        scene = self.session.scene
        if self._last_snapshot is None:
            self.viewer.set_scene(scene, frame=True)
        else:
            self.viewer.update_scene(scene)
        self._last_snapshot = None
        self.scene_shown.emit(scene)
        self.current_path = getattr(result, "scene_path", None)
        if self.current_path is not None:
            self.settings.add_recent_file(self.current_path)
        report = getattr(result, "report", {}) or {}
        self.import_panel.show_priors_ran(report.get("priors"))
        psnr = (report.get("eval") or {}).get("psnr")
        quality = f", PSNR {psnr:.2f} dB" if psnr is not None else ""
        self.show_message(f"Reconstruction finished: {len(scene):,} splats{quality}. Saved in "
                          f"{result.out_dir}.", "info", ("Export…", "export"))
        self._update_title()

    def _on_job_failed(self, message: str, stage: str, detail: str):
        self.progress_panel.job_ended(f"Failed{' in ' + stage if stage else ''}")
        if detail:
            self.log_panel.error("details:", detail)
        self._keep_last_snapshot()
        where = f" Finished stages are kept in {self.job_out_dir}." if self.job_out_dir else ""
        self.show_message(f"Reconstruction failed{' during ' + stage if stage else ''}: {message}.{where}",
                          "error", ("Show log", "log"))

    def _on_job_cancelled(self, message: str):
        self.progress_panel.job_ended("Cancelled")
        self._keep_last_snapshot()
        self.show_message(message, "warning")

    # ----------------------------------------------------------------- state
    def _update_actions(self):
        has_scene = self.session.has_scene
        running = self.runner.running
        for action in (self.save_action, self.save_as_action, self.save_project_action, self.export_action):
            action.setEnabled(has_scene)
        self.edit_actions.update()
        self.cancel_action.setEnabled(running)
        self.reconstruct_action.setEnabled(not running)

    def _update_splat_label(self):
        if not self.session.has_scene:
            self.splat_label.setText("")
            return
        text = f"{self.session.num_visible:,} splats"
        if self.session.num_selected:
            text += f" · {self.session.num_selected:,} selected"
        self.splat_label.setText(text)

    def _update_title(self):
        name = self.current_path.name if self.current_path else ("untitled" if self.session.has_scene else "")
        mark = "*" if self.session.modified else ""
        self.setWindowTitle(f"{name}{mark} — {APPLICATION}" if name else APPLICATION)

    def closeEvent(self, event):
        if not self.confirm_discard():
            event.ignore()
            return
        if self.runner.running:
            self.runner.cancel()
            if not self.runner.wait(30000):
                self.runner.kill()
                self.runner.wait(5000)
        self.select_tool.shutdown()
        self.edit_actions.gizmo.shutdown()
        self.settings.save_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        self.log_panel.detach_logging("engine")
        self.log_panel.detach_logging("app")
        super().closeEvent(event)


def _load_scene_file(path: Path):
    """(scene or Project, "") or (None, a message for a person); safe to call on any thread."""
    try:
        if is_project(path):
            return load_project(path), ""
        from engine.io import load_scene

        return load_scene(path), ""
    except HandfulError as e:
        return None, f"Could not open the scene. {e}"
    except OSError as e:
        return None, (f"{path}: could not read the file ({e.strerror or e}); check that it exists "
                      "and that you may read it")


class _LoadSignals(QObject):
    done = Signal(str, object, str)  # path, scene or None, problem


class _SceneLoadTask(QRunnable):
    def __init__(self, path: Path, signals: _LoadSignals):
        super().__init__()
        self.path, self.signals = path, signals

    def run(self):
        scene, problem = _load_scene_file(self.path)
        self.signals.done.emit(str(self.path), scene, problem)


def _format_for(path: Path) -> str:
    from engine.io import resolve_save_format

    return resolve_save_format(path)
