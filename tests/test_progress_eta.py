"""The ETA waits until the rate is steady (driven by a fake clock: no real time is measured)."""

import io

import numpy as np

from engine.events import Progress, StageStarted
from engine.progress import ESTIMATING, EtaEstimator, ProgressBar


def simulated_training(total=1000, first_step_s=40.0, step_s=0.2, jitter=0.0, report_every_s=0.5, seed=0):
    """(time, steps done) as the loop reports them: the first step compiles the kernels, the rest cost
    ``step_s`` (times 1 +- ``jitter``); a report at most every ``report_every_s``."""
    rng = np.random.default_rng(seed)
    now, last, samples = 0.0, -1e9, []
    for done in range(1, total + 1):
        now += first_step_s if done == 1 else step_s * (1 + jitter * rng.uniform(-1, 1))
        if now - last >= report_every_s or done == total:
            samples.append((now, done))
            last = now
    return samples


def test_no_estimate_wrong_by_10x_in_the_first_minute():
    samples = simulated_training()
    finish = samples[-1][0]
    eta = EtaEstimator()
    naive_worst, given = 0.0, []
    for now, done in samples:
        left = eta.update(done, 1000, now)
        true_left = finish - now
        if now < 60 + samples[0][0] and done < 1000:
            naive = now / done * (1000 - done)  # the average rate since the start, as before
            naive_worst = max(naive_worst, naive / true_left)
            if left is not None:
                given.append(left / true_left)
    assert naive_worst > 10  # the trap: the compile step dominates the average for a long while
    assert given, "an estimate within the first minute once the rate is steady"
    assert 0.8 < min(given) and max(given) < 1.25


def test_estimating_until_enough_samples_agree_then_it_stays():
    eta = EtaEstimator(min_samples=6, agree=4, tolerance=0.2)
    answers = [eta.update(done, 100, now=float(done)) for done in range(1, 12)]  # one unit a second
    assert answers[:5] == [None] * 5
    assert answers[5] == 100 - 6  # exactly the time left at a steady rate
    assert answers[-1] == 100 - 11
    # no new work since the last sample: the estimate counts down with the clock, it does not vanish
    assert eta.update(11, 100, now=13.0) == 100 - 13


def test_an_unsteady_rate_keeps_estimating():
    eta = EtaEstimator()
    now, done, answers = 0.0, 0.0, []
    for i in range(30):
        now += 1.0
        done += 100 * 0.8 ** i  # each second a fifth slower than the one before: no rate to trust
        answers.append(eta.update(done, 10_000, now))
    assert all(a is None for a in answers)
    eta.reset()
    assert eta.update(1, 10, 100.0) is None


def test_noisy_steps_still_get_an_estimate():
    samples = simulated_training(jitter=0.3, seed=3)
    finish = samples[-1][0]
    eta = EtaEstimator()
    answers = [(eta.update(done, 1000, now), finish - now) for now, done in samples]
    given = [(a, t) for a, t in answers if a is not None and t > 5]
    assert len(given) > 0.8 * len(answers) - 20
    assert all(0.7 < a / t < 1.4 for a, t in given)


def test_progress_bar_says_estimating_until_the_rate_is_steady():
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, interactive=False, log_step=0.01, clock=lambda: 0.0)
    bar(StageStarted("train"))
    bar(Progress("train", 10, 100, estimating=True))
    bar(Progress("train", 20, 100, eta_seconds=125))
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(f"eta {ESTIMATING}") and lines[1].endswith("eta 2:05")


def test_progress_bar_estimates_stages_without_an_eta_only_when_steady():
    stream = io.StringIO()
    clock = [0.0]
    bar = ProgressBar(stream=stream, interactive=False, log_step=0.01, clock=lambda: clock[0])
    bar(StageStarted("evaluate"))
    for i in range(1, 10):
        clock[0] = 2.0 * i
        bar(Progress("evaluate", i, 20))
    lines = stream.getvalue().splitlines()
    assert all(line.endswith(f"eta {ESTIMATING}") for line in lines[:5])
    assert lines[-1].endswith("eta 0:22")  # 11 items left at 2 s each


def test_the_estimate_does_not_give_up_in_the_last_seconds():
    samples = simulated_training(jitter=0.3, seed=7)
    eta = EtaEstimator()
    answers = [eta.update(done, 1000, now) for now, done in samples]
    assert all(a is not None for a in answers[-20:-1])  # the last ten seconds keep counting down
