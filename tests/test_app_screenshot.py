"""``handful --screenshot OUT.png [--size WxH] FILE``: a PNG of the window once the scene is drawn."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io import save_scene
from tests.factories import random_scene

ROOT = Path(__file__).resolve().parent.parent


def run_app(args, tmp_path, gl=False, timeout=120):
    env = dict(os.environ, HANDFUL_SETTINGS_DIR=str(tmp_path / "settings"), PYTHONPATH=str(ROOT))
    if gl:
        env.pop("QT_QPA_PLATFORM", None)
        env.pop("HANDFUL_NO_GL", None)
    else:
        env.update(QT_QPA_PLATFORM="offscreen", HANDFUL_NO_GL="1")
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def read_png(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def scene_file(tmp_path):
    path = tmp_path / "scene.ply"
    save_scene(random_scene(2000, sh_degree=1, seed=4), path)
    return path


def test_screenshot_without_gl_writes_png_of_requested_size(tmp_path, scene_file):
    out = tmp_path / "shots" / "window.png"
    proc = run_app(["--screenshot", out, "--size", "800x600", scene_file], tmp_path)
    assert proc.returncode == 0, proc.stderr
    image = read_png(out)
    assert image.shape == (600, 800, 3)
    assert image.std() > 5  # a window, not a blank image


def test_screenshot_of_bad_file_exits_2_with_message(tmp_path):
    bad = tmp_path / "bad.splat"
    bad.write_bytes(b"\x01\x02\x03")
    out = tmp_path / "never.png"
    proc = run_app(["--screenshot", out, bad], tmp_path)
    assert proc.returncode == 2
    assert "bad.splat" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_screenshot_needs_one_file_and_a_valid_size(tmp_path, scene_file):
    proc = run_app(["--screenshot", tmp_path / "x.png"], tmp_path)
    assert proc.returncode == 2 and "exactly one scene FILE" in proc.stderr
    proc = run_app(["--screenshot", tmp_path / "x.png", "--size", "huge", scene_file], tmp_path)
    assert proc.returncode == 2 and "WIDTHxHEIGHT" in proc.stderr


@pytest.mark.gl
def test_screenshot_with_gl_viewer_shows_the_splats(tmp_path, scene_file):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs an X display (run under xvfb-run)")
    out = tmp_path / "gl.png"
    proc = run_app(["--screenshot", out, "--size", "1000x700", scene_file], tmp_path, gl=True)
    assert proc.returncode == 0, proc.stderr
    image = read_png(out)
    assert image.shape[:2] == (700, 1000)
    # the viewer fills the centre of the window; the splats (a cube of random colours) show there
    h, w = image.shape[:2]
    centre = image[h // 3: 2 * h // 3, w // 3: 2 * w // 3].astype(int)
    assert (centre.max(axis=2) > 40).mean() > 0.3
    assert len(np.unique(centre.reshape(-1, 3) // 32, axis=0)) > 20  # many colours, not a flat panel
