"""Runs an engine job on a QThread and turns its typed events into Qt signals on the GUI thread.

The worker never touches widgets: its event sink drops events into an ``EventMailbox``. A timer on
the GUI thread drains the mailbox once per frame, so however fast the engine emits, the GUI thread
sees at most one scene snapshot and one progress update per stage each frame.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from engine import events as ev
from engine.errors import Cancelled, HandfulError

FRAME_MS = 16

JobFunction = Callable[..., object]


def _default_job_function():
    from engine.job import run_job  # the lead's engine job; imported late so the app starts without it

    return run_job


class EventMailbox:
    """Thread-safe hand-over of events; consecutive progress of one stage and all but the newest
    snapshot are dropped (coalesced), everything else is kept in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events: list[ev.Event] = []

    def put(self, event: ev.Event) -> None:
        with self._lock:
            last = self._events[-1] if self._events else None
            if isinstance(event, ev.Progress) and isinstance(last, ev.Progress) and last.stage == event.stage:
                self._events[-1] = event
                return
            if isinstance(event, ev.Snapshot):
                self._events = [e for e in self._events if not isinstance(e, ev.Snapshot)]
            self._events.append(event)

    def take(self) -> list[ev.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


class _JobThread(QThread):
    def __init__(self, job_fn: JobFunction, inputs, out_dir, options, mailbox: EventMailbox, cancel):
        super().__init__()
        self.job_fn = job_fn
        self.inputs = list(inputs)
        self.out_dir = Path(out_dir)
        self.options = options
        self.mailbox = mailbox
        self.cancel_token = cancel
        self.result = None
        self.outcome: tuple[str, str, str | None] | None = None  # (kind, message, detail)

    def run(self):  # runs on the worker thread
        try:
            self.result = self.job_fn(
                self.inputs, self.out_dir, self.options, emit=self.mailbox.put, cancel=self.cancel_token
            )
        except Cancelled:
            self.outcome = ("cancelled", "Reconstruction cancelled; finished stages are kept in "
                            f"{self.out_dir}", None)
        except HandfulError as e:
            self.outcome = ("failed", str(e), traceback.format_exc())
        except Exception as e:  # a bug: say so plainly, the traceback goes to the log panel
            self.outcome = (
                "failed",
                f"Reconstruction stopped by an internal error ({type(e).__name__}: {e}). "
                f"Finished stages are kept in {self.out_dir}; please report this with the log.",
                traceback.format_exc(),
            )


class JobRunner(QObject):
    """Starts one job at a time; every signal is emitted on the GUI thread."""

    started = Signal(object)  # out_dir
    stage_started = Signal(str, int, int)  # stage, index, count
    stage_finished = Signal(str, float)  # stage, seconds
    progress = Signal(object)  # events.Progress
    snapshot = Signal(object, int, object)  # scene, step, cameras (or None)
    metrics = Signal(int, dict)
    warning = Signal(str, str)  # message, path ("" when none)
    finished = Signal(object)  # JobResult
    failed = Signal(str, str, str)  # message, stage, detail
    cancelled = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, parent=None, job_fn: JobFunction | None = None):
        super().__init__(parent)
        self._job_fn = job_fn
        self._thread: _JobThread | None = None
        self._mailbox = EventMailbox()
        self._cancel: ev.CancelToken | None = None
        self._failed_reported = False
        self._cancel_message = ""
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._drain)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, inputs: list[Path], out_dir: Path, options) -> None:
        if self.running:
            raise RuntimeError("a job is already running")
        job_fn = self._job_fn or _default_job_function()
        self._cancel = ev.CancelToken()
        self._mailbox = EventMailbox()
        self._failed_reported = False
        self._cancel_message = ""
        self._thread = _JobThread(job_fn, inputs, out_dir, options, self._mailbox, self._cancel)
        self._thread.finished.connect(self._on_thread_finished)
        self._timer.start()
        self.running_changed.emit(True)
        self.started.emit(Path(out_dir))
        self._thread.start()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, ms: int = 30000) -> bool:
        """Block until the worker ends (for shutdown); returns False on timeout."""
        return self._thread.wait(ms) if self._thread is not None else True

    # ----------------------------------------------------------------- GUI thread side
    def _drain(self) -> None:
        for event in self._mailbox.take():
            self._dispatch(event)

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.StageStarted):
            self.stage_started.emit(event.stage, event.index, event.count)
        elif isinstance(event, ev.StageFinished):
            self.stage_finished.emit(event.stage, float(event.seconds))
        elif isinstance(event, ev.Progress):
            self.progress.emit(event)
        elif isinstance(event, ev.Snapshot):
            self.snapshot.emit(event.scene, int(event.step), event.cameras)
        elif isinstance(event, ev.Metrics):
            self.metrics.emit(int(event.step), dict(event.values))
        elif isinstance(event, ev.Warning):
            self.warning.emit(event.message, event.path or "")
        elif isinstance(event, ev.Failed):
            if getattr(event, "cancelled", False):
                self._cancel_message = event.error  # reported once the worker has ended
                return
            self._failed_reported = True
            self.failed.emit(event.error, event.stage or "", event.detail or "")
        # Finished is reported from the thread's return value, once the worker has really ended.

    def _on_thread_finished(self) -> None:
        thread = self._thread
        self._drain()
        self._timer.stop()
        self._thread = None
        self.running_changed.emit(False)
        if thread is None:
            return
        if thread.outcome is None:
            self.finished.emit(thread.result)
        elif thread.outcome[0] == "cancelled":
            detail = self._cancel_message
            self.cancelled.emit(f"Cancelled ({detail}). " + thread.outcome[1] if detail and detail != "cancelled"
                                else thread.outcome[1])
        elif not self._failed_reported:
            self.failed.emit(thread.outcome[1], "", thread.outcome[2] or "")
        thread.deleteLater()
