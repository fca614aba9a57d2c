"""The depth guard (engine.priors.quality): how far each view's depth map is trusted, measured from the
maps, and what the dense start and the depth terms do with it. Synthetic: cameras side by side facing
a wall at a known depth, so every true map is that depth and the views overlap by a known amount."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.priors.depth_map import DepthMap
from engine.priors.quality import GRID, cell_reach, in_unreached_cells, points_in_unreached_cells, view_quality
from engine.scene import Camera
from engine.stages.priors import PriorsPlan, training_priors
from engine.train.regularisers import DepthCorrelationLoss, MetricDepthLoss

WALL = 5.0  # the wall's depth in front of every camera (they all look along +z)
W, H = 64, 48


def camera(x: float, name: str) -> Camera:
    # centre (x, 0, 0), looking along +z: t = -R c with R = I
    return Camera(R=np.eye(3), t=np.array([-x, 0.0, 0.0]), fx=50.0, fy=50.0, cx=W / 2, cy=H / 2, width=W,
                  height=H, name=name)


def wall_map(cam: Camera, confidence, depth: float = WALL) -> DepthMap:
    return DepthMap(np.full((H, W), depth, np.float32), np.asarray(confidence, np.float32), cam, "metric", "test")


@pytest.fixture
def cams():
    # 0.5 units apart at 5 units: each sees the others' wall shifted by 5 px of 64
    return [camera(0.0, "a"), camera(0.5, "b"), camera(1.0, "c")]


def test_cell_reach_counts_cells_holding_a_pixel():
    mask = np.zeros((H, W), bool)
    assert cell_reach(mask) == 0
    mask[0, 0] = True  # one pixel reaches one cell of GRID x (GRID * 3/4)
    assert cell_reach(mask) == pytest.approx(1 / (GRID * GRID * H // W))
    mask[::4, ::4] = True  # sparse, but spread over the whole photo: every cell
    assert cell_reach(mask) == 1.0


def test_well_covered_consistent_views_keep_full_weight_and_an_empty_one_is_dropped(cams):
    full = np.ones((H, W))
    nearly_nothing = np.zeros((H, W))
    nearly_nothing[20, 30] = 0.4  # below the confidence the start is made of
    q = view_quality([wall_map(cams[0], full), wall_map(cams[1], full), wall_map(cams[2], nearly_nothing)])
    a, b, c = q
    assert a.confident == 1.0 and b.confident == 1.0 and c.confident == 0.0
    # a's wall is confirmed by b wherever it lands inside b's photo: all but the 5 columns b misses; c's
    # unsure depth confirms nothing. Cells are 4 px: the first column of cells holds no confirmed pixel
    assert a.confirmed == pytest.approx(1 - 5 / W)
    assert a.reach == pytest.approx(15 / 16) and b.reach == pytest.approx(15 / 16) and not a.dropped
    assert c.weight == 0 and c.dropped and c.as_dict()["depth_terms"] == "dropped"
    assert a.as_dict()["depth_terms"] == "kept"


def test_a_confident_but_inconsistent_map_is_not_trusted(cams):
    full = np.ones((H, W))
    wrong = wall_map(cams[2], full, depth=1.5 * WALL)  # sure of itself, and wrong: no other view agrees
    a, b, c = view_quality([wall_map(cams[0], full), wall_map(cams[1], full), wrong])
    assert c.confident == 1.0 and c.confirmed == 0.0 and c.dropped
    assert a.weight == b.weight == pytest.approx(15 / 16)  # the two that agree still confirm each other


def test_reach_follows_where_the_confident_depth_is_not_how_much(cams):
    corner = np.zeros((H, W))
    corner[:12, 16:32] = 1  # a quarter of the rows and columns, seen by b and c: 1/16 of the photo, 4 x 3 cells
    full = np.ones((H, W))
    a, b, _ = view_quality([wall_map(cams[0], corner), wall_map(cams[1], full), wall_map(cams[2], full)])
    assert a.confirmed == pytest.approx(1 / 16)
    assert a.reach == pytest.approx(1 / 16)
    assert 0 < a.weight < b.weight


def wall_point(cam_x: float, column: float) -> list[float]:
    """The wall's point that the camera at ``cam_x`` sees at pixel column ``column`` (middle row)."""
    return [cam_x + (column + 0.5 - W / 2) / 50.0 * WALL, (24.5 - H / 2) / 50.0 * WALL, WALL]


def test_the_random_fill_is_wanted_where_a_view_has_no_confirmed_depth(cams):
    left_half = np.zeros((H, W))
    left_half[:, :32] = 1  # a is sure of its left half only
    full = np.ones((H, W))
    maps = [wall_map(cams[0], left_half), wall_map(cams[1], full), wall_map(cams[2], full)]
    points = np.array([wall_point(0.0, 48),  # in a's right half: b and c have depth there, a does not
                       wall_point(0.0, 20),  # in a's left half: every view that sees it has depth there
                       [0.0, 0.0, -5.0]])  # behind every camera: no view wants it
    assert in_unreached_cells(points, maps).tolist() == [True, False, False]


def test_the_random_fill_lands_in_the_holes_at_the_confirmed_depth(cams):
    left_half = np.zeros((H, W))
    left_half[:, :32] = 1  # a is sure of its left half only
    full = np.ones((H, W))
    maps = [wall_map(cams[0], left_half), wall_map(cams[1], full), wall_map(cams[2], full)]
    points = points_in_unreached_cells(maps, 500, seed=3)
    assert points.shape == (500, 3)
    # every point is where the guard wants fill, and at the wall's depth (the only confirmed depth),
    # not in front of the cameras
    assert in_unreached_cells(points, maps).all()
    assert np.allclose(points[:, 2], WALL)
    assert np.array_equal(points, points_in_unreached_cells(maps, 500, seed=3))


def test_no_confirmed_depth_means_no_placed_fill(cams):
    nothing = np.zeros((H, W))
    maps = [wall_map(c, nothing) for c in cams]
    assert points_in_unreached_cells(maps, 100) is None


def step(depth, index):
    result = SimpleNamespace(depth=torch.as_tensor(depth), alpha=torch.ones(depth.shape))
    return SimpleNamespace(result=result, index=index, step=0, camera=None, target=None)


@pytest.mark.parametrize("loss_type", [DepthCorrelationLoss, MetricDepthLoss])
def test_depth_terms_scale_with_the_view_weight_and_a_dropped_view_sits_out(cams, loss_type):
    rng = np.random.default_rng(0)
    truth = (WALL + rng.uniform(0, 1, (H, W))).astype(np.float32)
    maps = [DepthMap(truth, np.ones((H, W)), c, "metric", "test") for c in cams]
    rendered = truth + rng.uniform(0, 1, (H, W)).astype(np.float32)  # a render that disagrees somewhat
    plain = loss_type(maps)
    guarded = loss_type(maps, view_weights=[1.0, 0.25, 0.0])
    for loss in (plain, guarded):
        loss.setup(SimpleNamespace(cameras=cams, count=3), 1.0, "cpu")
    full = float(plain(step(rendered, 1)))
    assert full > 0.05
    assert float(guarded(step(rendered, 0))) == pytest.approx(float(plain(step(rendered, 0))))
    assert float(guarded(step(rendered, 1))) == pytest.approx(0.25 * full)
    assert guarded(step(rendered, 2)) is None


def test_training_leaves_the_depth_terms_out_when_the_guard_drops_every_view(cams):
    maps = [wall_map(c, np.ones((H, W))) for c in cams]
    plan = PriorsPlan("fast", "chosen")
    _, _, kept = training_priors(plan, maps, warn=print, view_weights=[1.0, 0.0, 0.5])
    assert "depth_corr" in kept and "dropout" in kept
    losses, hooks, none = training_priors(plan, maps, warn=print, view_weights=[0.0, 0.0, 0.0])
    assert "depth_corr" not in none and "depth_smooth" not in none
    assert none == ["dropout", "floaters"]  # the parts that need no depth stay
