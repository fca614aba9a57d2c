"""Sparse-view pose estimation on the real datasets (acceptance cases from the issue): the forward-facing
fern here, the wide-baseline and ring cases in test_poses_real_ring.py (two files, so that the suite's
two workers (--dist loadfile) share these slow cases)."""

from __future__ import annotations

import pytest

from engine.events import Warning
from engine.poses import estimate_poses, pose_errors, read_reference_rig
from engine.poses.views import ACCEPTANCE_CASES

MAX_MEDIAN_ROT_DEG = 2.0
MAX_CENTER_REL = 0.05
FORWARD_CASES = [c for c in ACCEPTANCE_CASES if ACCEPTANCE_CASES[c][0] == "llff_fern"]


def check_all_placed_within_tolerance(case, dataset, tmp_path):
    folder_name, choose = ACCEPTANCE_CASES[case]
    folder = dataset(folder_name)
    photos = choose(folder)
    events = []
    result = estimate_poses(photos, tmp_path / "work", emit=events.append, timeout_s=600)
    assert result.unregistered == [], result.attempts
    assert sorted(result.registered) == sorted(p.name for p in photos)
    assert not [e for e in events if isinstance(e, Warning)]
    reference = read_reference_rig(folder / "gt_colmap_text")
    ref_by_name = reference.by_name()
    for cam in result.rig:
        ref = ref_by_name[cam.name]
        assert (cam.width, cam.height) == (ref.width, ref.height)
    errors = pose_errors(result.rig, reference)
    assert errors["median_rot_deg"] <= MAX_MEDIAN_ROT_DEG, (errors, result.attempts)
    assert errors["max_center_rel"] <= MAX_CENTER_REL, (errors, result.attempts)


@pytest.mark.slow
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_sparse_views_all_placed_within_tolerance(case, dataset, tmp_path):
    check_all_placed_within_tolerance(case, dataset, tmp_path)
