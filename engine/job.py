"""A reconstruction job: photos in, a trained Gaussian scene out, stage by stage in a working folder.

Stages run in order; each reads the previous stage's files from the job's folder and writes its own
(atomically), then records itself as finished in ``job.json``. A failed or cancelled stage therefore keeps
everything before it, and running the same job again resumes after the last finished stage.

    ingest   images/ (working copies), ingest.json
    poses    sparse/ (COLMAP text model: cameras.txt, images.txt, points3D.txt), poses.json
    init     init.ply
    train    scene.ply, refined/ (the training cameras with refined poses, when pose refinement ran)
    evaluate report.json, previews/
    group    groups.json, and a group_id per Gaussian in scene.ply (objects from the photos' regions)
    compress scene.handful (only with ``JobOptions.compress``), its figures in report.json["compress"]

Events (``engine.events``) report progress to the CLI and the GUI alike.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import events as ev
from .errors import Cancelled, HandfulError, InputError, StageError
from .io.atomic import atomic_write_text, ensure_writable_folder
from .scene import Camera, CameraRig, GaussianScene

log = logging.getLogger(__name__)

STAGES = ("ingest", "poses", "init", "train", "evaluate", "group", "compress")
PRESETS = ("preview", "standard", "high")
STATE_FILE = "job.json"
# below this many SfM points the initialisation is topped up with random points in the cameras' view
MIN_SFM_POINTS = 2000


@dataclass
class JobOptions:
    preset: str = "auto"  # preview, standard, high; auto: Preview when training on a CPU, Standard on a GPU
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    max_images: int | None = None
    iterations: int | None = None
    cameras: Path | None = None  # known cameras (COLMAP model or transforms.json): skip pose estimation
    eval_every: int = 8  # every k-th photo is held out for evaluation (when there are enough photos)
    until: str | None = None  # stop after this stage
    max_long_edge: int = 1600  # working resolution for pose estimation
    # "auto" (the photos' own: engine.train.background) or an RGB triple in [0, 1] to train and render on
    background: str | tuple[float, float, float] = "auto"
    seed: int = 0
    refine_poses: bool | None = None  # learn pose corrections while training (None: the preset decides)
    compress: str | None = None  # end with a compression stage at this quality (low / medium / high)
    group: bool = True  # split the trained scene into objects (the group stage)
    masks: str = "regions"  # the group stage's 2D masks: "regions" (offline) or "sam" (needs sam_model)
    sam_model: Path | None = None  # a local Segment Anything checkpoint folder

    def validate(self) -> "JobOptions":
        if self.preset not in PRESETS + ("auto",):
            raise InputError(f"unknown preset {self.preset!r}", hint=f"choose one of {', '.join(PRESETS)}")
        if self.until is not None and self.until not in STAGES:
            raise InputError(f"unknown stage {self.until!r} for --until", hint=f"choose one of {', '.join(STAGES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unknown device {self.device!r}", hint="choose auto, cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("CUDA was requested but no CUDA device is available", hint="use --device cpu")
        if self.compress is not None and self.compress not in ("low", "medium", "high"):
            raise InputError(f"unknown compression quality {self.compress!r}", hint="choose low, medium or high")
        if self.eval_every is not None and self.eval_every < 0:
            raise InputError("--eval-every must be 0 (no hold-out) or a positive number")
        from .train.background import check_background

        self.background = check_background(self.background)
        from .grouping.masks import MASK_BACKENDS

        if self.masks not in MASK_BACKENDS:
            raise InputError(f"unknown mask source {self.masks!r}", hint=f"choose one of {', '.join(MASK_BACKENDS)}")
        return self

    def fingerprint(self, stage: str) -> dict:
        """The options a stage's output depends on: a change invalidates it (and every later stage)."""
        keys = {
            "ingest": ("max_images", "max_long_edge"),
            "poses": ("cameras",),
            "init": ("seed", "preset"),
            "train": ("preset", "iterations", "eval_every", "background", "device", "seed", "refine_poses"),
            "evaluate": (),
            "compress": ("compress", "background"),
            "group": ("group", "masks", "sam_model"),
        }[stage]
        return {k: _jsonable(getattr(self, k)) for k in keys}


@dataclass
class JobResult:
    out_dir: Path
    scene_path: Path | None = None
    scene: GaussianScene | None = None
    cameras: list[Camera] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    stopped_after: str | None = None


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return list(v)
    return v


class _StageContext:
    def __init__(self, job: "Job", stage: str):
        self.job, self.stage = job, stage

    def progress(self, done, total, message=""):
        self.job.emit(ev.Progress(self.stage, done, total, message))


class Job:
    """Runs the stages for one set of inputs into one working folder."""

    def __init__(
        self,
        inputs: list[Path],
        out_dir: Path,
        options: JobOptions | None = None,
        *,
        emit: ev.EventSink = ev.null_sink,
        cancel: ev.CancelToken | None = None,
    ):
        # Absolute from here on: stage workers run in other folders, and a resumed job must not depend
        # on where it was started from.
        self.inputs = [Path(p).expanduser().absolute() for p in inputs]
        self.out = Path(out_dir).expanduser().absolute()
        self.options = (options or JobOptions()).validate()
        if self.options.cameras is not None:
            self.options = dataclasses.replace(self.options, cameras=Path(self.options.cameras).expanduser().absolute())
        self._sink = emit
        self.cancel = cancel or ev.CancelToken()
        self.state = self._load_state()
        self.timings: dict[str, float] = dict(self.state.get("timings", {}))
        # Every warning any stage emits (its own, ingest's, the pose solver's), per stage and once each;
        # kept in job.json so that a resumed job still reports those of the stages it skips.
        self.stage_warnings: dict[str, list[str]] = {k: list(v) for k, v in self.state.get("warnings", {}).items()}
        self._stage: str | None = None
        if self.options.preset == "auto":
            from .train import default_preset

            self.options = dataclasses.replace(self.options, preset=default_preset(self.device))
            log.info("preset %s (chosen for training on %s)", self.options.preset, self.device)

    def emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.Warning):
            text = event.message if event.path is None else f"{event.path}: {event.message}"
            seen = self.stage_warnings.setdefault(self._stage or "setup", [])
            if text not in seen:
                seen.append(text)
        self._sink(event)

    @property
    def warnings(self) -> list[str]:
        """The warnings of the stages on record, in stage order, each once."""
        order = ["setup", *STAGES]
        stages = sorted(self.stage_warnings, key=lambda s: order.index(s) if s in order else len(order))
        return list(dict.fromkeys(w for s in stages for w in self.stage_warnings[s]))

    @functools.cached_property
    def device(self) -> str:
        """The torch device training runs on: CUDA only where gsplat's kernels load (on a machine's first
        run that means compiling them, here)."""
        from .render import gsplat_backend

        wanted = self.options.device
        if wanted == "cpu" or not torch.cuda.is_available():
            return "cpu"
        self.emit(ev.Progress(self._stage or "init", 0, 1,
                              "loading gsplat's CUDA kernels (the first run on this machine compiles them: minutes)"))
        usable, why = gsplat_backend.kernel_status()
        if usable:
            return "cuda"
        if wanted == "cuda":
            raise InputError(f"cannot train on the GPU: {why}",
                             hint="choose the CPU (--device cpu), or install the CUDA toolkit so gsplat can build its kernels")
        self._warn(f"a CUDA GPU is present but cannot be used for training: {why}; training on the CPU instead")
        return "cpu"

    @functools.cached_property
    def background(self):
        """The ``engine.train.background.Background`` training, evaluation and previews use."""
        from .train.background import choose_background

        paths = [self.out / im["path"] for im in self._ingested()["images"]]
        chosen = choose_background(self.options.background, paths)
        self.emit(ev.Progress(self._stage or "train", 0, 1, f"background: {chosen.detail}"))
        return chosen

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict:
        path = self.out / STATE_FILE
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                log.warning("ignoring unreadable %s", path)
        return {"finished": {}, "timings": {}}

    def _save_state(self) -> None:
        self.state["timings"] = self.timings
        self.state["warnings"] = self.stage_warnings
        atomic_write_text(self.out / STATE_FILE, json.dumps(self.state, indent=1))

    def _save_state_after_failure(self) -> None:
        """Keep the finished stages on record; a folder that has stopped taking writes must not turn the
        stage's own error into a second one."""
        try:
            self._save_state()
        except OSError as e:
            log.warning("could not record the job state in %s: %s", self.out, e)

    def _is_done(self, stage: str) -> bool:
        rec = self.state.get("finished", {}).get(stage)
        return rec is not None and rec.get("options") == self.options.fingerprint(stage)

    def _mark_done(self, stage: str, seconds: float) -> None:
        self.state.setdefault("finished", {})[stage] = {"options": self.options.fingerprint(stage), "at": time.time()}
        self.timings[stage] = round(seconds, 3)
        self._save_state()

    def _invalidate_from(self, stage: str) -> None:
        later = STAGES[STAGES.index(stage):]
        for s in later:
            self.state.get("finished", {}).pop(s, None)
            self.stage_warnings.pop(s, None)

    def _warn(self, message: str, path=None) -> None:
        self.emit(ev.Warning(message, None if path is None else str(path)))

    # ------------------------------------------------------------------ run
    def run(self) -> JobResult:
        ensure_writable_folder(self.out, hint="choose an output folder you can write to")
        stages = STAGES if self.options.until is None else STAGES[: STAGES.index(self.options.until) + 1]
        stages = tuple(s for s in stages if s != "compress" or self.options.compress)
        for s in stages:
            if not self._is_done(s):
                self._invalidate_from(s)
                break
        result = JobResult(out_dir=self.out)
        for i, stage in enumerate(stages):
            self.cancel.raise_if_cancelled()
            if self._is_done(stage):
                self.emit(ev.Progress(stage, 1, 1, "already done (resumed)"))
                continue
            self._stage = stage
            self.emit(ev.StageStarted(stage, i, len(stages)))
            t0 = time.perf_counter()
            try:
                getattr(self, f"_stage_{stage}")()
            except (HandfulError, KeyboardInterrupt):
                self._save_state_after_failure()
                raise
            except MemoryError as e:
                self._save_state_after_failure()
                raise StageError(
                    f"ran out of memory during {stage}", hint="use the Preview preset or fewer/smaller photos"
                ) from e
            except torch.cuda.OutOfMemoryError as e:  # type: ignore[attr-defined]
                self._save_state_after_failure()
                raise StageError(f"the GPU ran out of memory during {stage}", hint="use --device cpu or Preview") from e
            except OSError as e:
                self._save_state_after_failure()
                raise StageError(f"could not write the results of {stage}: {e.strerror or e}",
                                 path=getattr(e, "filename", None) or self.out,
                                 hint="check free disk space and permissions") from e
            seconds = time.perf_counter() - t0
            self._mark_done(stage, seconds)
            self.emit(ev.StageFinished(stage, seconds))
        result.stopped_after = stages[-1]
        self._finalize_report()
        return self._collect(result)

    def _finalize_report(self) -> None:
        """Put the timings of every stage (evaluate included) into report.json once the job ends."""
        path = self.out / "report.json"
        if path.is_file():
            report = json.loads(path.read_text())
            report["timings"] = {s: self.timings[s] for s in STAGES if s in self.timings}
            report["timings"]["total"] = round(sum(report["timings"].values()), 3)
            atomic_write_text(path, json.dumps(report, indent=1))

    def _collect(self, result: JobResult) -> JobResult:
        scene_path = self.out / "scene.ply"
        if scene_path.is_file():
            from .io import load_scene

            result.scene_path = scene_path
            result.scene = load_scene(scene_path)
        if (self.out / "sparse" / "cameras.txt").is_file():
            result.cameras = self._rig_after_training().cameras
        report = self.out / "report.json"
        if report.is_file():
            result.report = json.loads(report.read_text())
        return result

    # ------------------------------------------------------------------ stages
    def _stage_ingest(self) -> None:
        from .ingest import ingest

        res = ingest(
            self.inputs,
            self.out / "images",
            max_long_edge=self.options.max_long_edge,
            max_images=self.options.max_images,
            emit=self.emit,
            cancel=self.cancel,
        )
        images = [
            {
                "name": im.name,
                "source": str(im.source),
                "path": str(Path(im.path).relative_to(self.out)),
                "width": im.width,
                "height": im.height,
                "scale": im.scale,
                "focal_px": im.focal_px,
            }
            for im in res.images
        ]
        doc = {
            "images_total": len(res.images) + len(res.skipped),
            "images": images,
            "skipped": [[str(p), reason] for p, reason in res.skipped],
            "warnings": list(res.warnings),
        }
        atomic_write_text(self.out / "ingest.json", json.dumps(doc, indent=1))

    def _ingested(self) -> dict:
        return json.loads((self.out / "ingest.json").read_text())

    def _stage_poses(self) -> None:
        from .io import colmap

        images = self._ingested()["images"]
        if self.options.cameras is not None:
            rig = self._import_cameras(images)
            doc = {"strategy": f"imported from {self.options.cameras}", "registered": [c.name for c in rig],
                   "unregistered": [im["name"] for im in images if im["name"] not in rig.by_name()]}
        else:
            from .poses import estimate_poses

            paths = [self.out / im["path"] for im in images]
            hints = {im["name"]: im["focal_px"] for im in images if im.get("focal_px")}
            res = estimate_poses(paths, self.out / "poses_work", focal_px_hints=hints or None,
                                 emit=self.emit, cancel=self.cancel)
            rig = res.rig
            rig.cameras = [self._undistort(c) for c in rig.cameras]
            doc = {"strategy": res.strategy, "registered": list(res.registered),
                   "unregistered": list(res.unregistered), "attempts": _jsonable_list(res.attempts),
                   "summary": res.summary, "choice": res.choice, "left_out": res.left_out}
        colmap.write_text(rig, self.out / "sparse")
        atomic_write_text(self.out / "poses.json", json.dumps(doc, indent=1))

    def _import_cameras(self, images: list[dict]) -> CameraRig:
        from .io import colmap, transforms

        src = Path(self.options.cameras)
        if not src.exists():
            raise InputError("the camera file does not exist", path=src)
        rig = transforms.read(src) if src.suffix.lower() == ".json" else colmap.read(src)
        by_stem = {}
        for cam in rig.cameras:
            by_stem.setdefault(Path(cam.name).stem, cam)
            by_stem.setdefault(Path(cam.name).name, cam)
        cams = []
        for im in images:
            src_name = Path(im["source"]).name
            cam = by_stem.get(src_name) or by_stem.get(Path(src_name).stem) or by_stem.get(Path(im["name"]).stem)
            if cam is None:
                self._warn("no camera for this photo in the camera file; it is left out", im["source"])
                continue
            # the camera file describes the original photo; the working copy may be downscaled
            orig_w, orig_h = round(im["width"] / im["scale"]), round(im["height"] / im["scale"])
            if (cam.width, cam.height) != (orig_w, orig_h) and (cam.width, cam.height) != (im["width"], im["height"]):
                self._warn(
                    f"camera size {cam.width}x{cam.height} differs from the photo ({orig_w}x{orig_h}); intrinsics rescaled",
                    im["source"],
                )
            cam = cam.resized(im["width"], im["height"])
            cam = dataclasses.replace(cam, name=im["name"], image_path=self.out / im["path"])
            cams.append(self._undistort(cam))
        if len(cams) < 2:
            raise InputError(
                f"only {len(cams)} of {len(images)} photos have a camera in the camera file",
                path=src,
                hint="image names in the camera file must match the photos' file names",
            )
        return CameraRig(cams, rig.points)

    def _undistort(self, cam: Camera) -> Camera:
        """Remove lens distortion from the working image in place, so later stages see a pinhole."""
        if cam.distortion is None or cam.image_path is None:
            return cam
        import cv2

        img = cv2.imread(str(cam.image_path), cv2.IMREAD_UNCHANGED)
        if img is not None:
            und = cv2.undistort(img, cam.K, cam.distortion)
            ok, buf = cv2.imencode(Path(cam.image_path).suffix or ".png", und)
            if ok:
                from .io.atomic import atomic_write_bytes

                atomic_write_bytes(cam.image_path, buf.tobytes())
        return dataclasses.replace(cam, distortion=None)

    def _read_rig(self) -> CameraRig:
        from .io import colmap

        rig = colmap.read(self.out / "sparse")
        for cam in rig.cameras:
            if cam.image_path is None or not Path(cam.image_path).is_file():
                cam.image_path = self.out / "images" / cam.name
        return rig

    def _rig_after_training(self) -> CameraRig:
        """The estimated cameras, with the refined poses of the training cameras where training refined them."""
        rig = self._read_rig()
        if (self.out / "refined" / "images.txt").is_file():
            from .io import colmap

            refined = colmap.read(self.out / "refined").by_name()
            rig.cameras = [dataclasses.replace(c, R=refined[c.name].R, t=refined[c.name].t) if c.name in refined
                           else c for c in rig.cameras]
        return rig

    def _save_refined_cameras(self, rig: CameraRig, refined: list[Camera] | None) -> None:
        import shutil

        from .io import colmap

        folder = self.out / "refined"
        if refined is None:
            shutil.rmtree(folder, ignore_errors=True)  # stale poses from an earlier run must not be read
            return
        by_name = rig.by_name()
        full_size = [dataclasses.replace(by_name[c.name], R=c.R, t=c.t) for c in refined]
        colmap.write_text(CameraRig(full_size), folder)

    def _stage_init(self) -> None:
        from .io import save_scene
        from .train import init_from_points, random_init

        rig, train_cams, _, cfg = self._train_setup()
        torch.manual_seed(self.options.seed)
        parts = []
        n_points = 0 if rig.points is None else len(rig.points)
        if n_points:
            parts.append(init_from_points(rig.points))
        # top up sparse SfM points with random ones in the cameras' view, within half the Gaussian budget
        budget = max(1000, cfg.cap_max // 2)
        if n_points < min(MIN_SFM_POINTS, budget):
            fill = budget - n_points
            parts.append(random_init(rig.cameras, fill, seed=self.options.seed))
            if n_points < 100:
                self._warn(f"only {n_points} sparse points; starting from {fill:,} random points in the cameras' view")
        scene = GaussianScene.concatenate(parts)
        save_scene(scene, self.out / "init.ply")

    def _min_views_to_hold_out(self) -> int:
        return max(2 * self.options.eval_every, 8)

    def _split_views(self, cams: list[Camera]) -> tuple[list[Camera], list[Camera]]:
        k = self.options.eval_every
        if not k or len(cams) < self._min_views_to_hold_out():
            return cams, []  # too few photos to hold any out: evaluate on the training views
        test = [c for i, c in enumerate(cams) if i % k == 0]
        train = [c for i, c in enumerate(cams) if i % k != 0]
        return train, test

    def _load_images(self, cams: list[Camera], size_of: Callable[[Camera], Camera] | None = None):
        from .ingest import load_image

        out = []
        for cam in cams:
            img = load_image(cam.image_path, background=self.background.rgb)
            if img.shape[1] != cam.width or img.shape[0] != cam.height:
                import cv2

                img = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
            out.append(img)
        return out

    def _train_setup(self, refined: bool = False):
        """(rig, training cameras, held-out cameras, config); ``refined``: with the poses training refined."""
        from .train import preset

        rig = self._rig_after_training() if refined else self._read_rig()
        train_cams, test_cams = self._split_views(rig.cameras)
        cfg = preset(self.options.preset, num_images=len(train_cams), device=self.device)
        if self.options.iterations is not None:
            cfg = dataclasses.replace(cfg, iterations=int(self.options.iterations))
        if self.options.refine_poses is not None:
            cfg = dataclasses.replace(cfg, pose_refinement=bool(self.options.refine_poses))
        scale = _train_scale(cfg, rig.cameras)
        if scale != 1.0:
            train_cams = [c.scaled(scale) for c in train_cams]
            test_cams = [c.scaled(scale) for c in test_cams]
        return rig, train_cams, test_cams, cfg

    def _stage_train(self) -> None:
        from .io import load_scene, save_scene
        from .train import train

        rig, train_cams, test_cams, cfg = self._train_setup()
        init = load_scene(self.out / "init.ply").to(self.device)
        images = self._load_images(train_cams)
        self.cancel.raise_if_cancelled()
        emit_snap = self._snapshot_forwarder(rig.cameras)
        res = train(
            init, train_cams, images, cfg,
            emit=emit_snap, cancel=self.cancel, background=self.background.rgb,
            scene_extent=rig.scene_extent(),
        )
        # a cancelled training still leaves a usable scene: keep it, then report the cancel
        save_scene(res.scene.detach().to("cpu"), self.out / "scene.ply")
        self._save_refined_cameras(rig, res.cameras)
        self.state["train"] = {"iterations": int(res.iterations), "seconds": float(res.seconds),
                               "cancelled": bool(getattr(res, "cancelled", False))}
        if res.pose_corrections_deg:
            corrections = np.array(res.pose_corrections_deg)
            self.state["train"]["pose_refinement"] = {
                "cameras": len(corrections), "median_correction_deg": round(float(np.median(corrections)), 4),
                "max_correction_deg": round(float(corrections.max()), 4)}
            self.emit(ev.Progress("train", res.iterations, res.iterations,
                                  f"refined {len(corrections) - 1} camera poses: median turn {np.median(corrections):.2f}°, "
                                  f"largest {corrections.max():.2f}° (saved in refined/)"))
        if getattr(res, "cancelled", False):
            self._save_state()
            raise Cancelled(f"training stopped at step {res.iterations} of {cfg.iterations}; the scene reached "
                            f"so far is saved as {self.out / 'scene.ply'}")

    def _snapshot_forwarder(self, cameras):
        def forward(event):
            if isinstance(event, ev.Snapshot) and event.cameras is None:
                event = ev.Snapshot(event.scene, event.step, cameras)
            self.emit(event)

        return forward

    def _stage_evaluate(self) -> None:
        from .io import load_scene
        from .metrics import evaluate

        rig, train_cams, test_cams, cfg = self._train_setup(refined=True)
        scene = load_scene(self.out / "scene.ply").to(self.device)
        eval_cams = test_cams or train_cams
        images = self._load_images(eval_cams)
        if test_cams:
            what = f"rendering the {len(test_cams)} hold-out views"
        elif self.options.eval_every:
            what = (f"scoring the {len(eval_cams)} training views (fewer than {self._min_views_to_hold_out()} "
                    "photos: none held out)")
        else:
            what = f"scoring the {len(eval_cams)} training views (--eval-every 0: none held out)"
        self.emit(ev.Progress("evaluate", 0, len(eval_cams), what))
        metrics = evaluate(scene, eval_cams, images, background=self.background.rgb)
        self._write_previews(scene, eval_cams[:4])
        ingested = self._ingested()
        poses_doc = json.loads((self.out / "poses.json").read_text())
        report = {
            "images_total": ingested["images_total"],
            "images_used": len(ingested["images"]),
            "images_registered": len(rig.cameras),
            "images_unregistered": poses_doc.get("unregistered", []),
            "pose_strategy": poses_doc.get("strategy"),
            "eval": {
                "psnr": float(metrics["psnr"]),
                "ssim": float(metrics["ssim"]),
                "views": [c.name for c in eval_cams],
                "held_out": bool(test_cams),
                "per_view": metrics.get("views", []),
            },
            "background": self.background.to_dict(),
            "num_gaussians": len(scene),
            "sh_degree": scene.sh_degree,
            "training": self.state.get("train", {}),
            "preset": self.options.preset,
            "timings": {**self.timings},
            "device": _device_description(self.device),
            "warnings": self.warnings,
            "skipped": ingested.get("skipped", []),
        }
        atomic_write_text(self.out / "report.json", json.dumps(report, indent=1))

    def _stage_group(self) -> None:
        from .grouping import GROUPS_FILE, group_scene, make_mask_source, write_groups
        from .io import load_scene, save_scene

        scene_path, groups_path = self.out / "scene.ply", self.out / GROUPS_FILE
        scene = load_scene(scene_path)
        if not self.options.group:
            groups_path.unlink(missing_ok=True)
            if scene.group_ids is not None:  # ids from an earlier run would no longer match a groups.json
                save_scene(dataclasses.replace(scene, group_ids=None), scene_path)
            self.emit(ev.Progress("group", 1, 1, "grouping is off"))
            return
        _, train_cams, _, _ = self._train_setup(refined=True)
        source = make_mask_source(self.options.masks, self.options.sam_model, warn=self._warn)
        # a cancel raises between views, before anything is written: scene.ply stays as training left it
        result = group_scene(scene.to(self.device), train_cams, None, source=source,
                             emit=self.emit, cancel=self.cancel)
        save_scene(dataclasses.replace(scene, group_ids=result.group_ids), scene_path)
        write_groups(groups_path, result.document)
        self.state["group"] = {"objects": result.num_groups, "ungrouped": result.document["ungrouped"],
                               "mask_source": result.document["mask_source"], "views": len(result.views)}

    def _stage_compress(self) -> None:
        from .compress.pipeline import compress
        from .io import load_scene
        from .io.atomic import atomic_write_bytes

        _, train_cams, _, _ = self._train_setup(refined=True)
        scene = load_scene(self.out / "scene.ply")
        data, summary, _ = compress(scene, self.options.compress, cameras=train_cams,
                                    background=self.background.rgb, on_event=self.emit, cancel=self.cancel)
        atomic_write_bytes(self.out / "scene.handful", data)
        path = self.out / "report.json"
        report = json.loads(path.read_text()) if path.is_file() else {}
        report["compress"] = {"file": "scene.handful", **summary.as_dict()}
        atomic_write_text(path, json.dumps(report, indent=1))

    def _write_previews(self, scene: GaussianScene, cams: list[Camera]) -> None:
        import cv2

        from .io.atomic import atomic_write_bytes
        from .render import render

        (self.out / "previews").mkdir(exist_ok=True)
        with torch.no_grad():
            for cam in cams:
                out = render(scene, cam, background=torch.tensor(self.background.rgb, dtype=torch.float32))
                rgb = (out.rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
                ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                if ok:
                    atomic_write_bytes(self.out / "previews" / f"{Path(cam.name).stem}.png", buf.tobytes())


def _train_scale(cfg, cameras: list[Camera]) -> float:
    """Downscale factor so the long image edge fits the preset's training resolution."""
    max_edge = getattr(cfg, "max_image_side", None)
    if not max_edge or not cameras:
        return 1.0
    long_edge = max(max(c.width, c.height) for c in cameras)
    return min(1.0, float(max_edge) / long_edge)


def _jsonable_list(items):
    return json.loads(json.dumps(items, default=str))


def _device_description(device: str) -> dict:
    info = {"type": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_job(
    inputs: list[Path],
    out_dir: Path,
    options: JobOptions | None = None,
    *,
    emit: ev.EventSink = ev.null_sink,
    cancel: ev.CancelToken | None = None,
) -> JobResult:
    """Run a job and report its end as a ``Finished`` or ``Failed`` event (also raised to the caller)."""
    stage_now = {"name": None}

    def track(event):
        if isinstance(event, ev.StageStarted):
            stage_now["name"] = event.stage
        emit(event)

    try:
        job = Job(inputs, out_dir, options, emit=track, cancel=cancel)
        result = job.run()
    except Cancelled as e:
        emit(ev.Failed(str(e), stage_now["name"], cancelled=True))
        raise
    except HandfulError as e:
        emit(ev.Failed(str(e), stage_now["name"]))
        raise
    except Exception as e:  # a bug: the person still gets a message, the log gets the traceback
        emit(ev.Failed(f"internal error during {stage_now['name'] or 'setup'}: {e}", stage_now["name"],
                       detail=traceback.format_exc()))
        raise
    emit(ev.Finished(result))
    return result
