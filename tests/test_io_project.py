"""Project files: the whole session in one file, reopened with its undo history; damaged files fail clearly."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from engine.edit import Delete, Duplicate, RenameGroup, SceneDocument, Select, Transform
from engine.edit.groups import Group
from engine.errors import FormatError
from engine.io.project import load_project, save_project
from tests.scene_objects import front_camera, objects_scene
from tests.test_edit_document import state


def edited_document():
    doc = SceneDocument(objects_scene(per_object=100, sh_degree=1), {1: Group("chair", (1.0, 0.0, 0.0))})
    doc.apply(Select.group(1))
    doc.apply(Transform(shift=[0.2, 0.0, 0.0], pivot=doc.selection_centre().tolist()))
    doc.apply(Duplicate())
    doc.apply(RenameGroup(2, "ball"))
    doc.apply(Select.group(3))
    doc.apply(Delete())
    doc.undo()  # the delete waits on the redo list
    return doc


def test_project_round_trip_restores_scene_cameras_groups_and_undo(tmp_path):
    doc = edited_document()
    cams = [front_camera(), front_camera(64, 48)]
    path = save_project(tmp_path / "session.handfulproj", doc, cams, source="/data/scene.ply")
    assert not doc.modified
    project = load_project(path)
    again = project.document
    assert state(again) == state(doc)
    assert again.groups[1].name == "chair" and again.groups[2].name == "ball"
    assert [c.name for c in project.cameras] == [c.name for c in cams]
    assert np.array_equal(project.cameras[1].R, cams[1].R) and project.cameras[1].width == 64
    assert project.source == "/data/scene.ply"
    assert not again.modified and again.can_redo and again.redo_label == "Delete"
    again.redo()
    doc.redo()
    assert state(again) == state(doc)
    while again.can_undo:
        again.undo()
    assert state(again) == state(SceneDocument(objects_scene(per_object=100, sh_degree=1),
                                               {1: Group("chair", (1.0, 0.0, 0.0))}))


def test_saving_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    doc = edited_document()
    path = save_project(tmp_path / "a.handfulproj", doc)
    before = path.read_bytes()

    def broken(*a, **k):
        raise RuntimeError("disk gone")

    monkeypatch.setattr("engine.io.project.json.dumps", broken)
    with pytest.raises(RuntimeError):
        save_project(path, doc)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.handfulproj"]


def _rewrite(path, **members):
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    parts.update(members)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a readable Handful project"),
    ("garbage", "not a readable Handful project"),
    ("manifest", "not a Handful project"),
    ("version", "version 99"),
    ("history", "history.json is corrupt"),
    ("unknown_edit", "unknown edit 'teleport'"),
    ("scene", "scene is corrupt"),
])
def test_damaged_project_files_give_clear_errors(tmp_path, damage, message):
    path = save_project(tmp_path / "p.handfulproj", edited_document())
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip" * 20)
    elif damage == "manifest":
        _rewrite(path, **{"manifest.json": json.dumps({"format": "something-else"})})
    elif damage == "version":
        _rewrite(path, **{"manifest.json": json.dumps({"format": "handful-project", "version": 99})})
    elif damage == "history":
        _rewrite(path, **{"history.json": b"{not json"})
    elif damage == "unknown_edit":
        _rewrite(path, **{"history.json": json.dumps({"version": 1, "position": 1, "commands": [{"kind": "teleport"}]})})
    elif damage == "scene":
        _rewrite(path, **{"scene.ply": b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nend_header\n"})
    with pytest.raises(FormatError, match=message) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_the_app_opens_project_files_like_scenes():
    from app.import_panel import SCENE_SUFFIXES
    from engine.io.project import EXTENSION

    assert EXTENSION in SCENE_SUFFIXES
