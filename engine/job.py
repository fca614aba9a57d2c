"""A reconstruction job: photos in, a trained Gaussian scene out, stage by stage in a working folder.

The stages (``engine.stages``: ingest, poses, depth, init, train, repair, evaluate, group, compress) run in
order; each reads the earlier stages' files from the job's folder and writes its own (atomically) and a
typed result, then the job records it as finished in ``job.json`` with its fingerprint (exactly the
settings it reads). A failed or cancelled stage therefore keeps everything before it, and running the job
again resumes after the last finished stage whose settings did not change (a change re-runs that stage and
every later one). depth and repair run only when the priors plan asks for them (``JobOptions.priors``),
compress only with ``JobOptions.compress``.

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

import torch

from . import events as ev
from .errors import Cancelled, HandfulError, InputError, StageError
from .io.atomic import atomic_write_bytes, atomic_write_text, ensure_writable_folder
from .scene import Camera, GaussianScene
from .stages import ALL_STAGES, BY_NAME, STAGE_NAMES, Stage, StageContext, jsonable
from .stages.init import MIN_SFM_POINTS  # noqa: F401 - part of this module's API before the stages moved
from .stages.priors import AUTO, PART_NAMES, PRIORS, PriorsPlan, resolve_priors

log = logging.getLogger(__name__)

STAGES = STAGE_NAMES
PRESETS = ("preview", "standard", "high")
STATE_FILE = "job.json"


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
    pose_features: str = "auto"  # what places the cameras: engine.poses.FEATURE_CHOICES
    # "auto" (the photos' own: engine.train.background) or an RGB triple in [0, 1] to train and render on
    background: str | tuple[float, float, float] = "auto"
    seed: int = 0
    refine_poses: bool | None = None  # learn pose corrections while training (None: the preset decides)
    compress: str | None = None  # end with a compression stage at this quality (low / medium / high)
    # steps of quantisation-aware fine-tuning against the training photos before the file is written (0: none)
    compress_finetune: int = 300
    group: bool = True  # split the trained scene into objects (the group stage)
    masks: str = "regions"  # the group stage's 2D masks: "regions" (offline) or "sam" (needs sam_model)
    sam_model: Path | None = None  # a local Segment Anything checkpoint folder
    # sparse-view priors (engine/stages/priors.py): off, fast, full, or auto (by preset and photo count)
    priors: str = AUTO
    depth_model: Path | None = None  # a local monocular depth model folder (else multi-view depth)
    diffusion_model: Path | None = None  # a local diffusers img2img folder for repair (else the per-scene net)
    without_priors: tuple[str, ...] = ()  # parts of the plan to leave out, by name (ablations)

    def validate(self) -> "JobOptions":
        if self.preset not in PRESETS + ("auto",):
            raise InputError(f"unknown preset {self.preset!r}", hint=f"choose one of {', '.join(PRESETS)}")
        if self.until is not None and self.until not in STAGES:
            raise InputError(f"unknown stage {self.until!r} for --until", hint=f"choose one of {', '.join(STAGES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unknown device {self.device!r}", hint="choose auto, cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("CUDA was requested but no CUDA device is available", hint="use --device cpu")
        from .poses import FEATURE_CHOICES

        if self.pose_features not in FEATURE_CHOICES:
            raise InputError(f"unknown pose features {self.pose_features!r}",
                             hint=f"choose one of {', '.join(FEATURE_CHOICES)}")
        if self.compress is not None and self.compress not in ("low", "medium", "high"):
            raise InputError(f"unknown compression quality {self.compress!r}", hint="choose low, medium or high")
        if self.compress_finetune < 0:
            raise InputError("--compress-finetune must be 0 (no fine-tune) or a positive number of steps")
        if self.eval_every is not None and self.eval_every < 0:
            raise InputError("--eval-every must be 0 (no hold-out) or a positive number")
        if self.priors not in PRIORS + (AUTO,):
            raise InputError(f"unknown priors setting {self.priors!r}",
                             hint=f"choose one of {', '.join((AUTO,) + PRIORS)}")
        if isinstance(self.without_priors, str):
            raise InputError("without_priors must be a list of prior names", hint="e.g. --without-prior depth")
        unknown = [n for n in self.without_priors if n not in PART_NAMES]
        if unknown:
            raise InputError(f"unknown prior {unknown[0]!r} for --without-prior",
                             hint=f"choose from {', '.join(PART_NAMES)}")
        self.without_priors = tuple(self.without_priors)
        from .train.background import check_background

        self.background = check_background(self.background)
        from .grouping.masks import MASK_BACKENDS

        if self.masks not in MASK_BACKENDS:
            raise InputError(f"unknown mask source {self.masks!r}", hint=f"choose one of {', '.join(MASK_BACKENDS)}")
        return self

    def fingerprint(self, stage: str) -> dict:
        """The options a stage's output depends on (its ``reads``): a change invalidates it and every later
        stage. The job adds the resolved settings a stage reads (``Stage.settings``: the priors plan)."""
        return {k: jsonable(getattr(self, k)) for k in BY_NAME[stage].reads}


@dataclass
class JobResult:
    out_dir: Path
    scene_path: Path | None = None
    scene: GaussianScene | None = None
    cameras: list[Camera] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    stopped_after: str | None = None


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
        paths = {k: Path(getattr(self.options, k)).expanduser().absolute()
                 for k in ("cameras", "depth_model", "diffusion_model") if getattr(self.options, k) is not None}
        self.options = dataclasses.replace(self.options, **paths)
        self._sink = emit
        self.cancel = cancel or ev.CancelToken()
        self.state = self._load_state()
        self.timings: dict[str, float] = dict(self.state.get("timings", {}))
        # Every warning any stage emits (its own, ingest's, the pose solver's), per stage and once each;
        # kept in job.json so that a resumed job still reports those of the stages it skips.
        self.stage_warnings: dict[str, list[str]] = {k: list(v) for k, v in self.state.get("warnings", {}).items()}
        self._stage: str | None = None
        self._ran: set[str] = set()  # the stages this run measured (the others' timings come from job.json)
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

        paths = [self.out / im["path"] for im in StageContext(self, self._stage or "train").ingested().images]
        chosen = choose_background(self.options.background, paths)
        self.emit(ev.Progress(self._stage or "train", 0, 1, f"background: {chosen.detail}"))
        return chosen

    @property
    def priors(self) -> PriorsPlan:
        """The priors plan: the setting, resolved (auto) from the number of training photos once the
        cameras are known."""
        return resolve_priors(self.options.priors, self.options.preset, self._training_photo_count(),
                              self.options.without_priors)

    def _training_photo_count(self) -> int | None:
        poses = self.result_of("poses")
        if poses is None:
            return None
        ctx = StageContext(self, "poses")
        return len(ctx.split_views(list(poses.registered))[0])

    def result_of(self, stage: str):
        """A stage's saved result when this job runs it and it finished in this folder with today's settings,
        else None (a depth stage kept from a run with priors is not this job's when priors are off)."""
        if not BY_NAME[stage].enabled(StageContext(self, stage)) or not self._is_done(stage):
            return None
        try:
            return BY_NAME[stage].result_type.load(self.out)
        except StageError as e:
            log.warning("%s", e)
            return None

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

    def fingerprint(self, stage: str) -> dict:
        return BY_NAME[stage].fingerprint(StageContext(self, stage))

    def _is_done(self, stage: str) -> bool:
        rec = self.state.get("finished", {}).get(stage)
        return rec is not None and rec.get("options") == self.fingerprint(stage)

    def _mark_done(self, stage: str, seconds: float) -> None:
        self.state.setdefault("finished", {})[stage] = {"options": self.fingerprint(stage), "at": time.time()}
        self.timings[stage] = round(seconds, 3)
        self._save_state()

    def _invalidate_from(self, stage: str) -> None:
        for s in STAGES[STAGES.index(stage):]:
            self.state.get("finished", {}).pop(s, None)
            self.stage_warnings.pop(s, None)

    def _warn(self, message: str, path=None) -> None:
        self.emit(ev.Warning(message, None if path is None else str(path)))

    def planned(self) -> list[Stage]:
        """The stages this job runs, as far as it knows now (depth and repair follow the priors plan, which
        auto resolves once the cameras are known)."""
        last = STAGES.index(self.options.until) if self.options.until is not None else len(STAGES) - 1
        return [s for s in ALL_STAGES[: last + 1] if s.enabled(StageContext(self, s.name))]

    # ------------------------------------------------------------------ run
    def run(self) -> JobResult:
        ensure_writable_folder(self.out, hint="choose an output folder you can write to")
        self._restore_trained_scene()
        for s in self.planned():
            if not self._is_done(s.name):
                self._invalidate_from(s.name)
                break
        visited: list[str] = []
        while True:
            planned = self.planned()  # again after each stage: the cameras decide whether depth runs
            stage = next((s for s in planned if s.name not in visited), None)
            if stage is None:
                break
            visited.append(stage.name)
            self.cancel.raise_if_cancelled()
            if self._is_done(stage.name):
                self.emit(ev.Progress(stage.name, 1, 1, "already done (resumed)"))
                continue
            self._run_stage(stage, planned.index(stage), len(planned))
        self._finalize_report()
        return self._collect(JobResult(out_dir=self.out, stopped_after=visited[-1] if visited else None))

    def _restore_trained_scene(self) -> None:
        """scene.ply is the job's current scene: training's, or the repair stage's after it. When this job
        does not run the stage that last replaced it (priors full, then fast), training's scene comes back
        and the stages after training run again on it."""
        by = self.state.get("scene_by")
        if by is None or by == "train" or BY_NAME[by] in self.planned():
            return
        from .stages.train import TRAINED

        trained = self.out / TRAINED
        if self._is_done("train") and trained.is_file():
            atomic_write_bytes(self.out / "scene.ply", trained.read_bytes())
            self.state["scene_by"] = "train"
        self._invalidate_from(STAGES[STAGES.index("train") + 1])

    def _run_stage(self, stage: Stage, index: int, count: int) -> None:
        self._stage = stage.name
        if stage.replaces_scene:  # recorded first: a cancelled stage may have written a scene too
            self.state["scene_by"] = stage.name
        self.emit(ev.StageStarted(stage.name, index, count))
        t0 = time.perf_counter()
        try:
            stage.run(StageContext(self, stage.name)).save(self.out)
        except (HandfulError, KeyboardInterrupt):
            self._save_state_after_failure()
            raise
        except MemoryError as e:
            self._save_state_after_failure()
            raise StageError(
                f"ran out of memory during {stage.name}", hint="use the Preview preset or fewer/smaller photos"
            ) from e
        except torch.cuda.OutOfMemoryError as e:  # type: ignore[attr-defined]
            self._save_state_after_failure()
            raise StageError(f"the GPU ran out of memory during {stage.name}", hint="use --device cpu or Preview") from e
        except OSError as e:
            self._save_state_after_failure()
            raise StageError(f"could not write the results of {stage.name}: {e.strerror or e}",
                             path=getattr(e, "filename", None) or self.out,
                             hint="check free disk space and permissions") from e
        seconds = time.perf_counter() - t0
        self._mark_done(stage.name, seconds)
        self._ran.add(stage.name)
        self.emit(ev.StageFinished(stage.name, seconds))

    def _finalize_report(self) -> None:
        """Put the timings of every stage (evaluate included), the priors that ran and the compression's
        figures into report.json once the job ends. A stage kept from an earlier run keeps the seconds that
        run measured and is named in ``reused``; ``total`` adds up every stage, ``this_run`` those run now."""
        path = self.out / "report.json"
        if not path.is_file() or not self._is_done("evaluate"):
            return
        report = json.loads(path.read_text())
        done = [s.name for s in self.planned() if s.name in self.timings and self._is_done(s.name)]
        report["timings"] = {s: self.timings[s] for s in done}
        report["timings"]["total"] = round(sum(self.timings[s] for s in done), 3)
        report["timings"]["this_run"] = round(sum(self.timings[s] for s in done if s in self._ran), 3)
        report["reused"] = [s for s in done if s not in self._ran]
        report["priors"] = self.priors_report()
        report["warnings"] = self.warnings
        compressed = self.result_of("compress")
        if compressed is not None:
            report["compress"] = compressed.summary
        else:
            report.pop("compress", None)
        atomic_write_text(path, json.dumps(report, indent=1))

    def priors_report(self) -> dict:
        """Which priors ran in this folder, with which backend (the names the backends give themselves)."""
        plan = self.priors
        doc = {**plan.as_dict(), "ran": []}
        depth, init, train, repair = (self.result_of(s) for s in ("depth", "init", "train", "repair"))
        if depth is not None:
            doc["depth"] = {"backend": depth.backend, "kind": depth.kind, "views": len(depth.views),
                            "guard": [v["guard"] for v in depth.views if "guard" in v]}
            if depth.backend:
                doc["ran"].append(f"depth: {depth.backend}")
        if init is not None and init.sources.get("depth"):
            doc["dense_points"] = init.sources["depth"]
            doc["dense_share"] = init.dense_share
            doc["ran"].append(f"dense init: {init.sources['depth']:,} points")
        if train is not None and train.priors:
            doc["regularisers"] = list(train.priors)
            doc["ran"].append("training: " + ", ".join(train.priors))
        if repair is not None:
            doc["repair"] = {"backend": repair.backend, "rounds": repair.rounds,
                             "pseudo_views": len(repair.pseudo_views)}
            if repair.backend:
                doc["ran"].append(f"repair: {repair.backend}, {repair.rounds} rounds")
        return doc

    def device_description(self) -> dict:
        return _device_description(self.device)

    def _collect(self, result: JobResult) -> JobResult:
        scene_path = self.out / "scene.ply"
        if scene_path.is_file():
            from .io import load_scene

            result.scene_path = scene_path
            result.scene = load_scene(scene_path)
        if (self.out / "sparse" / "cameras.txt").is_file():
            result.cameras = StageContext(self, "collect").rig_after_training().cameras
        report = self.out / "report.json"
        if report.is_file():
            result.report = json.loads(report.read_text())
        return result


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
