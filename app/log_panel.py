"""The log panel: details for people who want them (stage timings, warnings, tracebacks).

Also receives records from Python's ``logging`` (engine loggers) through a handler that is safe to
call from any thread (records are handed to the GUI thread with a queued signal).
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

MAX_LINES = 5000


class _Bridge(QObject):
    line = Signal(str, str)


class _QtLogHandler(logging.Handler):
    def __init__(self, bridge: _Bridge):
        super().__init__(level=logging.INFO)
        self.bridge = bridge
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record):
        try:
            self.bridge.line.emit(record.levelname.lower(), self.format(record))
        except RuntimeError:  # the panel is gone (app shutting down)
            pass


class LogPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setObjectName("Log")
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(MAX_LINES)
        self.text.setMinimumHeight(40)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.text.clear)
        copy = QPushButton("Copy")
        copy.clicked.connect(self._copy)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(copy)
        row.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.text, 1)
        layout.addLayout(row)
        self._bridge = _Bridge(self)
        self._bridge.line.connect(self.append)
        self._handler = _QtLogHandler(self._bridge)

    def attach_logging(self, logger_name: str = "engine") -> None:
        logging.getLogger(logger_name).addHandler(self._handler)
        if logging.getLogger(logger_name).level in (logging.NOTSET,) or logging.getLogger(logger_name).level > logging.INFO:
            logging.getLogger(logger_name).setLevel(logging.INFO)

    def detach_logging(self, logger_name: str = "engine") -> None:
        logging.getLogger(logger_name).removeHandler(self._handler)

    def append(self, level: str, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        tag = "" if level == "info" else f"[{level}] "
        self.text.appendPlainText(f"{stamp} {tag}{message}")

    def info(self, message: str) -> None:
        self.append("info", message)

    def warning(self, message: str) -> None:
        self.append("warning", message)

    def error(self, message: str, detail: str = "") -> None:
        self.append("error", message)
        if detail:
            self.text.appendPlainText(detail.rstrip())

    def contents(self) -> str:
        return self.text.toPlainText()

    def _copy(self) -> None:
        from PySide6.QtWidgets import QApplication

        QApplication.clipboard().setText(self.contents())
