"""The app's side of editing: a thin Qt adapter (``EditSession``) over the engine's ``SceneDocument``,
the selection tools on the 3D view, the edit actions with their keys, and small dialogs."""

from .select_tools import SelectionTools
from .session import EditSession

__all__ = ["EditSession", "SelectionTools"]
