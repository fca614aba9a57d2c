"""The export dialog: size and expected quality per format and compression before writing; compression
on a worker with progress, and cancel."""

from __future__ import annotations

import pytest

from app.dialogs.export_dialog import EXPORT_FORMATS, ExportDialog, _export_or_problem
from engine.compress.quality import predicted_bytes
from engine.events import CancelToken
from engine.io import load_scene
from engine.units import human_bytes
from tests.factories import random_scene


def test_each_format_and_setting_shows_size_and_quality_before_writing(qtbot, tmp_path, qapp):
    scene = random_scene(2000, sh_degree=2)
    dialog = ExportDialog(scene, tmp_path / "out.ply")
    qtbot.addWidget(dialog)
    for fmt, _, _ in EXPORT_FORMATS:
        dialog.set_format(fmt)
        assert dialog.estimate_label.text().startswith("about ") and dialog.quality_label.text()
        assert dialog.compression_box.isEnabled() == (fmt == "handful")
    dialog.set_format("handful")
    texts = {}
    for q in ("high", "medium", "low"):
        dialog.set_quality(q)
        assert dialog.estimate_label.text() == f"about {human_bytes(predicted_bytes(2000, q))}"
        assert "dB" in dialog.quality_label.text()
        texts[q] = dialog.estimate()[0]
    assert texts["low"] < texts["medium"] < texts["high"]
    dialog.set_quality(None)
    assert dialog.quality() is None and dialog.quality_label.text() == "lossless"
    assert not list(tmp_path.iterdir())  # nothing written by looking


def test_compressed_export_runs_on_a_worker_with_progress(qtbot, tmp_path, qapp):
    scene = random_scene(1200, sh_degree=1)
    dialog = ExportDialog(scene, tmp_path / "out.ply")
    qtbot.addWidget(dialog)
    dialog.set_format("handful")
    dialog.set_quality("low")
    seen = []
    dialog._signals.progress.connect(lambda done, total, message: seen.append(message))
    with qtbot.waitSignal(dialog.exported, timeout=120_000) as done:
        dialog.export_button.click()
        assert dialog.busy and dialog.cancel_button.isEnabled() and not dialog.export_button.isEnabled()
    path, size = done.args
    assert path == tmp_path / "out.handful" and size == path.stat().st_size
    assert 0 < len(load_scene(path)) <= 1200
    assert seen and not dialog.cancel_button.isEnabled() and not dialog.progress_bar.isVisible()


def test_a_cancelled_compression_writes_nothing(tmp_path):
    token = CancelToken()
    token.cancel()
    size, problem = _export_or_problem(random_scene(300), tmp_path / "x.handful", "handful", "medium", cancel=token)
    assert size is None and "cancelled" in problem
    assert not (tmp_path / "x.handful").exists()
