"""pycolmap attempts, run inside the worker process (the app process never imports this).

An attempt is one feature set plus a series of mapping runs. With 3-12 photos the ladder includes
learned features and matches (ALIKED + LightGlue: they keep matching across viewpoint changes
of ~60 degrees, where SIFT stops near 30-40): after relaxed SIFT on "auto", first when asked for.
Every solution is checked against the verified matches (``consistency``) and the ladder stops
at the first attempt whose solution the check confirms for every photo. The SIFT steps start with
COLMAP's usual settings (skipped for 3-6 photos, where they rarely find an initial pair) and relax
from there: lower initialisation and registration thresholds, explicit initial pairs, a search over
a fixed shared focal length, and then richer features (domain-size pooling, guided matching).

Why a focal search: with a handful of photos the focal length is weakly observed, and bundle
adjustment started from COLMAP's prior (1.2 x long edge) often settles far from it (narrow lenses
come out 10-20% short and rotations several degrees off). Mapping a few photos takes well under a
second, so mapping at fixed focals (walking out from the refined one until the error rises on both
sides) and keeping the lowest reprojection error is cheap and finds it well - but only when points are seen in three or more photos; with two-view tracks only,
every focal fits equally well and the refined run is kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pycolmap

from .consistency import judge_reconstruction
from .learned import LEARNED_LONG_EDGE, LEARNED_MAX_KEYPOINTS, image_size, write_images

SPARSE_MAX_IMAGES = 6
LEARNED_MAX_IMAGES = 12  # "auto" features: learned (exhaustive pairs) up to this many photos, SIFT above
DEFAULT_LEARNED = "aliked"
FOCAL_GRID = (0.6, 0.85, 1.2, 1.7, 2.4, 3.4)  # x long edge, steps of sqrt(2): fields of view ~80 to ~17 degrees
# Mapping runs are bounded by counted work (initialisation trials, bundle-adjustment iterations
# and refinements; see _pipeline_options), so the same photos give the same cameras on an idle or
# a loaded machine. This wall-clock cap is only a safety net against a run that would hang: the
# slowest sound run measured took 1.5 s per photo at load 14 on 2 cores, 13x below it, so under any
# ordinary load it never fires (a run it stops keeps what it had, which then depends on the load).
SAFETY_SECONDS_PER_PHOTO = 20
# Reprojection error can only judge a focal when enough points are seen in three or more photos.
MIN_MULTIVIEW_POINTS = 50
MIN_MULTIVIEW_FRACTION = 0.1
# Match verification accepts matches within COLMAP's 4 px of the epipolar geometry at the working
# size (1600 px long edge), and the same fraction of the frame on smaller photos: at 640 px a 4 px
# band lets through matches off by 0.6% of the frame, and with a handful of photos (mostly
# two-view tracks) they bend the relative rotations by degrees. Not below 1 px, about what SIFT
# keypoints are located to.
VERIFY_MAX_ERROR_PX = 4.0
VERIFY_REFERENCE_LONG_EDGE = 1600
VERIFY_MIN_ERROR_PX = 1.0


@dataclass
class Attempt:
    name: str
    features: str = "sift"  # "sift" or a learned method ("aliked", "disk", "xfeat")
    rich_features: bool = False  # domain-size pooling, lower peak threshold, guided matching
    relaxed_mapper: bool = False
    init_pairs: int = 0  # when the first run leaves photos out, also start from the N best-matched pairs
    focal_search: bool = False


def learned_method(features: str, num_images: int) -> str | None:
    """The learned method the ladder starts with, or None for SIFT only."""
    if features == "auto":
        return DEFAULT_LEARNED if num_images <= LEARNED_MAX_IMAGES else None
    return None if features == "sift" else features


def ladder(num_images: int, has_focal_hint: bool, features: str = "auto", fallback: bool = True) -> list[Attempt]:
    """A learned method named explicitly goes first, SIFT after it; ``fallback=False`` keeps only
    the learned attempt (benchmarks compare the matchers alone). On "auto" SIFT's relaxed attempt
    goes first (it is the fastest when it places every photo), then the learned one, and SIFT's
    richer features last: when relaxed SIFT leaves photos out, learned matching places them more
    often, and the consistency check (not the number placed) decides between their solutions."""
    search = not has_focal_hint
    learned = learned_method(features, num_images)
    learned_steps = [] if learned is None else [
        Attempt(f"learned_{learned}", features=learned, relaxed_mapper=True, init_pairs=3, focal_search=search)]
    if learned_steps and not fallback:
        return learned_steps
    steps = []
    if num_images > SPARSE_MAX_IMAGES:
        steps.append(Attempt("standard"))
    steps.append(Attempt("relaxed", relaxed_mapper=True, init_pairs=3, focal_search=search))
    rich = Attempt("rich_features", rich_features=True, relaxed_mapper=True, init_pairs=4, focal_search=search)
    if features == "auto":
        return steps + learned_steps + [rich]
    return learned_steps + steps + [rich]


@dataclass
class Job:
    image_dir: str
    names: list[str]
    work_dir: str
    matching: str  # "exhaustive" | "sequential"
    focal_px: dict[str, float] = field(default_factory=dict)  # in the worker's (downscaled) pixels
    num_threads: int = 2
    max_num_features: int = 8192
    features: str = "auto"  # one of engine.poses.FEATURE_CHOICES
    weights_dir: str | None = None  # learned weights from this folder instead of the installed packages
    learned_long_edge: int = LEARNED_LONG_EDGE
    learned_max_keypoints: int = LEARNED_MAX_KEYPOINTS
    fallback: bool = True  # SIFT attempts after the learned one


Report = Callable[[dict], None]


def _verification(job: Job, attempt: Attempt):
    verification = pycolmap.TwoViewGeometryOptions()
    if attempt.relaxed_mapper:
        verification.min_num_inliers = 12
    # Seeded: unseeded RANSAC verifies a slightly different set of inliers on every run (seen: pairs
    # of the sample going 53 -> 52 and 46 -> 41 matches between two runs of the same photos).
    verification.ransac.random_seed = 0
    sizes = {image_size(Path(job.image_dir) / n) for n in job.names}
    verification.ransac.max_error = verification_max_error(max(max(size) for size in sizes))
    return verification


def _learned_database(job: Job, attempt: Attempt, report: Report, summary: dict) -> Path:
    from .learned import build_database, learned_features

    db_path = Path(job.work_dir) / f"features_{attempt.features}.db"
    db_path.unlink(missing_ok=True)
    features = learned_features(attempt.features, job.weights_dir, job.learned_max_keypoints, job.num_threads)
    summary["features"] = features.method.label
    summary["device"] = features.device
    report({"type": "step", "message": f"finding features ({features.method.label})"})
    counts = build_database(
        db_path, Path(job.image_dir), job.names, features, exhaustive=job.matching != "sequential",
        long_edge=job.learned_long_edge, verification=_verification(job, attempt),
        num_threads=job.num_threads, report=report,
    )
    summary.update(counts)
    _apply_focal_hints(db_path, job)
    report({"type": "step", "message": f"matched {counts['pairs_matched']} photo pairs ({features.method.label})"})
    return db_path


def _database(job: Job, attempt: Attempt, report: Report, summary: dict) -> Path:
    """Features and verified matches for this attempt's feature settings."""
    if attempt.features != "sift":
        return _learned_database(job, attempt, report, summary)
    key = "rich" if attempt.rich_features else "standard"
    summary["features"] = "SIFT"
    db_path = Path(job.work_dir) / f"features_{key}.db"
    db_path.unlink(missing_ok=True)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = job.num_threads
    extraction.sift.max_num_features = job.max_num_features
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = job.num_threads
    verification = _verification(job, attempt)
    if attempt.rich_features:
        extraction.sift.domain_size_pooling = True
        extraction.sift.peak_threshold = 0.004
        matching.guided_matching = True
    sizes = {image_size(Path(job.image_dir) / n) for n in job.names}
    camera_mode = pycolmap.CameraMode.SINGLE if len(sizes) == 1 else pycolmap.CameraMode.PER_IMAGE
    report({"type": "step", "message": f"finding features ({key})"})
    # The images are written first, in the given order: the extractor then fills in their features.
    # Left to itself it numbers images in the order its threads finish them, which changes from
    # run to run, and the mapper breaks ties (initial pair, next photo) by image id.
    write_images(db_path, Path(job.image_dir), job.names)
    pycolmap.extract_features(
        db_path, job.image_dir, image_names=job.names, camera_mode=camera_mode,
        reader_options=pycolmap.ImageReaderOptions(), extraction_options=extraction,
    )
    _apply_focal_hints(db_path, job)
    report({"type": "step", "message": f"matching photos ({job.matching})"})
    if job.matching == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = 10
        pycolmap.match_sequential(db_path, matching_options=matching, pairing_options=pairing, verification_options=verification)
    else:
        pycolmap.match_exhaustive(db_path, matching_options=matching, verification_options=verification)
    return db_path


def verification_max_error(long_edge: int) -> float:
    """RANSAC threshold (px) for match verification on photos with this long edge."""
    scaled = VERIFY_MAX_ERROR_PX * long_edge / VERIFY_REFERENCE_LONG_EDGE
    return float(min(VERIFY_MAX_ERROR_PX, max(VERIFY_MIN_ERROR_PX, scaled)))


def _apply_focal_hints(db_path: Path, job: Job) -> None:
    if not job.focal_px:
        return
    db = pycolmap.Database.open(db_path)
    try:
        cameras = {c.camera_id: c for c in db.read_all_cameras()}
        hinted = {}
        for image in db.read_all_images():
            if job.focal_px.get(image.name):
                hinted.setdefault(image.camera_id, []).append(job.focal_px[image.name])
        for camera_id, focals in hinted.items():
            cam = cameras[camera_id]
            cam.params = [float(np.median(focals)), *list(cam.params)[1:]]
            cam.has_prior_focal_length = True
            db.update_camera(cam)
    finally:
        db.close()


def _set_focal(db_path: Path, factor: float) -> None:
    """Shared pinhole intrinsics for a focal-search run: focal = factor x long edge, no distortion."""
    db = pycolmap.Database.open(db_path)
    try:
        for cam in db.read_all_cameras():
            params = [float(v) for v in cam.params]
            params[0] = factor * max(cam.width, cam.height)
            params[3:] = [0.0] * len(params[3:])
            cam.params = params
            cam.has_prior_focal_length = True
            db.update_camera(cam)
    finally:
        db.close()


def _best_pairs(db_path: Path, count: int, names: list[str] | None = None) -> list[tuple[int, int]]:
    """The ``count`` image-id pairs with the most verified matches (among ``names`` when given)."""
    db = pycolmap.Database.open(db_path)
    try:
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    finally:
        db.close()
    keep = None if names is None else _image_ids(db_path, names)
    pairs = []
    for k in np.argsort(inliers)[::-1]:
        pair = tuple(int(i) for i in pycolmap.pair_id_to_image_pair(int(pair_ids[k])))
        if inliers[k] > 0 and (keep is None or set(pair) <= keep):
            pairs.append(pair)
    return pairs[:count]


def match_stats(db_path: Path) -> dict:
    """Verified matches in all, and per photo its best-matched other photo (to say why a photo
    was left out)."""
    db = pycolmap.Database.open(db_path)
    try:
        names = {image.image_id: image.name for image in db.read_all_images()}
        pair_ids, inliers = db.read_two_view_geometry_num_inliers()
    finally:
        db.close()
    best = {name: [0, None] for name in names.values()}
    for pair_id, count in zip(pair_ids, inliers):
        a, b = (names[int(i)] for i in pycolmap.pair_id_to_image_pair(int(pair_id)))
        for one, other in ((a, b), (b, a)):
            if count > best[one][0]:
                best[one] = [int(count), other]
    return {"verified_matches": int(np.sum(inliers)) if len(inliers) else 0,
            "verified_pairs": int(np.count_nonzero(inliers)), "best_partner": best}


def _pipeline_options(job: Job, attempt: Attempt, fixed_focal: bool, init_pair=None):
    opts = pycolmap.IncrementalPipelineOptions()
    # Bundle adjustment of a few photos is tiny; one thread avoids Ceres' threads stalling each
    # other on a busy machine (seen: 0.1 s runs taking a minute at load 10 on 2 cores).
    opts.num_threads = 1 if len(job.names) <= 12 else job.num_threads
    opts.random_seed = 0
    opts.min_model_size = 2
    opts.max_runtime_seconds = SAFETY_SECONDS_PER_PHOTO * len(job.names)
    if attempt.relaxed_mapper:
        opts.min_num_matches = 10
        opts.init_num_trials = 400
        m = opts.mapper
        m.init_min_num_inliers = 15
        m.init_min_tri_angle = 3.0
        m.init_max_forward_motion = 0.99
        m.init_max_reg_trials = 4
        m.abs_pose_min_num_inliers = 10
        m.abs_pose_min_inlier_ratio = 0.1
        m.max_reg_trials = 6
        opts.triangulation.ignore_two_view_tracks = False
    if fixed_focal:  # a focal-search run: lighter, it only has to rank the focal
        opts.ba_global_max_refinements = 2
        opts.ba_local_max_refinements = 1
        opts.ba_global_max_num_iterations = 30
        opts.ba_refine_focal_length = False
        opts.ba_refine_extra_params = False
        opts.mapper.abs_pose_refine_focal_length = False
        opts.mapper.abs_pose_refine_extra_params = False
    if init_pair is not None:
        opts.init_image_id1, opts.init_image_id2 = init_pair
        # COLMAP retries a given start pair init_num_trials times in each of its five rounds (the
        # first and four relaxations) and, seeded, every retry repeats the last: a poor pair made
        # 400 x 5 identical failing starts (castle_4: 70 s placing nothing). One trial per round does the same work once.
        opts.init_num_trials = 1
    return opts


def _map(db_path: Path, job: Job, opts, out_dir: Path, report: Report):
    out_dir.mkdir(parents=True, exist_ok=True)
    placed = [1]

    def next_image():
        placed[0] += 1
        report({"type": "step", "message": f"placing photo {min(placed[0], len(job.names))} of {len(job.names)}", "minor": True})

    recs = pycolmap.incremental_mapping(db_path, job.image_dir, out_dir, opts, next_image_callback=next_image)
    return max(recs.values(), key=score, default=None)


def score(rec) -> tuple:
    """More photos placed first, then lower mean reprojection error."""
    if rec is None:
        return (0, -math.inf)
    return (rec.num_reg_images(), -rec.compute_mean_reprojection_error())


def multiview_points(rec) -> int:
    return sum(1 for p in rec.points3D.values() if p.track.length() >= 3)


def _focal_factor(rec) -> float:
    cam = next(iter(rec.cameras.values()))
    return cam.focal_length / max(cam.width, cam.height)


def run_attempt(job: Job, attempt: Attempt, report: Report, last: bool = True) -> tuple[object, dict]:
    """Runs one attempt; returns its best reconstruction (or None) and a summary dict.

    Every solution is checked against the verified matches (``consistency``): runs are compared by
    how many photos the check confirms, then by how many matches agree, and photos it does not
    confirm are left out: the rest is mapped again without them. The focal search runs only when
    every photo was confirmed or no later attempt follows."""
    start = time.perf_counter()
    summary = {"name": attempt.name, "registered": 0, "seconds": 0.0, "error": None, "settings": asdict(attempt)}
    best = None
    runs = 0
    try:
        db_path = _database(job, attempt, report, summary)
        summary.update(match_stats(db_path))
        report({"type": "step", "message": f"solving camera positions ({attempt.name})"})
        out_root = Path(job.work_dir) / "models" / attempt.name
        checks = Checks(db_path, agreement_max_error(job))
        timings: list[list] = summary.setdefault("runs", [])  # [label, photos placed, seconds] per mapping run
        subset: list[str] | None = None  # the photos still in play once the check has left some out

        def run(fixed_focal: bool, pair, label: str):
            nonlocal runs
            runs += 1
            opts = _pipeline_options(job, attempt, fixed_focal, pair)
            if subset is not None:
                opts.image_names = subset
            began = time.perf_counter()
            rec = _map(db_path, job, opts, out_root / f"{runs}_{label}", report)
            timings.append([label, 0 if rec is None else rec.num_reg_images(), round(time.perf_counter() - began, 2)])
            return rec

        best = run(False, None, "auto")
        best_pair = None
        if attempt.init_pairs and checks.confirmed(best) < len(job.names):
            for pair in _best_pairs(db_path, attempt.init_pairs):
                rec = run(False, pair, f"pair{pair[0]}-{pair[1]}")
                if checks.key(rec) > checks.key(best):
                    best, best_pair = rec, pair
                if checks.confirmed(best) == len(job.names):
                    break
        left_out: dict[str, str] = {}
        for _ in range(2):  # the check may doubt another photo once the first one is gone
            verdict = checks.verdict(best)
            if verdict is None or not verdict.doubtful:
                break
            left_out.update(verdict.doubtful)
            if len(verdict.supported) < 2:
                best = None
                break
            subset = verdict.supported
            ids = _image_ids(db_path, subset)
            pair = best_pair if best_pair is not None and set(best_pair) <= ids else None
            remapped = run(False, pair, "confirmed")
            if remapped is None:  # keep the solution: only its confirmed photos are given out
                break
            best, best_pair = remapped, pair
        summary["init_pair"] = best_pair
        if best is not None:
            summary["multiview_points"] = multiview_points(best)
            summary["multiview_fraction"] = round(multiview_points(best) / max(1, best.num_points3D()), 3)
        if (
            attempt.focal_search
            and best is not None
            and (last or checks.confirmed(best) == len(job.names))
            and summary["multiview_points"] >= MIN_MULTIVIEW_POINTS
            and summary["multiview_fraction"] >= MIN_MULTIVIEW_FRACTION
        ):
            pairs = [best_pair] + [p for p in _best_pairs(db_path, 2, subset) if p != best_pair]
            searched = _focal_search(db_path, run, pairs, len(subset or job.names), report, _focal_factor(best))
            summary["focal_search"] = searched["table"]
            found = searched["best"]
            # The refined run may have found the focal itself (then its error is the lower one).
            if checks.key(found) > checks.key(best):
                best = found
                summary["focal_factor"] = searched["factor"]
        verdict = checks.verdict(best)
        if verdict is not None:
            left_out.update(verdict.doubtful)
            summary["consistency"] = verdict.to_dict()
            summary["confirmed"] = len(verdict.supported)
            summary["explained_fraction"] = round(verdict.score / max(1, summary["verified_matches"]), 4)
            if len(verdict.supported) < 2:
                best = None
        summary["left_out"] = {name: why for name, why in left_out.items()
                               if verdict is None or name not in verdict.supported}
    except Exception as exc:  # pycolmap raises RuntimeError/ValueError: record it, let the ladder go on
        summary["error"] = f"{type(exc).__name__}: {exc}"
    if "consistency" not in summary:  # never give out a solution the check did not see
        best = None
    summary["registered"] = 0 if best is None else best.num_reg_images()
    summary["mapping_runs"] = runs
    if best is not None:
        summary["reprojection_error_px"] = float(best.compute_mean_reprojection_error())
        summary["points"] = int(best.num_points3D())
        summary["focal_over_long_edge"] = round(_focal_factor(best), 4)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return best, summary


def agreement_max_error(job: Job) -> float:
    """How far (px) a verified match may reproject from the solved cameras and still agree: the
    verification threshold. Measured on the benchmark sets: right solutions explained at least 94%
    of every pair's matches at this threshold (72% at half of it); with twice it a castle photo
    placed from the façade's look-alike opposite wall agreed with 81% and 76% of its pairs'
    matches and passed the check, at this threshold with 68% and 55%."""
    sizes = {image_size(Path(job.image_dir) / n) for n in job.names}
    return verification_max_error(max(max(size) for size in sizes))


class Checks:
    """The consistency verdicts of an attempt's reconstructions, each computed once."""

    def __init__(self, db_path: Path, max_error_px: float):
        self.db_path, self.max_error_px = db_path, max_error_px
        self._done: dict[int, tuple[object, object]] = {}

    def verdict(self, rec):
        if rec is None:
            return None
        if id(rec) not in self._done:  # the reconstruction is kept with it, so its id stays its own
            self._done[id(rec)] = (rec, judge_reconstruction(rec, self.db_path, self.max_error_px))
        return self._done[id(rec)][1]

    def confirmed(self, rec) -> int:
        verdict = self.verdict(rec)
        return 0 if verdict is None else len(verdict.supported)

    def key(self, rec) -> tuple:
        """Confirmed photos first, then agreeing matches, then lower reprojection error."""
        verdict = self.verdict(rec)
        if verdict is None:
            return (0, -math.inf, -math.inf)
        return (len(verdict.supported), verdict.score, -rec.compute_mean_reprojection_error())


def _image_ids(db_path: Path, names: list[str]) -> set[int]:
    db = pycolmap.Database.open(db_path)
    try:
        return {image.image_id for image in db.read_all_images() if image.name in names}
    finally:
        db.close()


def _focal_search(db_path: Path, run, pairs, num_images: int, report: Report, start: float) -> dict:
    """Fixed shared focal from the refined run's focal (``start``, x long edge) outward in steps of
    sqrt(2) until the error rises on both sides (within FOCAL_GRID's range), half steps either side
    of the best, then the minimum of a parabola through the best and its neighbours (in log focal).
    Walking out from the refined focal takes 8-10 mapping runs where the whole coarse grid took 14."""
    table, results = [], {}

    def try_factor(factor: float, every_pair: bool = False):
        """Maps at a fixed focal from each initial pair in turn: until every photo is placed, or
        all of them at the last point (the start changes the error there)."""
        _set_focal(db_path, factor)
        rec = None
        for pair in pairs:
            found = run(True, pair, f"focal{factor:.3f}")
            if score(found) > score(rec):
                rec = found
            if not every_pair and rec is not None and rec.num_reg_images() == num_images:
                break
        results[factor] = rec
        table.append([round(factor, 4), 0 if rec is None else rec.num_reg_images(),
                      None if rec is None else round(rec.compute_mean_reprojection_error(), 4)])

    def best_factor() -> float:
        return max(results, key=lambda f: score(results[f]))

    report({"type": "step", "message": "searching the focal length", "minor": True})
    step = FOCAL_GRID[1] / FOCAL_GRID[0]
    low, high = FOCAL_GRID[0] / 1.01, FOCAL_GRID[-1] * 1.01
    centre = float(np.clip(start, FOCAL_GRID[0], FOCAL_GRID[-1]))
    for factor in (centre / step, centre, centre * step):
        if low <= factor <= high:
            try_factor(factor)
    while True:  # walk outward while the best is the outermost point tried
        best, tried = best_factor(), sorted(results)
        if best == tried[0] and best / step >= low:
            try_factor(best / step)
        elif best == tried[-1] and best * step <= high:
            try_factor(best * step)
        else:
            break
    best = best_factor()
    half = math.sqrt(step)
    for factor in (best / half, best * half):
        try_factor(factor)
    factor = best_factor()
    refined = _parabola_minimum(results, factor)
    if refined is not None:
        try_factor(refined, every_pair=True)
        factor = best_factor()
    return {"best": results[factor], "factor": factor, "table": table}


def _parabola_minimum(results: dict, factor: float) -> float | None:
    """Vertex of the parabola through the reprojection errors at ``factor`` and its two nearest
    tried neighbours, in log focal; None when they do not bracket a minimum."""
    tried = sorted(f for f, r in results.items() if r is not None and r.num_reg_images() == results[factor].num_reg_images())
    i = tried.index(factor)
    if i == 0 or i == len(tried) - 1:
        return None
    xs = np.log(tried[i - 1 : i + 2])
    ys = np.array([results[f].compute_mean_reprojection_error() for f in tried[i - 1 : i + 2]])
    a, b, _ = np.polyfit(xs, ys, 2)
    if a <= 0:
        return None
    x = float(np.clip(-b / (2 * a), xs[0], xs[2]))
    return float(np.exp(x))
