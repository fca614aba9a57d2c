"""Dialogs and messages: export, about, and the error/notice banner."""
