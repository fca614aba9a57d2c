"""Handful desktop app (PySide6). Imports the engine; the engine never imports this package."""

ORGANIZATION = "Handful"
APPLICATION = "Handful"
VERSION = "0.1.0"

__all__ = ["ORGANIZATION", "APPLICATION", "VERSION"]
