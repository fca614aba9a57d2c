"""Importance pruning, SH reduction, the quality knob and ``python -m engine compress``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import events as ev
from engine.__main__ import main as cli
from engine.compress import importance as imp
from engine.compress.pipeline import compress
from engine.compress.quality import QUALITY_NAMES, predicted_bytes
from engine.compress.scene_codec import decode_scene
from engine.compress.sh_reduce import _visible, band_rms, distill_degrees, truncate_degrees
from engine.errors import InputError
from engine.io import load_scene, save_scene
from engine.render import render
from engine.scene import GaussianScene
from tests.factories import orbit_cameras, random_scene

BACKEND = "reference"  # plain torch: no kernel compilation, exact enough for these small views


def test_contributions_sum_to_the_rendered_alpha():
    scene = random_scene(120, sh_degree=1, extent=0.6)
    cams = orbit_cameras(3, width=40, image_height=30)
    c = imp.contributions(scene, cams, backend=BACKEND)
    total_alpha = sum(float(render(scene, cam, background=(0, 0, 0), backend=BACKEND).alpha.sum()) for cam in cams)
    assert c.shape == (120,) and (c >= 0).all()
    assert c.sum() == pytest.approx(total_alpha, rel=1e-4)


def test_a_hidden_gaussian_contributes_nothing_and_is_pruned():
    # an opaque wall between the camera and a small splat behind it
    cam = orbit_cameras(1, radius=4.0, height=0.0, width=32, image_height=24)[0]
    eye = cam.center
    toward = -eye / np.linalg.norm(eye)
    wall = eye + 2.0 * toward
    hidden = eye + 3.0 * toward
    scene = GaussianScene.from_numpy(
        means=np.stack([wall, hidden]), quats=np.tile([1.0, 0, 0, 0], (2, 1)),
        log_scales=np.log([[3.0, 3.0, 3.0], [0.05, 0.05, 0.05]]), opacity_logits=np.array([8.0, 2.0]),
        sh=np.zeros((2, 1, 3)),
    )
    c = imp.contributions(scene, [cam], backend=BACKEND)
    assert c[0] > 100 and c[1] < 1e-3 * c[0]
    keep = imp.prune_mask(c, imp.threshold_for_kept_share(c, 0.999))
    assert keep.tolist() == [True, False]


@pytest.mark.parametrize("share", [1.0, 0.999, 0.99, 0.9, 0.5])
def test_pruning_never_removes_a_gaussian_above_the_threshold(share):
    importance = np.random.default_rng(3).lognormal(sigma=2.0, size=5000)
    importance[:100] = 0.0
    t = imp.threshold_for_kept_share(importance, share)
    keep = imp.prune_mask(importance, t)
    assert (importance[~keep] <= t).all() and (importance[keep] > t).all()
    assert importance[keep].sum() >= share * importance.sum() - 1e-9  # the kept share is at least asked
    assert not keep[:100].any()  # no contribution at all: always removed
    if share < 1:
        assert keep.sum() < len(importance) - 100


def test_sh_truncation_cuts_only_bands_below_the_tolerance():
    scene = random_scene(3, sh_degree=2)
    sh = torch.zeros_like(scene.sh)
    sh[:, 0] = 0.3
    sh[0, 1:4] = 1e-4  # tiny band 1, no band 2: cut to degree 0
    sh[1, 1:4] = 0.5  # a strong band 1, a tiny band 2: kept at degree 1
    sh[1, 4:9] = 1e-4
    sh[2, 4:9] = 0.5  # a strong band 2: kept whole
    scene.sh = sh
    reduced, degrees = truncate_degrees(scene, tolerance=0.01)
    assert degrees.tolist() == [0, 1, 2]
    assert (reduced.sh[0, 1:] == 0).all() and (reduced.sh[1, 4:] == 0).all()
    assert torch.equal(reduced.sh[2], scene.sh[2]) and torch.equal(reduced.sh[:, 0], scene.sh[:, 0])
    cut = band_rms(scene.sh.numpy() - reduced.sh.numpy())
    assert np.sqrt((cut**2).sum(axis=1)).max() <= 0.01


def _view_colours(scene, cams):
    """(N, V, 3) colours before the renderer's clamp, and (N, V) which camera sees which Gaussian."""
    from engine.render.sh import sh_basis

    means = scene.means.double()
    centres = torch.as_tensor(np.stack([c.center for c in cams]))
    dirs = means[:, None] - centres[None]
    basis = sh_basis(scene.sh_degree, dirs / dirs.norm(dim=-1, keepdim=True))
    seen = torch.stack([_visible(means, c) for c in cams], dim=1)
    return torch.einsum("nvk,nkc->nvc", basis, scene.sh.double()), seen


def test_sh_distillation_keeps_each_seen_colour_within_the_tolerance_and_cuts_more_than_truncation():
    scene = random_scene(600, sh_degree=3, extent=0.6)
    scene.sh = torch.cat([scene.sh[:, :1], 0.2 * torch.randn(600, 15, 3)], dim=1)  # strong higher bands
    cams = orbit_cameras(24, width=64, image_height=48)[:3]  # three neighbouring views, 15 degrees apart
    tolerance = 0.02
    distilled, degrees = distill_degrees(scene, cams, tolerance)
    _, truncated = truncate_degrees(scene, tolerance)
    before, seen = _view_colours(scene, cams)
    after, _ = _view_colours(distilled, cams)
    assert seen.any(dim=1).float().mean() > 0.9
    rms = (((after - before) ** 2).sum(-1) * seen).sum(1).div(3 * seen.sum(1).clamp_min(1)).sqrt()
    assert rms.max() <= tolerance + 1e-9
    # the bands above each kept degree are zero; the view-dependent colour went into the lower ones
    for d in range(4):
        rows = torch.as_tensor(degrees == d)
        assert (distilled.sh[rows, (d + 1) ** 2 :] == 0).all()
    assert (truncated == 3).all()  # over the whole sphere every Gaussian needs all its bands
    assert (degrees <= 1).mean() > 0.5  # from three close views most need one band or none
    assert not torch.equal(distilled.sh[torch.as_tensor(degrees == 0), 0], scene.sh[torch.as_tensor(degrees == 0), 0])


def test_sh_distillation_truncates_gaussians_no_camera_sees_by_their_sphere_energy():
    scene = random_scene(50, sh_degree=2, extent=0.3)
    cams = orbit_cameras(4, width=40, image_height=30)
    scene.means = scene.means + torch.tensor([0.0, 0.0, 50.0])  # far above every camera's view
    distilled, degrees = distill_degrees(scene, cams, 0.01)
    truncated, expected = truncate_degrees(scene, 0.01)
    assert np.array_equal(degrees, expected) and torch.equal(distilled.sh, truncated.sh)


def test_quality_knob_orders_size_and_reports_quality_before_writing():
    scene = random_scene(1500, sh_degree=2, extent=0.6)
    cams = orbit_cameras(4, width=40, image_height=30)
    weights = imp.contributions(scene, cams, backend=BACKEND)
    sizes, kept = {}, {}
    for q in QUALITY_NAMES:
        data, report, decoded = compress(scene, q, cameras=cams, importance=weights, backend=BACKEND)
        assert report.bytes == len(data) and report.kept_gaussians == len(decoded) <= len(scene)
        assert len(decode_scene(data)) == report.kept_gaussians
        assert report.psnr_vs_uncompressed is not None and np.isfinite(report.psnr_vs_uncompressed)
        assert report.ratio_to_ply > 5
        assert predicted_bytes(len(scene), q) > 0
        sizes[q], kept[q] = len(data), report.kept_gaussians
    assert sizes["low"] < sizes["medium"] < sizes["high"]
    assert kept["low"] <= kept["medium"] <= kept["high"]


def test_compress_rejects_bad_input():
    with pytest.raises(InputError, match="no Gaussians"):
        compress(GaussianScene.empty(1), "medium")
    with pytest.raises(InputError, match="unknown quality"):
        compress(random_scene(10), "ultra")


def test_cli_compress_then_info_and_convert_read_it(tmp_path, capsys):
    src, out = tmp_path / "in.ply", tmp_path / "out.handful"
    save_scene(random_scene(800, sh_degree=1), src)
    assert cli(["compress", str(src), str(out), "--quality", "low", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bytes"] == out.stat().st_size and report["importance_from"] == "proxy"
    assert cli(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "handful" and info["num_gaussians"] == report["kept_gaussians"]
    assert cli(["convert", str(out), str(tmp_path / "back.ply")]) == 0
    assert len(load_scene(tmp_path / "back.ply")) == report["kept_gaussians"]
    assert cli(["compress", str(src), str(tmp_path / "x.ply")]) == 2
    assert "a .handful file" in capsys.readouterr().err


def test_with_photos_it_fine_tunes_and_reports_the_psnr_kept():
    scene = random_scene(300, sh_degree=1, extent=0.6)
    cams = orbit_cameras(3, width=40, image_height=30)
    photos = [(render(scene, c, background=(0, 0, 0), backend=BACKEND).rgb.clamp(0, 1).numpy() * 255).astype(np.uint8)
              for c in cams]
    plain, r0, _ = compress(scene, "low", cameras=cams, images=photos, backend=BACKEND)
    events = []
    tuned, r1, _ = compress(scene, "low", cameras=cams, images=photos, finetune_steps=3, backend=BACKEND,
                            on_event=events.append)
    assert r0.finetune_steps == 0 and r1.finetune_steps == 3 and plain != tuned
    tuning = [e for e in events if isinstance(e, ev.Progress) and e.message.startswith("fine-tuning:")]
    assert tuning and all(e.stage == "compress" and 0 < e.fraction < 1 for e in tuning)
    assert "step 3/3" in tuning[-1].message
    for r in (r0, r1):
        assert r.psnr_photos_before > r.psnr_photos_after  # the photos are the uncompressed renders
        assert r.psnr_photos_after == pytest.approx(r.psnr_vs_uncompressed, abs=0.05)
    with pytest.raises(InputError, match="photo per camera"):
        compress(scene, "low", cameras=cams, images=photos[:1])
