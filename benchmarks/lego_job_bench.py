"""Lego through the job the user runs: background found in the photos vs the old black background.

    HANDFUL_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/lego_job_bench.py \
        [--preset standard] [--iterations N] [--size 200] [--cases auto,old_black,auto_rgb]

Every case is a real ``engine.job`` run (``reconstruct LEGO_TRAIN_VIEWS --cameras transforms_train.json
--max-long-edge SIZE --eval-every 0``) on lego's 25 training views (every 4th of the 100), then the 25
test views are scored by an independent renderer (the readable torch ``reference`` backend, not the job's
CPU kernels) on white against the test photos composited on white at full size and area-resized to SIZE
(what ``benchmarks/train_bench.py`` scores against). Cases:

    old_black  the job before backgrounds: photos composited on white, trained and rendered on black
               (made here by handing the job white-composited RGB copies with --background black)
    auto       the RGBA photos as they come, --background auto (transparent: trained on white)
    auto_rgb   the white-composited RGB copies, --background auto (found from the uniform borders)

How it differs from train_bench.py: the job ingests and resizes the photos itself (alpha-weighted area
resize of the 400 px RGBA to SIZE), initialises from random points within half the preset's Gaussian
budget (train_bench: the preset's init_points), and trains the preset for the job's view count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import print_table  # noqa: E402
from benchmarks.train_bench import load_blender_split  # noqa: E402
from engine.io import load_scene  # noqa: E402
from engine.job import JobOptions, run_job  # noqa: E402
from engine.metrics import evaluate  # noqa: E402

CASES = ("old_black", "auto", "auto_rgb")


def _photo_folders(lego: Path, tmp: Path, every: int = 4) -> tuple[Path, Path]:
    """(RGBA originals, RGB copies composited on white) of the training views, as folders of PNGs."""
    rgba_dir, rgb_dir = tmp / "rgba", tmp / "rgb_on_white"
    rgba_dir.mkdir(), rgb_dir.mkdir()
    for path in sorted((lego / "train").glob("r_*.png"), key=lambda p: int(p.stem[2:]))[::every]:
        os.symlink(path, rgba_dir / path.name)
        rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
        cv2.imwrite(str(rgb_dir / path.name), np.round(rgb * 255).astype(np.uint8))
    return rgba_dir, rgb_dir


def run_case(name: str, photos: Path, background, lego: Path, out: Path, args, test_cams, test_imgs) -> dict:
    options = JobOptions(preset=args.preset, iterations=args.iterations, cameras=lego / "transforms_train.json",
                         max_long_edge=args.size, eval_every=0, background=background, device="cpu")
    t0 = time.perf_counter()
    result = run_job([photos], out, options)
    total = time.perf_counter() - t0
    report = result.report
    scene = load_scene(out / "scene.ply")
    t1 = time.perf_counter()
    independent = evaluate(scene, test_cams, test_imgs, background=(1.0, 1.0, 1.0), backend="reference")
    # lego fits in a sphere of radius ~1.5: opacity out there paints the background (a shell)
    far = np.linalg.norm(scene.means.numpy(), axis=1) > 2.0
    opacity = torch.sigmoid(scene.opacity_logits).numpy()
    return {
        "case": name,
        "background": f"{report['background']['how']} {report['background']['rgb']}",
        "iterations": report["training"]["iterations"],
        "gaussians": report["num_gaussians"],
        "far_opacity_share": float(opacity[far].sum() / opacity.sum()),
        "train_s": report["timings"]["train"],
        "job_s": total,
        "job_psnr_train_views": report["eval"]["psnr"],
        "test_psnr_ref": independent["psnr"],
        "test_ssim_ref": independent["ssim"],
        "score_s": time.perf_counter() - t1,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args(argv)
    lego = Path(os.environ.get("HANDFUL_DATASETS", "/work/shared/datasets")) / "nerf_synthetic_lego"
    if not lego.is_dir():
        print(f"{lego} not found: set HANDFUL_DATASETS", file=sys.stderr)
        return 2
    test_cams, test_imgs = load_blender_split(lego, "test", args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="handful-lego-job-") as tmp:
        rgba_dir, rgb_dir = _photo_folders(lego, Path(tmp))
        chosen = {"old_black": (rgb_dir, (0.0, 0.0, 0.0)), "auto": (rgba_dir, "auto"), "auto_rgb": (rgb_dir, "auto")}
        for name in args.cases.split(","):
            photos, background = chosen[name]
            rows.append(run_case(name, photos, background, lego, Path(tmp) / name, args, test_cams, test_imgs))
            print(rows[-1], file=sys.stderr, flush=True)
    header = list(rows[0])
    base = next((r for r in rows if r["case"] == "old_black"), None)
    print_table(
        f"lego_job_bench: reconstruct job, 25 train views at {args.size}px, preset {args.preset}"
        f"{'' if args.iterations is None else f', {args.iterations} iterations'}, CPU, {torch.get_num_threads()} threads; "
        "test PSNR/SSIM by the reference renderer on white over the 25 test views",
        header + (["dPSNR_vs_old", "train_time_ratio"] if base else []),
        [[r[h] for h in header] + ([r["test_psnr_ref"] - base["test_psnr_ref"], r["train_s"] / base["train_s"]]
                                   if base else []) for r in rows],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
