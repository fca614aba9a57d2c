"""Training benchmark: fit a scene to a real dataset on this machine and report speed and quality.

    .venv/bin/python benchmarks/train_bench.py --dataset lego            # Standard preset, CPU
    .venv/bin/python benchmarks/train_bench.py --dataset sample --iterations 200
    .venv/bin/python benchmarks/train_bench.py --dataset lego --preset high --iterations 8000

Lego: 25 training views (every 4th of the 100) and the 25 test views at 200x200, white background,
random initialisation (the synthetic scenes have no SfM points). Sample: the bundled
``resources/sample`` (24 views at 480x360), every 8th view held out for testing as the job does, black
background, random initialisation.

Every run trains twice from the same initial scene and seed: once as before this work (``legacy``
raster kernels in float64 and the L1 + SSIM loss from torch's ops, torch and numba on ``--threads``
cores, default all), once as now (``rows``: the row-chord kernels over footprint-binned tiles in the
scene's float32, the fused compiled loss ``engine.train.photometric``, on as many threads as there
are free cores when the run starts, ``engine.render.cpu_threads``), and prints seconds per step and
the test-view PSNR/SSIM of each, with the untrained initial scene as the quality baseline. Because a shared machine's load
drifts during a long run, the speed ratio is also measured interleaved: a few full-resolution steps
on the trained scene with each variant in turn (plus the new kernels on all cores, which separates
the kernels' gain from the thread plan's), several rounds, medians. ``--speed-steps`` adds the
readable ``reference`` backend on those steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import statistics
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine  # noqa: E402,F401  first, as in the app and CLI: it sets OMP_WAIT_POLICY before torch loads OpenMP

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._machine import print_table  # noqa: E402
from engine.io import transforms  # noqa: E402
from engine.metrics import evaluate  # noqa: E402
from engine.render import cpu_backend, cpu_threads  # noqa: E402
from engine.scene import Camera  # noqa: E402
from engine.train import TrainConfig, photometric, preset, random_init, train  # noqa: E402

DATASETS = {"lego": "nerf_synthetic_lego", "sample": None}
SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample"
# (kernels, threads): "all" = --threads (as before), "free" = the free cores when the run starts
BEFORE, NOW = ("legacy", "all"), ("rows", "free")
TRAINED = (BEFORE, NOW)
TIMED = (BEFORE, ("rows", "all"), NOW)


@contextlib.contextmanager
def variant(kernels: str, threads: str, all_threads: int):
    """Train inside the block with ``kernels`` and the thread rule; yields the thread count chosen."""
    # the legacy kernels run with the loss as it was (torch's ops), the new ones with the fused loss
    loss = photometric.torch_loss() if kernels == "legacy" else contextlib.nullcontext()
    with cpu_backend.use_kernels(kernels), loss, cpu_threads.training_threads(
            all_threads if threads == "all" else None) as n:
        yield n


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


def sample_setup(root: Path = SAMPLE, every: int = 8):
    """The bundled sample's cameras and RGB float images, every ``every``-th view held out (as the job)."""
    rig = transforms.read(root / "transforms.json")
    views = []
    for cam in rig.cameras:
        bgr = cv2.imread(str(cam.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(cam.image_path)
        views.append((cam, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0))
    train_views = [v for i, v in enumerate(views) if i % every]
    test_views = [v for i, v in enumerate(views) if not i % every]
    return ([c for c, _ in train_views], [im for _, im in train_views],
            [c for c, _ in test_views], [im for _, im in test_views])


def _interleaved_step_times(scene, cams, imgs, config, background, steps: int, rounds: int,
                            all_threads: int) -> dict:
    """Median seconds per full-resolution step of each timed variant, alternating the order every round."""
    fixed = config.with_(iterations=steps, strategy="none", start_resolution=1.0, sh_interval=1)
    times = {v: [] for v in TIMED}
    for r in range(rounds + 1):
        for v in (TIMED if r % 2 else TIMED[::-1]):
            with variant(*v, all_threads):
                seconds = train(scene, cams, imgs, fixed, background=background).seconds
            if r:  # round 0 warms up (numba cache loads, allocators settle)
                times[v].append(seconds / steps)
    return {v: statistics.median(t) for v, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="lego", choices=sorted(DATASETS))
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    parser.add_argument("--strategy", default=None, choices=["mcmc", "classic"])
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=cpu_threads.usable_cores(),
                        help="threads of the 'all' runs (the legacy baseline), default every usable core")
    parser.add_argument("--init-points", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-steps", type=int, default=0,
                        help="steps for the cpu vs reference backend comparison (0: skip; the reference is slow)")
    parser.add_argument("--kernel-steps", type=int, default=3, help="steps per interleaved kernel timing")
    parser.add_argument("--kernel-rounds", type=int, default=3, help="rounds of the interleaved kernel timing")
    args = parser.parse_args(argv)

    if args.dataset == "sample":
        train_cams, train_imgs, test_cams, test_imgs = sample_setup()
        background = (0.0, 0.0, 0.0)
        what = f"sample, {len(train_cams)} views at {train_cams[0].width}x{train_cams[0].height}"
    else:
        root = Path(os.environ.get("HANDFUL_DATASETS", "/work/shared/datasets")) / DATASETS[args.dataset]
        train_cams, train_imgs, test_cams, test_imgs = lego_setup(root, args.size)
        background = (1.0, 1.0, 1.0)
        what = f"{args.dataset}, {len(train_cams)} views at {args.size}px"
    config: TrainConfig = preset(args.preset, len(train_cams), "cpu")
    changes = {"seed": args.seed}
    if args.iterations:
        changes["iterations"] = args.iterations
    if args.strategy:
        changes["strategy"] = args.strategy
    config = config.with_(**changes)
    init_points = args.init_points or config.extra.get("init_points") or min(config.cap_max // 2, 20_000)
    init = random_init(train_cams, init_points, sh_degree=config.sh_degree, seed=args.seed)
    base = evaluate(init, test_cams, test_imgs, background=background, backend=config.backend)
    load_before = os.getloadavg()

    last = [0.0]
    t0_wall = [0.0]

    def log(event):  # progress to stderr every 10 s
        if type(event).__name__ == "Progress" and (time.perf_counter() - last[0] > 10 or event.done == event.total):
            last[0] = time.perf_counter()
            print(f"  {event.message}  ({time.time() - t0_wall[0]:.0f} s)", file=sys.stderr, flush=True)

    for v in TRAINED:  # compile / load both kernel sets before anything is timed
        with variant(*v, args.threads):
            train(init, train_cams[:1], train_imgs[:1], config.with_(iterations=1, strategy="none"),
                  background=background)
    t0 = time.perf_counter()
    rows = [["random init (baseline)", "", "", 0, len(init), "", "", "", base["psnr"], base["ssim"]]]
    results, chosen = {}, {}
    for v in TRAINED:
        print(f"training with the {v[0]} kernels on {v[1]} cores", file=sys.stderr, flush=True)
        t0_wall[0] = time.time()
        with variant(*v, args.threads) as chosen[v]:
            results[v] = train(init, train_cams, train_imgs, config, background=background, emit=log,
                               eval_cameras=test_cams, eval_images=test_imgs)
    steps = args.kernel_steps
    trained = results[NOW].scene
    step_times = (_interleaved_step_times(trained, train_cams, train_imgs, config, background, steps,
                                          args.kernel_rounds, args.threads) if steps else {})
    base_time = results[BEFORE].history[-1]["seconds"] / results[BEFORE].iterations
    for v in TIMED:
        result = results.get(v)
        interleaved = "" if v not in step_times else \
            f"{round(step_times[v], 3)} ({step_times[BEFORE] / step_times[v]:.2f}x)"
        if result is None:
            rows.append(["(interleaved only)", v[0], v[1], "", "", "", "", interleaved, "", ""])
            continue
        per_step = result.history[-1]["seconds"] / result.iterations
        rows.append([
            f"{args.preset} / {config.strategy}", v[0], f"{v[1]} ({chosen[v]})", result.iterations,
            len(result.scene), round(per_step, 3), f"{base_time / per_step:.2f}x", interleaved,
            result.eval["psnr"], result.eval["ssim"],
        ])
    print_table(
        f"train_bench: {what}, CPU, --threads {args.threads}; load average before "
        f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}",
        ["run", "kernels", "threads", "iterations", "gaussians", "s/step", "vs legacy",
         "full-res s/step interleaved", "test PSNR", "test SSIM"],
        rows,
    )
    print(f"total wall time incl. evaluation: {time.perf_counter() - t0:.1f} s; the interleaved column: "
          f"median of {args.kernel_rounds} rounds x {steps} steps at full resolution on the trained scene",
          flush=True)

    # Speed baseline: the readable reference backend against the cpu one, a few steps each.
    steps = args.speed_steps
    if steps:
        fixed = config.with_(iterations=steps, strategy="none", start_resolution=1.0, sh_interval=1)
        fast = train(trained, train_cams, train_imgs, fixed, background=background)
        ref = train(trained, train_cams, train_imgs, fixed.with_(backend="reference"), background=background)
        print(f"full-resolution step speed on the trained scene: {config.backend} backend "
              f"{steps / fast.seconds:.2f} it/s, reference backend {steps / ref.seconds:.2f} it/s "
              f"(ratio {ref.seconds / max(fast.seconds, 1e-9):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
