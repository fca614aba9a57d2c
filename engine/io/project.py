"""Handful project files (``.handfulproj``): a whole editing session in one file.

A zip (stored, the scene inside is already binary) with a versioned ``manifest.json`` naming its parts:
the scene as it was opened (``scene.ply``; a compressed ``.handful`` codec can take its place later, the
manifest says which), the cameras, the object groups and the edit history. Opening replays the history
on the scene, so every edit can still be undone (and the redo list is kept). Writes are atomic.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..edit import SceneDocument
from ..edit.groups import Group, groups_from_json, groups_to_json
from ..edit.serial import camera_from_json, camera_to_json
from ..errors import FormatError, HandfulError
from ..scene import Camera, SceneError
from .atomic import atomic_write
from .ply import encode_vertices, header_bytes

FORMAT = "handful-project"
VERSION = 1
EXTENSION = ".handfulproj"
MANIFEST = "manifest.json"


@dataclass
class Project:
    document: SceneDocument
    cameras: list[Camera] = field(default_factory=list)
    source: str = ""  # the scene file the session started from, if any


def _ply_bytes(scene) -> bytes:
    names, block = encode_vertices(scene, normals=False)
    return header_bytes(names, len(scene), ("Handful project scene",)) + np.ascontiguousarray(block).tobytes()


def save_project(path: str | Path, document: SceneDocument, cameras: list[Camera] | None = None,
                 source: str | Path | None = None) -> Path:
    """Write the session to ``path`` (atomic: an interrupted save leaves the previous file)."""
    path = Path(path)
    manifest = {
        "format": FORMAT, "version": VERSION,
        "scene": {"file": "scene.ply", "codec": "ply"},
        "groups": "groups.json", "cameras": "cameras.json", "history": "history.json",
        "source": str(source) if source else "",
    }
    base = document.base_scene
    base_ids = base.group_ids.numpy() if base.group_ids is not None else None
    parts = {
        MANIFEST: json.dumps(manifest, indent=2).encode(),
        "scene.ply": _ply_bytes(base),
        "groups.json": json.dumps(groups_to_json(document.base_groups, base_ids), indent=2).encode(),
        "cameras.json": json.dumps([camera_to_json(c) for c in cameras or []]).encode(),
        "history.json": json.dumps(document.history_json()).encode(),
    }
    try:
        with atomic_write(path) as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as z:
                for name, data in parts.items():
                    z.writestr(name, data)
    except OSError as e:
        raise HandfulError(f"could not write the project ({e.strerror or e})", path,
                           "choose a folder you can write to") from e
    document.mark_saved()
    return path


def _json(z: zipfile.ZipFile, name: str, path: Path):
    try:
        return json.loads(z.read(name).decode("utf-8"))
    except KeyError:
        raise FormatError(f"the project lacks its {name}", path, "the file is incomplete or not a Handful project") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"the project's {name} is corrupt ({e})", path) from None


def _read_scene(z: zipfile.ZipFile, member: str, path: Path):
    from .ply import read

    try:
        data = z.read(member)
    except KeyError:
        raise FormatError(f"the project lacks its scene ({member})", path) from None
    with tempfile.TemporaryDirectory(prefix="handful-project-") as tmp:
        scene_path = Path(tmp) / "scene.ply"
        scene_path.write_bytes(data)
        try:
            return read(scene_path)
        except FormatError as e:
            raise FormatError(f"the project's scene is corrupt ({e.message})", path) from None


def load_project(path: str | Path) -> Project:
    """Read a project and replay its history; FormatError (naming the file) when it is not readable."""
    path = Path(path)
    try:
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise FormatError("the project file does not exist", path) from None
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise FormatError(f"not a readable Handful project ({e})", path,
                          "the file is damaged; open an earlier copy or the scene .ply instead") from None
    with z:
        try:
            bad = z.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            bad = str(e)
        if bad is not None:
            raise FormatError(f"the project is damaged ({bad} does not match its checksum)", path,
                              "open an earlier copy or the scene .ply instead")
        manifest = _json(z, MANIFEST, path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise FormatError("not a Handful project (its manifest names another format)", path)
        version = manifest.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise FormatError(f"the project has version {version}; this Handful reads up to {VERSION}", path,
                              "update Handful")
        scene_info = manifest.get("scene") or {}
        if scene_info.get("codec", "ply") != "ply":
            raise FormatError(f"the project's scene uses the {scene_info.get('codec')!r} codec, which this "
                              "Handful cannot read", path, "update Handful")
        scene = _read_scene(z, scene_info.get("file", "scene.ply"), path)
        groups: dict[int, Group] = groups_from_json(_json(z, manifest.get("groups", "groups.json"), path), path)
        try:
            cameras = [camera_from_json(c) for c in _json(z, manifest.get("cameras", "cameras.json"), path)]
        except (KeyError, TypeError, ValueError, SceneError) as e:
            raise FormatError(f"the project's cameras are not valid ({e})", path) from None
        history = _json(z, manifest.get("history", "history.json"), path)
    document = SceneDocument(scene, groups)
    try:
        document.replay(history)
    except FormatError as e:
        raise FormatError(e.message, path, e.hint) from None
    return Project(document, cameras, str(manifest.get("source") or ""))


def is_project(path: str | Path) -> bool:
    return Path(path).suffix.lower() == EXTENSION


__all__ = ["Project", "save_project", "load_project", "is_project", "EXTENSION", "VERSION"]
