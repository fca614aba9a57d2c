"""Object grouping: time and per-object IoU on scenes of known objects, mask IoU on a masked capture.

    python benchmarks/grouping_bench.py                       # synthetic + 100k timing (+ lego masks when
                                                              #   HANDFUL_DATASETS is set)
    python benchmarks/grouping_bench.py --sample-job OUT      # also the bundled sample, trained by
        python -m engine reconstruct resources/sample/images --cameras resources/sample/transforms.json \\
            --preset preview --no-group -o OUT

Rows:
- ``synthetic``: coloured cubes and spheres on a floor (tests/factories.objects_scene), photos rendered
  from 10 views; IoU over Gaussians against the labels the scene was built with (floor + 4 objects).
- ``synthetic 100k``: the same objects at ~100k Gaussians, 10 views of 320x240 (the speed target:
  under a minute). ``ratio`` (every row) is grouping time / the time of one plain render of each view
  the grouping used, both measured in this run.
- ``sample``: the bundled sample's trained scene; each Gaussian's true object is the surface of
  scripts/make_sample.py's still life (floor, three boxes, ball) it lies on (within 4 cm, opacity at
  least 0.2; the others, sky, floaters and transparent filler, are left out of the IoU).
- ``+ identity``: the same, with identity features trained through the renderer (Gaussian Grouping
  style, ``engine/grouping/identity.py``) on top of the votes' per-view targets.
- ``lego masks``: 2D only, the photo's regions against the RGBA alpha of nerf_synthetic_lego (a real
  foreground mask): ``border`` calls every region touching the image border background; ``best``
  gives each region the side most of its pixels are on (how well region edges follow the outline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _machine import print_table  # noqa: E402

from engine.grouping import group_scene  # noqa: E402
from engine.grouping.masks import ViewCues  # noqa: E402
from engine.grouping.regions import RegionMaskSource  # noqa: E402
from engine.render import render  # noqa: E402
from tests.factories import best_iou_per_object, objects_photos, objects_scene  # noqa: E402


def iou_row(name: str, scene, truth, cams, photos, **kw) -> list:
    t0 = time.perf_counter()
    result = group_scene(scene, cams, photos, **kw)
    seconds = time.perf_counter() - t0
    labelled = truth >= 0
    iou = best_iou_per_object(result.group_ids.numpy()[labelled], truth[labelled])
    used = [c for c in cams if c.name in set(result.views)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for cam in used:  # the baseline: one plain render of each view the grouping used
            render(scene, cam, background=(0, 0, 0))
    baseline = time.perf_counter() - t0
    return [name, len(scene), len(used), f"{cams[0].width}x{cams[0].height}", result.num_groups, len(iou),
            f"{min(iou.values()):.3f}", f"{np.mean(list(iou.values())):.3f}",
            " ".join(f"{v:.2f}" for v in iou.values()), f"{seconds:.1f}", f"{seconds / baseline:.1f}"]


MIN_OPACITY = 0.2


def still_life_labels(means: np.ndarray, tolerance: float = 0.04) -> np.ndarray:
    """Each point's object in scripts/make_sample.py's still life: 0 floor, 1-3 boxes, 4 ball, -1 none."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_sample import StillLife

    life = StillLife()
    p = np.asarray(means, np.float64)
    dist = [np.where(np.hypot(p[:, 0], p[:, 1]) < 3.0, np.abs(p[:, 2]), np.inf)]
    for lo, hi, _ in life.boxes:
        centre, half = (lo + hi) / 2, (hi - lo) / 2
        q = np.abs(p - centre) - half
        dist.append(np.abs(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)))
    centre, radius, _ = life.ball
    dist.append(np.abs(np.linalg.norm(p - centre, axis=1) - radius))
    dist = np.stack(dist, 1)
    labels = dist.argmin(1).astype(np.int32)
    labels[dist.min(1) > tolerance] = -1
    return labels


def sample_row(job: Path, **kw) -> list:
    from engine.io import colmap, load_scene
    from engine.ingest import load_image

    scene = load_scene(job / "scene.ply")
    rig = colmap.read(job / "sparse")
    cams = [c for c in rig.cameras]
    for c in cams:
        c.image_path = job / "images" / c.name
    photos = [load_image(c.image_path) for c in cams]
    truth = still_life_labels(scene.means.numpy())
    truth[scene.opacities.numpy() < MIN_OPACITY] = -1  # transparent filler draws nothing: no object
    row = iou_row("sample (trained)", scene, truth, cams, photos, **kw)
    row[0] = f"sample ({int((truth >= 0).sum())} on a surface)" + (" + identity" if kw else "")
    return row


def lego_rows(root: Path, views: int = 8, size: int = 200) -> list:
    import cv2

    from engine.ingest import load_image, load_image_rgba

    source = RegionMaskSource()
    border_iou, best_iou, colour_iou = [], [], []
    paths = sorted((root / "train").glob("r_*.png"), key=lambda p: int(p.stem[2:]))[:: max(1, 100 // views)][:views]
    for path in paths:
        truth = cv2.resize(load_image_rgba(path)[..., 3], (size, size), interpolation=cv2.INTER_AREA) > 127
        photo = cv2.resize(load_image(path), (size, size), interpolation=cv2.INTER_AREA)
        labels = source.regions(photo, ViewCues())
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        fg = ~np.isin(labels, border)
        share = np.bincount(labels.ravel(), weights=truth.ravel()) / np.bincount(labels.ravel())
        best = share[labels] > 0.5
        not_white = (photo.astype(int).sum(2) < 3 * 250)
        for out, pred in ((border_iou, fg), (best_iou, best), (colour_iou, not_white)):
            out.append((pred & truth).sum() / (pred | truth).sum())
    def row(name, values):
        return [name, len(paths), f"{size}x{size}", f"{np.min(values):.3f}", f"{np.mean(values):.3f}"]
    return [row("regions, border = background", border_iou), row("regions, best side per region", best_iou),
            row("(reference) any pixel not white", colour_iou)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample-job", type=Path, default=None, help="a job folder of the bundled sample")
    ap.add_argument("--no-100k", action="store_true", help="skip the 100k-Gaussian timing")
    ap.add_argument("--identity-steps", type=int, default=150,
                    help="also train identity features for this many steps and compare (0: skip)")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)

    rows = []
    scene, truth = objects_scene()
    cams, photos = objects_photos(scene, views=10)
    group_scene(scene, cams[:1], photos[:1])  # warm-up: numba loads or compiles its kernels
    rows.append(iou_row("synthetic", scene, truth, cams, photos))
    if args.identity_steps:
        rows.append(iou_row(f"synthetic + identity {args.identity_steps}", scene, truth, cams, photos,
                            identity_steps=args.identity_steps))
    if not args.no_100k:
        big, big_truth = objects_scene(spacing=0.0118)
        big_cams, big_photos = objects_photos(big, views=10, width=320, height=240)
        rows.append(iou_row("synthetic 100k", big, big_truth, big_cams, big_photos))
    if args.sample_job is not None:
        rows.append(sample_row(args.sample_job))
        if args.identity_steps:
            rows.append(sample_row(args.sample_job, identity_steps=args.identity_steps))
    print_table("object grouping: IoU over Gaussians per known object (best-matching group)",
                ["scene", "gaussians", "views", "size", "groups", "objects", "min IoU", "mean IoU", "per object",
                 "seconds", "ratio"], rows)

    datasets = os.environ.get("HANDFUL_DATASETS")
    if datasets and (Path(datasets) / "nerf_synthetic_lego").is_dir():
        print()
        print_table("region masks vs lego's alpha (foreground IoU per view)",
                    ["method", "views", "size", "min IoU", "mean IoU"], lego_rows(Path(datasets) / "nerf_synthetic_lego"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
