"""Training benchmark: fit a scene to a real dataset on this machine and report speed and quality.

    .venv/bin/python benchmarks/train_bench.py --dataset lego            # Standard preset, CPU
    .venv/bin/python benchmarks/train_bench.py --dataset lego --preset high --iterations 8000

Lego: 25 training views (every 4th of the 100) and the 25 test views at 200x200, white background,
random initialisation (the synthetic scenes have no SfM points). Prints iterations/s, time and the
test-view PSNR/SSIM, with the untrained initial scene as the baseline row and the speed of the
``reference`` renderer backend on the same steps as the speed baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.metrics import evaluate  # noqa: E402
from engine.scene import Camera  # noqa: E402
from engine.train import TrainConfig, preset, random_init, train  # noqa: E402

DATASETS = {"lego": "nerf_synthetic_lego"}


def load_blender_split(root: Path, split: str, size: int, every: int = 1, background=(1.0, 1.0, 1.0)):
    """Cameras and RGB float images of a NeRF-synthetic split (transforms_<split>.json), composited
    on ``background`` at full resolution, then area-resized to ``size`` x ``size``."""
    meta = json.loads((root / f"transforms_{split}.json").read_text())
    frames = meta["frames"][::every]
    cameras, images = [], []
    for frame in frames:
        path = root / (frame["file_path"].removeprefix("./") + ".png")
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if rgba is None:
            raise FileNotFoundError(path)
        rgba = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA).astype(np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + np.asarray(background, np.float32) * (1 - rgba[..., 3:])
        h0, w0 = rgb.shape[:2]
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA) if (w0, h0) != (size, size) else rgb
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        c2w[:3, 1:3] *= -1  # Blender/OpenGL (y up, z back) -> OpenCV (y down, z forward)
        w2c = np.linalg.inv(c2w)
        f = 0.5 * size / math.tan(0.5 * meta["camera_angle_x"])
        cameras.append(Camera(R=w2c[:3, :3], t=w2c[:3, 3], fx=f, fy=f, cx=size / 2, cy=size / 2,
                              width=size, height=size, name=Path(frame["file_path"]).name))
        images.append(np.clip(rgb, 0, 1))
    return cameras, images


def lego_setup(root: Path, size: int = 200, every: int = 4):
    train_cams, train_imgs = load_blender_split(root, "train", size, every)
    test_cams, test_imgs = load_blender_split(root, "test", size)
    return train_cams, train_imgs, test_cams, test_imgs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="lego", choices=sorted(DATASETS))
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    parser.add_argument("--strategy", default=None, choices=["mcmc", "classic"])
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--init-points", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-steps", type=int, default=3, help="steps for the backend speed comparison (0: skip)")
    args = parser.parse_args(argv)

    root = Path(os.environ.get("HANDFUL_DATASETS", "/work/shared/datasets")) / DATASETS[args.dataset]
    torch.set_num_threads(args.threads)
    train_cams, train_imgs, test_cams, test_imgs = lego_setup(root, args.size)
    config: TrainConfig = preset(args.preset, len(train_cams), "cpu")
    changes = {"seed": args.seed}
    if args.iterations:
        changes["iterations"] = args.iterations
    if args.strategy:
        changes["strategy"] = args.strategy
    config = config.with_(**changes)
    init_points = args.init_points or config.extra.get("init_points") or min(config.cap_max // 2, 20_000)
    init = random_init(train_cams, init_points, sh_degree=config.sh_degree, seed=args.seed)
    white = (1.0, 1.0, 1.0)
    base = evaluate(init, test_cams, test_imgs, background=white, backend=config.backend)

    last = [0.0]

    def log(event):  # progress to stderr every 10 s
        if type(event).__name__ == "Progress" and (time.perf_counter() - last[0] > 10 or event.done == event.total):
            last[0] = time.perf_counter()
            print(f"  {event.message}  ({event.time - t0_wall:.0f} s)", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    t0_wall = time.time()
    result = train(init, train_cams, train_imgs, config, background=white, emit=log,
                   eval_cameras=test_cams, eval_images=test_imgs)
    seconds = result.seconds
    train_time = result.history[-1]["seconds"]

    rows = [
        ["random init (baseline)", 0, len(init), "", "", base["psnr"], base["ssim"]],
        [f"{args.preset} / {config.strategy}", result.iterations, len(result.scene), train_time,
         result.iterations / train_time, result.eval["psnr"], result.eval["ssim"]],
    ]
    print_table(
        f"train_bench: {args.dataset}, {len(train_cams)} views at {args.size}px, CPU, {args.threads} threads",
        ["run", "iterations", "gaussians", "train s", "it/s", "test PSNR", "test SSIM"],
        rows,
    )
    print(f"total wall time incl. evaluation: {time.perf_counter() - t0:.1f} s (train() reported {seconds:.1f} s)",
          flush=True)

    # Speed baseline: the readable reference backend against the configured one, on the trained
    # scene at full resolution, a few steps each.
    steps = args.speed_steps
    if steps:
        fixed = config.with_(iterations=steps, strategy="none", start_resolution=1.0, sh_interval=1)
        fast = train(result.scene, train_cams, train_imgs, fixed, background=white)
        ref = train(result.scene, train_cams, train_imgs, fixed.with_(backend="reference"), background=white)
        print(f"full-resolution step speed on the trained scene: {config.backend} backend "
              f"{steps / fast.seconds:.2f} it/s, reference backend {steps / ref.seconds:.2f} it/s "
              f"(ratio {ref.seconds / max(fast.seconds, 1e-9):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
