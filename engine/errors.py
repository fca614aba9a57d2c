"""Errors a person can act on: each names the file (when there is one) and what to do next."""

from __future__ import annotations

from pathlib import Path


class HandfulError(Exception):
    """Base for every error the engine reports to a person (CLI exit code 2, a message in the app)."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else Path(path)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class FormatError(HandfulError):
    """A file that cannot be read: unknown format, truncated, corrupt, or lying about its contents."""


class InputError(HandfulError):
    """Input that cannot be used: no images, too few views, a bad option."""


class StageError(HandfulError):
    """A pipeline stage that failed (pose solve, training); earlier stages' results are kept."""


class Cancelled(HandfulError):
    """The person cancelled; the working folder holds the results of the finished stages."""

    exit_code = 130

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)


class ModelError(HandfulError):
    """A learned model that cannot be loaded: its weights package is missing, or a weights file is corrupt."""
