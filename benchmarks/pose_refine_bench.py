"""Camera pose refinement: how much of the quality lost to wrong cameras does it win back?

    HANDFUL_DATASETS=../shared/datasets .venv/bin/python benchmarks/pose_refine_bench.py [--noise 0.5,1,2]
        [--iterations 1500]

Lego (25 training views at 200x200, exact poses) is trained three ways per noise level: with the exact
cameras (the baseline, once), with every training camera but the first turned by the given angle about a
random axis and moved by 2% of the camera distance, and with the same wrong cameras plus pose refinement.
The first camera is left exact so that the scene's frame stays the test cameras' frame; the test views are
the dataset's own (exact) test cameras. Prints test PSNR/SSIM and the training cameras' mean rotation error
and centre error (percent of the camera's distance from the object) before and after.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import print_table  # noqa: E402
from train_bench import lego_setup  # noqa: E402

from engine.poses.alignment import relative_rotation_deg  # noqa: E402
from engine.train import preset, random_init, train  # noqa: E402


def centre_error_pct(a, b) -> float:
    """Distance between the camera centres as a percentage of the true camera's distance from the origin."""
    return 100 * float(np.linalg.norm(a.center - b.center) / np.linalg.norm(b.center))


def perturbed(cameras, degrees: float, seed: int = 0):
    g = np.random.default_rng(seed)
    out = [cameras[0]]
    for cam in cameras[1:]:
        axis = g.normal(size=3)
        turn, _ = cv2.Rodrigues(axis / np.linalg.norm(axis) * math.radians(degrees))
        shift = g.normal(size=3) * 0.02 * float(np.linalg.norm(cam.center)) / math.sqrt(3)
        out.append(replace(cam, R=turn @ cam.R, t=turn @ cam.t + shift))
    return out


def run(train_cams, train_imgs, test_cams, test_imgs, cameras, iterations: int, refine: bool,
        **overrides) -> dict:
    config = preset("standard", len(cameras), "cpu").with_(iterations=iterations, metrics_every=500,
                                                          pose_refinement=refine, **overrides)
    init = random_init(cameras, 8000, sh_degree=config.sh_degree, seed=0)
    t0 = time.perf_counter()
    result = train(init, cameras, train_imgs, config, background=(1.0, 1.0, 1.0), eval_cameras=test_cams,
                   eval_images=test_imgs)
    final = result.cameras or cameras

    def mean_error(measure, cams):
        return float(np.mean([measure(a, b) for a, b in zip(cams[1:], train_cams[1:])]))

    return {
        "psnr": result.eval["psnr"],
        "ssim": result.eval["ssim"],
        "rot_before": mean_error(rotation_error_deg, cameras),
        "rot_after": mean_error(rotation_error_deg, final),
        "centre_before": mean_error(centre_error_pct, cameras),
        "centre_after": mean_error(centre_error_pct, final),
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", default="0.5,1", help="comma-separated rotation errors in degrees")
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--test-every", type=int, default=4, help="use every k-th test view")
    ap.add_argument("--lr-rotation", type=float, default=None, help="override TrainConfig.lr_pose_rotation")
    ap.add_argument("--lr-translation", type=float, default=None, help="override TrainConfig.lr_pose_translation")
    ap.add_argument("--no-baseline", action="store_true", help="skip the runs without refinement")
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in (("lr_pose_rotation", args.lr_rotation), ("lr_pose_translation", args.lr_translation))
                 if v is not None}
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("HANDFUL_DATASETS is not set", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    train_cams, train_imgs, test_cams, test_imgs = lego_setup(Path(root) / "nerf_synthetic_lego", 200, 4)
    test_cams, test_imgs = test_cams[:: args.test_every], test_imgs[:: args.test_every]

    rows = []
    if not args.no_baseline:
        exact = run(train_cams, train_imgs, test_cams, test_imgs, train_cams, args.iterations, refine=False)
        rows.append(["0 (exact cameras)", "off", f"{exact['psnr']:.2f}", f"{exact['ssim']:.3f}", "0", "0", "0", "0",
                     f"{exact['seconds']:.0f}"])
    for degrees in (float(d) for d in args.noise.split(",") if d):
        wrong = perturbed(train_cams, degrees)
        for refine in (True,) if args.no_baseline else (False, True):
            r = run(train_cams, train_imgs, test_cams, test_imgs, wrong, args.iterations, refine, **overrides)
            rows.append([f"{degrees:g}", "on" if refine else "off", f"{r['psnr']:.2f}", f"{r['ssim']:.3f}",
                         f"{r['rot_before']:.3f}", f"{r['rot_after']:.3f}", f"{r['centre_before']:.2f}",
                         f"{r['centre_after']:.2f}", f"{r['seconds']:.0f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    print_table(
        f"pose refinement on Lego ({len(train_cams)} views, 200 px, {args.iterations} steps, standard preset; "
        "test views have exact cameras; the baseline is training with the exact cameras)",
        ["camera error deg", "refinement", "test PSNR", "SSIM", "rot err before", "rot err after",
         "centre err % before", "after", "s"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
