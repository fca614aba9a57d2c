"""Progress of a stage that runs inner trainings: their events re-labelled as a share of the stage."""

from __future__ import annotations

from engine.events import EventSink, Progress, Snapshot

STAGE = "repair"


def part_of_stage(emit: EventSink, part: int, parts: int, label: str, *, snapshots: bool) -> EventSink:
    """A sink for an inner ``train()`` that is part ``part`` (0-based) of ``parts``: its Progress becomes
    this stage's progress, its Snapshots pass only when ``snapshots`` (a leave-one-out scene is not the
    scene the person is looking at), and its Metrics are dropped (they are not the job's training curve)."""

    def sink(event) -> None:
        if isinstance(event, Progress):
            fraction = event.fraction
            emit(Progress(STAGE, part + fraction, parts, f"{label}: {event.message}",
                          eta_seconds=None, estimating=fraction < 1))
        elif isinstance(event, Snapshot) and snapshots:
            emit(event)

    return sink


__all__ = ["STAGE", "part_of_stage"]
