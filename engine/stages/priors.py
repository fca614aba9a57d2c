"""The job's ``priors`` setting and the one place the stages reach the priors' modules.

Levels (``JobOptions.priors``):

    off   plain 3DGS training
    fast  depth maps from the photos (depth stage) -> dense starting points, and training regularised
          by those depths and the regularise helper's losses/hooks (dropout, smoothness, ...)
    full  fast, then the repair stage: pseudo views between and around the photos, repaired by an image
          prior, trained on as down-weighted ground truth for a few rounds
    auto  (default) chosen by the preset from the number of training photos: a sparse capture
          (at most SPARSE_PHOTOS) gets fast on Preview and full on Standard / High; more photos get off,
          since with enough views plain training is already constrained and the priors only cost time

Every backend is loaded here, lazily, so that a prior whose module or model folder is missing or broken
costs a warning and the job goes on without it (``unavailable``), never a failed job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import HandfulError

PRIORS = ("off", "fast", "full")
AUTO = "auto"
SPARSE_PHOTOS = 12  # at most this many training photos count as a sparse capture (auto turns priors on)
REPAIR_ROUNDS = {"preview": 1, "standard": 2, "high": 3}
PSEUDO_VIEWS_PER_ROUND = 8
# the parts a job can leave out one by one (--without-prior NAME): the stages' own and the regularisers'
# names (each Loss/Hook object's ``name``)
STAGE_PARTS = ("depth", "dense-init", "hull", "regularisers", "repair")
GUARD_VERSION = 3  # of the depth guard (engine.priors.quality) and its use by init: a change re-runs them


@dataclass(frozen=True)
class PriorsPlan:
    """What the priors setting means for one job: which prior stages run and what training adds."""

    level: str  # off, fast, full
    reason: str  # why: "chosen" or "auto: 3 training photos on Standard"
    skip: tuple[str, ...] = ()  # parts left out by name (ablations)

    def has(self, part: str) -> bool:
        """Whether this plan uses ``part``: a STAGE_PARTS name or a regulariser's own name."""
        on = self.level in ("fast", "full") and part not in self.skip
        if part == "dense-init":
            return on and self.has("depth")
        if part == "hull":  # the dense start's fill inside the visual hull, on photos with a plain background
            return on and self.has("dense-init")
        if part == "repair":
            return on and self.level == "full"
        if part in ("depth", "regularisers"):
            return on
        return on and self.has("regularisers")  # one regulariser, by its own name

    @property
    def depth(self) -> bool:
        return self.has("depth")

    @property
    def repair(self) -> bool:
        return self.has("repair")

    def as_dict(self) -> dict:
        return {"level": self.level, "reason": self.reason, "skip": list(self.skip)}


def resolve_priors(setting: str, preset: str, training_photos: int | None, skip=()) -> PriorsPlan:
    """The plan for ``setting`` (off / fast / full / auto) with ``preset`` and this many training photos
    (None: not known yet, before the cameras are; auto then plans as for a large capture)."""
    skip = tuple(sorted(set(skip)))
    if setting != AUTO:
        return PriorsPlan(setting, "chosen", skip)
    if training_photos is None or training_photos > SPARSE_PHOTOS:
        what = "photo count not known yet" if training_photos is None else f"{training_photos} training photos"
        return PriorsPlan("off", f"auto: {what}", skip)
    level = "fast" if preset == "preview" else "full"
    return PriorsPlan(level, f"auto: {training_photos} training photos on {preset.capitalize()}", skip)


def describe_priors(setting: str, preset: str, photos: int) -> str:
    """One line saying what a priors choice adds to the job for this many photos (for the app and --help)."""
    plan = resolve_priors(setting, preset, photos)
    prefix = f"Auto picks {plan.level.capitalize()} for {photos} photos: " if setting == AUTO else ""
    if plan.level == "off":
        return prefix + "plain training, no extra stages"
    # the costs are benchmarks/sparse_bench.py's, llff_fern with 3 photos on Preview, a busy 2-core CPU
    text = ("a depth map per photo from the photos themselves (multi-view stereo: about half a minute for 3 "
            "photos on a CPU), dense starting points, and depth and dropout terms in training")
    if plan.level == "full":
        rounds = REPAIR_ROUNDS.get(preset, 2)
        text += (f"; then {rounds} repair round{'s' if rounds != 1 else ''} of {PSEUDO_VIEWS_PER_ROUND} repaired "
                 "pseudo views (a small repair net trained on these photos first: several minutes on a CPU)")
    return prefix + text


def describe_priors_ran(report: dict | None) -> str:
    """One line saying which priors a finished job ran, with which backend (from report.json's "priors")."""
    if not report:
        return ""
    reason = "" if report.get("reason") == "chosen" else f" ({report.get('reason')})"
    ran = report.get("ran") or []
    if report.get("level") == "off" or not ran:
        return f"Priors {'off' if report.get('level') == 'off' else 'could not run'}{reason}."
    return f"Priors {report['level']}{reason}: " + "; ".join(ran) + "."


# ---------------------------------------------------------------------- backends
class Unavailable(Exception):
    """A prior that cannot run here (its module is not installed, its model folder is missing or broken)."""


# what a backend raises when its module, model folder or input cannot serve (Cancelled is a HandfulError
# too: the stages re-raise it before catching these)
USABLE_ERRORS = (Unavailable, HandfulError, OSError, ValueError, ImportError, KeyError)


def _module(name: str):
    """``engine.priors.<name>``, or the dotted module ``name`` itself."""
    import importlib

    dotted = name if "." in name else f"engine.priors.{name}"
    try:
        return importlib.import_module(dotted)
    except ImportError as e:
        raise Unavailable(f"{dotted} is not part of this build ({e})") from None


@dataclass(frozen=True)
class _Backends:
    """How one prior's backends are found: a module, the class loading a person's model folder, the
    offline default, and the words for the warnings."""

    module: str
    from_folder: str
    default: str
    prior: str  # "depth prior"
    model_words: str  # "depth model": what the person's folder holds
    without: str  # what the job does without it
    default_words: str  # the default, as the fallback warning names it
    folder_hint: str


_DEPTH = _Backends("depth", "MonocularDepth", "MultiViewDepth", "depth prior", "depth model", "training without depth",
                   "multi-view depth from the photos",
                   "point --depth-model at a folder with a depth model in transformers format")
_IMAGE = _Backends("image_prior", "DiffusionPrior", "SceneRepairNet", "image prior", "diffusion model",
                   "the scene is not repaired",
                   "the per-scene repair net", "point --diffusion-model at a diffusers img2img pipeline folder")


def _make_backends(kind: _Backends, model: Path | None, warn) -> list:
    """The backends to try in order: the one loading ``model`` when given, then the offline default.
    Those that cannot be made are left out with a warning naming the folder and what to do."""
    try:
        mod = _module(kind.module)
    except Unavailable as e:
        warn(f"no {kind.prior}: {e}; {kind.without}")
        return []
    made = []
    if model is not None:
        try:
            made.append(getattr(mod, kind.from_folder)(Path(model)))
        except USABLE_ERRORS as e:
            warn(f"the {kind.model_words} in {model} cannot be used ({e}); using {kind.default_words} "
                 f"instead ({kind.folder_hint})", model)
    try:
        made.append(getattr(mod, kind.default)())
    except USABLE_ERRORS as e:
        warn(f"{kind.default_words} cannot run ({e})")
    return made


def depth_priors(model: Path | None, warn) -> list:
    """Depth backends in order: a monocular model from ``model`` when given, then multi-view stereo."""
    return _make_backends(_DEPTH, model, warn)


def depth_map_type():
    return _module("depth").DepthMap


def depth_quality(depth_maps, warn) -> list[dict]:
    """The guard's figures for each map (engine.priors.quality.ViewQuality.as_dict), in order; when the
    guard cannot run, every map is trusted whole (weight 1), as before there was a guard, with a warning."""
    try:
        return [q.as_dict() for q in _module("depth").view_quality(depth_maps)]
    except USABLE_ERRORS + (AttributeError,) as e:
        warn(f"the depth maps could not be checked against each other ({e}); trusting them whole")
        return [{"name": m.camera.name, "weight": 1.0, "depth_terms": "kept"} for m in depth_maps]


def points_in_unreached_cells(depth_maps, count: int, *, seed: int, warn):
    """``count`` points in the photos' cells that confirmed depth does not reach, at the confirmed
    depths' range (engine.priors.quality); None, with a warning, when they cannot be drawn."""
    try:
        return _module("depth").points_in_unreached_cells(depth_maps, count, seed=seed)
    except USABLE_ERRORS + (AttributeError,) as e:
        warn(f"the random starting points cannot be placed at the depth maps' range ({e})")
        return None


def confirmed_depth_range(depth_maps, *, warn):
    """(near, far) of the depths other views confirm (engine.priors.quality); None when there are none."""
    try:
        return _module("depth").confirmed_depth_range(depth_maps)
    except USABLE_ERRORS + (AttributeError,) as e:
        warn(f"the depth maps' range cannot be measured ({e})")
        return None


def triangulated_points(cameras, images, *, features, step, cancel, warn):
    """(points, matcher label): nearby photos' matches (``features``: aliked, disk or sift) triangulated
    with the known cameras (engine.priors.multiview); (None, "none"), with a warning, when that fails.
    Cancel propagates."""
    import cv2

    from ..errors import Cancelled

    try:
        return _module("multiview").triangulated_points(cameras, images, features=features, step=step, warn=warn,
                                                        cancel=cancel)
    except Cancelled:
        raise
    except USABLE_ERRORS + (AttributeError, cv2.error) as e:
        warn(f"the photos' matches could not be triangulated with the given cameras ({e})")
        return None, "none"


def dense_points(depth_maps, images, *, max_points: int):
    return _module("depth").dense_points(depth_maps, images, max_points=max_points, min_confidence=0.5)


# The training regularisers the fast and full plans use (engine.train.regularisers), by the name
# --without-prior takes: (name, needs depth maps, make(module, depth_maps)). DropGaussian is the one the
# sparse-view papers measured without any prior (+1.5 dB on LLFF 3 views); the depth terms follow the
# depth stage's maps, each view weighted by the depth guard (engine.priors.quality); the floater limits
# keep the few-view fit from growing huge faint splats. make(module, depth maps, their guard weights).
REGULARISERS = (
    ("dropout", False, lambda mod, maps, w: mod.DropGaussian(0.1)),
    ("depth_corr", True, lambda mod, maps, w: mod.DepthCorrelationLoss(maps, patch=16, view_weights=w)),
    ("depth_smooth", True, lambda mod, maps, w: mod.DepthSmoothnessLoss()),
    ("floaters", False, lambda mod, maps, w: mod.FloaterLoss()),
)
REGULARISERS_MODULE = "engine.train.regularisers"
PART_NAMES = STAGE_PARTS + tuple(name for name, _, _ in REGULARISERS)  # what --without-prior takes


def training_priors(plan: PriorsPlan, depth_maps, *, warn, view_weights=None) -> tuple[list, list, list[str]]:
    """(losses, hooks, their names) for train(): the plan's regularisers, without the skipped ones and
    without the depth terms when there are no depth maps, or when the guard drops every view's
    (``view_weights``, one per map: the depth guard's; None: all 1)."""
    if not plan.has("regularisers"):
        return [], [], []
    from ..train.hooks import Loss

    try:
        mod = _module(REGULARISERS_MODULE)
    except Unavailable as e:
        warn(f"no training regularisers: {e}")
        return [], [], []
    weights = [1.0] * len(depth_maps or []) if view_weights is None else [float(w) for w in view_weights]
    trusted = bool(depth_maps) and any(w > 0 for w in weights)
    losses, hooks, used = [], [], []
    for name, needs_depth, make in REGULARISERS:
        if not plan.has(name) or (needs_depth and not trusted):
            continue
        try:
            made = make(mod, list(depth_maps or []), weights)
        except USABLE_ERRORS + (AttributeError,) as e:
            warn(f"the {name} regulariser cannot be used ({e}); training without it")
            continue
        (losses if isinstance(made, Loss) else hooks).append(made)
        used.append(name)
    return losses, hooks, used


def image_priors(model: Path | None, warn) -> list:
    """Repair backends in order: a diffusion model from ``model`` when given, then the per-scene repair net."""
    return _make_backends(_IMAGE, model, warn)


def repair_rounds(scene, cameras, images, prior, **kw):
    """engine.priors' repair loop (render pseudo views, repair them, fine-tune on them), one call per stage;
    returns (the scene of the last finished round, one dict of figures per finished round)."""
    result = _module("repair_rounds").repair_rounds(scene, cameras, images, prior, **kw)
    return result.scene, list(result.figures)
