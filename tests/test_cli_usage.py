"""What a new user runs and reads: the CLI started from another folder with relative paths, unwritable
output folders, a Python without Handful's dependencies, messages that name real flags, Ctrl+C, and what
the job reports."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import pytest

from engine.__main__ import build_parser, main
from engine.errors import StageError
from engine.io import load_scene, save_scene
from engine.poses import estimate as estimate_module
from engine.poses import estimate_poses
from tests.factories import random_scene, splat_with_a_nan_row

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample"


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m engine ARGS`` as a person types it in ``cwd`` (not the repository)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def three_photos(tmp_path) -> Path:
    """Three of the sample's photos, small, in ``tmp_path/photos``, and its cameras in ``tmp_path/cams``."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((SAMPLE / "images").glob("*.jpg"))[:3]:
        cv2.imwrite(str(folder / p.name), cv2.resize(cv2.imread(str(p)), (80, 60), interpolation=cv2.INTER_AREA))
    (tmp_path / "cams").mkdir()
    shutil.copy(SAMPLE / "transforms.json", tmp_path / "cams" / "transforms.json")
    return folder


# ----------------------------------------------------------------------------- relative paths


def test_relative_inputs_output_and_cameras_from_another_folder(three_photos, tmp_path, capsys):
    proc = run_cli(["reconstruct", "photos", "-o", "runs/x", "--cameras", "cams/transforms.json",
                    "--until", "poses", "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "x"
    assert (out / "sparse" / "images.txt").is_file() and len(list((out / "images").glob("*.jpg"))) == 3
    poses = json.loads((out / "poses.json").read_text())
    assert len(poses["registered"]) == 3
    assert poses["strategy"] == f"imported from {tmp_path / 'cams' / 'transforms.json'}"  # resolved once
    # The job resumes the same way from any folder: run again here with absolute paths, nothing is redone.
    assert main(["reconstruct", str(three_photos), "-o", str(out), "--cameras",
                 str(tmp_path / "cams" / "transforms.json"), "--until", "poses"]) == 0
    assert capsys.readouterr().err.count("already done") == 2


@pytest.fixture
def stand_in_worker(tmp_path, monkeypatch):
    """Replaces the pose worker with a one-line Python program; returns two photos for it (relative to
    ``tmp_path``, the working folder)."""
    (tmp_path / "photos").mkdir()
    photos = [Path("photos") / name for name in ("a.png", "b.png")]
    for photo in photos:
        cv2.imwrite(str(tmp_path / photo), cv2.imread(str(SAMPLE / "images" / "view_00.jpg")))
    monkeypatch.chdir(tmp_path)

    def use(program: str) -> list[Path]:
        monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", program])
        return photos

    return use


def test_pose_worker_finds_a_relative_working_folder(stand_in_worker):
    # The worker runs in the repository folder; this stand-in exits 0 only if the job file it is given
    # and the folders the job names can be found from there.
    photos = stand_in_worker(
        "import json, os, sys; job = json.load(open(sys.argv[1])); "
        "sys.exit(0 if os.path.isdir(job['image_dir']) and os.path.isdir(job['work_dir']) else 3)"
    )
    with pytest.raises(StageError, match=r"exit code 0\)"):  # it ran and found everything (but solved nothing)
        estimate_poses(photos, Path("work"), timeout_s=120)


def test_pose_progress_reaches_100_percent_only_when_cameras_are_usable(stand_in_worker):
    from engine.events import Progress

    photos = stand_in_worker(
        "import json, os, sys; job = json.load(open(sys.argv[1])); "
        "open(os.path.join(job['work_dir'], 'result.json'), 'w').write(json.dumps({'cameras': {}})); "
        "print(json.dumps({'type': 'done'}), flush=True)"
    )
    events = []
    with pytest.raises(StageError, match="only 0 of 2 photos could be placed"):
        estimate_poses(photos, Path("work"), emit=events.append, timeout_s=120)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and all(e.done < e.total for e in progress)
    assert "solved" not in " ".join(e.message for e in progress)


def test_the_features_flag_reaches_the_pose_worker(three_photos, tmp_path, monkeypatch, capsys):
    """``--features sift`` is what the worker is asked for (this stand-in fails the stage unless so);
    a name that is not a choice is refused before any work, naming the choices."""
    monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", (
        "import json, sys; job = json.load(open(sys.argv[1])); sys.exit(7 if job['features'] == 'sift' else 3)")])
    assert main(["reconstruct", str(three_photos), "-o", str(tmp_path / "o"), "--features", "sift",
                 "--until", "poses", "--quiet"]) == 2
    assert "exit code 7" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reconstruct", str(three_photos), "-o", "x", "--features", "orb"])
    assert "sift" in capsys.readouterr().err


# ----------------------------------------------------------------------------- unwritable output


@pytest.fixture
def read_only_below(monkeypatch):
    """Simulates a read-only mount: creating folders or files below the returned folder's parent fails
    with EROFS, as the system reports it (``os.mkdir`` and ``os.open`` are what pathlib and tempfile use)."""
    roots: list[Path] = []

    def blocked(path) -> bool:
        p = Path(os.fsdecode(path)).absolute()
        return any(p == r or r in p.parents for r in roots)

    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path, *args, **kwargs):
        if blocked(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return roots.append


def _assert_clear_refusal(code: int, err: str, folder: Path) -> None:
    assert code == 2
    assert f"{folder}: cannot write here (Read-only file system)" in err
    assert "Traceback" not in err and "choose an output folder" in err


@pytest.mark.parametrize("exists", [False, True])
def test_reconstruct_into_a_read_only_folder_is_refused_before_any_work(three_photos, tmp_path, capsys,
                                                                       read_only_below, exists):
    mount = tmp_path / "mnt"
    mount.mkdir()
    out = mount / "out" / "run"
    if exists:
        out.mkdir(parents=True)
    read_only_below(mount)
    code = main(["reconstruct", str(three_photos), "-o", str(out), "--cameras",
                 str(tmp_path / "cams" / "transforms.json"), "--until", "poses", "--quiet"])
    _assert_clear_refusal(code, capsys.readouterr().err, out)
    assert sorted(p.relative_to(mount) for p in mount.rglob("*")) == (
        [Path("out"), Path("out/run")] if exists else [])  # nothing written, nothing half-made


def test_a_stage_that_hits_a_read_only_folder_keeps_its_message(three_photos, tmp_path, capsys, read_only_below,
                                                               monkeypatch):
    # The folder turns read-only after the job has started (a drive remounted, a full disk): the stage's
    # error is reported, not a second one from recording the job's state.
    from engine import job as job_module

    monkeypatch.setattr(job_module, "ensure_writable_folder", lambda folder, hint: folder)
    out = tmp_path / "out"
    out.mkdir()
    read_only_below(out)
    code = main(["reconstruct", str(three_photos), "-o", str(out), "--cameras",
                 str(tmp_path / "cams" / "transforms.json"), "--until", "poses", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "could not write the results of ingest" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_convert_into_a_read_only_folder(tmp_path, capsys, read_only_below, sh1_ply):
    (tmp_path / "ro").mkdir()
    read_only_below(tmp_path / "ro")
    assert main(["convert", str(sh1_ply), str(tmp_path / "ro" / "out.spz")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ro' / 'out.spz'}: cannot write here (Read-only file system)" in err
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.fixture
def read_only_mount(tmp_path):
    """A real read-only tmpfs (needs root and a system that lets it mount; skipped otherwise)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root and the mount command")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this system does not let the test mount a tmpfs: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_reconstruct_onto_a_real_read_only_mount(three_photos, tmp_path, capsys, read_only_mount):
    out = read_only_mount / "out"
    code = main(["reconstruct", str(three_photos), "-o", str(out), "--cameras",
                 str(tmp_path / "cams" / "transforms.json"), "--until", "poses", "--quiet"])
    _assert_clear_refusal(code, capsys.readouterr().err, out)
    assert list(read_only_mount.iterdir()) == []


# ----------------------------------------------------------------------------- outside the venv


def test_python_without_the_dependencies_says_how_to_set_up(tmp_path):
    # -S: no site-packages, as with a system Python that never had Handful's dependencies installed.
    proc = subprocess.run([sys.executable, "-S", "-m", "engine", "info", "scene.ply"], capture_output=True,
                          text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot import 'numpy'" in proc.stderr
    assert f"bash {ROOT / 'scripts' / 'setup.sh'}" in proc.stderr
    assert f"{ROOT / '.venv' / 'bin' / 'python'} -m engine" in proc.stderr


# ----------------------------------------------------------------------------- messages name real flags


def _readme_cli_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("**The command line**"):text.index("## What is inside")]


def _options_of(parser) -> dict[str, set[str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def test_every_flag_the_readme_names_exists():
    options = _options_of(build_parser())
    section = _readme_cli_section()
    for command, opts in options.items():
        start = section.index(f"`{command} ")
        end = section.find("\n  - ", start)
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section[start:end]))
        assert named, command
        assert named <= opts, (command, named - opts)
    assert "--spz-version" in section and "v3 with `--format`" not in section


def test_non_finite_hint_is_a_command_that_works(tmp_path, capsys):
    path = splat_with_a_nan_row(tmp_path / "nan.splat", count=12)
    assert main(["convert", str(path), str(tmp_path / "o.ply")]) == 2
    err = capsys.readouterr().err
    assert "drop_invalid" not in err  # the Python keyword means nothing on the command line
    command = shlex.split(re.search(r"`([^`]*)`", err).group(1))
    assert command[0] == "handful-cli" and build_parser().parse_args(command[1:]).drop_invalid
    assert main(command[1:]) == 0
    assert len(load_scene(command[3])) == 11


@pytest.fixture
def sh1_ply(tmp_path) -> Path:
    path = tmp_path / "in.ply"
    save_scene(random_scene(30, sh_degree=1, seed=3), path)
    return path


def test_unknown_output_extension_names_the_format_flag_and_its_choices(tmp_path, capsys, sh1_ply):
    assert main(["convert", str(sh1_ply), str(tmp_path / "out.xyz")]) == 2
    err = capsys.readouterr().err
    choices = re.search(r"--format \(([^)]*)\)", err).group(1).split(", ")
    convert = next(a for a in build_parser()._subparsers._group_actions[0].choices["convert"]._actions
                   if "--format" in a.option_strings)
    assert set(choices) == set(convert.choices)  # the message names every choice the flag takes
    for name in choices:  # each is what the real flag accepts
        assert build_parser().parse_args(["convert", "a", "b", "--format", name]).format == name
    assert main(["convert", str(sh1_ply), str(tmp_path / "out.xyz"), "--format", "spz"]) == 0


@pytest.mark.parametrize("version", [2, 3, 4])
def test_convert_writes_the_spz_version_asked_for(tmp_path, version, sh1_ply):
    from engine.io import spz

    out = tmp_path / "out.spz"
    assert main(["convert", str(sh1_ply), str(out), "--spz-version", str(version)]) == 0
    assert spz.read_info(out).version == version


def test_spz_version_for_another_format_is_refused(tmp_path, capsys, sh1_ply):
    assert main(["convert", str(sh1_ply), str(tmp_path / "out.splat"), "--spz-version", "3"]) == 2
    assert "--spz-version is for .spz output" in capsys.readouterr().err
    assert not (tmp_path / "out.splat").exists()


def test_sh_degree_only_drops_bands(tmp_path, capsys, sh1_ply):
    assert main(["convert", str(sh1_ply), str(tmp_path / "up.ply"), "--sh-degree", "3"]) == 0
    captured = capsys.readouterr()
    assert "has SH degree 1; --sh-degree only drops bands, so degree 1 is kept" in captured.err
    assert "SH degree 1" in captured.out
    assert load_scene(tmp_path / "up.ply").sh_degree == 1
    assert (tmp_path / "up.ply").stat().st_size == sh1_ply.stat().st_size
    assert main(["convert", str(sh1_ply), str(tmp_path / "down.ply"), "--sh-degree", "0"]) == 0
    assert load_scene(tmp_path / "down.ply").sh_degree == 0


def test_the_readme_and_the_engine_agree_on_the_fewest_photos(tmp_path):
    from engine.errors import InputError
    from engine.ingest import MIN_PHOTOS, ingest

    stated = int(re.search(r"a handful of photos \((\d+) to 100", (ROOT / "README.md").read_text()).group(1))
    assert stated == MIN_PHOTOS
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((SAMPLE / "images").glob("*.jpg"))[:MIN_PHOTOS]:
        shutil.copy(p, folder / p.name)
    assert len(ingest([folder], tmp_path / "ok").images) == MIN_PHOTOS
    (folder / "view_00.jpg").unlink()
    with pytest.raises(InputError, match=f"at least {MIN_PHOTOS} photos"):
        ingest([folder], tmp_path / "fewer")


# ----------------------------------------------------------------------------- what the job says


def _fake_pose_solver(left_out: str):
    """estimate_poses as the real one behaves on these photos: the sample's cameras for all but
    ``left_out``, and the warning the real solver emits for a photo it could not place."""
    from engine import events as ev
    from engine.io import transforms
    from engine.poses import PoseResult
    from engine.scene import CameraRig

    truth = {Path(c.name).stem: c for c in transforms.read(SAMPLE / "transforms.json")}

    def estimate(paths, work_dir, emit=ev.null_sink, **_):
        cams = []
        for p in paths:
            if p.name != left_out:
                h, w = cv2.imread(str(p)).shape[:2]
                cams.append(dataclasses.replace(truth[p.stem].resized(w, h), name=p.name, image_path=p))
        emit(ev.Warning(f"1 of {len(paths)} photos could not be placed and are left out: {left_out} (they overlap "
                        "too little with the others)", str(paths[0].parent)))
        return PoseResult(rig=CameraRig(cams), registered=[c.name for c in cams], unregistered=[left_out],
                          strategy="fake")

    return estimate


def test_report_lists_every_warning_once_also_after_a_resume(three_photos, tmp_path, monkeypatch):
    import engine.poses
    from engine.job import JobOptions, run_job

    shutil.copy(SAMPLE / "images" / "view_05.jpg", three_photos / "view_05.jpg")  # a bigger photo: a warning
    monkeypatch.setattr(engine.poses, "estimate_poses", _fake_pose_solver("view_05.jpg"))
    out = tmp_path / "out"
    first = run_job([three_photos], out, JobOptions(until="poses"))
    assert first.stopped_after == "poses"
    seen = []
    result = run_job([three_photos], out, JobOptions(preset="preview", iterations=20, priors="off"),
                     emit=seen.append)
    warnings = result.report["warnings"]
    assert len(warnings) == len(set(warnings))
    assert any("1 of 4 photos could not be placed" in w for w in warnings)  # from the skipped poses stage
    ingest_warnings = json.loads((out / "ingest.json").read_text())["warnings"]
    assert ingest_warnings and all(any(w.endswith(i.split(": ", 1)[-1]) for w in warnings) for i in ingest_warnings)
    # 3 photos: nothing is held out, and the job says so instead of "rendering hold-out views"
    from engine import events as ev

    said = [e.message for e in seen if isinstance(e, ev.Progress) and e.stage == "evaluate" and e.done == 0]
    assert said == ["scoring the 3 training views (fewer than 16 photos: none held out)"]
    assert result.report["eval"]["held_out"] is False


def test_ctrl_c_keeps_the_scene_reached_and_says_so_once(three_photos, tmp_path, capsys, monkeypatch):
    import signal

    from engine.commands import reconstruct
    from engine.events import Progress
    class CtrlCDuringTraining(reconstruct.ProgressBar):
        def __call__(self, event):
            super().__call__(event)
            if isinstance(event, Progress) and event.stage == "train" and event.done >= 1:
                signal.raise_signal(signal.SIGINT)  # what the terminal sends on Ctrl+C

    monkeypatch.setattr(reconstruct, "ProgressBar", CtrlCDuringTraining)
    out = tmp_path / "out"
    code = main(["reconstruct", str(three_photos), "-o", str(out), "--cameras",
                 str(tmp_path / "cams" / "transforms.json"), "--preset", "preview", "--iterations", "5000", "--priors", "off"])
    err = capsys.readouterr().err
    assert code == 130, err
    assert len(load_scene(out / "scene.ply")) > 0  # the scene reached is kept, as the app's Cancel keeps it
    assert "train" not in json.loads((out / "job.json").read_text())["finished"]
    assert re.search(r"cancelled: training stopped at step \d+ of 5000; the scene reached so far is saved as "
                     + re.escape(str(out / "scene.ply")), err)
    assert err.lower().count("cancel") == 1 and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_setup_reads_the_project_metadata_without_warnings():
    # setup.sh's `pip install -e .` printed setuptools' deprecation warning for a licence table (twice).
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "Apache-2.0"


def test_no_extra_repeats_a_plain_dependency():
    # An extra that lists what every installation has already gets is noise (transformers was once in three).
    from packaging.requirements import Requirement
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(ROOT / "pyproject.toml")["project"]
    plain = {Requirement(r).name.lower() for r in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        assert not plain & {Requirement(r).name.lower() for r in requirements}, extra
