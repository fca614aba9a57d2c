"""Progress for people: an ETA that waits until it can be trusted, and a text progress bar for the
CLI, fed by ``Progress`` events (or ``update`` calls).

On a terminal the bar redraws one line in place (at most ``redraw_hz`` times a second). Elsewhere (logs,
CI, pipes) it prints a plain line only when the stage changes or the fraction passes another
``log_step`` (10 % by default), so logs stay short.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import TextIO

from .events import Event, Progress, StageFinished, StageStarted, Warning

ESTIMATING = "estimating…"


class EtaEstimator:
    """Seconds left, from (work done, time) samples; None until the rate is steady.

    The average rate since the start misleads by 10x early in training: the first step compiles
    kernels (tens of seconds on a CPU), and later steps cost more as the resolution and the splat
    count grow. So the rate is measured over the last ``window`` samples only, and an estimate is
    given once ``min_samples`` samples are in and the finish times projected by the last ``agree``
    samples lie within ``tolerance`` of the time left. Once given, it stays until they drift apart by
    twice that, so the display does not flicker.
    """

    def __init__(self, min_samples: int = 6, window: int = 8, agree: int = 4, tolerance: float = 0.2):
        self.min_samples, self.agree, self.tolerance = min_samples, agree, tolerance
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self._finishes: deque[float] = deque(maxlen=agree)
        self._count = 0
        self._steady = False

    def reset(self) -> None:
        self._samples.clear()
        self._finishes.clear()
        self._count = 0
        self._steady = False

    def update(self, done: float, total: float, now: float) -> float | None:
        """Record that ``done`` of ``total`` units are finished at time ``now`` (seconds); the time left,
        or None while it is not known well enough."""
        if self._samples and done <= self._samples[-1][1]:
            return self._estimate(now) if self._steady else None  # no new work: nothing new to learn
        self._samples.append((now, done))
        self._count += 1
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        rate = (d1 - d0) / (t1 - t0)
        self._finishes.append(now + max(total - done, 0.0) / rate)
        if self._count < self.min_samples or len(self._finishes) < self.agree:
            return None
        # spread relative to the time left, but near the end no finer than the span sampled
        scale = max(self._finishes[-1] - now, t1 - t0)
        spread = (max(self._finishes) - min(self._finishes)) / scale
        self._steady = spread <= (2 * self.tolerance if self._steady else self.tolerance)
        return self._estimate(now) if self._steady else None

    def _estimate(self, now: float) -> float:
        return max(self._finishes[-1] - now, 0.0)


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


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
        self._eta = EtaEstimator()

    # ------------------------------------------------------------------ the two ways in
    def __call__(self, event: Event) -> None:
        """An ``EventSink``: pass ``bar`` wherever a job takes ``on_event``."""
        if isinstance(event, Progress):
            self.update(event.done, event.total, event.message, stage=event.stage, eta=event.eta_seconds,
                        estimating=event.estimating)
        elif isinstance(event, StageStarted):
            self._set_stage(event.stage)
        elif isinstance(event, StageFinished):
            self.close()
        elif isinstance(event, Warning):
            where = f"{event.path}: " if event.path else ""
            self.message(f"warning: {where}{event.message}")

    on_event = __call__

    def update(self, done: float, total: float, message: str = "", stage: str | None = None,
               eta: float | None = None, estimating: bool = False) -> None:
        """``eta``: the stage's own estimate; ``estimating``: the stage gives one once it is steady.
        Without either, the bar estimates from the fraction done (``EtaEstimator``)."""
        if stage is not None:
            self._set_stage(stage)
        fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
        finished = total > 0 and done >= total
        now = self._clock()
        if eta is None and not estimating and 0 < fraction < 1:
            eta = self._eta.update(fraction, 1.0, now)
        eta_text = "" if finished or total <= 0 else f"eta {ESTIMATING if eta is None else _format_seconds(eta)}"
        if self.interactive:
            if finished or now - self._last_draw >= self.min_interval:
                self._draw("\r" + self._line(fraction, done, total, message, eta_text) + "\x1b[K")
                self._last_draw = now
                self._line_open = True
                if finished:
                    self.close()
        else:
            step = int(fraction / self.log_step + 1e-9) if self.log_step > 0 else 0
            if step > self._last_logged_step or finished:
                self._last_logged_step = step
                self._draw(self._line(fraction, done, total, message, eta_text) + "\n")

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
            self._eta.reset()

    def _line(self, fraction: float, done: float, total: float, message: str, eta_text: str) -> str:
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [f"{self._stage}:" if self._stage else "", f"[{bar}] {fraction * 100:5.1f}%"]
        if total > 0 and float(total).is_integer() and total > 1:
            parts.append(f"{int(done):,}/{int(total):,}")
        if eta_text:
            parts.append(eta_text)
        if message:
            parts.append(message)
        return " ".join(p for p in parts if p)

    def _draw(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


__all__ = ["ProgressBar", "EtaEstimator", "ESTIMATING"]
