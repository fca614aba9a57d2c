"""Editing a scene: selection, delete, and one undo history where every edit is a command object."""

from .commands import DeleteSplatsCommand, SelectCommand
from .session import EditSession
from .box_select import BoxSelectTool

__all__ = ["EditSession", "DeleteSplatsCommand", "SelectCommand", "BoxSelectTool"]
