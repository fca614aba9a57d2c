"""Sparse-view pose estimation: plain pycolmap vs our ladder with SIFT and each learned matcher.

    HANDFUL_DATASETS=/path/to/datasets .venv/bin/python benchmarks/poses_bench.py \
        [--methods plain,sift,aliked,disk,xfeat,auto] [--long-edge 1024] [--keypoints 2048] \
        [--before CHECKOUT] [case ...]

Cases: every dataset with 3, 4 and 6 photos spread over it (``engine.poses.views.BENCHMARK_CASES``).
Per case and method it prints photos placed, median rotation error (degrees), median and largest
camera-centre error (% of the reference cameras' spread) after similarity alignment, and seconds.
"plain" is extract_features + match_exhaustive + incremental_mapping with every option at
pycolmap's default, on the full-size photos, in this process; "sift" is our ladder with SIFT only;
"aliked", "disk", "xfeat" are our learned attempt alone (no SIFT fallback), so each column shows
what that matcher does; "auto" is the pose stage as a job runs it (its default ladder).
``--before CHECKOUT``: each learned method also runs from another checkout of the project (e.g. a
``git worktree`` of the previous release) in a child process, as ``METHOD@before``, right before
this checkout's run of the same case: the before/after comparison in one run, at the same load.
``time_vs_plain`` is the ratio to the plain run of the same case, same moment.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.errors import HandfulError  # noqa: E402
from engine.poses import estimate_poses, pose_errors  # noqa: E402
from engine.poses.reference import camera_from_pycolmap  # noqa: E402
from engine.poses.views import BENCHMARK_CASES, reference_cameras  # noqa: E402
from engine.scene import Camera, CameraRig  # noqa: E402

METHODS = ("plain", "sift", "aliked", "disk", "xfeat", "auto")
# Runs estimate_poses of another checkout (argv: checkout, job as JSON) and prints its cameras.
BEFORE_RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from engine.errors import HandfulError
from engine.poses import estimate_poses
job = json.loads(sys.argv[2])
try:
    result = estimate_poses([Path(p) for p in job["photos"]], Path(job["work"]), **job["options"])
except HandfulError as exc:
    print(json.dumps({"error": exc.message[:60]}))
    sys.exit(0)
cameras = [{"name": c.name, "R": c.R.tolist(), "t": c.t.tolist()} for c in result.rig.cameras]
print(json.dumps({"cameras": cameras, "strategy": f"{result.strategy}: {result.summary}"}))
"""
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


def _options(method: str, args) -> dict:
    if method == "auto":
        return {"timeout_s": args.timeout}
    return {"features": method, "fallback": False, "timeout_s": args.timeout,
            "learned_long_edge": args.long_edge, "learned_max_keypoints": args.keypoints}


def _run(method: str, photos: list[Path], work: Path, args) -> tuple[CameraRig, str]:
    if method == "plain":
        return plain_pycolmap(photos, work), "defaults"
    if method.endswith("@before"):
        return _run_before(method.split("@")[0], photos, work, args)
    try:
        result = estimate_poses(photos, work / method, **_options(method, args))
    except HandfulError as exc:
        return CameraRig([]), f"failed: {exc.message[:60]}"
    runs = [r for a in result.attempts for r in a.get("runs", [])]
    slowest = f"; slowest mapping run {max(r[2] for r in runs):.1f} s of {len(runs)}" if runs else ""
    return result.rig, f"{result.strategy}: {result.summary}{slowest}"


def _run_before(method: str, photos: list[Path], work: Path, args) -> tuple[CameraRig, str]:
    import json
    import subprocess

    job = {"photos": [str(p) for p in photos], "work": str(work / "before"), "options": _options(method, args)}
    done = subprocess.run([sys.executable, "-c", BEFORE_RUNNER, str(Path(args.before).resolve()), json.dumps(job)],
                          cwd=args.before, capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "error" in answer:
        return CameraRig([]), f"failed: {answer['error']}"
    cameras = [Camera(R=np.array(c["R"]), t=np.array(c["t"]), fx=1.0, fy=1.0, cx=0.0, cy=0.0, width=1, height=1,
                      name=c["name"]) for c in answer["cameras"]]
    return CameraRig(cameras), answer["strategy"]


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
    parser.add_argument("--before", help="another checkout of the project: its learned methods run too, as METHOD@before")
    args = parser.parse_args(argv)
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("set HANDFUL_DATASETS to the datasets folder", file=sys.stderr)
        return 2
    methods = args.methods.split(",")
    if args.before:
        methods = [m for name in methods for m in ((f"{name}@before", name) if name not in ("plain", "sift") else (name,))]
    rows = []
    print(f"load average at start: {os.getloadavg()}", flush=True)
    for case in args.cases or list(BENCHMARK_CASES):
        folder_name, choose = BENCHMARK_CASES[case]
        folder = Path(root) / folder_name
        photos = choose(folder)
        reference = reference_cameras(folder)
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
