"""The training ETA: silent until it has seen enough, then right for runs whose early steps are cheap."""

from __future__ import annotations

import pytest

from engine.progress import ProgressBar
from engine.events import Progress
from engine.train.eta import TrainingEta
from engine.train.schedules import resolution_at


def _simulate(total, seconds_of_step, first_step_seconds=30.0):
    """(done, eta, true time left) after each step of a run whose step s takes seconds_of_step(s)."""
    times, now = [], first_step_seconds
    for s in range(1, total):
        now += seconds_of_step(s)
        times.append(now)
    end = times[-1]
    eta = TrainingEta(total, lambda s: resolution_at(s, total, 0.5, 0.6))
    out = [(1, eta.update(1, first_step_seconds), end - first_step_seconds)]
    for done, t in zip(range(2, total + 1), times):
        out.append((done, eta.update(done, t), end - t))
    return out


def test_eta_waits_then_follows_progressive_resolution():
    total = 700
    # a quarter of the pixels below 60% of the run: a quarter of the time per step (first step: compiling)
    runs = _simulate(total, lambda s: 0.05 if resolution_at(s, total, 0.5, 0.6) < 1 else 0.2)
    assert all(eta is None for done, eta, _ in runs[:20])
    # halfway through the cheap part, a naive elapsed/done estimate is off by far more than this one
    done, eta, left = runs[200]
    assert eta == pytest.approx(left, rel=0.1), (eta, left)
    naive = (30 + 0.05 * (done - 1)) * (total - done) / done
    assert abs(naive - left) / left > 0.3
    for done, eta, left in runs[450:-1]:
        assert eta == pytest.approx(left, rel=0.1, abs=1.0)


def test_progress_bar_says_estimating_instead_of_guessing():
    import io

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, interactive=False)
    bar(Progress("train", 1, 700, "step 1/700", estimating=True))
    bar(Progress("train", 300, 700, "step 300/700", eta_seconds=125.0))
    text = stream.getvalue()
    assert "eta estimating" in text and "eta 2:05" in text, text
