"""Whole-pipeline benchmark: photos -> poses -> training -> evaluation, per dataset and view count.

    HANDFUL_DATASETS=../shared/datasets .venv/bin/python benchmarks/reconstruct_bench.py [--cases fern_3,...]
        [--preset preview] [--iterations N] [--sample]

Each case runs a real ``engine.job`` (the CLI's code path) on the few-view selections of the pose acceptance
tests, then compares the estimated cameras with the dataset's reference cameras after similarity alignment.
Prints registration, pose error, seconds per stage, training iterations per second, PSNR/SSIM (on the
training views: with 3-6 photos none can be held out), the CPU seconds of the job (this process and the pose
worker, all threads: on a busy machine wall time says little, CPU time divided by the cores a step keeps busy
estimates an idle machine) and the peak resident memory of the job. The baseline row per case is the
untrained initial scene's PSNR, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import print_table  # noqa: E402

from engine.job import JobOptions, run_job  # noqa: E402
from engine.poses import pose_errors  # noqa: E402
from engine.poses.reference import read_reference_rig  # noqa: E402
from engine.poses.views import ACCEPTANCE_CASES  # noqa: E402

SAMPLE = ROOT / "resources" / "sample"


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _initial_psnr(out: Path, cameras) -> float:
    from engine.ingest import load_image
    from engine.io import load_scene
    from engine.metrics import evaluate

    scene = load_scene(out / "init.ply")
    images = [load_image(c.image_path) for c in cameras]
    return evaluate(scene, cameras, images)["psnr"]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_case(name: str, photos: list[Path], reference, options: JobOptions) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"handful-bench-{name}-") as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in photos:
            os.symlink(p, folder / p.name)
        out = Path(tmp) / "out"
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        try:
            result = run_job([folder], out, options)
        except Exception as e:  # a failed case is a row, not the end of the benchmark
            return {"case": name, "photos": len(photos), "error": str(e)[:80], "total_s": time.perf_counter() - t0}
        report = result.report
        errors = pose_errors(read_rig_named(out), reference) if reference is not None else {}
        refined = {}
        if reference is not None and (out / "refined" / "images.txt").is_file():
            refined = pose_errors(read_rig_named(out, "refined"), reference)
        t = report["timings"]
        train = report.get("training", {})
        return {
            "case": name,
            "photos": len(photos),
            "placed": report["images_registered"],
            "rot_med_deg": errors.get("median_rot_deg"),
            "centre_max_rel": errors.get("max_center_rel"),
            "rot_med_refined": refined.get("median_rot_deg"),
            "poses_s": t.get("poses"),
            "train_s": t.get("train"),
            "it_per_s": train.get("iterations", 0) / max(train.get("seconds", 0) or 1e-9, 1e-9),
            "psnr_init": _initial_psnr(out, result.cameras),
            "psnr": report["eval"]["psnr"],
            "ssim": report["eval"]["ssim"],
            "gaussians": report["num_gaussians"],
            "total_s": time.perf_counter() - t0,
            "cpu_s": _cpu_seconds() - cpu0,
            "peak_mb": _peak_rss_mb(),
        }


def read_rig_named(out: Path, model: str = "sparse"):
    from engine.io import colmap

    return colmap.read(out / model)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(ACCEPTANCE_CASES), help="comma-separated case names")
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--sample", action="store_true", help="also run the bundled sample (24 photos)")
    ap.add_argument("--refine-poses", action=argparse.BooleanOptionalAction, default=None,
                    help="force camera pose refinement on or off (default: the preset's choice)")
    args = ap.parse_args(argv)

    options = JobOptions(preset=args.preset, iterations=args.iterations, eval_every=0, max_long_edge=1000,
                         refine_poses=args.refine_poses)
    rows = []
    if args.sample:
        from engine.io import transforms

        ref = transforms.read(SAMPLE / "transforms.json")
        for c in ref.cameras:
            c.name = Path(c.name).name
        rows.append(run_case("sample_24", sorted((SAMPLE / "images").glob("*.jpg")), ref, options))
        print(rows[-1], flush=True)

    root = os.environ.get("HANDFUL_DATASETS")
    wanted = [c for c in args.cases.split(",") if c]
    if wanted and not root:
        print("HANDFUL_DATASETS is not set: only --sample can run", file=sys.stderr)
    for name in wanted if root else []:
        dataset, choose = ACCEPTANCE_CASES[name]
        d = Path(root) / dataset
        rows.append(run_case(name, choose(d), read_reference_rig(d / "gt_colmap_text", d / "images"), options))
        print(rows[-1], flush=True)

    header = ["case", "photos", "placed", "rot_med_deg", "centre_max_rel", "rot_med_refined", "poses_s", "train_s", "it_per_s",
              "psnr_init", "psnr", "ssim", "gaussians", "total_s", "cpu_s", "peak_mb", "error"]
    print_table(f"reconstruct ({args.preset}; PSNR/SSIM on the training views; psnr_init = untrained baseline)",
                header, [[r.get(h) for h in header] for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
