"""Messages for people: a non-modal banner over the window with a next step, never a traceback.

Technical details go to the log panel; the banner says what happened and what to do.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

from engine.errors import HandfulError


def message_for(error: BaseException) -> str:
    """A one-line message for a person: HandfulErrors already name the file and the next step."""
    if isinstance(error, HandfulError):
        return str(error)
    return (f"Something went wrong ({type(error).__name__}: {error}). "
            "Details are in the log panel; please report them if this keeps happening.")


class Banner(QFrame):
    """One message at a time, with an optional action button; info messages hide themselves."""

    action_triggered = Signal(str)  # the action's key

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("Banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.action = QPushButton()
        self.action.setVisible(False)
        self.action.clicked.connect(lambda: self.action_triggered.emit(self._action_key))
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action)
        layout.addWidget(close)
        self._action_key = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "error", action: tuple[str, str] | None = None,
                     timeout_ms: int | None = None) -> None:
        """``level`` is error, warning or info; ``action`` is (button text, key) for action_triggered."""
        self.level = level
        self.label.setText(text)
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        self._action_key = action[1] if action else ""
        self.action.setText(action[0] if action else "")
        self.action.setVisible(bool(action))
        if timeout_ms is None:
            timeout_ms = 6000 if level == "info" else 0
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self._timer.stop()
        self.hide()
