"""The job's priors setting: validation, the plan auto chooses, the depth and repair stages' files, resume
by fingerprint, cancel inside each new stage, and missing models. The priors' backends are stand-ins with
known answers (tests/fake_priors.py), so these tests check the job's wiring, not the priors' quality."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import events as ev
from engine.__main__ import main as cli
from engine.errors import Cancelled, InputError, StageError
from engine.io import load_scene
from engine.job import Job, JobOptions, run_job
from engine.stages import (ALL_STAGES, BY_NAME, DepthResult, GroupResult, IngestResult, InitResult, PosesResult,
                           RepairResult, Report, TrainResult)
from engine.stages.priors import GUARD_VERSION, SPARSE_PHOTOS, describe_priors, resolve_priors
from tests import fake_priors
from tests.factories import cancelling_at

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"


@pytest.fixture
def four_photos(tmp_path) -> Path:
    """Four of the sample's photos, small, with the sample's true cameras (transforms.json)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((SAMPLE / "images").glob("*.jpg"))[::6][:4]:
        cv2.imwrite(str(folder / p.name), cv2.resize(cv2.imread(str(p)), (96, 72), interpolation=cv2.INTER_AREA))
    return folder


@pytest.fixture
def fakes(monkeypatch):
    """(the regularisers the job built, calls to train) with the stand-in priors installed."""
    return fake_priors.install(monkeypatch), fake_priors.recording_train(monkeypatch)


def _opts(**kw) -> JobOptions:
    return JobOptions(**{"cameras": SAMPLE / "transforms.json", "preset": "preview", "iterations": 12,
                         "group": False, **kw})


def _started(seen) -> list[str]:
    """The stages that ran (group runs too with grouping off: it clears an earlier run's groups)."""
    return [e.stage for e in seen if isinstance(e, ev.StageStarted)]


def _finished(out: Path) -> set[str]:
    return set(json.loads((out / "job.json").read_text())["finished"])


def test_priors_setting_is_checked_and_auto_follows_the_preset_and_photo_count(tmp_path, capsys):
    with pytest.raises(InputError, match="unknown priors setting 'medium'") as info:
        JobOptions(priors="medium").validate()
    assert "auto, off, fast, full" in info.value.hint
    with pytest.raises(InputError, match="prior names"):
        JobOptions(without_priors="depth").validate()  # a string, not a list of names
    with pytest.raises(InputError, match="unknown prior 'dropuot'") as info:
        JobOptions(without_priors=("dropuot",)).validate()
    assert "dropout" in info.value.hint and "repair" in info.value.hint
    with pytest.raises(SystemExit) as usage:
        cli(["reconstruct", str(tmp_path), "-o", str(tmp_path / "o"), "--priors", "some"])
    assert usage.value.code == 2
    assert "invalid choice: 'some'" in capsys.readouterr().err

    assert resolve_priors("auto", "preview", 3).level == "fast"
    assert resolve_priors("auto", "standard", 3).level == "full"
    assert resolve_priors("auto", "high", SPARSE_PHOTOS).level == "full"
    assert resolve_priors("auto", "standard", SPARSE_PHOTOS + 1).level == "off"
    assert resolve_priors("auto", "standard", None).level == "off"  # before the cameras are known
    chosen = resolve_priors("full", "preview", 200)
    assert chosen.level == "full" and chosen.reason == "chosen" and chosen.depth and chosen.repair
    fast = resolve_priors("fast", "preview", 3)
    assert fast.depth and fast.has("dense-init") and fast.has("regularisers") and not fast.repair
    no_depth = resolve_priors("full", "preview", 3, skip=("depth",))
    assert not no_depth.depth and not no_depth.has("dense-init") and no_depth.has("regularisers") and no_depth.repair
    off = resolve_priors("off", "high", 3)
    assert not any(off.has(p) for p in ("depth", "dense-init", "regularisers", "repair", "dropout"))

    assert describe_priors("off", "preview", 3) == "plain training, no extra stages"
    assert describe_priors("auto", "preview", 40).startswith("Auto picks Off for 40 photos")
    assert "repair round" in describe_priors("full", "standard", 3)
    assert "repair" not in describe_priors("fast", "standard", 3)


def test_each_stage_fingerprints_exactly_what_it_reads(tmp_path):
    job = Job([tmp_path], tmp_path / "out", JobOptions(device="cpu", priors="fast", depth_model=tmp_path / "m"))
    assert job.fingerprint("ingest") == {"max_images": None, "max_long_edge": 1600}
    assert job.fingerprint("poses") == {"cameras": None, "pose_features": "auto"}
    # the guard's version: a folder whose depth.json predates the guard figures re-runs the stage
    assert job.fingerprint("depth") == {"depth_model": str(tmp_path / "m"), "eval_every": 8, "guard": GUARD_VERSION}
    assert job.fingerprint("init")["dense_init"] is True and job.fingerprint("init")["hull"] is True
    no_hull = Job([tmp_path], tmp_path / "out3", JobOptions(device="cpu", priors="fast", without_priors=("hull",)))
    assert no_hull.fingerprint("init")["hull"] is False
    assert job.fingerprint("train")["regularisers"] is True
    assert "priors" not in job.fingerprint("ingest") and "priors" not in job.fingerprint("poses")
    off = Job([tmp_path], tmp_path / "out2", JobOptions(device="cpu", priors="off"))
    assert off.fingerprint("init")["dense_init"] is False and off.fingerprint("train")["regularisers"] is False
    # every stage names the files it writes
    assert all(s.outputs for s in ALL_STAGES) and BY_NAME["depth"].outputs == ("depth/", "depth.json")


def test_stage_results_round_trip_through_their_files(tmp_path):
    results = [
        IngestResult(images_total=3, images=[{"name": "a.jpg", "width": 4}], skipped=[["b.txt", "unknown"]]),
        PosesResult(strategy="standard", registered=["a.jpg"], summary={"mean_error": 0.5}),
        DepthResult(backend="plane sweep", kind="metric", views=[{"name": "a.jpg", "file": "depth/a.npz"}]),
        InitResult(gaussians=10, sources={"sfm": 4, "depth": 6}),
        TrainResult(iterations=7, seconds=1.5, pose_refinement={"cameras": 2}, priors=["drop"]),
        RepairResult(backend="repair net", rounds=2, pseudo_views=["pseudo/a.png"], cancelled=True),
        GroupResult(objects=3, ungrouped=1, mask_source="regions", views=2),
        Report(images_total=3, eval={"psnr": 20.0}, priors={"level": "fast"}),
    ]
    for result in results:
        path = result.save(tmp_path)
        assert path == tmp_path / result.file
        assert type(result).load(tmp_path) == result
    assert len({r.file for r in results}) == len(results)  # one file each
    # a key written by another version is ignored; a missing or broken file says which and what to do
    (tmp_path / "init.json").write_text(json.dumps({"gaussians": 5, "from_the_future": 1}))
    assert InitResult.load(tmp_path) == InitResult(gaussians=5)
    with pytest.raises(StageError, match="repair.json is missing"):
        RepairResult.load(tmp_path / "elsewhere")
    (tmp_path / "train.json").write_text("{not json")
    with pytest.raises(StageError, match="cannot read train.json") as info:
        TrainResult.load(tmp_path)
    assert "run the job again" in info.value.hint
    # report.json keeps its shape: no "compress" key until a compression ran
    assert "compress" not in Report().to_dict()


def test_changing_priors_reruns_the_prior_stages_and_training_but_not_ingest_or_poses(four_photos, tmp_path,
                                                                                     fakes):
    built, train_calls = fakes
    out = tmp_path / "out"
    seen = []
    first = run_job([four_photos], out, _opts(priors="off"), emit=seen.append)
    assert _started(seen) == ["ingest", "poses", "init", "train", "evaluate", "group"]
    assert not (out / "depth").exists() and train_calls[-1]["losses"] == []
    assert first.report["priors"]["level"] == "off" and first.report["priors"]["ran"] == []

    seen = []
    fast = run_job([four_photos], out, _opts(priors="fast"), emit=seen.append)
    assert _started(seen) == ["depth", "init", "train", "evaluate", "group"]
    maps = sorted((out / "depth").glob("*.npz"))
    assert [p.stem for p in maps] == sorted(Path(c.name).stem for c in fast.cameras)  # one per training photo
    depth_map = fake_priors.FakeDepthMap.load(maps[0])
    assert np.all(depth_map.depth == fake_priors.PLANE_DEPTH)
    depth = DepthResult.load(out)
    assert depth.backend == fake_priors.FakeMultiViewDepth.name and len(depth.views) == 4
    # init starts from the maps' dense points: at the plane's depth in front of a camera
    init = InitResult.load(out)
    assert init.sources["depth"] > 0 and init.gaussians == len(load_scene(out / "init.ply"))
    # training got the regularisers, the depth term with the four depth maps
    assert built == [("DepthCorrelationLoss", 4)]
    assert train_calls[-1]["losses"] == ["DepthCorrelationLoss", "DepthSmoothnessLoss", "FloaterLoss"]
    assert train_calls[-1]["hooks"] == ["DropGaussian"]
    priors = fast.report["priors"]
    assert priors["level"] == "fast" and priors["depth"]["backend"] == fake_priors.FakeMultiViewDepth.name
    assert priors["regularisers"] == ["dropout", "depth_corr", "depth_smooth", "floaters"]
    assert priors["dense_points"] > 0
    # the depth guard's figures per view, and the dense start's share of the budget is their mean weight
    guard = [v["guard"] for v in depth.views]
    assert priors["depth"]["guard"] == guard and [g["name"] for g in guard] == [v["name"] for v in depth.views]
    assert all(0 < g["weight"] <= 1 and g["depth_terms"] == "kept" for g in guard)
    assert init.dense_share == pytest.approx(np.mean([g["weight"] for g in guard]), abs=1e-4)
    assert priors["dense_share"] == init.dense_share
    assert {"depth", "init", "train", "evaluate"} <= set(fast.report["timings"])
    assert not (out / "train_state.pt").exists()  # no repair planned: nothing will continue the run

    # full adds the repair stage only: depth, init and training read nothing that changed
    seen = []
    full = run_job([four_photos], out, _opts(priors="full"), emit=seen.append)
    assert _started(seen) == ["repair", "evaluate", "group"]
    repair = RepairResult.load(out)
    assert repair.backend == fake_priors.FakeSceneRepairNet.name and repair.rounds == 1  # Preview: one round
    assert len(repair.pseudo_views) == 8 and all((out / p).is_file() for p in repair.pseudo_views)
    trained, repaired = load_scene(out / "trained.ply"), load_scene(out / "scene.ply")
    np.testing.assert_allclose(repaired.opacity_logits.numpy(), trained.opacity_logits.numpy() - np.log(2.0),
                               rtol=1e-5, atol=1e-5)
    assert full.report["priors"]["repair"] == {"backend": fake_priors.FakeSceneRepairNet.name, "rounds": 1,
                                               "pseudo_views": 8}
    assert "repair" in full.report["timings"]
    assert fake_priors.repair_states == [None]  # training ran for fast: repair starts from its scene afresh

    # back to fast: training's own scene again, scored again; nothing else re-runs
    seen = []
    again = run_job([four_photos], out, _opts(priors="fast"), emit=seen.append)
    assert _started(seen) == ["evaluate", "group"]
    np.testing.assert_array_equal(load_scene(out / "scene.ply").opacity_logits.numpy(), trained.opacity_logits.numpy())
    assert "repair" not in again.report["priors"] and again.report["eval"] == fast.report["eval"]

    # leaving out one regulariser by name re-runs training, not depth or init
    seen = []
    run_job([four_photos], out, _opts(priors="full", without_priors=("dropout",)), emit=seen.append)
    assert _started(seen) == ["train", "repair", "evaluate", "group"]
    assert train_calls[-1]["hooks"] == [] and len(train_calls[-1]["losses"]) == 3
    assert (out / "train_state.pt").is_file() and fake_priors.repair_states[-1] == 12  # repair continues the run

    seen = []
    back = run_job([four_photos], out, _opts(priors="off"), emit=seen.append)
    assert _started(seen) == ["init", "train", "evaluate", "group"]
    assert back.report["priors"]["ran"] == [] and "repair" not in back.report["timings"]
    assert "depth" not in back.report["priors"]


def test_auto_turns_priors_on_for_a_sparse_capture_and_the_cli_says_which_ran(four_photos, tmp_path, fakes,
                                                                             capsys):
    out = tmp_path / "out"
    code = cli(["reconstruct", str(four_photos), "-o", str(out), "--cameras", str(SAMPLE / "transforms.json"),
                "--preset", "preview", "--iterations", "12", "--no-group", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["priors"]["level"] == "fast" and report["priors"]["reason"] == "auto: 4 training photos on Preview"
    printed = capsys.readouterr().out
    assert f"priors (fast): depth: {fake_priors.FakeMultiViewDepth.name}" in printed


def test_cancel_during_depth_keeps_the_cameras_and_the_next_run_resumes_there(four_photos, tmp_path, fakes):
    out = tmp_path / "out"
    seen, sink, token = cancelling_at("depth", 2)

    with pytest.raises(Cancelled):
        run_job([four_photos], out, _opts(priors="fast"), emit=sink, cancel=token)
    assert [e for e in seen if isinstance(e, ev.Failed)][-1].stage == "depth"
    assert _finished(out) == {"ingest", "poses"} and not (out / "depth.json").exists()
    seen = []
    result = run_job([four_photos], out, _opts(priors="fast"), emit=seen.append)
    assert _started(seen) == ["depth", "init", "train", "evaluate", "group"] and len(result.scene) > 0


def test_cancel_during_repair_keeps_a_usable_scene_and_training(four_photos, tmp_path, fakes):
    out = tmp_path / "out"
    seen, sink, token = cancelling_at("repair", 1)

    with pytest.raises(Cancelled, match="repair stopped after 1 of 2 rounds"):
        run_job([four_photos], out, _opts(priors="full", preset="standard"), emit=sink, cancel=token)
    assert _finished(out) == {"ingest", "poses", "depth", "init", "train"}
    scene = load_scene(out / "scene.ply")
    assert len(scene) == len(load_scene(out / "trained.ply")) > 0  # the last finished round's scene
    assert RepairResult.load(out).cancelled and RepairResult.load(out).rounds == 1
    seen = []
    run_job([four_photos], out, _opts(priors="full", preset="standard"), emit=seen.append)
    assert _started(seen) == ["repair", "evaluate", "group"]
    again = RepairResult.load(out)
    assert again.rounds == 2 and not again.cancelled and len(again.pseudo_views) == 16
    assert sorted({Path(p).parent.name for p in again.pseudo_views}) == ["round_0", "round_1"]


def test_a_missing_model_folder_warns_and_the_job_goes_on_with_the_default_backend(four_photos, tmp_path, fakes):
    out = tmp_path / "out"
    missing = tmp_path / "no-such-model"
    seen = []
    result = run_job([four_photos], out, _opts(priors="full", depth_model=missing, diffusion_model=missing),
                     emit=seen.append)
    warnings = [e.message for e in seen if isinstance(e, ev.Warning)]
    assert any(f"the depth model in {missing} cannot be used" in w and "multi-view depth" in w for w in warnings)
    assert any(f"the diffusion model in {missing} cannot be used" in w for w in warnings)
    priors = result.report["priors"]
    assert priors["depth"]["backend"] == fake_priors.FakeMultiViewDepth.name
    assert priors["repair"]["backend"] == fake_priors.FakeSceneRepairNet.name
    assert any("depth model" in w for w in result.report["warnings"])


def test_a_prior_this_build_lacks_is_a_warning_not_a_failure(four_photos, tmp_path, fakes, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "engine.priors.depth", None)  # as if the module were not installed
    monkeypatch.setitem(sys.modules, "engine.priors.image_prior", None)
    seen = []
    result = run_job([four_photos], tmp_path / "out", _opts(priors="full"), emit=seen.append)
    warnings = [e.message for e in seen if isinstance(e, ev.Warning)]
    assert any(w.startswith("no depth prior: engine.priors.depth is not part of this build") for w in warnings)
    assert any(w.startswith("no image prior") for w in warnings)
    assert result.report["priors"]["depth"]["backend"] is None and result.report["priors"]["repair"]["rounds"] == 0
    assert "dense_points" not in result.report["priors"] and len(result.scene) > 0


@pytest.mark.slow
def test_the_real_priors_plug_into_the_job(tmp_path):
    """engine.priors' depth and engine.train.regularisers as they are (no stand-ins): the job makes depth maps
    for the photos, starts from their points and trains with the regularisers; a broken depth model folder
    is a warning. (Their quality is measured in benchmarks/sparse_bench.py, not here.)"""
    pytest.importorskip("engine.priors.depth", reason="the depth prior is not in this build yet")
    pytest.importorskip("engine.train.regularisers", reason="the regularisers are not in this build yet")
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((SAMPLE / "images").glob("*.jpg"))[:3]:  # three neighbouring views (15 degrees apart)
        cv2.imwrite(str(folder / p.name), cv2.resize(cv2.imread(str(p)), (240, 180), interpolation=cv2.INTER_AREA))
    broken = tmp_path / "depth-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    seen = []
    result = run_job([folder], tmp_path / "out", _opts(priors="fast", depth_model=broken), emit=seen.append)
    warnings = [e.message for e in seen if isinstance(e, ev.Warning)]
    assert any(f"the depth model in {broken} cannot be used" in w for w in warnings), warnings
    priors = result.report["priors"]
    depth = DepthResult.load(tmp_path / "out")
    assert len(depth.views) == 3 and depth.kind == "metric" and priors["depth"]["backend"] == depth.backend
    assert depth.backend.startswith("multi-view")
    assert any(v["coverage"] > 0 for v in depth.views)
    assert [g["name"] for g in priors["depth"]["guard"]] == [v["name"] for v in depth.views]
    assert any(g["weight"] > 0 for g in priors["depth"]["guard"])  # neighbouring views confirm each other
    assert priors["regularisers"] == ["dropout", "depth_corr", "depth_smooth", "floaters"]
    assert InitResult.load(tmp_path / "out").sources.get("depth", 0) > 0
    assert result.report["training"]["iterations"] == 12 and len(result.scene) > 0
