"""Sparse-view pose estimation: ours vs plain pycolmap defaults on the acceptance cases.

    HANDFUL_DATASETS=/path/to/datasets .venv/bin/python benchmarks/poses_bench.py [case ...]

Prints photos placed, median rotation error (degrees), largest camera-centre error (fraction of
the reference cameras' spread) after similarity alignment, and seconds, for both methods, with
the time ratio ours/plain. "Plain" is extract_features + match_exhaustive + incremental_mapping
with every option at pycolmap's default, on the full-size photos, in this process.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.errors import StageError  # noqa: E402
from engine.poses import estimate_poses, pose_errors, read_reference_rig  # noqa: E402
from engine.poses.reference import camera_from_pycolmap  # noqa: E402
from engine.poses.views import ACCEPTANCE_CASES  # noqa: E402
from engine.scene import CameraRig  # noqa: E402


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


def _errors(rig: CameraRig, reference: CameraRig) -> tuple:
    if len(rig) < 2:
        return None, None
    e = pose_errors(rig, reference)
    return round(e["median_rot_deg"], 3), round(e["max_center_rel"], 4)


def main(argv: list[str]) -> int:
    root = os.environ.get("HANDFUL_DATASETS")
    if not root:
        print("set HANDFUL_DATASETS to the datasets folder", file=sys.stderr)
        return 2
    cases = argv or list(ACCEPTANCE_CASES)
    rows = []
    for case in cases:
        folder_name, choose = ACCEPTANCE_CASES[case]
        folder = Path(root) / folder_name
        photos = choose(folder)
        reference = read_reference_rig(folder / "gt_colmap_text")
        with tempfile.TemporaryDirectory(prefix="poses_bench_") as tmp:
            work = Path(tmp)
            start = time.perf_counter()
            plain = plain_pycolmap(photos, work)
            plain_s = time.perf_counter() - start
            start = time.perf_counter()
            try:
                ours = estimate_poses(photos, work / "ours")
                ours_rig, strategy = ours.rig, ours.strategy
            except StageError as exc:
                ours_rig, strategy = CameraRig([]), f"failed: {exc.message[:40]}"
            ours_s = time.perf_counter() - start
        n = len(photos)
        rows.append([case, "plain", f"{len(plain)}/{n}", *_errors(plain, reference), round(plain_s, 1), "", "defaults"])
        rows.append([case, "ours", f"{len(ours_rig)}/{n}", *_errors(ours_rig, reference), round(ours_s, 1),
                     round(ours_s / plain_s, 2), strategy])
        print(f"{case}: done", file=sys.stderr, flush=True)
    print_table(
        "pose estimation from few photos (median rot err deg, max centre err / reference spread)",
        ["case", "method", "placed", "rot_med_deg", "centre_max_rel", "seconds", "time_vs_plain", "strategy"],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
