"""Sparse-view priors on and off, through the job (engine.job, the path of ``reconstruct``): 3 training
photos, held-out PSNR / SSIM, seconds per stage, every setting side by side in one run.

    HANDFUL_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/sparse_bench.py \\
        [--cases fern,temple,fountain] [--levels off,fast,full] [--ablations depth,dropout,...]
        [--without hull] [--estimated fast] [--preset preview] [--scale 0.5] [--iterations N] [--seeds 0,1,2]
        [--pose-fit-steps 300] [--work DIR]

Protocol (LLFF few-view): photos in name order, every 8th held out, 3 training photos spread evenly over
the rest; photos resized by ``--scale`` (0.5: fern 504x378, the half of the shared 1008x756 copies; the
other sets the same fraction); cameras from ``gt_colmap_text`` as pinhole (fern's small radial term is
dropped), given to the job with --cameras.

The job only holds photos out when it has at least 16, so the bench gives it only the 3 training photos
and scores the held-out ones itself: ``engine.metrics.evaluate`` on the job's scene.ply, with the
held-out cameras from the same gt file, at the bench's photo size, on the job's background. LPIPS is not
reported: its network weights cannot be had offline here (no registry package ships them).

Each case runs its priors settings one after another in one job folder, as a person re-running
``reconstruct`` with another ``--priors`` would: the job re-runs only the stages whose settings changed,
and ``report.json``'s timings give each stage's seconds where it was measured. ``--ablations`` names parts
to leave out of ``fast`` one at a time (``--without-prior``). ``--estimated LEVEL`` adds a row per case with
the cameras estimated by Handful from the same 3 photos (no --cameras). Times are on a shared machine:
compare them only as ratios within one run.

Columns of the held-out scores (``benchmarks/_held_out.py`` has the why of each):
- PSNR / SSIM: given rows render the gt held-out cameras. Estimated rows render them carried into the
  estimated frame by the similarity fitted to the 3 training cameras' orientations and centres, with the
  lens (focal length, principal point) Handful estimated for the same camera; fitted to the training
  cameras as training refined them, where it did.
- PSNR fit / SSIM fit: the same after test-time pose fitting: each held-out camera's pose (6 numbers) is
  fitted to its photo with the scene fixed, ``--pose-fit-steps`` steps (the pose-free papers' protocol).
  On the estimated row and on the given rows of the same priors level, so the two compare like with like.
- PSNR old: the estimated row as this bench scored it before: a similarity fitted to the 3 training camera
  centres only (ill-posed for 3 nearly collinear forward-facing cameras) and the gt lens.
- rot° cen% f%: the estimated training cameras against gt after the orientation-and-centre fit: median
  rotation error in degrees, median centre error in % of the gt centres' spread, focal length error in %.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _held_out as held_out  # noqa: E402
from _machine import print_table  # noqa: E402

from engine import events as ev  # noqa: E402
from engine.errors import HandfulError  # noqa: E402
from engine.ingest import load_image  # noqa: E402
from engine.io import colmap, load_scene  # noqa: E402
from engine.job import JobOptions, run_job  # noqa: E402
from engine.metrics import evaluate  # noqa: E402
from engine.priors.reference import llff_split  # noqa: E402
from engine.scene import Camera, CameraRig  # noqa: E402

CASES = {"fern": "llff_fern", "temple": "middlebury_templeSR", "fountain": "strecha_fountain_p11"}
TRAIN_PHOTOS = 3
STAGE_COLUMNS = ("poses", "depth", "init", "train", "repair", "evaluate")


@dataclasses.dataclass
class Case:
    name: str
    photos: Path  # the training photos, resized
    cameras: Path  # the gt cameras as a pinhole COLMAP text model (original size)
    train: list[Camera]  # gt training cameras at the bench's size
    test: list[Camera]  # gt held-out cameras at the bench's size
    test_images: list[np.ndarray]


def prepare(key: str, datasets: Path, scale: float, work: Path) -> Case:
    folder = datasets / CASES[key]
    if not (folder / "gt_colmap_text").is_dir():
        raise SystemExit(f"{folder}: no gt_colmap_text (is HANDFUL_DATASETS right?)")
    rig = colmap.read(folder / "gt_colmap_text")
    pinhole = [dataclasses.replace(c, distortion=None) for c in rig.cameras if (folder / "images" / c.name).is_file()]
    by_name = {c.name: c for c in pinhole}
    train_names, test_names = llff_split(list(by_name), TRAIN_PHOTOS)
    photos, cams_dir = work / key / "photos", work / key / "cameras"
    photos.mkdir(parents=True, exist_ok=True)
    colmap.write_text(CameraRig(pinhole), cams_dir)

    def sized(name: str) -> tuple[Camera, np.ndarray]:
        image = cv2.imread(str(folder / "images" / name), cv2.IMREAD_COLOR)
        w, h = round(image.shape[1] * scale), round(image.shape[0] * scale)
        return by_name[name].resized(w, h), cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

    train = []
    for name in train_names:
        cam, image = sized(name)
        cv2.imwrite(str(photos / name), image)
        train.append(cam)
    test, test_images = [], []
    for name in test_names:
        cam, image = sized(name)
        path = work / key / "held_out" / name
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), image)
        test.append(cam)
        test_images.append(path)
    return Case(key, photos, cams_dir, train, test, test_images)


def score(out: Path, case: Case, report: dict, *, estimated: bool, fit_steps: int) -> dict:
    """Held-out PSNR / SSIM of the job's scene (see the docstring's columns); the estimated figures of the
    training cameras for an estimated row."""
    background = tuple(report["background"]["rgb"])
    images = [load_image(p, background=background) for p in case.test_images]
    scene = load_scene(out / "scene.ply")
    cams = held_out.aligned(case.train, case.test, out) if estimated else case.test
    metrics = evaluate(scene, cams, images, background=background)
    got = {"psnr": metrics["psnr"], "ssim": metrics["ssim"]}
    if fit_steps:
        train = (held_out.estimated_training_cameras(out, [c.name for c in case.train], True) if estimated
                 else case.train)
        fit = evaluate(scene, held_out.fitted(scene, cams, images, train, background, fit_steps), images,
                       background=background)
        got.update(psnr_fit=fit["psnr"], ssim_fit=fit["ssim"])
    if estimated:
        got["psnr_old"] = evaluate(scene, held_out.old_alignment(case.train, case.test, out), images,
                                   background=background)["psnr"]
        got["pose"] = held_out.training_pose_errors(case.train, out)
    return got


class StageClock:
    """CPU seconds of this process (every thread) per job stage, from the job's stage events: on a shared
    machine wall seconds say how busy it was, CPU seconds what the stage costs."""

    def __init__(self):
        self.cpu: dict[str, float] = {}
        self._stage, self._since = None, 0.0

    def __call__(self, event) -> None:
        if isinstance(event, ev.StageStarted):
            self._stage, self._since = event.stage, time.process_time()
            print(f"    {time.strftime('%H:%M:%S')} {event.stage}", flush=True)
        elif isinstance(event, ev.StageFinished) and self._stage == event.stage:
            self.cpu[event.stage] = round(self.cpu.get(event.stage, 0.0) + time.process_time() - self._since, 1)
            self._stage = None


def run_row(case: Case, out: Path, label: str, options: JobOptions, *, estimated: bool = False,
            fit_steps: int = 0) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    row = {"case": case.name, "cameras": "estimated" if estimated else "given", "priors": label}
    clock = StageClock()
    try:
        result = run_job([case.photos], out, options, emit=clock)
        metrics = score(out, case, result.report, estimated=estimated, fit_steps=fit_steps)
    except HandfulError as e:
        return {**row, "error": str(e), "wall": time.perf_counter() - started}
    timings, priors = result.report["timings"], result.report.get("priors", {})
    return {**row, **metrics,
            "train_psnr": result.report["eval"]["psnr"], "gaussians": result.report["num_gaussians"],
            "ran": priors.get("ran", []), "stages": {k: timings.get(k) for k in STAGE_COLUMNS},
            "total": timings.get("total"), "wall": time.perf_counter() - started,
            "cpu": {k: clock.cpu.get(k) for k in STAGE_COLUMNS if timings.get(k) is not None},
            "cpu_total": round(time.process_time() - cpu_started, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="fern,temple,fountain")
    ap.add_argument("--levels", default="off,fast,full")
    ap.add_argument("--ablations", default="", help="parts left out of fast, one row each (e.g. depth,dropout)")
    ap.add_argument("--estimated", default="", metavar="LEVEL", help="add a row per case with estimated cameras")
    ap.add_argument("--without", default="", help="parts left out of every --levels row (e.g. hull), as --without-prior")
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--seeds", default="0", help="seeds of the starting points and training, one row each "
                    "(a few photos make the result swing with the draw: compare means)")
    ap.add_argument("--pose-fit-steps", type=int, default=300, metavar="N",
                    help="test-time pose fit of each held-out camera, N steps (0: no 'fit' columns)")
    ap.add_argument("--work", type=Path, default=None, help="keep the job folders here (default: a temporary one)")
    args = ap.parse_args(argv)
    datasets = Path(os.environ.get("HANDFUL_DATASETS", ""))
    if not datasets.is_dir():
        raise SystemExit("set HANDFUL_DATASETS to the folder of the shared photo sets")
    work = args.work or Path(tempfile.mkdtemp(prefix="sparse_bench_"))
    common = dict(preset=args.preset, iterations=args.iterations, eval_every=0, group=False, seed=0)
    seeds = [int(x) for x in args.seeds.split(",") if x]
    without = tuple(x for x in args.without.split(",") if x)

    def fit_steps(level: str) -> int:  # the given rows an estimated row is compared with get the same fit
        return args.pose_fit_steps if level == args.estimated else 0

    rows = []
    for key in [k for k in args.cases.split(",") if k]:
        case = prepare(key, datasets, args.scale, work)
        out = work / key / "job"
        for level in [x for x in args.levels.split(",") if x]:
            for seed in seeds:
                label = (level if seeds == [0] else f"{level} seed {seed}") + "".join(f" -{p}" for p in without)
                options = JobOptions(cameras=case.cameras, priors=level, without_priors=without,
                                     **{**common, "seed": seed})
                rows.append(run_row(case, out, label, options, fit_steps=fit_steps(level)))
                _progress(rows, args)
        for part in [x for x in args.ablations.split(",") if x]:
            options = JobOptions(cameras=case.cameras, priors="fast", without_priors=(part,), **common)
            rows.append(run_row(case, out, f"fast -{part}", options))
            _progress(rows, args)
        if args.estimated:
            rows.append(run_row(case, work / key / "job_estimated", args.estimated,
                                JobOptions(priors=args.estimated, **common), estimated=True,
                                fit_steps=args.pose_fit_steps))
            _progress(rows, args)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _progress(rows: list[dict], args) -> None:
    """The table so far, after every row (a run cut short still leaves its rows)."""
    row = rows[-1]
    said = f"failed: {row['error']}" if "error" in row else f"held-out {row['psnr']:.2f} dB"
    print(f"  {row['case']} {row['priors']} ({row['cameras']} cameras): {said}, {row['wall']:.0f} s", flush=True)
    _print(rows, args)


def _rounded(value, digits):
    return None if value is None else round(value, digits)


def _print(rows: list[dict], args) -> None:
    off = {r["case"]: r["psnr"] for r in rows
           if r["priors"] in ("off", "off seed 0") and r["cameras"] == "given" and "psnr" in r}
    header = ["case", "cameras", "priors", "PSNR", "SSIM", "PSNR fit", "SSIM fit", "PSNR old", "rot° cen% f%",
              "dPSNR vs off", "train PSNR", "splats",
              *[f"{s} s" for s in STAGE_COLUMNS], "total s", "CPU s by stage", "CPU s", "ran (backends below)"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["case"], r["cameras"], r["priors"], "failed", r["error"][:60]])
            continue
        base = off.get(r["case"])
        pose = r.get("pose")
        table.append([r["case"], r["cameras"], r["priors"], round(r["psnr"], 2), round(r["ssim"], 3),
                      _rounded(r.get("psnr_fit"), 2), _rounded(r.get("ssim_fit"), 3), _rounded(r.get("psnr_old"), 2),
                      pose and f"{pose['rot_deg']:.2f} {pose['centre_pct']:.1f} {pose['focal_pct']:+.1f}",
                      None if base is None else round(r["psnr"] - base, 2), round(r["train_psnr"], 2),
                      r["gaussians"], *[r["stages"][s] for s in STAGE_COLUMNS], r["total"],
                      " ".join(f"{k} {v:g}" for k, v in r["cpu"].items() if v is not None), r["cpu_total"],
                      " + ".join(part.split(":")[0] for part in r["ran"]) or "-"])
    size = f"photos at {args.scale:g} of the shared copies"
    print("  PSNR/SSIM: given rows with the gt held-out cameras; estimated rows with them carried into the estimated "
          "frame by the training cameras' orientations and centres, with the estimated lens. fit: after "
          f"{args.pose_fit_steps} steps of test-time pose fitting per held-out view, scene fixed. old: the earlier "
          "placement (centres-only fit, gt lens). rot° cen% f%: the estimated training cameras against gt "
          "(median rotation, median centre error in % of spread, focal length error)")
    print(f"  load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print_table(f"sparse-view priors, {TRAIN_PHOTOS} training photos, held-out views (LPIPS: no offline "
                f"weights), preset {args.preset}{'' if args.iterations is None else f', {args.iterations} steps'}, "
                f"{size}", header, table)
    for part in dict.fromkeys(p for r in rows for p in r.get("ran", [])):
        print(f"  {part}")


if __name__ == "__main__":
    raise SystemExit(main())
