"""Typed job events: one stream that the CLI and the GUI both consume, and the cancel token."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import Cancelled


@dataclass(frozen=True)
class Event:
    time: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class StageStarted(Event):
    stage: str
    index: int = 0  # position of the stage in the job
    count: int = 1  # number of stages in the job


@dataclass(frozen=True)
class StageFinished(Event):
    stage: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Progress(Event):
    stage: str
    done: float
    total: float
    message: str = ""
    eta_seconds: float | None = None
    estimating: bool = False  # the stage will give an ETA but cannot yet: show "estimating", not a guess

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


@dataclass(frozen=True)
class Snapshot(Event):
    scene: Any  # GaussianScene, detached, on the CPU
    step: int
    cameras: Any = None  # optional list[Camera] for the viewer


@dataclass(frozen=True)
class Metrics(Event):
    step: int
    values: dict


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the design names it so; import as events.Warning
    message: str
    path: str | None = None


@dataclass(frozen=True)
class Finished(Event):
    result: Any


@dataclass(frozen=True)
class Failed(Event):
    error: str  # a message for a person: what failed, the file, what to do
    stage: str | None = None
    detail: str | None = None  # technical detail (traceback) for the log panel
    cancelled: bool = False  # the person cancelled: finished stages (and the scene so far) are kept


EventSink = Callable[[Event], None]


def null_sink(_event: Event) -> None:
    pass


class CancelToken:
    """Checked at iteration boundaries; ``cancel()`` may be called from any thread, or from another
    process when the token wraps a ``multiprocessing.Event``."""

    def __init__(self, event=None):
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
