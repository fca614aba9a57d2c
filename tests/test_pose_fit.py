"""Test-time pose fitting of one camera against a fixed scene (engine.train.pose_refine.fit_pose)."""

import math
from dataclasses import replace

import cv2
import numpy as np

from engine.poses.alignment import relative_rotation_deg
from engine.render import render
from engine.train.pose_refine import fit_pose
from tests.factories import orbit_cameras, random_scene


def test_a_perturbed_camera_is_fitted_back_to_its_photo():
    truth = random_scene(600, sh_degree=0, seed=5, extent=0.8)
    truth.opacity_logits = truth.opacity_logits.abs() + 1.0
    cam = orbit_cameras(4, radius=3.0, width=96, image_height=72)[1]
    photo = render(truth, cam, sh_degree=0, background=(0, 0, 0)).rgb.detach().numpy()
    turn = cv2.Rodrigues(np.array([0.3, -0.8, 0.5]) / np.linalg.norm([0.3, -0.8, 0.5]) * math.radians(2.0))[0]
    start = replace(cam, R=turn @ cam.R, t=turn @ cam.t + np.array([0.04, -0.03, 0.02]))
    assert relative_rotation_deg(start, cam) > 1.9 and np.linalg.norm(start.center - cam.center) > 0.04
    fitted = fit_pose(truth, start, photo, background=(0, 0, 0), length=1.0, steps=300)
    # From 2 degrees and 5 % of the scene's size off to a tenth of that.
    assert relative_rotation_deg(fitted, cam) < 0.2, relative_rotation_deg(fitted, cam)
    assert np.linalg.norm(fitted.center - cam.center) < 0.01, np.linalg.norm(fitted.center - cam.center)
    assert (fitted.fx, fitted.width, fitted.name) == (start.fx, start.width, start.name)  # only the pose moves


def test_a_camera_already_right_stays_put():
    truth = random_scene(300, sh_degree=0, seed=2, extent=0.8)
    truth.opacity_logits = truth.opacity_logits.abs() + 1.0
    cam = orbit_cameras(4, radius=3.0, width=64, image_height=48)[2]
    photo = render(truth, cam, sh_degree=0, background=(0, 0, 0)).rgb.detach().numpy()
    fitted = fit_pose(truth, cam, photo, background=(0, 0, 0), length=1.0, steps=60)
    assert relative_rotation_deg(fitted, cam) < 0.1 and np.linalg.norm(fitted.center - cam.center) < 0.005
