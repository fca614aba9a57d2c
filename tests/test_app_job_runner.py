"""JobRunner: engine events become Qt signals on the GUI thread, coalesced, with cancel and errors."""

import os
import threading
import time

import pytest

from app.job_runner import EventMailbox, JobRunner
from engine import events as ev
from engine.errors import Cancelled, InputError
from tests.factories import random_scene


def test_mailbox_coalesces_progress_and_snapshots_but_keeps_order():
    box = EventMailbox()
    box.put(ev.StageStarted("train", 3, 5))
    for i in range(100):
        box.put(ev.Progress("train", i, 100))
    s1, s2 = random_scene(5), random_scene(6)
    box.put(ev.Snapshot(s1, 10))
    box.put(ev.Metrics(10, {"loss": 0.5}))
    box.put(ev.Snapshot(s2, 20))
    box.put(ev.Progress("train", 100, 100))
    events = box.take()
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["StageStarted", "Progress", "Metrics", "Snapshot", "Progress"]
    assert events[1].done == 99
    assert events[3].scene is s2
    assert box.take() == []


def _emitting_job(snapshots=50, gui_thread=None, seen_threads=None):
    def job(inputs, out_dir, options, *, emit, cancel):
        if seen_threads is not None:
            seen_threads.append(threading.get_ident())
        emit(ev.StageStarted("train", 0, 1))
        for step in range(snapshots):
            emit(ev.Progress("train", step, snapshots, eta_seconds=snapshots - step))
            emit(ev.Snapshot(random_scene(4 + step, sh_degree=0), step))
        emit(ev.Metrics(snapshots, {"loss": 0.1, "psnr": 25.0}))
        emit(ev.Warning("a photo was blurry", "x.jpg"))
        emit(ev.StageFinished("train", 1.5))
        return {"inputs": inputs, "out": out_dir, "options": options}

    return job


def test_signals_arrive_on_gui_thread_in_order(qtbot, tmp_path):
    worker_threads = []
    runner = JobRunner(job_fn=_emitting_job(200, seen_threads=worker_threads), isolation="thread")
    received = []
    gui = threading.get_ident()
    runner.stage_started.connect(lambda *a: received.append(("stage", threading.get_ident())))
    runner.snapshot.connect(lambda scene, step, cams: received.append(("snap", step, len(scene))))
    runner.metrics.connect(lambda step, v: received.append(("metrics", v["psnr"])))
    runner.warning.connect(lambda m, p: received.append(("warning", m, p)))
    runner.stage_finished.connect(lambda s, sec: received.append(("finished_stage", sec)))
    with qtbot.waitSignal(runner.finished, timeout=20000) as done:
        runner.start(["a.jpg"], tmp_path, options="opts")
    assert not runner.running
    assert done.args[0] == {"inputs": ["a.jpg"], "out": tmp_path, "options": "opts"}
    assert worker_threads and worker_threads[0] != gui
    assert received[0] == ("stage", gui)
    snaps = [r for r in received if r[0] == "snap"]
    # coalesced: never more snapshots than emitted, and the last one always arrives
    assert 1 <= len(snaps) <= 200
    assert snaps[-1] == ("snap", 199, 4 + 199)
    assert [s[1] for s in snaps] == sorted(s[1] for s in snaps)
    assert received[-3:] == [("metrics", 25.0), ("warning", "a photo was blurry", "x.jpg"), ("finished_stage", 1.5)]


def test_cancel_stops_the_job_and_reports_cancelled(qtbot, tmp_path):
    started = threading.Event()

    def slow_job(inputs, out_dir, options, *, emit, cancel):
        emit(ev.StageStarted("train", 0, 1))
        for step in range(10_000):
            started.set()
            if cancel.cancelled:
                emit(ev.Failed("cancelled during training", "train", cancelled=True))
                raise Cancelled("cancelled during training")
            emit(ev.Progress("train", step, 10_000))
            time.sleep(0.002)
        return "not cancelled"

    runner = JobRunner(job_fn=slow_job, isolation="thread")
    failures = []
    runner.failed.connect(lambda *a: failures.append(a))
    runner.finished.connect(lambda r: failures.append(("finished", r)))
    runner.start([], tmp_path, None)
    assert started.wait(10)
    with qtbot.waitSignal(runner.cancelled, timeout=10000) as cancelled:
        runner.cancel()
    assert "cancelled during training" in cancelled.args[0]
    assert str(tmp_path) in cancelled.args[0]
    assert failures == []
    assert not runner.running
    # usable again afterwards
    with qtbot.waitSignal(runner.finished, timeout=20000):
        runner._job_fn = _emitting_job(3)
        runner.start([], tmp_path, None)


def test_handful_error_becomes_failed_signal_once(qtbot, tmp_path):
    def bad_job(inputs, out_dir, options, *, emit, cancel):
        emit(ev.StageStarted("ingest", 0, 5))
        err = InputError("no photos could be read", tmp_path / "x", "drop JPEG or PNG photos")
        emit(ev.Failed(str(err), "ingest"))
        raise err

    runner = JobRunner(job_fn=bad_job, isolation="thread")
    failed = []
    runner.failed.connect(lambda *a: failed.append(a))
    with qtbot.waitSignal(runner.running_changed, timeout=10000, check_params_cb=lambda r: r is False):
        runner.start([], tmp_path, None)
    assert len(failed) == 1
    message, stage, _ = failed[0]
    assert stage == "ingest"
    assert "no photos could be read" in message and "drop JPEG or PNG photos" in message


def test_unexpected_exception_gives_message_and_traceback_detail(qtbot, tmp_path):
    def buggy_job(inputs, out_dir, options, *, emit, cancel):
        raise ZeroDivisionError("division by zero")

    runner = JobRunner(job_fn=buggy_job, isolation="thread")
    with qtbot.waitSignal(runner.failed, timeout=10000) as failed:
        runner.start([], tmp_path, None)
    message, _, detail = failed.args
    assert "ZeroDivisionError" in message and "report" in message
    assert "Traceback" in detail and "buggy_job" in detail


def test_second_start_while_running_is_refused(qtbot, tmp_path):
    gate = threading.Event()

    def waiting_job(inputs, out_dir, options, *, emit, cancel):
        gate.wait(10)

    runner = JobRunner(job_fn=waiting_job, isolation="thread")
    runner.start([], tmp_path, None)
    with pytest.raises(RuntimeError):
        runner.start([], tmp_path, None)
    with qtbot.waitSignal(runner.finished, timeout=10000):
        gate.set()


# ---------------------------------------------------------------- the default: a job process
# (module-level functions: a job process gets its function by pickling)

def counting_job(inputs, out_dir, options, *, emit, cancel):
    import logging
    import os

    logging.getLogger("engine.test").info("hello from pid %d", os.getpid())
    emit(ev.StageStarted("train", 0, 1))
    for step in range(options["steps"]):
        if cancel.cancelled:
            raise Cancelled("cancelled during training")
        emit(ev.Progress("train", step, options["steps"]))
        emit(ev.Snapshot(random_scene(10 + step, sh_degree=0), step))
        time.sleep(options.get("sleep", 0))
    if options.get("crash"):
        os._exit(3)
    if options.get("fail"):
        raise InputError("nothing to do", out_dir, "add photos")
    return {"pid": os.getpid(), "steps": options["steps"]}


def test_process_job_relays_events_logs_and_result(qtbot, tmp_path):
    import os

    runner = JobRunner(job_fn=counting_job)
    snaps, logs = [], []
    runner.snapshot.connect(lambda scene, step, cams: snaps.append((step, len(scene))))
    runner.log_line.connect(lambda level, text: logs.append(text))
    with qtbot.waitSignal(runner.finished, timeout=60000) as done:
        runner.start([], tmp_path, {"steps": 30})
    result = done.args[0]
    assert result["steps"] == 30 and result["pid"] != os.getpid()
    assert snaps and snaps[-1] == (29, 39)
    assert any("hello from pid" in line for line in logs)


def test_process_job_cancel_failure_and_crash(qtbot, tmp_path):
    runner = JobRunner(job_fn=counting_job)
    with qtbot.waitSignal(runner.snapshot, timeout=60000):
        runner.start([], tmp_path, {"steps": 100000, "sleep": 0.01})
    with qtbot.waitSignal(runner.cancelled, timeout=30000):
        runner.cancel()
    with qtbot.waitSignal(runner.failed, timeout=60000) as failed:
        runner.start([], tmp_path, {"steps": 1, "fail": True})
    assert "nothing to do" in failed.args[0] and "add photos" in failed.args[0]
    with qtbot.waitSignal(runner.failed, timeout=60000) as crashed:
        runner.start([], tmp_path, {"steps": 1, "crash": True})
    assert "stopped unexpectedly (exit code 3)" in crashed.args[0]
    assert not runner.running
