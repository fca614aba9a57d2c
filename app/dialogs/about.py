"""The About box."""

from __future__ import annotations

import platform

from PySide6.QtWidgets import QMessageBox, QWidget

from .. import VERSION


def about_text() -> str:
    import PySide6
    import torch

    device = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return (
        f"<h3>Handful {VERSION}</h3>"
        "<p>Turn a handful of photos into a 3D Gaussian Splatting scene you can look at, edit and share.</p>"
        f"<p>Python {platform.python_version()} · PySide6 {PySide6.__version__} · "
        f"torch {torch.__version__} · {device}</p>"
        "<p>Licensed under the Apache License 2.0.</p>"
    )


def show_about(parent: QWidget | None = None) -> None:
    QMessageBox.about(parent, "About Handful", about_text())
