"""Runs an engine job off the GUI thread and turns its typed events into Qt signals on the GUI thread.

By default the job runs in a child process started and watched by a QThread (see job_process.py for
why); ``isolation="thread"`` runs it on the QThread itself.

The worker never touches widgets: its event sink drops events into an ``EventMailbox``. A timer on
the GUI thread drains the mailbox once per frame, so however fast the engine emits, the GUI thread
sees at most one scene snapshot and one progress update per stage each frame.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal

from engine import events as ev
from engine.events import CancelToken
from engine.errors import Cancelled, HandfulError

from .job_mailbox import EventMailbox

FRAME_MS = 16

JobFunction = Callable[..., object]


def _default_job_function():
    from engine.job import run_job  # the lead's engine job; imported late so the app starts without it

    return run_job


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


class _ProcessJobThread(QThread):
    """Starts the job in a child process and relays its messages into the mailbox."""

    POLL_S = 0.05

    def __init__(self, job_fn: JobFunction, inputs, out_dir, options, mailbox: EventMailbox, log_line):
        super().__init__()
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")  # fork is unsafe with Qt and torch threads
        self.job_fn = job_fn
        self.inputs = list(inputs)
        self.out_dir = Path(out_dir)
        self.options = options
        self.mailbox = mailbox
        self.log_line = log_line  # a thread-safe callable(level, text)
        self.cancel_event = self.ctx.Event()
        self.cancel_token = CancelToken(self.cancel_event)
        self.result = None
        self.outcome: tuple[str, str, str | None] | None = None
        self.process = None

    def run(self):  # relay thread
        import pickle

        from .job_process import child_main

        receiver, sender = self.ctx.Pipe(duplex=False)
        self.process = self.ctx.Process(
            target=child_main, name="handful-job", daemon=True,
            args=(self.job_fn, self.inputs, self.out_dir, self.options, sender, self.cancel_event),
        )
        try:
            self.process.start()
        except Exception as e:
            self.outcome = ("failed", f"Could not start the reconstruction process ({e}).", traceback.format_exc())
            return
        sender.close()  # the child holds the only writing end: EOF means it has ended
        ended = False
        while not ended:
            try:
                if not receiver.poll(self.POLL_S):
                    continue
                message = pickle.loads(receiver.recv_bytes())
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "event":
                self.mailbox.put(message[1])
            elif kind == "log":
                self.log_line(message[1], message[2])
            elif kind == "result":
                self.result, ended = message[1], True
            elif kind == "error":
                _, what, text, detail = message
                ended = True
                if what == "cancelled":
                    self.outcome = ("cancelled", "Reconstruction cancelled; finished stages are kept in "
                                    f"{self.out_dir}", None)
                elif what == "failed":
                    self.outcome = ("failed", text, detail)
                else:
                    self.outcome = ("failed", f"Reconstruction stopped by an internal error ({text}). Finished "
                                    f"stages are kept in {self.out_dir}; please report this with the log.", detail)
        receiver.close()
        self.process.join(10)
        if not ended:
            code = self.process.exitcode
            self.outcome = (
                "failed",
                f"The reconstruction process stopped unexpectedly (exit code {code}); it may have run out of "
                f"memory. Finished stages are kept in {self.out_dir}; try the Preview preset or fewer photos.",
                None,
            )
        if self.process.is_alive():
            self.process.terminate()


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
    log_line = Signal(str, str)  # level, text: engine log records from the job process

    def __init__(self, parent=None, job_fn: JobFunction | None = None, isolation: str = "process"):
        """``isolation`` is "process" (the job runs in a child process, so it never holds the GUI's
        GIL; ``job_fn`` must then be picklable, i.e. a module-level function) or "thread"."""
        super().__init__(parent)
        if isolation not in ("process", "thread"):
            raise ValueError(f"isolation must be 'process' or 'thread', not {isolation!r}")
        self.isolation = isolation
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
        self._mailbox = EventMailbox()
        self._failed_reported = False
        self._cancel_message = ""
        if self.isolation == "process":
            self._thread = _ProcessJobThread(job_fn, inputs, out_dir, options, self._mailbox, self.log_line.emit)
            self._cancel = self._thread.cancel_token
        else:
            self._cancel = ev.CancelToken()
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

    def kill(self) -> None:
        """Stop a job process that did not end after cancel (shutdown only; its stage is lost)."""
        process = getattr(self._thread, "process", None)
        if process is not None and process.is_alive():
            process.terminate()

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
