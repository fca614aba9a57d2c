"""A text progress bar for the CLI, fed by ``Progress`` events (or ``update`` calls).

On a terminal it redraws one line in place (at most ``redraw_hz`` times a second). Elsewhere (logs,
CI, pipes) it prints a plain line only when the stage changes or the fraction passes another
``log_step`` (10 % by default), so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .events import Event, Progress, StageFinished, StageStarted, Warning


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


ESTIMATING = "estimating"  # an ETA that the stage will give but cannot yet (not a number to guess from)


class ProgressBar:
    def __init__(
        self,
        stream: TextIO | None = None,
        width: int = 28,
        redraw_hz: float = 10.0,
        log_step: float = 0.1,
        interactive: bool | None = None,
        clock=time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.min_interval = 1.0 / redraw_hz
        self.log_step = log_step
        self.interactive = (
            bool(getattr(self.stream, "isatty", lambda: False)()) if interactive is None else interactive
        )
        self._clock = clock
        self._stage: str | None = None
        self._last_draw = -float("inf")
        self._last_logged_step = -1
        self._line_open = False
        self._started = clock()

    # ------------------------------------------------------------------ the two ways in
    def __call__(self, event: Event) -> None:
        """An ``EventSink``: pass ``bar`` wherever a job takes ``on_event``."""
        if isinstance(event, Progress):
            self.update(event.done, event.total, event.message, stage=event.stage,
                        eta=ESTIMATING if event.estimating else event.eta_seconds)
        elif isinstance(event, StageStarted):
            self._set_stage(event.stage)
        elif isinstance(event, StageFinished):
            self.close()
        elif isinstance(event, Warning):
            where = f"{event.path}: " if event.path else ""
            self.message(f"warning: {where}{event.message}")

    on_event = __call__

    def update(self, done: float, total: float, message: str = "", stage: str | None = None,
               eta: float | str | None = None) -> None:
        if stage is not None:
            self._set_stage(stage)
        fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
        finished = total > 0 and done >= total
        now = self._clock()
        if self.interactive:
            if finished or now - self._last_draw >= self.min_interval:
                self._draw("\r" + self._line(fraction, done, total, message, eta) + "\x1b[K")
                self._last_draw = now
                self._line_open = True
                if finished:
                    self.close()
        else:
            step = int(fraction / self.log_step + 1e-9) if self.log_step > 0 else 0
            if step > self._last_logged_step or finished:
                self._last_logged_step = step
                self._draw(self._line(fraction, done, total, message, eta) + "\n")

    def message(self, text: str) -> None:
        """A line of text that does not break the bar."""
        self.close()
        self._draw(text + "\n")

    def close(self) -> None:
        if self._line_open:
            self._draw("\n")
            self._line_open = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ drawing
    def _set_stage(self, stage: str) -> None:
        if stage != self._stage:
            self.close()
            self._stage = stage
            self._last_logged_step = -1
            self._last_draw = -float("inf")
            self._started = self._clock()

    def _line(self, fraction: float, done: float, total: float, message: str, eta: float | None) -> str:
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [f"{self._stage}:" if self._stage else "", f"[{bar}] {fraction * 100:5.1f}%"]
        if total > 0 and float(total).is_integer() and total > 1:
            parts.append(f"{int(done):,}/{int(total):,}")
        if eta is None and 0 < fraction < 1:
            eta = (self._clock() - self._started) * (1 - fraction) / fraction
        if eta == ESTIMATING:
            if fraction < 1:
                parts.append("eta estimating...")
        elif eta is not None and fraction < 1:
            parts.append(f"eta {_format_seconds(eta)}")
        if message:
            parts.append(message)
        return " ".join(p for p in parts if p)

    def _draw(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


__all__ = ["ProgressBar"]
