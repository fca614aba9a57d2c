"""Object grouping: regions, lifting, association, the SAM backend, the CLI, and ids through training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine import events as ev
from engine.__main__ import main as cli
from engine.errors import Cancelled, InputError
from engine.edit.groups import read_groups
from engine.grouping import group_scene, make_mask_source
from engine.grouping.lift import view_votes
from engine.grouping.masks import ViewCues
from engine.grouping.regions import RegionMaskSource
from engine.io import colmap, load_scene, save_scene
from engine.render import render
from engine.scene import CameraRig, GaussianScene
from engine.train.params import keep_rows, make_optimizers, params_from_scene, scene_from_params
from engine.train.strategy import ClassicStrategy, MCMCStrategy
from tests.factories import best_iou_per_object, objects_photos, objects_scene, orbit_cameras, random_scene


@pytest.fixture(scope="module")
def objects():
    scene, truth = objects_scene()
    cams, photos = objects_photos(scene, views=10)
    return scene, truth, cams, photos


def test_grouping_finds_each_cube_sphere_and_the_floor(objects):
    scene, truth, cams, photos = objects
    seen = []
    result = group_scene(scene, cams, photos, emit=seen.append)
    ids = result.group_ids.numpy()
    assert ids.shape == (len(scene),) and ids.dtype == np.int32
    iou = best_iou_per_object(ids, truth)
    assert len(iou) == 5  # floor + 2 cubes + 2 spheres
    assert min(iou.values()) >= 0.9, iou
    # one group per object: no object is the best match of a group that covers another object too
    assert 5 <= result.num_groups <= 8, result.document["groups"]
    counts = {g["id"]: g["count"] for g in result.document["groups"]}
    assert counts == {int(i): int((ids == i).sum()) for i in np.unique(ids[ids >= 0])}
    assert result.document["ungrouped"] == int((ids < 0).sum())
    assert all(len(g["colour"]) == 3 and 0 <= min(g["colour"]) <= max(g["colour"]) <= 1 for g in result.document["groups"])
    steps = [e for e in seen if isinstance(e, ev.Progress) and e.stage == "group"]
    assert len(steps) >= 10 and steps[-1].done == steps[-1].total


def _two_sides(labels: np.ndarray) -> bool:
    """The left and right thirds are one region each, different ones (thin strips may line the edge)."""
    left, right = np.unique(labels[:, :20]), np.unique(labels[:, 40:])
    return len(left) == 1 and len(right) == 1 and left[0] != right[0]


def test_regions_split_at_colour_edges_and_depth_jumps_but_not_on_a_slope():
    h, w = 40, 60
    source = RegionMaskSource()
    flat = np.full((h, w, 3), 0.5, np.float32)
    slope = np.tile(np.linspace(2.0, 4.0, h, dtype=np.float32)[:, None], (1, w))  # a floor seen at an angle
    alpha = np.ones((h, w), np.float32)
    assert source.regions(flat, ViewCues(slope, alpha)).max() == 0  # one region

    two_colours = flat.copy()
    two_colours[:, 30:] = (0.1, 0.3, 0.9)
    labels = source.regions(two_colours, ViewCues(slope, alpha))
    assert _two_sides(labels)

    jump = np.full((h, w), 2.0, np.float32)
    jump[:, 30:] = 3.0  # the same colour in front of and behind an occlusion edge
    labels = source.regions(flat, ViewCues(jump, alpha))
    assert _two_sides(labels)

    holes = alpha.copy()
    holes[:10] = 0.0  # nothing rendered there: no region
    labels = source.regions(flat, ViewCues(slope, holes))
    assert (labels[:10] == -1).all() and (labels[10:] == 0).all()


def test_votes_are_each_gaussians_blending_weight_in_its_region():
    """The three-moment lift equals the exact per-region contribution (one feature channel per region)."""
    scene = random_scene(300, sh_degree=0, seed=4, extent=0.6)
    cam = orbit_cameras(1, radius=3.0, width=48, image_height=40)[0]

    class Halves:
        name = "halves"

        def regions(self, image, cues):
            labels = np.zeros(image.shape[:2], np.int32)
            labels[:, 24:] = 1
            labels[:5] = -1
            return labels

    votes = view_votes(scene, cam, np.zeros((40, 48, 3), np.uint8), Halves())
    onehot = torch.ones(len(scene), 2, requires_grad=True)
    out = render(scene, cam, background=(0, 0, 0), features=onehot)
    weighting = torch.zeros(40, 48, 2)
    weighting[5:, :24, 0] = 1
    weighting[5:, 24:, 1] = 1
    (out.features * weighting).sum().backward()
    exact = onehot.grad.numpy()
    pure = (exact.min(1) < 1e-6 * np.maximum(exact.max(1), 1e-12)) & (exact.max(1) > 1e-3)
    assert pure.sum() > 50
    np.testing.assert_array_equal(votes.labels[pure], exact[pure].argmax(1))
    np.testing.assert_allclose(votes.weights[pure], exact[pure].max(1), rtol=1e-4)
    unseen = exact.sum(1) < 1e-4
    assert (votes.labels[unseen] == -1).all()


def test_grouping_without_cameras_says_it_needs_them(objects, tmp_path, capsys):
    scene = objects[0]
    with pytest.raises(InputError, match="needs the cameras"):
        group_scene(scene, [], [])
    save_scene(scene, tmp_path / "s.ply")
    assert cli(["group", str(tmp_path / "s.ply"), "-o", str(tmp_path / "out")]) == 2
    assert "needs the cameras" in capsys.readouterr().err


def test_group_cli_writes_ids_into_the_ply_and_groups_json(objects, tmp_path, capsys):
    scene, truth, cams, photos = objects
    (tmp_path / "photos").mkdir()
    for cam, photo in zip(cams, photos):
        cv2.imwrite(str(tmp_path / "photos" / cam.name), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    colmap.write_text(CameraRig(cams), tmp_path / "cams")
    save_scene(scene, tmp_path / "scene.ply")
    code = cli(["group", str(tmp_path / "scene.ply"), "--cameras", str(tmp_path / "cams"),
                "--images", str(tmp_path / "photos"), "-o", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    grouped = load_scene(tmp_path / "out" / "scene.ply")
    doc = json.loads((tmp_path / "out" / "groups.json").read_text())
    assert set(read_groups(tmp_path / "out" / "groups.json")) == {g["id"] for g in doc}  # the edit model reads it
    assert grouped.group_ids is not None and len(grouped) == len(scene)
    assert min(best_iou_per_object(grouped.group_ids.numpy(), truth).values()) >= 0.9
    assert sum(g["count"] for g in doc) + int((grouped.group_ids < 0).sum()) == len(scene)
    assert {g["id"] for g in doc} == set(np.unique(grouped.group_ids.numpy()[grouped.group_ids.numpy() >= 0]))
    assert "objects" in capsys.readouterr().out


def test_cancel_between_views_raises_and_leaves_the_scene_as_it_was(objects):
    scene, _, cams, photos = objects
    token = ev.CancelToken()

    def cancel_after_two(event):
        if isinstance(event, ev.Progress) and event.done >= 2:
            token.cancel()

    before = scene.means.clone()
    with pytest.raises(Cancelled):
        group_scene(scene, cams, photos, emit=cancel_after_two, cancel=token)
    assert scene.group_ids is None and torch.equal(scene.means, before)


# ----------------------------------------------------------------------------------- SAM backend


def _tiny_sam(folder: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    config = transformers.SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64, output_channels=32,
                           image_size=64, patch_size=8, global_attn_indexes=[1], window_size=4, num_pos_feats=16),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=8, image_embedding_size=8,
                                   mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32,
                                 num_hidden_layers=1),
    )
    torch.manual_seed(0)
    transformers.SamModel(config).save_pretrained(folder)
    return folder


@pytest.mark.slow  # importing transformers alone takes 10-30 s on the 2-core machine
def test_sam_masks_from_a_local_tiny_model_feed_the_grouping(objects, tmp_path):
    from engine.grouping.sam import SamMaskSource

    scene, _, cams, photos = objects
    source = make_mask_source("sam", _tiny_sam(tmp_path / "sam"))
    assert isinstance(source, SamMaskSource) and source.input_size == 64
    source.min_score = -math.inf  # a random model's quality estimates mean nothing: keep every mask
    source.points_per_side = 4
    alpha = np.ones(photos[0].shape[:2], np.float32)
    labels = source.regions(photos[0], ViewCues(None, alpha))
    assert labels.shape == photos[0].shape[:2] and labels.dtype == np.int32
    assert labels.max() >= 0  # at least one mask survived
    result = group_scene(scene, cams[:3], photos[:3], source=source)
    assert result.group_ids.shape == (len(scene),) and result.document["mask_source"] == "sam"
    assert (result.group_ids >= 0).any()


def test_a_missing_or_broken_sam_folder_is_a_clear_error_and_falls_back(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(InputError, match="does not exist") as err:
        make_mask_source("sam", missing)
    assert str(missing) in str(err.value) and "--sam-model" in str(err.value)
    with pytest.raises(InputError, match="needs a model folder"):
        make_mask_source("sam", None)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "sam"}))
    pytest.importorskip("transformers")
    with pytest.raises(InputError, match="cannot load the SAM model"):
        make_mask_source("sam", broken)
    warnings = []
    source = make_mask_source("sam", missing, warn=warnings.append)
    assert isinstance(source, RegionMaskSource)
    assert len(warnings) == 1 and "image regions instead" in warnings[0] and str(missing) in warnings[0]


# ------------------------------------------------------------------------ ids through training


def test_group_ids_follow_their_gaussians_through_densification_and_a_ply_round_trip(tmp_path):
    scene = random_scene(40, sh_degree=0, seed=2, with_groups=True)
    params = params_from_scene(scene, 0)
    assert "group_ids" in params and params["group_ids"].dtype == torch.int32
    opts = make_optimizers(params, {k: 0.01 for k in params})
    assert "group_ids" not in opts
    # every copy (clone, split half, relocated sample) keeps its source's colour: trace ids by it
    id_of_colour = {tuple(c): g for c, g in zip(scene.sh[:, 0].numpy().round(5), scene.group_ids.numpy())}

    def ids_follow_sources():
        colours = params["sh0"].detach()[:, 0].numpy().round(5)
        assert len(params["group_ids"]) == len(params["means"])
        return all(id_of_colour[tuple(c)] == g for c, g in zip(colours, params["group_ids"].numpy()))

    classic = ClassicStrategy(scene_extent=1.0, grow_grad2d=0.0, grow_scale3d=0.05)
    classic.grad_accum = torch.ones(40)
    classic.visible_count = torch.ones(40)
    n_clone, n_split = classic.grow(params, opts)
    assert n_clone > 0 and n_split > 0 and len(params["means"]) == 40 + n_clone + n_split
    assert ids_follow_sources()

    grown = params["group_ids"].numpy().copy()
    keep = torch.arange(len(grown)) % 3 != 0
    keep_rows(params, opts, keep)
    np.testing.assert_array_equal(params["group_ids"].numpy(), grown[keep.numpy()])

    mcmc = MCMCStrategy(cap_max=10_000, min_opacity=0.2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        params["opacity_logits"][:5] = -10.0  # dead: moved onto live Gaussians, taking their ids
    before = params["group_ids"].clone()
    assert mcmc.relocate(params, opts) >= 5 and mcmc.add(params, opts) > 0
    assert ids_follow_sources() and not torch.equal(params["group_ids"][:len(before)], before)

    trained = scene_from_params(params).clone()
    assert trained.group_ids.dtype == torch.int32 and len(trained.group_ids) == len(trained)
    save_scene(trained, tmp_path / "grown.ply")
    assert torch.equal(load_scene(tmp_path / "grown.ply").group_ids, trained.group_ids)
    # a scene without ids trains without them
    assert "group_ids" not in params_from_scene(random_scene(5, sh_degree=0), 0)


def test_subset_and_concatenate_keep_ids():
    a = random_scene(10, sh_degree=0, with_groups=True)
    b = random_scene(4, sh_degree=0)
    sub = a.subset(a.group_ids == a.group_ids[0])
    assert (sub.group_ids == a.group_ids[0]).all()
    both = GaussianScene.concatenate([a, b])
    assert torch.equal(both.group_ids[:10], a.group_ids) and (both.group_ids[10:] == -1).all()


@pytest.mark.slow  # a render and backward per step
def test_identity_features_learn_the_objects_the_votes_found(objects):
    from engine.grouping.identity import region_targets

    regions = np.array([[0, 0, 1], [1, 2, -1]])
    labels = np.array([0, 0, 0, 1, 1, 2, -1])  # region of each Gaussian in this view
    weights = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 0.0])
    ids = np.array([3, 3, 1, 0, 1, 2, 2])
    # region 0: id 3 has 2 of 3 weight; region 1: id 0 has 2 of 3; region 2: only id 2
    np.testing.assert_array_equal(region_targets(regions, labels, weights, ids, 4), [[3, 3, 0], [0, 2, -1]])
    weights[3] = 1.0  # region 1 now split half and half: no object
    np.testing.assert_array_equal(region_targets(regions, labels, weights, ids, 4), [[3, 3, -1], [-1, 2, -1]])

    scene, truth, cams, photos = objects
    result = group_scene(scene, cams[:4], photos[:4], identity_steps=24)
    assert result.vote_ids is not None
    agree = (result.group_ids.numpy() == result.vote_ids.numpy()).mean()
    assert agree > 0.8, agree
    assert min(best_iou_per_object(result.group_ids.numpy(), truth).values()) > 0.6
