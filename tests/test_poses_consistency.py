"""The consistency check of solved cameras against the verified matches: right solutions pass,
mirrored and flipped ones are rejected, a photo placed by matches that disagree with another
pair is left out, and the chooser takes the solution the matches back, not the one placing more."""

from __future__ import annotations

import numpy as np
import pytest

from engine.poses.consistency import judge, match_agreement, triangulate
from engine.poses.estimate import _why_left_out
from engine.poses.worker import choice_key
from engine.scene import Camera

FOCAL = 800.0
MAX_ERROR_PX = 4.0


def _look_at(eye) -> np.ndarray:
    """(3,4) world-to-camera of a camera at ``eye`` looking at the origin."""
    cam = Camera.look_at(np.asarray(eye, float), (0, 0, 0), up=(0, 0, 1), fx=FOCAL, fy=FOCAL, cx=320, cy=240,
                         width=640, height=480)
    return np.c_[cam.R, cam.t]


def _points(count: int = 300, seed: int = 0) -> np.ndarray:
    """A lumpy cloud about the origin (depth varies, so rotation and translation are both seen)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (count, 3))


def _project(P: np.ndarray, X: np.ndarray, noise_px: float = 0.0, seed: int = 1) -> np.ndarray:
    c = np.c_[X, np.ones(len(X))] @ P.T
    x = c[:, :2] / c[:, 2:]
    return x + np.random.default_rng(seed).normal(0, noise_px / FOCAL, x.shape)


def _ring(count: int, degrees: float = 15.0, radius: float = 6.0) -> list[np.ndarray]:
    angles = np.radians(np.arange(count) * degrees)
    return [_look_at((radius * np.cos(a), radius * np.sin(a), 1.5)) for a in angles]


def _twisted(P1: np.ndarray, P2: np.ndarray) -> np.ndarray:
    """P2 turned by 180 degrees about the baseline: the essential matrix's other decomposition,
    which fits every match's epipolar line equally well (the flip a two-view solver can pick)."""
    R, t = P2[:, :3] @ P1[:, :3].T, P2[:, 3] - P2[:, :3] @ P1[:, :3].T @ P1[:, 3]
    axis = t / np.linalg.norm(t)
    turn = 2 * np.outer(axis, axis) - np.eye(3)  # rotation by 180 degrees about the baseline
    R2 = turn @ R
    return np.c_[R2 @ P1[:, :3], R2 @ P1[:, 3] + t]


def test_triangulation_recovers_points():
    P1, P2 = _ring(2)
    X = _points()
    assert np.abs(triangulate(P1, P2, _project(P1, X), _project(P2, X)) - X).max() < 1e-9


def test_the_true_cameras_explain_noisy_matches():
    P1, P2 = _ring(2)
    X = _points()
    stats = match_agreement(P1, P2, _project(P1, X, 0.5), _project(P2, X, 0.5, seed=2), FOCAL, FOCAL, MAX_ERROR_PX)
    assert stats["agreeing"] == len(X)
    assert 10 < stats["tri_angle_deg"] < 20  # the cameras are 15 degrees apart about the cloud


def test_a_flipped_solution_is_rejected_although_it_fits_the_epipolar_lines():
    P1, P2 = _ring(2)
    X = _points()
    x1, x2 = _project(P1, X), _project(P2, X)
    flipped = _twisted(P1, P2)
    # Same essential matrix (up to sign), so every match is on its epipolar line...
    E_true = _essential(P1, P2)
    E_flip = _essential(P1, flipped)
    assert min(np.abs(E_true - E_flip).max(), np.abs(E_true + E_flip).max()) < 1e-9
    # ...but the points land behind a camera.
    assert match_agreement(P1, flipped, x1, x2, FOCAL, FOCAL, MAX_ERROR_PX)["agreeing"] == 0


def test_a_mirrored_solution_is_rejected():
    """The rig reflected in the ground plane (each camera conjugated by the reflection, so that it
    stays a rotation) has the same relative rotation angles, but the matches land behind it."""
    P1, P2 = _ring(2, degrees=20)
    X = _points()
    mirror = np.diag([1.0, 1.0, -1.0])
    mirrored = [np.c_[mirror @ P[:, :3] @ mirror, mirror @ P[:, 3]] for P in (P1, P2)]
    assert all(np.linalg.det(P[:, :3]) > 0 for P in mirrored)
    assert match_agreement(*mirrored, _project(P1, X), _project(P2, X), FOCAL, FOCAL, MAX_ERROR_PX)["agreeing"] == 0


def _essential(P1, P2):
    R, t = P2[:, :3] @ P1[:, :3].T, P2[:, 3] - P2[:, :3] @ P1[:, :3].T @ P1[:, 3]
    t = t / np.linalg.norm(t)
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]]) @ R


def _matches(poses_true: dict, pairs, X) -> dict:
    return {(a, b): (_project(poses_true[a], X), _project(poses_true[b], X)) for a, b in pairs}


def test_a_photo_placed_by_matches_another_pair_contradicts_is_doubted():
    """Photo c's matches with b agree with a wrong placement of c (repeated structure), its
    matches with a with the true one: the solution with c misplaced leaves c out, keeps a and b."""
    a, b, c = _ring(3)
    X = _points()
    wrong_c = _look_at((-6.0, 1.0, 1.5))  # the far side of the object
    true = {"a": a, "b": b, "c": c}
    solved = {"a": a, "b": b, "c": wrong_c}
    matches = _matches(true, [("a", "b"), ("a", "c")], X)
    matches[("b", "c")] = (_project(b, X[:100]), _project(wrong_c, X[:100]))  # consistent, but wrong
    focals = dict.fromkeys(solved, FOCAL)
    verdict = judge(solved, matches, focals, MAX_ERROR_PX)
    assert verdict.supported == ["a", "b"]
    assert set(verdict.doubtful) == {"c"}
    assert "a" in verdict.doubtful["c"]
    assert judge(true, _matches(true, [("a", "b"), ("a", "c"), ("b", "c")], X), focals, MAX_ERROR_PX).doubtful == {}


def test_a_photo_backed_by_only_the_pair_that_placed_it_loses_to_a_smaller_contradiction():
    """castle_3's numbers: the far-side photo agrees with 60 of the 65 look-alike matches it was
    placed from, and its pair with the third photo contradicts it with 49 of 53. Agreeing with the
    pair it was placed from proves nothing, so the fewer contradicting matches still unseat it."""
    a, b, c = _ring(3)
    X = _points()
    wrong_c = _look_at((-6.0, 1.0, 1.5))
    true = {"a": a, "b": b, "c": c}
    solved = {"a": a, "b": b, "c": wrong_c}
    matches = _matches(true, [("a", "b"), ("a", "c")], X[:53])
    matches[("a", "b")] = (_project(a, X), _project(b, X))
    matches[("b", "c")] = (_project(b, X[:65]), _project(wrong_c, X[:65]))
    verdict = judge(solved, matches, dict.fromkeys(solved, FOCAL), MAX_ERROR_PX)
    assert verdict.pairs[("b", "c")]["supports"] and verdict.pairs[("a", "c")]["contradicts"]
    assert verdict.supported == ["a", "b"] and set(verdict.doubtful) == {"c"}


def test_a_photo_with_no_confirming_pair_is_doubted():
    a, b, c = _ring(3)
    X = _points()
    solved = {"a": a, "b": b, "c": c}
    matches = _matches(solved, [("a", "b")], X)
    matches[("a", "c")] = (_project(a, X[:10]), _project(c, X[:10]))  # too few to confirm it
    verdict = judge(solved, matches, dict.fromkeys(solved, FOCAL), MAX_ERROR_PX)
    assert verdict.supported == ["a", "b"]
    assert "confirms" in verdict.doubtful["c"]


def test_wrong_pairs_in_a_larger_capture_unseat_no_photo():
    """Eight photos in a row, each confirmed by its neighbours (120 matches a pair), as the bundled
    sample's ring is; three pairs of one photo with far ones have verified but wrong matches
    (repeated texture, each pair's pointing somewhere else) that the right solution explains
    almost none of. Together they disagree with more matches than the photo's second neighbour
    confirms, but they do not back each other: every photo stays."""
    names = [f"p{k}" for k in range(8)]
    true = dict(zip(names, _ring(8, degrees=12)))
    X = _points()
    matches = _matches(true, [(names[k], names[k + 1]) for k in range(7)], X[:120])
    for k, far in enumerate(("p4", "p5", "p6")):
        elsewhere = _look_at((-6.0, 1.0 + k, 1.5))
        matches[("p1", far)] = (_project(true["p1"], X[:60]), _project(elsewhere, X[:60]))
    verdict = judge(true, matches, dict.fromkeys(names, FOCAL), MAX_ERROR_PX)
    against = [verdict.pairs[("p1", far)] for far in ("p4", "p5", "p6")]
    assert all(s["contradicts"] for s in against)
    assert sum(s["matches"] - s["agreeing"] for s in against) > 120  # more than p1's second neighbour confirms
    assert verdict.supported == names and verdict.doubtful == {}


def test_photos_misplaced_as_a_group_are_left_out_together():
    """Two photos placed together in the wrong spot agree with each other (their own pair
    supports them, with more matches than any pair of the right photos), but their pairs with the
    four right photos contradict them: each is backed only by the other, so both go."""
    X = _points()
    right = dict(zip("abcd", _ring(4)))
    true = dict(right, e=_ring(6)[4], f=_ring(6)[5])
    turn = _rotation_z(np.radians(40.0))
    solved = dict(right, **{n: np.c_[true[n][:, :3] @ turn.T, true[n][:, 3]] for n in "ef"})  # turned as a pair
    pairs = [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("b", "d"), ("c", "e"), ("d", "e"), ("d", "f")]
    matches = _matches(true, pairs, X[:100])
    matches[("e", "f")] = (_project(solved["e"], X), _project(solved["f"], X))  # agree with the wrong spot
    verdict = judge(solved, matches, dict.fromkeys(solved, FOCAL), MAX_ERROR_PX)
    assert verdict.pairs[("e", "f")]["supports"]
    assert verdict.supported == list("abcd")
    assert set(verdict.doubtful) == {"e", "f"} and all("disagree" in why for why in verdict.doubtful.values())


def test_the_score_picks_the_rig_the_matches_back():
    """Two candidate rigs for the same matches: the true one and one with a camera turned by a few
    degrees (a wrong focal or a bent solution). The true one scores higher."""
    cams = _ring(4)
    X = _points(400)
    true = dict(zip("abcd", cams))
    matches = _matches(true, [("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("b", "d")], X)
    turn = _rotation_z(np.radians(3.0))
    bent = dict(true, d=np.c_[turn @ true["d"][:, :3], turn @ true["d"][:, 3]])
    focals = dict.fromkeys(true, FOCAL)
    right, wrong = judge(true, matches, focals, MAX_ERROR_PX), judge(bent, matches, focals, MAX_ERROR_PX)
    assert right.supported == list("abcd") and right.score == 5 * len(X)
    assert right.score > wrong.score
    assert wrong.pairs[("c", "d")]["agreeing"] < len(X)


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_attempts_are_chosen_by_confirmed_photos_and_explained_matches():
    """An attempt that placed every photo, two of them unconfirmed, loses to one whose photos are
    all confirmed; between equally confirmed ones the larger explained fraction wins."""
    placed_all = {"registered": 6, "confirmed": 4, "explained_fraction": 0.5}
    fewer_sound = {"registered": 5, "confirmed": 5, "explained_fraction": 0.4}
    assert choice_key(fewer_sound) > choice_key(placed_all)
    assert choice_key({"confirmed": 5, "explained_fraction": 0.7}) > choice_key(fewer_sound)
    assert choice_key({"registered": 0, "error": "failed"}) < choice_key(fewer_sound)


def test_a_photo_the_check_left_out_is_named_with_its_reason():
    choice = {"left_out": {"c.jpg": "its matches with a.jpg disagree with where it was placed (0 of 44 agree)"},
              "best_partner": {"c.jpg": [84, "b.jpg"], "d.jpg": [3, "a.jpg"]}}
    assert _why_left_out("c.jpg", choice) == (
        "could not be placed reliably: its matches with a.jpg disagree with where it was placed (0 of 44 agree)")
    assert "too little" in _why_left_out("d.jpg", choice)  # not placed at all: the match count says why


class _FakeRec:
    def __init__(self, error: float, placed: int):
        self.error, self.placed = error, placed

    def num_reg_images(self):
        return self.placed

    def compute_mean_reprojection_error(self):
        return self.error


@pytest.mark.parametrize("start", [0.7, 1.3, 3.0])
def test_the_focal_search_walks_to_the_minimum_from_the_refined_focal(monkeypatch, start):
    """Reprojection error smallest at 1.9 x long edge: from any start the walk brackets it and the
    parabola lands on it, in fewer mapping runs than the 14 of the old full grid."""
    from engine.poses import attempts

    focal = {}
    monkeypatch.setattr(attempts, "_set_focal", lambda db, factor: focal.update(now=factor))
    runs = []

    def run(fixed, pair, label):
        runs.append(label)
        return _FakeRec(0.4 + (np.log(focal["now"]) - np.log(1.9)) ** 2, 5)

    found = attempts._focal_search(None, run, [None, (1, 2), (2, 3)], 5, lambda m: None, start)
    assert found["factor"] == pytest.approx(1.9, rel=0.01)
    assert len(runs) <= 11
