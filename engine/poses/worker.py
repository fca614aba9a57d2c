"""Pose worker: ``python -m engine.poses.worker JOB.json``, run as a child process.

pycolmap aborts the whole process on some inputs and options, so it never runs in the app's
process. The worker prints one JSON object per line on stdout (progress, attempt summaries) and
writes ``result.json`` (cameras of the best reconstruction) next to the job file. pycolmap's own
log goes to stderr, which the parent keeps in a log file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.io.atomic import atomic_write_text


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reconstruction_to_dict(rec, keep: list[str] | None = None) -> dict:
    """Cameras and points of ``rec``; only the photos in ``keep`` (those the consistency check
    confirmed) and the points that two of them see, when given."""
    cameras = {}
    kept_ids = set()
    for image_id in rec.reg_image_ids():
        image = rec.images[image_id]
        if keep is not None and image.name not in keep:
            continue
        kept_ids.add(image_id)
        cam = rec.cameras[image.camera_id]
        m = image.cam_from_world().matrix()
        cameras[image.name] = {
            "model": cam.model.name,
            "params": [float(v) for v in cam.params],
            "width": int(cam.width),
            "height": int(cam.height),
            "camera_id": int(image.camera_id),
            "R": m[:, :3].tolist(),
            "t": m[:, 3].tolist(),
        }
    xyz, rgb, err, track = [], [], [], []
    for point in rec.points3D.values():
        if sum(1 for el in point.track.elements if el.image_id in kept_ids) < 2:
            continue
        xyz.append([float(v) for v in point.xyz])
        rgb.append([int(v) for v in point.color])
        err.append(float(point.error))
        track.append(int(point.track.length()))
    return {"cameras": cameras, "points": {"xyz": xyz, "rgb": rgb, "error": err, "track_length": track}}


def _choice(summary: dict | None) -> dict | None:
    """What the kept reconstruction was made with (for poses.json and the message to the person)."""
    if summary is None:
        return None
    keys = ("name", "features", "device", "verified_matches", "verified_pairs", "best_partner", "init_pair",
            "focal_factor", "confirmed", "explained_fraction", "left_out")
    return {k: summary.get(k) for k in keys}


def choice_key(summary: dict) -> tuple:
    """How attempts are compared: photos the consistency check confirms, then the fraction of
    all verified matches the solution explains (a fraction, since each feature type finds its own
    number of matches) - never the photos placed, which a wrong solution can maximise."""
    return (summary.get("confirmed") or 0, summary.get("explained_fraction") or 0.0)


def run(job_path: Path) -> int:
    import pycolmap

    from .attempts import Job, ladder, run_attempt

    pycolmap.logging.minloglevel = 2  # warnings and errors only
    job = Job(**json.loads(job_path.read_text()))
    steps = ladder(len(job.names), has_focal_hint=bool(job.focal_px), features=job.features, fallback=job.fallback)
    _emit({"type": "plan", "attempts": [s.name for s in steps]})
    best, best_summary, summaries = None, None, []
    for index, attempt in enumerate(steps):
        _emit({"type": "attempt_started", "index": index, "name": attempt.name})
        rec, summary = run_attempt(job, attempt, _emit, last=index == len(steps) - 1)
        summaries.append(summary)
        _emit({"type": "attempt", **summary})
        if rec is not None and (best is None or choice_key(summary) > choice_key(best_summary)):
            best, best_summary = rec, summary
        if best is not None and best_summary.get("confirmed") == len(job.names):
            break
    result = {"strategy": best_summary and best_summary["name"], "attempts": summaries, "chosen": _choice(best_summary)}
    keep = (best_summary.get("consistency") or {}).get("supported") if best is not None else None
    result.update(_reconstruction_to_dict(best, keep) if best is not None else {"cameras": {}, "points": None})
    atomic_write_text(job_path.with_name("result.json"), json.dumps(result))
    _emit({"type": "done"})
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m engine.poses.worker JOB.json\n")
        sys.exit(2)
    sys.exit(run(Path(sys.argv[1])))
