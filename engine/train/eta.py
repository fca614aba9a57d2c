"""Training's time left: from the recent speed and the pixels the remaining steps will render.

Steps at the start of a run are not like the rest: the first one compiles the CPU kernels, progressive
resolution makes early steps render a quarter of the pixels, and densification grows the scene. A plain
"elapsed / done x remaining" is off by 10x in the first minute, so this weighs each step by its pixel
count, measures the speed over the recent past only, and says nothing until it has seen enough.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

MIN_STEPS = 20  # steps after the first before any estimate
MIN_SECONDS = 5.0  # seconds after the first step before any estimate
WINDOW = 0.5  # the speed is measured over this recent share of the elapsed time


class TrainingEta:
    def __init__(self, total: int, resolution_at: Callable[[int], float]):
        self.total = int(total)
        # work[s]: pixels (as a share of full resolution) rendered by steps 0 .. s-1
        share = np.array([resolution_at(s) ** 2 for s in range(self.total)], dtype=np.float64)
        self.work = np.concatenate([[0.0], np.cumsum(share)])
        self.samples: deque[tuple[float, float]] = deque()  # (time, work done)
        self.first: tuple[int, float] | None = None

    def update(self, done: int, now: float) -> float | None:
        """Seconds left after ``done`` steps at clock time ``now``; None while still estimating."""
        done = min(max(int(done), 0), self.total)
        if self.first is None:
            self.first = (done, now)  # the first step's time includes compiling: left out
            return None
        work = float(self.work[done])
        self.samples.append((now, work))
        first_done, first_time = self.first
        elapsed = now - first_time
        if done - first_done < MIN_STEPS or elapsed < MIN_SECONDS:
            return None
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW * elapsed:
            self.samples.popleft()
        t0, w0 = self.samples[0]
        if now <= t0 or work <= w0:
            return None
        rate = (work - w0) / (now - t0)
        return float(self.work[-1] - work) / rate


__all__ = ["TrainingEta"]
