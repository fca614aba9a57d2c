"""gsplat's CUDA kernels against our reference backend (needs CUDA; skipped elsewhere).

Run on a GPU machine: ``python -m pytest tests/test_render_gsplat.py -m gpu``.
"""

from __future__ import annotations

import pytest
import torch

from engine.render import available_backends, gsplat_backend, render
from engine.render.checks import assert_agreement, compare_backends, edge_case_scene
from tests.factories import orbit_cameras, random_scene

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# gsplat evaluates exp() with the fast __expf intrinsic and sums in a different order: allow a little
# more than the cpu-vs-reference bounds on the forward pass, the same on gradients.
FORWARD_TOL = 5e-4
GRAD_TOL = 1e-3


@pytest.fixture(scope="module", autouse=True)
def _gsplat_kernels():
    usable, why = gsplat_backend.kernel_status()  # compiles gsplat's kernels on a machine's first run
    if not usable:
        pytest.skip(why)
    assert "gsplat" in available_backends()


@pytest.mark.parametrize(
    "width,height,seed,inside,features",
    [(80, 60, 0, False, 3), (37, 29, 1, True, 0), (64, 64, 2, False, 1)],
    ids=["features", "camera-inside-odd-size", "square"],
)
def test_gsplat_matches_reference(width, height, seed, inside, features):
    cam = orbit_cameras(8, width=width, image_height=height)[1]
    scene = edge_case_scene(cam, n=300, feature_dim=features, seed=seed, camera_inside=inside)
    report = compare_backends(scene, cam, "reference", "gsplat", scene_b=scene.to("cuda"))
    assert report["n_isects"][0] == report["n_isects"][1]
    assert report["visible"][0] == report["visible"][1]
    assert_agreement(report, FORWARD_TOL, GRAD_TOL)


def test_auto_picks_gsplat_for_cuda_scenes():
    cam = orbit_cameras(8, width=32, image_height=32)[0]
    r = render(random_scene(50, sh_degree=0).to("cuda"), cam, sh_degree=0, background=(0, 0, 0))
    assert r.meta.backend == "gsplat" and r.rgb.is_cuda
    assert r.meta.means2d.shape == (50, 2) and r.meta.radii.shape == (50, 2)
