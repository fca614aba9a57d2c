"""Job progress: stage, step, ETA, loss/PSNR, a progress bar and Cancel."""

from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from engine import events as ev

from .theme import icon

BAR_STEPS = 1000


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s left"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s left"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min left"


def format_metrics(values: dict) -> str:
    parts = []
    for key in ("loss", "psnr", "ssim", "test_psnr", "test_ssim", "num_gaussians"):
        if key not in values:
            continue
        v = values[key]
        if key in ("psnr", "test_psnr"):
            parts.append(f"{'test ' if key.startswith('test') else ''}PSNR {float(v):.2f} dB")
        elif key == "test_ssim":
            parts.append(f"test SSIM {float(v):.3f}")
        elif key == "num_gaussians":
            parts.append(f"{int(v):,} splats")
        else:
            parts.append(f"{key} {float(v):.4g}")
    return "  ·  ".join(parts)


class ProgressPanel(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.stage = QLabel("Idle")
        self.stage.setObjectName("StageLabel")
        self.step = QLabel("")
        self.eta = QLabel("")
        self.eta.setObjectName("EtaLabel")
        self.metrics = QLabel("")
        self.metrics.setObjectName("MetricsLabel")
        self.bar = QProgressBar()
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton(icon("cancel"), "Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self._on_cancel)
        self._eta_origin: tuple[str, float, float] | None = None

        top = QHBoxLayout()
        top.addWidget(self.stage, 1)
        top.addWidget(self.cancel_button)
        info = QHBoxLayout()
        info.addWidget(self.step, 1)
        info.addWidget(self.eta)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addLayout(info)
        layout.addWidget(self.metrics)
        layout.addStretch(1)

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.stage.setText(self.stage.text() + " — cancelling…")
        self.cancel_requested.emit()

    # ----------------------------------------------------------------- slots for JobRunner
    def job_started(self, *_):
        self.stage.setText("Starting…")
        self.step.setText("")
        self.eta.setText("")
        self.metrics.setText("")
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)

    def stage_started(self, stage: str, index: int, count: int):
        prefix = f"{index + 1}/{count} " if count > 1 else ""
        self.stage.setText(f"{prefix}{stage.replace('_', ' ').capitalize()}")
        self.step.setText("")
        self.eta.setText("")
        self.bar.setRange(0, 0)  # busy until the stage reports progress

    def progress(self, event: ev.Progress):
        if event.total > 0:
            self.bar.setRange(0, BAR_STEPS)
            self.bar.setValue(int(event.fraction * BAR_STEPS))
        # the engine's message usually says the step already; otherwise show done / total
        done = f"{event.done:,.0f} / {event.total:,.0f}" if event.total > 0 else ""
        self.step.setText(event.message or done)
        if event.estimating:
            self.eta.setText("estimating…")
            return
        eta = event.eta_seconds
        if eta is None:
            eta = self._estimate_eta(event)
        self.eta.setText(format_eta(eta))

    def _estimate_eta(self, event: ev.Progress) -> float | None:
        """Linear extrapolation from when the stage first reported progress (stages without an ETA)."""
        if self._eta_origin is None or self._eta_origin[0] != event.stage:
            self._eta_origin = (event.stage, event.time, event.fraction)
            return None
        _, t0, f0 = self._eta_origin
        elapsed, gained = event.time - t0, event.fraction - f0
        if elapsed < 2.0 or gained <= 0:
            return None
        return elapsed * (1.0 - event.fraction) / gained

    def metrics_changed(self, step: int, values: dict):
        text = format_metrics(values)
        self.metrics.setText(f"step {step:,}  ·  {text}" if text else "")

    def job_ended(self, text: str):
        self.stage.setText(text)
        self.eta.setText("")
        self.bar.setRange(0, BAR_STEPS)
        self.cancel_button.setEnabled(False)

    def job_succeeded(self, *_):
        self.job_ended("Done")
        self.bar.setValue(BAR_STEPS)
