"""What a new user runs: the CLI started from another folder, with relative paths, unwritable output
folders and a Python without Handful's dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from engine.__main__ import main
from engine.errors import StageError
from engine.poses import estimate as estimate_module
from engine.poses import estimate_poses

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


def test_pose_worker_finds_a_relative_working_folder(tmp_path, monkeypatch):
    # The worker runs in the repository folder; this stand-in exits 0 only if the job file it is given
    # and the folders the job names can be found from there.
    check = (
        "import json, os, sys; job = json.load(open(sys.argv[1])); "
        "sys.exit(0 if os.path.isdir(job['image_dir']) and os.path.isdir(job['work_dir']) else 3)"
    )
    monkeypatch.setattr(estimate_module, "WORKER_COMMAND", [sys.executable, "-c", check])
    (tmp_path / "photos").mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / "photos" / name), cv2.imread(str(SAMPLE / "images" / "view_00.jpg")))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match=r"exit code 0\)"):  # it ran and found everything (but solved nothing)
        estimate_poses([Path("photos/a.png"), Path("photos/b.png")], Path("work"), timeout_s=120)
