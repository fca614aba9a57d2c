"""Backgrounds: found in the photos (or given), trained and evaluated with, recorded in report.json."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from engine.__main__ import main as cli
from engine.errors import InputError
from engine.io import colmap, load_scene
from engine.job import JobOptions, run_job
from engine.render import render
from engine.scene import CameraRig
from engine.train.background import BLACK, WHITE, choose_background, detect_background, parse_background
from tests.factories import orbit_cameras, random_scene


def _object_on(colour, seed, size=(48, 64)) -> np.ndarray:
    """A textured blob in the middle of a plain ``colour`` photo, with a little sensor noise."""
    g = np.random.default_rng(seed)
    h, w = size
    img = np.empty((h, w, 3), np.float64)
    img[:] = colour
    img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = g.uniform(0, 255, (h - 2 * (h // 4), w - 2 * (w // 4), 3))
    img += g.normal(0, 2.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def test_a_uniform_white_border_is_found_and_texture_is_not():
    white = detect_background([_object_on((255, 255, 255), s) for s in range(6)])
    assert white.how == "border" and np.allclose(white.rgb, WHITE, atol=3 / 255), white
    grey = detect_background([_object_on((90, 120, 200), s) for s in range(6)])
    assert grey.how == "border" and np.allclose(np.array(grey.rgb) * 255, (90, 120, 200), atol=2), grey
    textured = [np.random.default_rng(s).integers(0, 256, (48, 64, 3), dtype=np.uint8) for s in range(6)]
    assert detect_background(textured) == detect_background(textured[:3]) and detect_background(textured).how == "none"
    assert detect_background(textured).rgb == BLACK
    # photos that do not agree on one colour have no common background
    mixed = [_object_on((255, 255, 255), 0), _object_on((0, 0, 0), 1), _object_on((255, 0, 0), 2),
             _object_on((0, 255, 0), 3)]
    assert detect_background(mixed).how == "none"
    # one odd photo out of eight does not change the verdict
    most = [_object_on((255, 255, 255), s) for s in range(7)] + textured[:1]
    assert detect_background(most).how == "border"


def test_cut_out_photos_are_trained_on_white_and_a_given_colour_wins():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (200, 30, 30, 255)  # opaque subject, transparent (black RGB) all round
    found = detect_background([rgba] * 3)
    assert found.how == "transparent" and found.rgb == WHITE
    given = choose_background((0.5, 0.25, 0.0), [], load=None)
    assert given.how == "given" and given.rgb == (0.5, 0.25, 0.0)


def test_background_option_parses():
    assert parse_background("auto") == "auto"
    assert parse_background("White") == WHITE and parse_background("black") == BLACK
    assert parse_background("255,0,51") == (1.0, 0.0, 0.2)
    assert parse_background("#00ff00") == (0.0, 1.0, 0.0)
    for bad in ("blue-ish", "1,2", "300,0,0", "#12345"):
        with pytest.raises(InputError):
            parse_background(bad)
    assert JobOptions().validate().background == "auto"
    with pytest.raises(InputError):
        JobOptions(background=(2.0, 0.0, 0.0)).validate()


def test_cli_rejects_a_bad_background(capsys):
    with pytest.raises(SystemExit) as stop:
        cli(["reconstruct", "photos", "-o", "out", "--background", "pink"])
    assert stop.value.code == 2
    assert "cannot read the background" in capsys.readouterr().err


def _studio_cameras():
    return orbit_cameras(16, radius=3.0, width=48, image_height=36)


@pytest.fixture(scope="module")
def white_studio(tmp_path_factory):
    """16 photos of a small object on a white background, with their cameras (no SfM points)."""
    root = tmp_path_factory.mktemp("studio")
    truth = random_scene(60, sh_degree=0, seed=4, extent=0.5)
    truth.opacity_logits = truth.opacity_logits.abs() + 2.0
    cams = _studio_cameras()
    (root / "photos").mkdir()
    with torch.no_grad():
        for cam in cams:
            rgb = render(truth, cam, sh_degree=0, background=WHITE).rgb.clamp(0, 1).numpy()
            cv2.imwrite(str(root / "photos" / cam.name), cv2.cvtColor(np.round(rgb * 255).astype(np.uint8),
                                                                       cv2.COLOR_RGB2BGR))
    colmap.write_text(CameraRig(cams), root / "sparse")
    return root


ITERATIONS = "50"


def _run(studio, out, *cli_background):
    code = cli(["reconstruct", str(studio / "photos"), "-o", str(out), "--cameras", str(studio / "sparse"),
                "--preset", "preview", "--iterations", ITERATIONS, "--quiet", *cli_background])
    assert code == 0
    return json.loads((out / "report.json").read_text())


def _far_opacity(out, radius=1.2) -> float:
    scene = load_scene(out / "scene.ply")
    far = scene.means.norm(dim=1) > radius
    return float(torch.sigmoid(scene.opacity_logits)[far].sum())


def test_a_white_studio_is_trained_on_white_without_a_shell(white_studio, tmp_path):
    auto = _run(white_studio, tmp_path / "auto")
    black = _run(white_studio, tmp_path / "black", "--background", "black")
    assert auto["background"]["how"] == "border" and auto["background"]["rgb"] == [1.0, 1.0, 1.0], auto["background"]
    assert black["background"] == {"rgb": [0.0, 0.0, 0.0], "how": "given", "detail": black["background"]["detail"]}
    # two of the 16 views are held out: from there a painted background shows its gaps
    assert auto["eval"]["held_out"] and len(auto["eval"]["views"]) == 2
    assert auto["eval"]["psnr"] > black["eval"]["psnr"] + 3, (auto["eval"], black["eval"])
    # no shell: beyond the object (radius 0.5 * sqrt(3)) the white-trained scene keeps little opacity
    assert _far_opacity(tmp_path / "auto") < 0.2 * _far_opacity(tmp_path / "black")
    # the previews are rendered on the background the scene was trained on
    preview = cv2.cvtColor(cv2.imread(str(tmp_path / "auto" / "previews" / "view_000.png")), cv2.COLOR_BGR2RGB)
    scene, cam = load_scene(tmp_path / "auto" / "scene.ply"), _studio_cameras()[0]
    with torch.no_grad():
        on = {bg: render(scene, cam, background=bg).rgb.clamp(0, 1).numpy() * 255 for bg in (WHITE, BLACK)}
    assert np.abs(preview - on[WHITE]).mean() < 1.0 < np.abs(preview - on[BLACK]).mean()
