"""Thread-safe hand-over of job events with coalescing (no Qt: used in the job process too)."""

from __future__ import annotations

import threading

from engine import events as ev


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
