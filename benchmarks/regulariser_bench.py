"""Each few-view regulariser on and off: llff_fern, 3 training photos, known cameras.

    HANDFUL_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/regulariser_bench.py \
        [--size 252] [--iterations 300] [--cap 6000] [--runs baseline,drop,...] [--depth multiview|standin]

LLFF protocol: every 8th photo (name order) is held out; the 3 training photos are spread evenly over the
rest (``np.linspace`` over them, rounded); cameras from ``gt_colmap_text`` as pinhole (its small radial
term ignored); photos resized so that the longer side is ``--size``. Every run starts from the same random
initialisation (or, for ``coherent``, from the per-view pixel-aligned one) with the CPU Preview preset's
settings (``--iterations`` steps, ``--cap`` Gaussians); held-out PSNR / SSIM are over the held-out photos;
seconds per step are relative to the baseline run of the same process.

The depth prior is ``engine.priors.depth.MultiViewDepth`` (``--depth multiview``) or, with ``--depth
standin``, a plane sweep made here over the training photos (fronto-parallel planes, inverse depth uniform
between the dataset's near/far bounds from ``poses_bounds.npy``, 7x7 mean absolute colour difference to
the two other photos warped through each plane, winner takes all; confidence = 1 - best / median cost).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import print_table  # noqa: E402

from engine.ingest import load_image  # noqa: E402
from engine.priors.depth import DepthMap, MultiViewDepth  # noqa: E402
from engine.poses.reference import read_reference_rig  # noqa: E402
from engine.train import preset, random_init, train  # noqa: E402
from engine.train.regularisers import (  # noqa: E402
    CrossViewLoss,
    DepthCorrelationLoss,
    DepthSmoothnessLoss,
    DropGaussian,
    FloaterLoss,
    MetricDepthLoss,
    coherent_init,
    warp_photo,
)

DEPTH_SIZE = 504
RUNS = ("baseline", "drop", "depth_corr", "depth_l1", "smooth", "cross_view", "floaters", "coherent", "all")


def llff_split(dataset: Path, size: int, views: int = 3):
    """(train cameras, train images, test cameras, test images) by the LLFF protocol, pinhole cameras at
    ``size`` pixels on the longer side, images float32 in [0, 1]."""
    rig = read_reference_rig(dataset / "gt_colmap_text")
    cameras = sorted(rig.cameras, key=lambda c: c.name)
    test = [i for i in range(len(cameras)) if i % 8 == 0]
    rest = [i for i in range(len(cameras)) if i % 8 != 0]
    chosen = [rest[i] for i in np.linspace(0, len(rest) - 1, views).round().astype(int)]

    def load(i):
        cam = cameras[i]
        cam.distortion = None
        scale = size / max(cam.width, cam.height)
        w, h = round(cam.width * scale), round(cam.height * scale)
        image = load_image(dataset / "images" / Path(cam.name).name).astype(np.float32) / 255.0
        return cam.resized(w, h), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    train_views = [load(i) for i in chosen]
    test_views = [load(i) for i in test]
    return ([c for c, _ in train_views], [im for _, im in train_views], [c for c, _ in test_views],
            [im for _, im in test_views], [cameras[i].name for i in chosen])


def plane_sweep(cameras, images, near: float, far: float, planes: int = 64, window: int = 7):
    """Stand-in metric depth maps (see the module docstring), one per training view."""
    maps = []
    photos = [torch.from_numpy(im) for im in images]
    inverse = torch.linspace(1 / near, 1 / far, planes)
    for i, cam in enumerate(cameras):
        h, w = cam.height, cam.width
        costs = []
        for d in (1 / inverse).tolist():
            depth = torch.full((h, w), d)
            total = torch.zeros(h, w)
            seen = torch.zeros(h, w)
            for j, other in enumerate(cameras):
                if j == i:
                    continue
                warp = warp_photo(depth, cam, photos[j], other)
                diff = (warp.image - photos[i]).abs().mean(-1) * warp.valid
                total += diff
                seen += warp.valid.float()
            cost = F.avg_pool2d(torch.stack([total, seen])[None], window, 1, window // 2,
                                count_include_pad=False)[0]
            costs.append(torch.where(cost[1] > 0.5, cost[0] / cost[1].clamp_min(1e-6), torch.full_like(cost[0], 1.0)))
        costs = torch.stack(costs)
        best, which = costs.min(0)
        confidence = (1 - best / costs.median(0).values.clamp_min(1e-6)).clamp(0, 1)
        maps.append(DepthMap((1 / inverse[which]).numpy(), confidence.numpy(), cam, "metric",
                             "plane-sweep stand-in (benchmark)"))
    return maps


def dataset_bounds(dataset: Path) -> tuple[float, float]:
    """The scene's depth range from LLFF's ``poses_bounds.npy`` (its SfM points' near/far, 10 % wider)."""
    bounds = np.load(dataset / "poses_bounds.npy")[:, -2:]
    return float(bounds[:, 0].min()) * 0.9, float(bounds[:, 1].max()) * 1.1


def depth_priors(mode: str, dataset: Path, cameras, images):
    if mode == "multiview":
        # estimated from the photos at the 504x378 (matching needs the detail); the losses
        # resample the maps to each step's size
        cams, photos = llff_split(dataset, DEPTH_SIZE)[:2]
        uint8 = [(im * 255).round().astype(np.uint8) for im in photos]
        return MultiViewDepth().estimate(cams, uint8), f"engine.priors.depth.MultiViewDepth at {DEPTH_SIZE} px"
    maps = plane_sweep(cameras, images, *dataset_bounds(dataset))
    return maps, "plane-sweep stand-in made by this benchmark"


def regularisers(run: str, maps):
    """(losses, hooks) of a run."""
    choice = {
        "baseline": ([], []),
        "drop": ([], [DropGaussian(0.2)]),
        "depth_corr": ([DepthCorrelationLoss(maps)], []),
        "depth_l1": ([MetricDepthLoss(maps)], []),
        "smooth": ([DepthSmoothnessLoss()], []),
        "cross_view": ([CrossViewLoss()], []),
        "floaters": ([FloaterLoss()], []),
        "coherent": ([], []),
        "all": ([DepthCorrelationLoss(maps), DepthSmoothnessLoss(), CrossViewLoss(), FloaterLoss()],
                [DropGaussian(0.2)]),
    }
    return choice[run]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=252, help="longer image side (the shared photos are 1008)")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--cap", type=int, default=6000, help="cap_max (MCMC); the initialisation has half")
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--depth", default="multiview", choices=["multiview", "standin"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine more threads mostly wait for each other)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("set HANDFUL_DATASETS to the datasets folder", file=sys.stderr)
        return 2
    dataset = Path(root) / "llff_fern"
    train_cams, train_imgs, test_cams, test_imgs, names = llff_split(dataset, args.size)
    config = preset("preview", len(train_cams), "cpu").with_(
        iterations=args.iterations, cap_max=args.cap, max_image_side=None, seed=args.seed)
    t0 = time.perf_counter()
    maps, depth_source = depth_priors(args.depth, dataset, train_cams, train_imgs)
    depth_seconds = time.perf_counter() - t0
    # Random points between the dataset's near and far bounds: the default range (0.1-10x the camera
    # spread) puts most of them a few tenths of a unit in front of the cameras, where no two views overlap.
    near, far = dataset_bounds(dataset)
    random_start = random_init(train_cams, args.cap // 2, sh_degree=config.sh_degree, seed=args.seed,
                               depth_range=(near, far))
    coherent_start = coherent_init(maps, train_imgs, stride=2, min_confidence=0.3, sh_degree=config.sh_degree,
                                   max_points=args.cap // 2, seed=args.seed)
    # Compile / load the render kernels before anything is timed.
    train(random_start, train_cams[:1], train_imgs[:1], config.with_(iterations=2, strategy="none"))
    rows, base_per_step = [], None
    for run in [r for r in args.runs.split(",") if r]:
        losses, hooks = regularisers(run, maps)
        init = coherent_start if run == "coherent" else random_start
        result = train(init, train_cams, train_imgs, config, losses=losses, hooks=hooks,
                       eval_cameras=test_cams, eval_images=test_imgs)
        per_step = result.history[-1]["seconds"] / max(result.iterations, 1)  # training only, no evaluation
        base_per_step = base_per_step or per_step
        last = result.history[-1]
        rows.append([run, result.eval["psnr"], result.eval["ssim"], last["psnr"], len(result.scene),
                     round(per_step, 3), f"{per_step / base_per_step:.2f}x",
                     ", ".join(f"{k[5:]}={v:.3g}" for k, v in last.items() if k.startswith("loss/"))])
        print(rows[-1], file=sys.stderr, flush=True)
    print_table(
        f"regulariser_bench: llff_fern, 3 views {names} at {train_cams[0].width}x{train_cams[0].height}, "
        f"{len(test_cams)} held out; preview settings, {args.iterations} steps, cap {args.cap}, seed {args.seed}, "
        f"{args.threads} torch thread(s); "
        f"depth prior: {depth_source} ({depth_seconds:.1f} s)",
        ["run", "test PSNR", "test SSIM", "train PSNR", "gaussians", "s/step", "vs baseline", "final loss terms"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
