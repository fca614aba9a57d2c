"""The edit model: a headless scene document with selection masks, groups and one undoable, replayable
history of commands (``SceneDocument``, ``commands``); the app is a thin adapter over it."""

from .commands import (
    COMMANDS, NOTHING_SELECTED, Brightness, Command, Delete, Duplicate, Hide, Isolate, Recolour, RemoveFloaters,
    RenameGroup, Select, SetGroupVisible, ShowAll, Transform, command_from_json,
)
from .document import Result, SceneDocument, replay
from .floaters import FloaterOptions, find_floaters
from .groups import Group, groups_from_json, groups_to_json, read_groups

__all__ = [
    "SceneDocument", "Result", "replay", "Command", "COMMANDS", "command_from_json", "NOTHING_SELECTED",
    "Select", "Hide", "ShowAll", "Isolate", "SetGroupVisible", "Delete", "Duplicate", "Transform", "Recolour",
    "Brightness", "RemoveFloaters", "RenameGroup", "FloaterOptions", "find_floaters", "Group",
    "groups_from_json", "groups_to_json", "read_groups",
]
