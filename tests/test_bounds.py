"""engine.bounds: the bulk of a scene, not its floaters or haze."""

import numpy as np
import torch

from engine.bounds import bounding_sphere, bulk_bounds, weighted_bounds
from engine.scene import GaussianScene
from tests.factories import random_scene


def test_far_floaters_are_left_out_of_the_bulk():
    rng = np.random.default_rng(0)
    bulk = rng.uniform(-1, 1, (2000, 3))
    far = rng.choice([-800.0, 800.0], size=(60, 3))  # 3% of the points, on both sides of every axis
    lo, hi = weighted_bounds(np.vstack([bulk, far]))
    assert (lo > -1.0).all() and (hi < 1.0).all() and (hi - lo > 1.6).all()
    plain_lo, plain_hi = np.percentile(np.vstack([bulk, far]), [1, 99], axis=0)
    assert (plain_hi - plain_lo > 1000).all()  # what plain 1/99 percentiles made of it


def test_faint_haze_counts_by_its_opacity():
    rng = np.random.default_rng(1)
    solid = rng.uniform(-1, 1, (500, 3))
    haze = rng.uniform(-50, 50, (1500, 3))  # three quarters of the splats, nearly transparent
    points = np.vstack([solid, haze])
    weights = np.r_[np.full(500, 0.9), np.full(1500, 0.005)]
    lo, hi = weighted_bounds(points, weights)
    assert (lo > -1.5).all() and (hi < 1.5).all()
    lo_u, hi_u = weighted_bounds(points)  # unweighted, the haze is the bulk
    assert (hi_u - lo_u > 50).all()


def test_bulk_bounds_of_a_scene_and_its_sphere():
    scene = random_scene(400, sh_degree=0, seed=2)
    far = scene.subset(slice(0, 8)).clone()
    far.means = far.means + torch.tensor([500.0, -500.0, 500.0])
    lo, hi = bulk_bounds(GaussianScene.concatenate([scene, far]))
    ref_lo, ref_hi = scene.bounds()
    assert (lo >= ref_lo).all() and (hi <= ref_hi).all()
    centre, radius = bounding_sphere(lo, hi)
    np.testing.assert_allclose(centre, (lo + hi) / 2)
    assert radius == np.linalg.norm(hi - lo) / 2
    assert bulk_bounds(GaussianScene.empty())[0].tolist() == [0.0, 0.0, 0.0]
    assert bounding_sphere(np.zeros(3), np.zeros(3))[1] == 1e-3
