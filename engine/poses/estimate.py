"""Camera poses from a few photos: prepares images, runs the pycolmap worker in a child process,
and turns its answer into a CameraRig for the given (full-size) images."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.errors import Cancelled, InputError, StageError
from engine.events import CancelToken, EventSink, Progress, Warning, null_sink
from engine.io.atomic import atomic_write_bytes, atomic_write_text
from engine.render.cpu_threads import usable_cores
from engine.scene import Camera, CameraRig, PointCloud

from . import FEATURE_CHOICES
from .attempts import Job, ladder

STAGE = "poses"
MAX_LONG_EDGE = 1600  # features are found on images downscaled to this long edge
SEQUENTIAL_ABOVE = 40  # "auto" matching: exhaustive up to this many photos, sequential above
WORKER_COMMAND = [sys.executable, "-m", "engine.poses.worker"]  # tests swap it for a crashing child


@dataclass
class PoseResult:
    """Cameras are named by the image file names and sized like the given images. Their intrinsics
    are the pinhole part; COLMAP's radial term is kept in ``Camera.distortion`` (images are not
    undistorted here)."""

    rig: CameraRig
    registered: list[str]
    unregistered: list[str]
    strategy: str
    attempts: list[dict] = field(default_factory=list)
    log: str = ""
    summary: str = ""  # for the person: "placed 6 of 6 photos with learned matching (...), 2,310 matches"
    choice: dict = field(default_factory=dict)  # features, matches and start pair of the kept attempt
    left_out: dict[str, str] = field(default_factory=dict)  # photo name -> why it could not be placed


def estimate_poses(
    image_paths: list[Path],
    work_dir: Path,
    *,
    matching: str = "auto",
    focal_px_hints: dict[str, float] | None = None,
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
    timeout_s: float | None = None,
    max_long_edge: int = MAX_LONG_EDGE,
    features: str = "auto",
    weights_dir: str | Path | None = None,
    learned_long_edge: int | None = None,
    learned_max_keypoints: int | None = None,
    fallback: bool = True,
) -> PoseResult:
    """``features``: "auto" (relaxed SIFT, then learned ALIKED+LightGlue for 3-12 photos when SIFT
    leaves photos out, then richer SIFT), "sift", or a learned method ("aliked", "disk", "xfeat": tried first, SIFT after it
    when it fails or its weights cannot be loaded).
    ``weights_dir``: load learned weights from this folder instead of the installed packages.
    ``fallback=False``: no SIFT attempts after the learned one (to compare matchers)."""
    image_paths = [Path(p).absolute() for p in image_paths]
    work_dir = Path(work_dir).absolute()  # the worker runs in the repository folder, not the caller's
    if matching not in ("auto", "exhaustive", "sequential"):
        raise InputError(f"unknown matching {matching!r}", hint="use 'auto', 'exhaustive' or 'sequential'")
    if features not in FEATURE_CHOICES:
        raise InputError(f"unknown features {features!r}", hint=f"use one of {', '.join(FEATURE_CHOICES)}")
    if len(image_paths) < 2:
        raise InputError(
            f"{len(image_paths)} photo(s) given; camera positions need at least 2 overlapping photos",
            hint="add more photos of the same scene from slightly different positions",
        )
    names = [p.name for p in image_paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(
            f"several photos share the file name {duplicates[0]!r}; cameras are named by file name",
            image_paths[names.index(duplicates[0])], "rename the photos so that each name is used once",
        )
    if matching == "auto":
        matching = "sequential" if len(image_paths) > SEQUENTIAL_ABOVE else "exhaustive"
    cancel = cancel or CancelToken()
    started = time.monotonic()

    image_dir = work_dir / "images"
    emit(Progress(STAGE, 0, 1, "preparing photos"))
    sizes, scales = _prepare_images(image_paths, image_dir, max_long_edge, cancel)
    given = dict(focal_px_hints or {})
    for path in image_paths:
        if path.name not in given:
            exif_focal = _exif_focal_px(path, *sizes[path.name])
            if exif_focal:
                given[path.name] = exif_focal
    hints = {}
    for name, focal in given.items():
        if name in scales and focal and focal > 0:
            hints[name] = float(focal) * scales[name]
    job = Job(
        image_dir=str(image_dir), names=names, work_dir=str(work_dir), matching=matching,
        focal_px=hints, num_threads=usable_cores(), features=features,
        weights_dir=None if weights_dir is None else str(weights_dir), fallback=fallback,
    )
    if learned_long_edge is not None:
        job.learned_long_edge = int(learned_long_edge)
    if learned_max_keypoints is not None:
        job.learned_max_keypoints = int(learned_max_keypoints)
    job_path = work_dir / "job.json"
    atomic_write_text(job_path, json.dumps(asdict(job)))
    (work_dir / "result.json").unlink(missing_ok=True)

    remaining = None if timeout_s is None else max(1.0, timeout_s - (time.monotonic() - started))
    attempts_live: list[dict] = []
    log_path = work_dir / "worker.log"
    plan = [a.name for a in ladder(len(names), bool(hints), features, fallback)]
    returncode = _run_worker(job_path, log_path, emit, cancel, remaining, attempts_live, plan)
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    result_path = work_dir / "result.json"
    if returncode != 0 or not result_path.exists():
        raise StageError(
            f"the pose solver stopped unexpectedly (exit code {returncode}) after "
            f"{len(attempts_live)} attempt(s); the app itself is unaffected",
            log_path, "try again with fewer or smaller photos, and report the log if it happens again",
        )
    answer = json.loads(result_path.read_text())
    return _to_result(answer, image_paths, sizes, log, emit)


def _exif_focal_px(path: Path, width: int, height: int) -> float | None:
    """Focal length in pixels from the 35 mm-equivalent focal in EXIF (36 mm across the long edge)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            exif = image.getexif().get_ifd(0x8769)  # Exif sub-IFD
        f35 = float(exif.get(0xA405) or 0)  # FocalLengthIn35mmFilm
    except Exception:  # no EXIF, or EXIF a library cannot parse: simply no hint
        return None
    return f35 / 36.0 * max(width, height) if f35 > 0 else None


def _prepare_images(paths, image_dir: Path, max_long_edge: int, cancel: CancelToken):
    """Writes the worker's copies (downscaled to ``max_long_edge``); returns original sizes and
    the scale from original to worker pixels per name."""
    image_dir.mkdir(parents=True, exist_ok=True)
    sizes, scales = {}, {}
    for path in paths:
        cancel.raise_if_cancelled()
        if not path.is_file():
            raise InputError("photo not found", path, "check the path, or remove it from the list")
        # Pixels as stored: EXIF orientation is applied by ingest before poses are solved.
        image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise InputError("cannot read this photo", path, "use JPEG, PNG or TIFF images")
        h, w = image.shape[:2]
        scale = min(1.0, max_long_edge / max(w, h))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise InputError("cannot re-encode this photo", path)
        atomic_write_bytes(image_dir / path.name, data.tobytes())
        sizes[path.name] = (w, h)
        scales[path.name] = image.shape[1] / w
    return sizes, scales


def _run_worker(job_path, log_path, emit, cancel, timeout_s, attempts, plan) -> int:
    # Progress units: 3 per attempt (features, matching, mapping) — the last attempts are rarely needed.
    total = 3 * len(plan)
    done = 0
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", str(usable_cores()))
    with open(log_path, "wb") as log_file:
        child = subprocess.Popen(
            [*WORKER_COMMAND, str(job_path)], stdout=subprocess.PIPE, stderr=log_file,
            cwd=root, env=env, start_new_session=True,
        )
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(child.stdout, lines), daemon=True)
        reader.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                if cancel.cancelled:
                    _kill(child)
                    raise Cancelled("pose estimation stopped before it finished")
                if deadline is not None and time.monotonic() > deadline:
                    _kill(child)
                    raise StageError(
                        f"pose estimation took longer than {timeout_s:.0f} s and was stopped",
                        hint="use fewer or smaller photos, or allow more time",
                    )
                try:
                    line = lines.get(timeout=0.1)
                except queue.Empty:
                    if child.poll() is not None and not reader.is_alive():
                        break
                    continue
                if line is None:
                    child.wait()
                    break
                msg = _parse(line)
                if msg is None:
                    continue
                kind = msg.get("type")
                if kind == "step" and not msg.get("minor"):
                    done = min(total - 1, done + 1)
                    emit(Progress(STAGE, done, total, msg.get("message", "")))
                elif kind == "step":
                    emit(Progress(STAGE, done, total, msg.get("message", "")))
                elif kind == "attempt_started":
                    done = 3 * int(msg.get("index", 0))
                elif kind == "attempt":
                    attempts.append({k: v for k, v in msg.items() if k != "type"})
                elif kind == "done":  # 100% only once the cameras are known to be usable (_to_result)
                    emit(Progress(STAGE, total - 1, total, "solver finished; checking the cameras it placed"))
        except BaseException:
            _kill(child)
            raise
        return child.wait()


def _pump(stream, lines: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode("utf-8", errors="replace"))
    lines.put(None)


def _parse(line: str) -> dict | None:
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) else None


def _kill(child: subprocess.Popen) -> None:
    """Ends the worker and anything it started (it leads its own session/process group)."""
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=2)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _to_result(answer: dict, image_paths, sizes, log: str, emit) -> PoseResult:
    placed = answer.get("cameras") or {}
    cameras = []
    for path in image_paths:
        info = placed.get(path.name)
        if info is None:
            continue
        cam = _camera_from_worker(path, info)
        cameras.append(cam.resized(*sizes[path.name]))
    registered = [c.name for c in cameras]
    unregistered = [p.name for p in image_paths if p.name not in placed]
    attempts = answer.get("attempts", [])
    if len(registered) < 2:
        tried = ", ".join(f"{a['name']}: {a['registered']}" for a in attempts) or "none"
        raise StageError(
            f"only {len(registered)} of {len(image_paths)} photos could be placed (attempts and photos "
            f"placed: {tried})",
            image_paths[0].parent,
            "take photos with more overlap (each photo should share most of its view with another), "
            "move sideways between shots rather than turning on the spot, and avoid blurry or plain "
            "surfaces",
        )
    choice = answer.get("chosen") or {}
    _warn_about_learned_failures(attempts, emit, image_paths[0].parent)
    left_out = {name: _why_left_out(name, choice) for name in unregistered}
    if unregistered:
        emit(Warning(
            f"{len(unregistered)} of {len(image_paths)} photos could not be placed and are left out: "
            + "; ".join(f"{name} {left_out[name]}" for name in unregistered[:5])
            + (" ..." if len(unregistered) > 5 else ""),
            path=str(image_paths[0].parent),
        ))
    summary = _summary(len(registered), len(image_paths), choice)
    emit(Progress(STAGE, 1, 1, summary))
    points = None
    pts = answer.get("points")
    if pts and pts.get("xyz"):
        points = PointCloud(
            xyz=np.array(pts["xyz"]), rgb=np.array(pts["rgb"]) / 255.0,
            error=np.array(pts["error"]), track_length=np.array(pts["track_length"]),
        )
    return PoseResult(
        rig=CameraRig(cameras, points), registered=registered, unregistered=unregistered,
        strategy=answer.get("strategy") or "", attempts=attempts, log=log,
        summary=summary, choice=choice, left_out=left_out,
    )


# A photo whose best partner has fewer verified matches than this shares too little with the others.
FEW_MATCHES = 30


def _why_left_out(name: str, choice: dict) -> str:
    checked = (choice.get("left_out") or {}).get(name)
    if checked:  # placed by the solver, then not confirmed by the consistency check
        return f"could not be placed reliably: {checked}"
    best, partner = (choice.get("best_partner") or {}).get(name) or [0, None]
    if not best or partner is None:
        return "shares no verified matches with the others"
    if best < FEW_MATCHES:
        return f"shares too little with the others (at most {best} verified matches, with {partner})"
    return (f"matches {partner} ({best} verified matches) but its position could not be fitted with "
            "the others'")


def _summary(placed: int, total: int, choice: dict) -> str:
    features = choice.get("features") or "SIFT"
    how = "SIFT features" if features == "SIFT" else f"learned matching ({features})"
    matches = choice.get("verified_matches")
    tail = f", {matches:,} matches" if matches else ""
    return f"placed {placed} of {total} photos with {how}{tail}"


def _warn_about_learned_failures(attempts: list[dict], emit, folder: Path) -> None:
    """A learned attempt that could not run (weights missing or corrupt, or the model failed):
    the person is told, and the SIFT attempts after it did the work."""
    for attempt in attempts:
        if attempt.get("settings", {}).get("features", "sift") != "sift" and attempt.get("error"):
            emit(Warning(
                f"learned matching could not be used, SIFT features were used instead: {attempt['error']}",
                path=str(folder),
            ))


def _camera_from_worker(path: Path, info: dict) -> Camera:
    model, p = info["model"], info["params"]
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
        distortion = [p[3], p[4] if model == "RADIAL" else 0.0, 0, 0, 0] if model != "SIMPLE_PINHOLE" else None
    else:  # PINHOLE / OPENCV
        fx, fy, cx, cy = p[:4]
        distortion = [*p[4:8], 0.0] if model == "OPENCV" else None
    return Camera(
        R=np.array(info["R"]), t=np.array(info["t"]), fx=fx, fy=fy, cx=cx, cy=cy,
        width=info["width"], height=info["height"], name=path.name, image_path=path,
        camera_id=info["camera_id"], distortion=distortion,
    )
