"""The headless edit model: every command undoes bit for bit and redoes, histories replay, no-ops say so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.camera_projection import project_points
from engine.edit import (
    NOTHING_SELECTED, Brightness, Delete, Duplicate, FloaterOptions, Hide, Isolate, Recolour, RemoveFloaters,
    RenameGroup, SceneDocument, Select, SetGroupVisible, ShowAll, Transform, command_from_json, replay,
)
from engine.edit.transform import rotation_from_euler_degrees
from engine.errors import FormatError
from engine.render.sh import sh_to_rgb
from tests.scene_objects import BEHIND_SPHERE, CLICK_POINTS, front_camera, objects_scene


def state(doc: SceneDocument) -> dict:
    """Every array as raw bytes (NaN payloads and signed zeros included) plus shapes, and the groups."""
    out = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in doc.arrays.items()}
    out["groups"] = sorted((k, g.name, g.colour) for k, g in doc.groups.items())
    return out


@pytest.fixture
def doc():
    return SceneDocument(objects_scene(per_object=150, sh_degree=2))


CAM = front_camera()


def _pixel(point):
    return project_points(np.asarray(point, dtype=np.float64)[None], CAM)[0][0]


COMMANDS = {
    "pick": lambda d: Select.pick(CAM, *_pixel(CLICK_POINTS[1])),
    "rect": lambda d: Select.rect(CAM, (0, 0, 160, 240)),
    "lasso": lambda d: Select.lasso(CAM, [(10, 10), (200, 20), (150, 230), (20, 200)]),
    "brush": lambda d: Select.brush(CAM, [(60, 100), (120, 100), (200, 110)], 15),
    "sphere": lambda d: Select("sphere", {"centre": [0.0, 0.3, 0.25], "radius": 0.2}),
    "box": lambda d: Select("box", {"min": [-1.2, 0.0, 0.0], "max": [-0.6, 0.6, 0.6]}),
    "colour": lambda d: Select("colour", {"rgb": [0.1, 0.85, 0.2], "tolerance": 0.1}),
    "opacity": lambda d: Select("opacity", {"min": 0.0, "max": 0.5}, "add"),
    "size": lambda d: Select("size", {"min": 0.0, "max": 0.045}, "subtract"),
    "grow": lambda d: Select("grow", {"distance": 0.1}),
    "shrink": lambda d: Select("shrink", {"distance": 0.1}),
    "intersect": lambda d: Select("rect", {"camera": Select.rect(CAM, (0, 0, 1, 1)).params["camera"],
                                           "rect": [0, 0, 100, 240]}, "intersect"),
    "invert": lambda d: Select("invert"),
    "all": lambda d: Select("all"),
    "none": lambda d: Select("none"),
    "hide": lambda d: Hide(),
    "isolate": lambda d: Isolate(),
    "hide_group": lambda d: SetGroupVisible(1, False),
    "delete": lambda d: Delete(),
    "duplicate": lambda d: Duplicate(),
    "move": lambda d: Transform(shift=[0.5, -0.1, 0.2], pivot=d.selection_centre().tolist()),
    "rotate": lambda d: Transform(rotation=rotation_from_euler_degrees([10, 35, -20]).tolist(),
                                  pivot=d.selection_centre().tolist()),
    "scale": lambda d: Transform(scale=1.7, pivot=d.selection_centre().tolist()),
    "recolour": lambda d: Recolour([1.0, 0.8, 0.0], 0.6),
    "brightness": lambda d: Brightness(1.4),
    "floaters": lambda d: RemoveFloaters(FloaterOptions(isolation=1.5, max_opacity=1.0, far=3.0).to_json()),
    "rename": lambda d: RenameGroup(2, "ball"),
}


def _prepare(doc: SceneDocument, name: str) -> None:
    """A selection for the command to act on (green sphere + part of the red cube), some hidden splats."""
    doc.apply(Select.group(2))
    doc.apply(Select("box", {"min": [-1.2, 0.0, 0.0], "max": [-0.9, 0.6, 0.6]}, "add"))
    if name in ("show_all",):
        doc.apply(Hide())


@pytest.mark.parametrize("name", sorted(COMMANDS) + ["show_all"])
def test_undo_restores_bit_for_bit_and_redo_repeats(doc, name):
    _prepare(doc, name)
    command = ShowAll() if name == "show_all" else COMMANDS[name](doc)
    before = state(doc)
    result = doc.apply(command)
    assert result.changed, result.message
    after = state(doc)
    assert after != before
    assert doc.undo().changed
    assert state(doc) == before
    assert doc.redo().changed
    assert state(doc) == after
    # and again, through the redo list twice
    doc.undo()
    doc.redo()
    assert state(doc) == after


def test_command_effects(doc):
    sphere = doc.group_ids == 2
    doc.apply(Select.group(2))
    assert np.array_equal(doc.selected, sphere)
    centre = doc.selection_centre()
    doc.apply(Transform(shift=[1.0, 0.0, 0.0], pivot=centre.tolist()))
    base = doc.base_scene.means.numpy()
    assert np.allclose(doc.arrays["means"][sphere], base[sphere] + [1, 0, 0], atol=1e-6)
    assert np.array_equal(doc.arrays["means"][~sphere], base[~sphere])
    doc.apply(Duplicate())
    assert doc.count == len(base) + sphere.sum()
    assert doc.groups[4].name == "green sphere copy" or doc.groups[4].name.endswith("copy")
    assert np.array_equal(np.flatnonzero(doc.selected), np.arange(len(base), doc.count))
    doc.apply(Delete())
    assert doc.num_kept == len(base) and len(doc.edited_scene()) == len(base)
    doc.apply(Select.group(1))
    doc.apply(Hide())
    assert not doc.visible[doc.group_ids == 1].any() and len(doc.edited_scene()) == len(base)  # hidden: still saved
    assert doc.apply(Select.group(1)).message == "The selection is unchanged"  # hidden splats are not selectable


def test_scale_and_rotation_transform_gaussians_consistently(doc):
    doc.apply(Select.group(2))
    sel = doc.selected.copy()
    pivot = doc.selection_centre()
    R = rotation_from_euler_degrees([20, -40, 70])
    before = {k: v[sel].astype(np.float64) for k, v in doc.arrays.items() if k in ("means", "quats", "log_scales", "sh")}
    doc.apply(Transform(rotation=R.tolist(), scale=2.0, pivot=pivot.tolist()))
    after = {k: doc.arrays[k][sel].astype(np.float64) for k in before}
    assert np.allclose(after["means"], pivot + 2.0 * (before["means"] - pivot) @ R.T, atol=1e-5)
    assert np.allclose(after["log_scales"], before["log_scales"] + np.log(2.0), atol=1e-6)

    from engine.scene import quat_to_rotmat

    cov = lambda q, ls: (quat_to_rotmat(q) * np.exp(ls)[:, None, :]) @ (quat_to_rotmat(q) * np.exp(ls)[:, None, :]).transpose(0, 2, 1)  # noqa: E731
    assert np.allclose(cov(after["quats"], after["log_scales"]), 4.0 * R @ cov(before["quats"], before["log_scales"]) @ R.T,
                       atol=1e-6)
    # view-dependent colour turns with the object: seen from R d it looks as it did from d
    eye = torch.tensor([0.3, -2.0, -3.0], dtype=torch.float64)
    old_rgb = sh_to_rgb(torch.from_numpy(before["sh"]), torch.from_numpy(before["means"]), eye, 2)
    new_eye = torch.from_numpy(pivot + 2.0 * R @ (eye.numpy() - pivot))
    new_rgb = sh_to_rgb(torch.from_numpy(after["sh"]), torch.from_numpy(after["means"]), new_eye, 2)
    assert torch.allclose(old_rgb, new_rgb, atol=1e-5)
    assert np.array_equal(after["sh"][:, 0], before["sh"][:, 0])


def test_recolour_and_brightness_change_base_colour(doc):
    doc.apply(Select.group(1))
    sel = doc.selected
    doc.apply(Recolour([0.0, 0.0, 1.0], 1.0))
    colour = 0.5 + 0.28209479177387814 * doc.arrays["sh"][sel, 0]
    assert np.allclose(colour, [0, 0, 1], atol=1e-6)
    doc.apply(Brightness(0.5))
    colour = 0.5 + 0.28209479177387814 * doc.arrays["sh"][sel, 0]
    assert np.allclose(colour, [0, 0, 0.5], atol=1e-6)


def test_edits_on_an_empty_selection_do_nothing_and_say_so(doc):
    before = state(doc)
    for command in (Hide(), Isolate(), Delete(), Duplicate(), Transform(shift=[1, 0, 0]), Recolour([1, 0, 0]),
                    Brightness(2.0)):
        result = doc.apply(command)
        assert not result.changed and result.message == NOTHING_SELECTED
    assert not doc.can_undo and state(doc) == before
    miss = doc.apply(Select.pick(CAM, 2, 2))  # the top-left corner: sky
    assert not miss.changed and "No splat under the cursor" in miss.message


def test_picking_selects_each_object(doc):
    for gid, point in CLICK_POINTS.items():
        result = doc.apply(Select.pick(CAM, *_pixel(point)))
        assert result.changed, (gid, result.message)
        assert result.message == f"Selected Object {gid}" and result.count == 150
        assert np.array_equal(doc.selected, doc.group_ids == gid), gid
    # Shift adds, Ctrl subtracts
    doc.apply(Select.pick(CAM, *_pixel(CLICK_POINTS[1]), mode="add"))
    assert set(np.unique(doc.group_ids[doc.selected])) == {1, 3}
    doc.apply(Select.pick(CAM, *_pixel(CLICK_POINTS[3]), mode="subtract"))
    assert np.array_equal(doc.selected, doc.group_ids == 1)


def test_pick_takes_the_front_object_not_the_one_behind():
    doc = SceneDocument(objects_scene(per_object=150))
    result = doc.apply(Select.pick(CAM, *_pixel(BEHIND_SPHERE)))
    assert result.changed and np.array_equal(doc.selected, doc.group_ids == 2)


def test_floater_preview_finds_the_strays_and_cleanup_removes_them():
    scene = objects_scene(per_object=200)
    doc = SceneDocument(scene)
    n = doc.count
    strays = np.array([[5.0, -3.0, 4.0], [-6.0, 2.0, -5.0], [0.0, -4.0, 8.0]])
    # append strays through the scene (they belong to no object)
    from engine.scene import GaussianScene

    extra = GaussianScene.from_numpy(strays, np.tile([1, 0, 0, 0], (3, 1)), np.full((3, 3), -3.0), np.full(3, -2.0),
                                     np.zeros((3, 9, 3)), group_ids=np.full(3, -1))
    doc = SceneDocument(GaussianScene.concatenate([scene, extra]))
    preview = doc.preview_floaters()
    assert np.array_equal(np.flatnonzero(preview), np.arange(n, n + 3))
    assert not doc.can_undo  # a preview changes nothing
    result = doc.apply(RemoveFloaters())
    assert result.changed and result.count == 3 and doc.num_kept == n
    assert len(doc.edited_scene()) == n


def test_history_json_replays_to_the_same_scene(doc):
    script = ["pick", "grow", "move", "duplicate", "rotate", "recolour", "rename", "rect", "delete", "lasso",
              "hide", "brush", "scale", "floaters"]
    for name in script:
        result = doc.apply(COMMANDS[name](doc))
        assert result.changed, (name, result.message)
    doc.undo()
    doc.undo()  # two edits wait on the redo list
    text = json.dumps(doc.history_json())
    again = replay(objects_scene(per_object=150, sh_degree=2), json.loads(text))
    assert state(again) == state(doc)
    assert again.position == doc.position and again.undo_label == doc.undo_label
    again.redo()
    doc.redo()
    assert state(again) == state(doc)
    while again.can_undo:
        again.undo()
    assert state(again) == state(SceneDocument(objects_scene(per_object=150, sh_degree=2)))


def test_unknown_or_bad_commands_in_a_history_are_format_errors(doc):
    with pytest.raises(FormatError, match="unknown edit 'explode'"):
        command_from_json({"kind": "explode"})
    with pytest.raises(FormatError, match="bad parameters"):
        command_from_json({"kind": "brightness", "strength": 2})
    with pytest.raises(FormatError, match="did nothing on replay"):
        doc.replay({"version": 1, "position": 1, "commands": [Delete().to_json()]})


def test_modified_ignores_selection_changes(doc):
    doc.apply(Select.group(1))
    assert not doc.modified
    doc.apply(Delete())
    assert doc.modified
    doc.undo()
    assert not doc.modified
    doc.redo()
    doc.mark_saved()
    assert not doc.modified
    doc.undo()
    assert doc.modified


def test_scene_without_group_ids_is_one_scene_group():
    from tests.factories import random_scene

    doc = SceneDocument(random_scene(50, sh_degree=0))
    assert list(doc.groups) == [0] and doc.groups[0].name == "Scene"
    doc.apply(Select.group(0))
    assert doc.num_selected == 50
    assert doc.edited_scene().group_ids is None  # no ids made up for a scene that had none
    doc.apply(Select("rect", Select.rect(CAM, (0, 0, 1, 1)).params | {"rect": [0, 0, 320, 240]}))
    doc.apply(Duplicate())
    assert doc.edited_scene().group_ids is not None and set(doc.groups) == {0, 1}


def test_listeners_hear_what_changed(doc):
    heard = []
    doc.subscribe(heard.append)
    doc.apply(Select.group(1))
    doc.apply(Delete())
    doc.apply(Select.group(2))
    doc.apply(Transform(shift=[0, 1, 0]))
    doc.apply(RenameGroup(2, "ball"))
    assert heard == [{"selection"}, {"visibility", "selection"}, {"selection"}, {"scene"}, {"groups"}]
    scene = doc.scene()
    assert torch.equal(scene.means, torch.from_numpy(doc.arrays["means"]))


def test_preview_shows_an_edit_without_making_it(doc):
    doc.apply(Select.group(2))
    before = state(doc)
    scene = doc.preview(Transform(shift=[0.0, -1.0, 0.0]))
    assert state(doc) == before and not doc.undo_label.startswith("Move")
    sel = doc.selected
    assert np.allclose(scene.means.numpy()[sel], doc.arrays["means"][sel] + [0, -1, 0], atol=1e-6)
    assert np.array_equal(scene.means.numpy()[~sel], doc.arrays["means"][~sel])
    assert doc.preview(Select.group(2)) is None  # no change: nothing to show


def test_objects_without_names_get_their_own_colour_as_swatch():
    from engine.edit.groups import Group

    doc = SceneDocument(objects_scene(per_object=100), {3: Group("box", (0.0, 1.0, 1.0))})
    assert np.allclose(doc.groups[1].colour, [0.9, 0.1, 0.1], atol=0.02)  # the red cube
    assert np.allclose(doc.groups[2].colour, [0.1, 0.85, 0.2], atol=0.02)
    assert doc.groups[3] == Group("box", (0.0, 1.0, 1.0))  # given names and colours are kept
