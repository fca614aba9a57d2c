"""Sparse-view pose estimation on the real datasets: the acceptance cases test_poses_real.py does not take
(wide-baseline façade, object ring), with the same check."""

from __future__ import annotations

import pytest

from engine.poses.views import ACCEPTANCE_CASES, ring_order
from tests.test_poses_real import FORWARD_CASES, check_all_placed_within_tolerance

OTHER_CASES = [c for c in ACCEPTANCE_CASES if c not in FORWARD_CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", OTHER_CASES)
def test_sparse_views_all_placed_within_tolerance(case, dataset, tmp_path):
    check_all_placed_within_tolerance(case, dataset, tmp_path)


def test_ring_order_follows_the_angle_file(dataset):
    ordered = [p.name for p in ring_order(dataset("middlebury_templeSR"))]
    # templeSR0011 repeats templeSR0001's viewpoint (lon 180 == -180) and is dropped.
    assert "templeSR0011.png" not in ordered and len(ordered) == 15
    i = ordered.index("templeSR0003.png")
    assert ordered[i : i + 6] == [
        "templeSR0003.png", "templeSR0004.png", "templeSR0005.png",
        "templeSR0013.png", "templeSR0012.png", "templeSR0016.png",
    ]
