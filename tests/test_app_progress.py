from app.progress_panel import ProgressPanel, format_eta, format_metrics
from engine import events as ev


def test_format_eta_and_metrics():
    assert format_eta(None) == "" and format_eta(-1) == "" and format_eta(float("inf")) == ""
    assert format_eta(42.4) == "42 s left"
    assert format_eta(125) == "2 min 05 s left"
    assert format_eta(3 * 3600 + 7 * 60) == "3 h 07 min left"
    text = format_metrics({"loss": 0.01234, "psnr": 27.456, "num_gaussians": 123456, "resolution": 2})
    assert text == "loss 0.01234  ·  PSNR 27.46 dB  ·  123,456 splats"
    assert format_metrics({"test_psnr": 20.0}) == "test PSNR 20.00 dB"


def test_panel_shows_stage_progress_eta_and_ends(qtbot):
    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.job_started()
    assert panel.cancel_button.isEnabled()
    panel.stage_started("train", 3, 5)
    assert panel.stage.text() == "4/5 Train"
    panel.progress(ev.Progress("train", 250, 1000, "step 250/1000", eta_seconds=90))
    assert panel.bar.value() == 250 and panel.step.text() == "step 250/1000"
    assert panel.eta.text() == "1 min 30 s left"
    panel.progress(ev.Progress("train", 260, 1000, "step 260/1000", estimating=True))
    assert panel.eta.text() == "estimating…"  # the engine says its rate is not steady yet
    # without an ETA from the engine: from the stage's own pace, once it is steady
    panel.stage_started("evaluate", 4, 5)
    panel.progress(ev.Progress("evaluate", 0, 20, time=100.0))
    assert panel.eta.text() == "estimating…" and panel.step.text() == "0 / 20"
    texts = []
    for i in range(1, 10):
        panel.progress(ev.Progress("evaluate", i, 20, time=100.0 + 2 * i))
        texts.append(panel.eta.text())
    assert texts[:5] == ["estimating…"] * 5 and texts[-1] == "22 s left"
    panel.progress(ev.Progress("evaluate", 20, 20, time=140.0))
    assert panel.eta.text() == ""
    panel.metrics_changed(500, {"psnr": 25.0})
    assert "PSNR 25.00 dB" in panel.metrics.text()
    with qtbot.waitSignal(panel.cancel_requested):
        panel.cancel_button.click()
    assert "cancelling" in panel.stage.text()
    panel.job_ended("Cancelled")
    assert not panel.cancel_button.isEnabled() and panel.stage.text() == "Cancelled"
