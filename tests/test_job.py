"""The reconstruction job and its CLI on the bundled sample (known cameras, a short training)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine import events as ev
from engine.__main__ import main as cli
from engine.errors import Cancelled, InputError
from engine.io import load_scene
from engine.io import colmap
from engine.job import JobOptions, run_job
from engine.poses.alignment import relative_rotation_deg
from tests.factories import cancelling_at

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"


@pytest.fixture
def sample_subset(tmp_path) -> Path:
    """Eight of the sample's photos, downscaled to keep the test quick, with their true cameras."""
    src = sorted((SAMPLE / "images").glob("*.jpg"))[::3]
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in src:
        img = cv2.imread(str(p))
        cv2.imwrite(str(folder / p.name), cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA))
    return folder


def _events():
    seen = []
    return seen, seen.append


def test_reconstruct_cli_with_known_cameras(sample_subset, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli([
        "reconstruct", str(sample_subset), "-o", str(out), "--cameras", str(SAMPLE / "transforms.json"),
        "--preset", "preview", "--iterations", "300", "--priors", "off", "--quiet",
    ])
    assert code == 0
    for name in ("scene.ply", "report.json", "sparse/cameras.txt", "sparse/images.txt", "sparse/points3D.txt"):
        assert (out / name).is_file(), name
    assert list((out / "previews").glob("*.png"))
    report = json.loads((out / "report.json").read_text())
    assert report["images_total"] == 8 and report["images_registered"] == 8
    assert report["num_gaussians"] == len(load_scene(out / "scene.ply")) > 1000
    assert set(report["timings"]) >= {"ingest", "poses", "init", "train", "evaluate"}
    assert report["reused"] == [] and report["timings"]["this_run"] == report["timings"]["total"]
    assert report["device"]["type"] == "cpu"
    # 8 photos: too few to hold any out, so evaluation uses the training views
    assert report["eval"]["held_out"] is False and len(report["eval"]["views"]) == 8
    # a few hundred steps on 160x120 photos: well above an untrained scene (about 10 dB here)
    assert report["eval"]["psnr"] > 17.0, report["eval"]
    assert 0.3 < report["eval"]["ssim"] <= 1.0
    # sparse/ is a COLMAP model that names the photos as given
    rig = colmap.read(out / "sparse")
    assert sorted(c.name for c in rig) == sorted(p.name for p in sample_subset.iterdir())
    assert "PSNR" in capsys.readouterr().out


def test_until_stops_after_a_stage_and_the_next_run_resumes(sample_subset, tmp_path):
    out = tmp_path / "out"
    opts = dict(cameras=SAMPLE / "transforms.json", preset="preview", iterations=30, group=False, priors="off")
    first = run_job([sample_subset], out, JobOptions(until="poses", **opts))
    assert first.stopped_after == "poses"
    assert (out / "sparse" / "cameras.txt").is_file() and not (out / "scene.ply").exists()
    assert len(first.cameras) == 8

    seen, sink = _events()
    result = run_job([sample_subset], out, JobOptions(**opts), emit=sink)
    started = [e.stage for e in seen if isinstance(e, ev.StageStarted)]
    assert started == ["init", "train", "evaluate", "group"]  # ingest and poses were already done
    assert isinstance(seen[-1], ev.Finished) and seen[-1].result is result
    assert result.scene is not None and len(result.scene) > 0
    # the report says which timings this run measured: ingest's and poses' are the first run's
    timings = result.report["timings"]
    assert result.report["reused"] == ["ingest", "poses"]
    measured = {e.stage: round(e.seconds, 3) for e in seen if isinstance(e, ev.StageFinished)}
    assert {s: timings[s] for s in measured} == measured
    assert timings["this_run"] == pytest.approx(sum(measured.values()), abs=0.01)
    assert timings["total"] == pytest.approx(timings["this_run"] + timings["ingest"] + timings["poses"], abs=0.01)

    # changing a training option re-runs training, not the stages before it
    seen, sink = _events()
    again = run_job([sample_subset], out, JobOptions(**{**opts, "iterations": 20}), emit=sink)
    assert [e.stage for e in seen if isinstance(e, ev.StageStarted)] == ["train", "evaluate", "group"]
    assert again.report["reused"] == ["ingest", "poses", "init"]


def test_pose_refinement_writes_refined_cameras_and_turning_it_off_removes_them(sample_subset, tmp_path):
    out = tmp_path / "out"
    opts = dict(cameras=SAMPLE / "transforms.json", preset="preview", priors="off", group=False)
    seen, sink = _events()
    result = run_job([sample_subset], out, JobOptions(refine_poses=True, iterations=120, **opts), emit=sink)
    assert any(isinstance(e, ev.Progress) and "refined 7 camera poses" in e.message for e in seen)
    estimated = colmap.read(out / "sparse").by_name()
    refined = colmap.read(out / "refined")
    assert sorted(c.name for c in refined) == sorted(estimated)
    for cam in refined:  # full-size intrinsics, poses moved by a fraction of a degree at most
        est = estimated[cam.name]
        assert (cam.width, cam.height, cam.fx) == (est.width, est.height, est.fx)
        assert relative_rotation_deg(cam, est) < 1.0
    moved = [c for c in result.cameras if not np.allclose(c.R, estimated[c.name].R, atol=1e-9)]
    assert 0 < len(moved) == len(result.cameras) - 1  # all but the anchor were corrected
    info = result.report["training"]["pose_refinement"]
    assert info["cameras"] == 8 and 0 < info["max_correction_deg"] < 1.0

    # training again without refinement (a few steps are enough to see what it writes)
    result = run_job([sample_subset], out, JobOptions(refine_poses=False, iterations=10, **opts))
    assert not (out / "refined").exists() and "pose_refinement" not in result.report["training"]
    for cam in result.cameras:
        np.testing.assert_array_equal(cam.R, estimated[cam.name].R)


def test_cancel_during_training_keeps_the_scene_so_far(sample_subset, tmp_path):
    out = tmp_path / "out"
    seen, sink, token = cancelling_at("train", 5)
    with pytest.raises(Cancelled):
        run_job([sample_subset], out, JobOptions(cameras=SAMPLE / "transforms.json", preset="preview",
                                                 iterations=5000, priors="off"), emit=sink, cancel=token)
    failed = [e for e in seen if isinstance(e, ev.Failed)]
    assert failed and failed[-1].cancelled and failed[-1].stage == "train"
    assert len(load_scene(out / "scene.ply")) > 0  # usable: the viewer can show it
    state = json.loads((out / "job.json").read_text())
    assert set(state["finished"]) == {"ingest", "poses", "init"}  # training resumes next time


def test_group_stage_writes_objects_and_a_cancel_in_it_keeps_the_trained_scene(sample_subset, tmp_path):
    out = tmp_path / "out"
    opts = dict(cameras=SAMPLE / "transforms.json", preset="preview", iterations=30, priors="off")
    seen, sink, token = cancelling_at("group", 1)
    with pytest.raises(Cancelled):
        run_job([sample_subset], out, JobOptions(**opts), emit=sink, cancel=token)
    assert [e for e in seen if isinstance(e, ev.Failed)][-1].stage == "group"
    assert load_scene(out / "scene.ply").group_ids is None and not (out / "groups.json").exists()
    assert set(json.loads((out / "job.json").read_text())["finished"]) == {"ingest", "poses", "init", "train",
                                                                             "evaluate"}

    seen, sink = _events()
    result = run_job([sample_subset], out, JobOptions(**opts), emit=sink)
    assert [e.stage for e in seen if isinstance(e, ev.StageStarted)] == ["group"]
    groups = json.loads((out / "groups.json").read_text())
    ids = result.scene.group_ids.numpy()
    # 30 steps leave a cloud of random points, one blob: this checks the plumbing (grouping_bench the quality)
    assert groups and sum(g["count"] for g in groups) + int((ids < 0).sum()) == len(ids)
    assert {g["id"] for g in groups} == set(np.unique(ids[ids >= 0]).tolist())
    assert "group" in result.report["timings"]

    result = run_job([sample_subset], out, JobOptions(group=False, **opts))
    assert result.scene.group_ids is None and not (out / "groups.json").exists()


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["reconstruct", str(empty), "-o", str(tmp_path / "o1"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "Traceback" not in err

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted((SAMPLE / "images").glob("*.jpg"))[0], one)
    assert cli(["reconstruct", str(one), "-o", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "Traceback" not in capsys.readouterr().err

    with pytest.raises(InputError, match="unknown preset"):
        JobOptions(preset="ultra").validate()
    with pytest.raises(InputError, match="unknown pose features 'orb'"):
        JobOptions(pose_features="orb").validate()


def test_camera_file_that_matches_no_photo(sample_subset, tmp_path, capsys):
    other = tmp_path / "renamed"
    other.mkdir()
    for i, p in enumerate(sorted(sample_subset.iterdir())):
        shutil.copy(p, other / f"photo_{i}.jpg")
    code = cli(["reconstruct", str(other), "-o", str(tmp_path / "o"), "--cameras",
                str(SAMPLE / "transforms.json"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "transforms.json" in err and "names" in err


@pytest.mark.slow
def test_reconstruct_estimates_poses_for_the_sample(tmp_path):
    """The whole pipeline without known cameras: pycolmap poses, then a short training (400 steps: 200
    leave the hold-out near 15 dB; objects are left out, test_group_stage_... covers that stage)."""
    out = tmp_path / "out"
    result = run_job([SAMPLE / "images"], out, JobOptions(preset="preview", iterations=400, group=False))
    report = result.report
    assert report["images_registered"] == 24, report
    assert report["pose_strategy"] == "standard"  # the photos' EXIF focal length makes it easy
    assert report["eval"]["held_out"] and len(report["eval"]["views"]) == 3
    assert report["eval"]["psnr"] > 17.0, report["eval"]
    assert np.isfinite(report["eval"]["ssim"])


def test_all_black_photos_fail_with_a_message(tmp_path, capsys):
    folder = tmp_path / "black"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"black_{i}.jpg"), np.zeros((120, 160, 3), np.uint8))
    code = cli(["reconstruct", str(folder), "-o", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "identical" in err and "1 usable image of 4" in err  # names what is wrong and what to do
    assert "at least 2 photos" in err


def test_a_full_disk_during_training_keeps_the_earlier_stages(sample_subset, tmp_path, monkeypatch):
    import errno

    import engine.io as engine_io
    from engine.errors import StageError

    real_save = engine_io.save_scene

    def full_disk(scene, path, *a, **k):
        if Path(path).name == "scene.ply":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(scene, path, *a, **k)

    monkeypatch.setattr(engine_io, "save_scene", full_disk)
    out = tmp_path / "out"
    with pytest.raises(StageError, match="disk space"):
        run_job([sample_subset], out, JobOptions(cameras=SAMPLE / "transforms.json", preset="preview", iterations=5,
                                                             priors="off"))
    state = json.loads((out / "job.json").read_text())
    assert set(state["finished"]) == {"ingest", "poses", "init"}
    assert not (out / "scene.ply").exists()


def test_a_gpu_without_working_gsplat_kernels_falls_back_to_the_cpu_or_says_why(tmp_path, monkeypatch):
    import torch

    from engine.job import Job
    from engine.render import gsplat_backend

    assert gsplat_backend.kernel_status() == (False, "no CUDA device") or torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    why = "gsplat's CUDA kernels are not built and could not be compiled (is the CUDA toolkit installed?)"
    monkeypatch.setattr(gsplat_backend, "kernel_status", lambda: (False, why))

    seen, sink = _events()
    job = Job([tmp_path], tmp_path / "auto", JobOptions(device="auto"), emit=sink)
    assert job.device == "cpu"
    warnings = [e for e in seen if isinstance(e, ev.Warning)]
    assert len(warnings) == 1 and "training on the CPU" in warnings[0].message and "CUDA toolkit" in warnings[0].message

    with pytest.raises(InputError, match="cannot train on the GPU") as info:
        Job([tmp_path], tmp_path / "cuda", JobOptions(device="cuda")).device
    assert "--device cpu" in info.value.hint
    assert Job([tmp_path], tmp_path / "cpu", JobOptions(device="cpu")).device == "cpu"

    monkeypatch.setattr(gsplat_backend, "kernel_status", lambda: (True, ""))
    assert Job([tmp_path], tmp_path / "gpu", JobOptions(device="auto")).device == "cuda"


def test_the_job_can_end_with_a_compression_stage(sample_subset, tmp_path):
    out = tmp_path / "out"
    opts = dict(cameras=SAMPLE / "transforms.json", preset="preview", iterations=30, priors="off")
    run_job([sample_subset], out, JobOptions(**opts))
    assert not (out / "scene.handful").exists()
    seen, sink = _events()
    run_job([sample_subset], out, JobOptions(compress="low", compress_finetune=0, **opts), emit=sink)
    assert [e.stage for e in seen if isinstance(e, ev.StageStarted)] == ["compress"]  # the rest resumed
    plain = json.loads((out / "report.json").read_text())["compress"]
    assert plain["bytes"] == (out / "scene.handful").stat().st_size
    assert plain["importance_from"] == "renders" and plain["psnr_vs_uncompressed"] is not None
    assert plain["finetune_steps"] == 0 and plain["psnr_photos_after"] is not None  # scored on the training photos
    assert len(load_scene(out / "scene.handful")) == plain["kept_gaussians"] <= len(load_scene(out / "scene.ply"))

    # fine-tuning against the training photos re-runs only the compression, and the file fits them better
    seen, sink = _events()
    run_job([sample_subset], out, JobOptions(compress="low", compress_finetune=40, **opts), emit=sink)
    assert [e.stage for e in seen if isinstance(e, ev.StageStarted)] == ["compress"]
    assert any(isinstance(e, ev.Progress) and "fine-tuning" in e.message for e in seen)
    tuned = json.loads((out / "report.json").read_text())["compress"]
    assert tuned["finetune_steps"] == 40 and tuned["bytes"] == (out / "scene.handful").stat().st_size
    assert tuned["psnr_photos_before"] == pytest.approx(plain["psnr_photos_before"], abs=1e-6)
    assert tuned["psnr_photos_after"] > plain["psnr_photos_after"] + 0.1
    with pytest.raises(InputError, match="compression quality"):
        JobOptions(compress="tiny").validate()
    with pytest.raises(InputError, match="compress-finetune"):
        JobOptions(compress="low", compress_finetune=-1).validate()


def test_given_cameras_without_points_start_from_the_photos_matches_triangulated(sample_subset, tmp_path):
    from engine.camera_projection import project_points
    from engine.stages.init import InitResult

    out = tmp_path / "out"
    seen, sink = _events()
    run_job([sample_subset], out, JobOptions(cameras=SAMPLE / "transforms.json", preset="preview", until="init",
                                             group=False, priors="off"), emit=sink)
    init = InitResult.load(out)
    n = init.sources.get("triangulated", 0)
    assert n >= 20 and init.sources["random"] == init.gaussians - n, init.sources
    assert init.start_matches == "ALIKED+LightGlue"  # 8 photos: learned matching (SIFT above 12)
    assert any("triangulated with the given cameras" in e.message for e in seen if isinstance(e, ev.Progress))
    # the triangulated Gaussians come first, each seen by at least two photos, with the colour the
    # photos show where it lies
    scene = load_scene(out / "init.ply")
    xyz = scene.means[:n].numpy().astype(np.float64)
    rgb = scene.sh[:n, 0].numpy() * 0.28209479177387814 + 0.5
    seen_by = np.zeros(n, int)
    photo = np.full((n, 3), np.nan)
    for cam in colmap.read(out / "sparse"):
        image = cv2.cvtColor(cv2.imread(str(sample_subset / cam.name)), cv2.COLOR_BGR2RGB) / 255.0
        pix, z = project_points(xyz, cam.scaled(image.shape[1] / cam.width))
        inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < image.shape[1]) & (pix[:, 1] >= 0) & (pix[:, 1] < image.shape[0])
        seen_by += inside
        first = inside & np.isnan(photo[:, 0])
        photo[first] = image[pix[first, 1].astype(int), pix[first, 0].astype(int)]
    assert (seen_by >= 2).all()
    assert np.median(np.abs(rgb - photo).mean(1)) < 0.5 * np.median(np.abs(rgb - photo[::-1]).mean(1))
