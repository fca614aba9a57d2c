"""Handful's headless engine: scene model, formats, rendering, reconstruction. Never imports Qt."""

__version__ = "0.1.0"
