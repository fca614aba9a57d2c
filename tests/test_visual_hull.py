"""The visual hull (engine.priors.visual_hull) of a sphere on black seen from 3 views along the axes:
the hull holds the whole sphere, space the photos see as background is carved, and the drawn points
lie inside the hull."""

import numpy as np
import pytest

from engine.errors import InputError
from engine.priors.visual_hull import foreground_mask, hull_points, inside_hull
from engine.scene import Camera

RADIUS, DIST, SIZE = 1.0, 4.0, 64


def sphere_photo(cam: Camera) -> np.ndarray:
    """White where the pixel's ray meets the sphere at the origin, black elsewhere."""
    v, u = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    rays = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1) @ cam.R
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    c = cam.center
    b = rays @ c
    hit = b * b - (c @ c - RADIUS**2) >= 0
    return np.repeat(hit[..., None], 3, axis=2).astype(np.float32)


@pytest.fixture
def views():
    eyes = [(DIST, 0, 0), (0, DIST, 0.01), (0, 0, DIST)]
    cams = [Camera.look_at(e, (0, 0, 0), fx=60.0, fy=60.0, cx=SIZE / 2, cy=SIZE / 2, width=SIZE, height=SIZE,
                           name=f"v{i}") for i, e in enumerate(eyes)]
    masks = [foreground_mask(sphere_photo(c), (0.0, 0.0, 0.0)) for c in cams]
    return cams, masks


def test_the_mask_is_the_sphere_grown_by_the_margin(views):
    cams, masks = views
    photo = sphere_photo(cams[0])[..., 0] > 0
    assert (masks[0] >= photo).all()  # nothing of the object is lost
    assert 0 < masks[0].sum() - photo.sum() < 0.5 * photo.sum()  # grown by about a pixel's ring
    # photos as the job loads them (uint8), with noise under the background tolerance: the same mask
    noisy = (sphere_photo(cams[0]) * 255 + np.random.default_rng(0).integers(0, 10, (SIZE, SIZE, 3))).clip(0, 255)
    assert np.array_equal(foreground_mask(noisy.astype(np.uint8), (0.0, 0.0, 0.0)), masks[0])


def test_the_hull_holds_the_sphere_and_carves_what_a_view_sees_as_background(views):
    cams, masks = views
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    in_sphere = d / np.linalg.norm(d, axis=1, keepdims=True) * RADIUS * rng.random((2000, 1)) ** (1 / 3)
    assert inside_hull(in_sphere, cams, masks).all()
    # beside the sphere along an axis, and in a corner the three silhouettes all exclude
    outside = np.array([[1.5, 0, 0], [0, -1.6, 0], [0, 0, 1.4], [0.95, 0.95, 0.95], [-1, 1, -1]])
    assert not inside_hull(outside, cams, masks).any()
    # behind the sphere on v2's axis: v2 sees it on the sphere, but v0 and v1 do not hold it in their photos
    assert not inside_hull(np.array([[0.0, 0.0, -50.0]]), cams, masks).any()


def test_hull_points_lie_in_the_hull_around_the_sphere(views):
    cams, masks = views
    points = hull_points(cams, masks, 800, (DIST - 2 * RADIUS, DIST + 2 * RADIUS), seed=1)
    assert len(points) == 800
    assert inside_hull(points, cams, masks).all()
    # three perspective cones bound the sphere loosely, but nothing is far from it
    assert np.linalg.norm(points, axis=1).max() < 1.6 * RADIUS
    assert np.array_equal(points, hull_points(cams, masks, 800, (DIST - 2, DIST + 2), seed=1))


def test_bad_input_is_named(views):
    cams, masks = views
    with pytest.raises(InputError, match="depth range"):
        hull_points(cams, masks, 10, (3.0, 1.0))
    with pytest.raises(InputError, match="masks"):
        inside_hull(np.zeros((1, 3)), cams, masks[:2])
    with pytest.raises(InputError, match="RGB"):
        foreground_mask(np.zeros((4, 4)), (0, 0, 0))
