"""Sparse-view pose estimation: plain pycolmap vs our ladder with SIFT and each learned matcher.

    HANDFUL_DATASETS=/path/to/datasets .venv/bin/python benchmarks/poses_bench.py \
        [--methods plain,sift,aliked,disk,xfeat] [--long-edge 1024] [--keypoints 2048] [case ...]

Cases: every dataset with 3, 4 and 6 photos spread over it (``engine.poses.views.BENCHMARK_CASES``).
Per case and method it prints photos placed, median rotation error (degrees), median and largest
camera-centre error (% of the reference cameras' spread) after similarity alignment, and seconds.
"plain" is extract_features + match_exhaustive + incremental_mapping with every option at
pycolmap's default, on the full-size photos, in this process; "sift" is our ladder with SIFT only;
"aliked", "disk", "xfeat" are our learned attempt alone (no SIFT fallback), so each column shows
what that matcher does. ``time_vs_plain`` is the ratio to the plain run of the same case, same moment.
A row is printed as each case finishes (the table is printed again at the end), with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.errors import HandfulError  # noqa: E402
from engine.poses import estimate_poses, pose_errors, read_reference_rig  # noqa: E402
from engine.poses.reference import camera_from_pycolmap  # noqa: E402
from engine.poses.views import BENCHMARK_CASES  # noqa: E402
from engine.scene import CameraRig  # noqa: E402

METHODS = ("plain", "sift", "aliked", "disk", "xfeat")
MAX_MEDIAN_ROT_DEG, MAX_CENTRE_REL = 2.0, 0.05  # the targets
HEADER = ["case", "method", "placed", "rot_med_deg", "centre_med_%", "centre_max_%", "seconds", "time_vs_plain",
          "target", "strategy"]


def plain_pycolmap(photos: list[Path], work: Path) -> CameraRig:
    import pycolmap

    pycolmap.logging.minloglevel = 2
    image_dir = work / "plain_images"
    image_dir.mkdir(parents=True)
    for p in photos:
        shutil.copyfile(p, image_dir / p.name)
    db = work / "plain.db"
    pycolmap.extract_features(db, image_dir)
    pycolmap.match_exhaustive(db)
    recs = pycolmap.incremental_mapping(db, image_dir, work / "plain_out")
    if not recs:
        return CameraRig([])
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    return CameraRig([camera_from_pycolmap(rec.images[i], rec.cameras[rec.images[i].camera_id]) for i in rec.reg_image_ids()])


def _reference(folder: Path) -> CameraRig:
    """Reference cameras named by file name (the synthetic sets name them ``train/r_0.png``)."""
    rig = read_reference_rig(folder / "gt_colmap_text")
    for cam in rig.cameras:
        cam.name = Path(cam.name).name
    return rig


def _run(method: str, photos: list[Path], work: Path, args) -> tuple[CameraRig, str]:
    if method == "plain":
        return plain_pycolmap(photos, work), "defaults"
    try:
        result = estimate_poses(photos, work / method, features=method, fallback=False, timeout_s=args.timeout,
                                learned_long_edge=args.long_edge, learned_max_keypoints=args.keypoints)
    except HandfulError as exc:
        return CameraRig([]), f"failed: {exc.message[:60]}"
    return result.rig, f"{result.strategy}: {result.summary}"


def _row(case: str, method: str, rig: CameraRig, total: int, reference: CameraRig, seconds: float, plain_s, strategy):
    rot = centre_med = centre_max = None
    if len(rig) >= 2:
        e = pose_errors(rig, reference)
        rot, centre_med, centre_max = e["median_rot_deg"], 100 * e["median_center_rel"], 100 * e["max_center_rel"]
    met = len(rig) == total and rot is not None and rot <= MAX_MEDIAN_ROT_DEG and centre_max <= 100 * MAX_CENTRE_REL
    ratio = round(seconds / plain_s, 2) if plain_s else None
    return [case, method, f"{len(rig)}/{total}", None if rot is None else round(rot, 3),
            None if centre_med is None else round(centre_med, 2), None if centre_max is None else round(centre_max, 2),
            round(seconds, 1), ratio, "met" if met else "MISSED", strategy]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: all of {', '.join(BENCHMARK_CASES)}")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--long-edge", type=int, default=None, help="learned features' long edge (px)")
    parser.add_argument("--keypoints", type=int, default=None, help="learned keypoints per photo")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("set HANDFUL_DATASETS to the datasets folder", file=sys.stderr)
        return 2
    methods = args.methods.split(",")
    rows = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for case in args.cases or list(BENCHMARK_CASES):
        folder_name, choose = BENCHMARK_CASES[case]
        folder = Path(root) / folder_name
        photos = choose(folder)
        reference = _reference(folder)
        plain_s = None
        for method in methods:
            with tempfile.TemporaryDirectory(prefix="poses_bench_") as tmp:
                start = time.perf_counter()
                rig, strategy = _run(method, photos, Path(tmp), args)
                seconds = time.perf_counter() - start
            if method == "plain":
                plain_s = seconds
            rows.append(_row(case, method, rig, len(photos), reference, seconds, plain_s, strategy))
            print("  ".join(str(v) for v in rows[-1]) + f"  (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print_table(
        "pose estimation from few photos (median rotation error, camera-centre error in % of the reference spread)",
        HEADER, rows,
    )
    for method in methods:
        mine = [r for r in rows if r[1] == method]
        print(f"{method}: target met in {sum(r[8] == 'met' for r in mine)} of {len(mine)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
