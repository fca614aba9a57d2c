"""``info`` and ``convert`` subcommands (exit codes, messages, no partial output) and the progress bar."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.__main__ import main
from engine.events import Progress, StageStarted, Warning
from engine.io import load_scene, save_scene
from engine.progress import ProgressBar
from tests.factories import assert_scenes_close, random_scene, splat_with_a_nan_row

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene_file(tmp_path):
    scene = random_scene(300, sh_degree=3, seed=21, with_groups=True)
    path = tmp_path / "in.ply"
    save_scene(scene, path)
    return scene, path


def test_info_text_and_json(scene_file, capsys):
    scene, path = scene_file
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format:         ply" in out and "gaussians:      300" in out and "sh degree:      3" in out
    assert f"bytes/gaussian: {path.stat().st_size / 300:.2f}" in out
    assert path.stat().st_size / 300 - 252 < 6  # 62 floats + an int group id per row, plus the header
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "ply" and info["num_gaussians"] == 300 and info["sh_degree"] == 3
    assert info["size_bytes"] == path.stat().st_size
    assert info["bytes_per_gaussian"] == pytest.approx(path.stat().st_size / 300)
    lo, hi = scene.bounds()
    assert info["bounds_min"] == pytest.approx(list(lo)) and info["bounds_max"] == pytest.approx(list(hi))
    assert info["has_groups"] is True


def test_convert_ply_to_splat_and_back_with_sh_reduction(scene_file, tmp_path, capsys):
    scene, path = scene_file
    out = tmp_path / "out.splat"
    assert main(["convert", str(path), str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "splat, 300 Gaussians, SH degree 0" in captured.out
    assert ".splat stores only the base colour" in captured.err
    assert len(load_scene(out)) == 300

    reduced = tmp_path / "reduced.data"
    assert main(["convert", str(path), str(reduced), "--format", "ply", "--sh-degree", "1"]) == 0
    back = load_scene(reduced)
    assert back.sh_degree == 1
    assert_scenes_close(scene.with_sh_degree(1), back)
    assert torch.equal(back.group_ids, scene.group_ids)


@pytest.mark.parametrize("target", ["out.ply", "out.splat"])
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, capsys, target):
    bad = tmp_path / "broken.ply"
    good = random_scene(10, sh_degree=0)
    save_scene(good, bad)
    bad.write_bytes(bad.read_bytes()[:-7])  # truncated
    out = tmp_path / target
    assert main(["convert", str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.ply" in err and "truncated" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ply"]


def test_bad_output_name_is_refused_before_reading(scene_file, tmp_path, capsys):
    _, path = scene_file
    assert main(["convert", str(path), str(tmp_path / "out.obj")]) == 2
    assert "cannot tell the output format" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path)]) == 2
    assert "the output is a folder" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nothing.ply")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_convert_drop_invalid(tmp_path, capsys):
    path = splat_with_a_nan_row(tmp_path / "nan.splat", count=12)
    assert main(["convert", str(path), str(tmp_path / "o.ply")]) == 2
    assert "1 of 12 splats" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "o.ply"), "--drop-invalid"]) == 0
    assert len(load_scene(tmp_path / "o.ply")) == 11


def test_cli_in_a_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "junk.ply").write_bytes(b"not a ply file at all")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "engine", "info", str(tmp_path / "junk.ply")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 2
    assert "junk.ply" in proc.stderr and "Traceback" not in proc.stderr


def test_convert_shows_progress_when_asked(scene_file, tmp_path, capsys):
    _, path = scene_file
    assert main(["convert", str(path), str(tmp_path / "o.ply"), "--progress", "always"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("convert:")]
    assert len(lines) == 4 and "100.0%" in lines[-1] and "reading in.ply" in lines[0]
    assert main(["convert", str(path), str(tmp_path / "o2.ply")]) == 0
    assert capsys.readouterr().err == ""  # small file, auto: no bar


# ----------------------------------------------------------------------------- progress bar


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_bar_non_tty_prints_sparse_lines():
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, interactive=False, clock=FakeClock())
    bar(StageStarted("train"))
    for i in range(1001):
        bar(Progress("train", i, 1000, f"step {i}"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ..., 100 %
    assert lines[0].startswith("train: [") and "0/1,000" in lines[0]
    assert "100.0%" in lines[-1] and "step 1000" in lines[-1]
    bar(Warning("low memory"))
    assert stream.getvalue().endswith("warning: low memory\n")


def test_progress_bar_tty_redraws_in_place_and_throttles():
    stream = io.StringIO()
    clock = FakeClock()
    bar = ProgressBar(stream=stream, interactive=True, redraw_hz=10, clock=clock)
    for i in range(100):
        clock.now = i * 0.01  # 1 s in total: about 10 redraws at 10 Hz
        bar.update(i, 100, stage="load")
    bar.update(100, 100)
    text = stream.getvalue()
    draws = text.count("\r")
    assert 9 <= draws <= 12
    assert text.endswith("\n") and "100.0%" in text.rsplit("\r", 1)[1]
    assert "eta" in text.split("\r")[5]


def test_progress_bar_handles_zero_total_and_new_stage():
    stream = io.StringIO()
    with ProgressBar(stream=stream, interactive=False, clock=FakeClock()) as bar:
        bar.update(0, 0, "waiting", stage="poses")
        bar.update(5, 10, stage="init")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("poses:") and "0.0%" in lines[0]
    assert lines[1].startswith("init:") and "50.0%" in lines[1]
