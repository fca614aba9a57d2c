"""Learned features and matches written into a pycolmap database (runs inside the pose worker).

Keypoints and LightGlue matches go into the same tables as SIFT's, and pycolmap's own geometric
verification fills the two-view geometries, so the mapping ladder (incremental mapping, initial
pairs, focal search, bundle adjustment) reads them exactly as it reads SIFT's.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pycolmap

from .learned_models import METHODS, build_extractor, build_matcher

# Features are found on copies this size. At 768 px entry_6 was placed as well as at 1024
# (median rotation error 0.43 against 0.41 degrees) and feature extraction took 55 s instead of 98 s.
LEARNED_LONG_EDGE = 768
LEARNED_MAX_KEYPOINTS = 1024  # LightGlue's cost grows with the square of it: 2048 took 3x as long per pair on the CPU
# A pair with fewer LightGlue matches than this is matched again with the second photo turned by 180
# degrees, and that is kept when it finds TURNED_GAIN times as many.
TURNED_RETRY_BELOW = 100
TURNED_GAIN = 3
SEQUENTIAL_OVERLAP = 5  # with more photos than exhaustive matching allows: each with its next five
PRIOR_FOCAL_FACTOR = 1.2  # COLMAP's focal prior without EXIF: 1.2 x long edge

Report = Callable[[dict], None]


def choose_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_LOADED: dict[tuple, "LearnedFeatures"] = {}


def learned_features(key: str, weights_dir, max_keypoints: int, cores: int) -> "LearnedFeatures":
    """The method's models, loaded once per worker (a later attempt with the same method reuses them)."""
    cache_key = (key, weights_dir, max_keypoints)
    if cache_key not in _LOADED:
        _set_torch_threads(cores)
        _LOADED[cache_key] = LearnedFeatures(key, weights_dir, max_keypoints)
    return _LOADED[cache_key]


def _set_torch_threads(cores: int) -> None:
    """One thread per idle core: torch's OpenMP threads spin-wait for each other, and on a busy
    machine two threads on two cores ran LightGlue 15x slower than one (load 18, 2 cores)."""
    import os

    import torch

    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    torch.set_num_threads(max(1, min(cores, int(cores - load + 0.5))))


def image_pairs(count: int, exhaustive: bool) -> list[tuple[int, int]]:
    """Index pairs to match: all of them, or each photo with its next few in the given order."""
    if exhaustive:
        return list(itertools.combinations(range(count), 2))
    return [(i, j) for i in range(count) for j in range(i + 1, min(count, i + 1 + SEQUENTIAL_OVERLAP))]


def _load_rgb(path: Path, long_edge: int, upside_down: bool = False):
    """The photo as a (1,3,H,W) tensor in [0,1], resized to ``long_edge`` with both sides multiples
    of 32 (XFeat resizes to that anyway, ALIKED pads to it), and the scale back to the photo's pixels."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return _rgb_tensor(image, long_edge, upside_down)


def _rgb_tensor(image: np.ndarray, long_edge: int, upside_down: bool = False):
    """``_load_rgb`` for a BGR uint8 image already in memory."""
    import torch

    h, w = image.shape[:2]
    scale = min(1.0, long_edge / max(h, w))
    size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if upside_down:
        small = cv2.rotate(small, cv2.ROTATE_180)
    tensor = torch.from_numpy(np.ascontiguousarray(small[..., ::-1])).permute(2, 0, 1)[None].float() / 255.0
    return tensor, (w / size[0], h / size[1]), (w, h)


class LearnedFeatures:
    """One learned extractor and its matcher, loaded once per worker."""

    def __init__(self, key: str, weights_dir=None, max_keypoints: int = LEARNED_MAX_KEYPOINTS, device: str | None = None):
        self.method = METHODS[key]
        self.device = device or choose_device()
        self.max_keypoints = max_keypoints
        self.extractor = build_extractor(self.method, max_keypoints, weights_dir, self.device)
        self.matcher = build_matcher(self.method, weights_dir, self.device)

    def extract(self, path: Path, long_edge: int, upside_down: bool = False) -> dict:
        """Keypoints in the photo's pixels (COLMAP convention: top-left pixel centre at 0.5);
        ``upside_down``: found on the photo turned by 180 degrees (LightGlue still sees them there)."""
        return self._extract(_load_rgb(path, long_edge, upside_down), upside_down)

    def extract_image(self, bgr: np.ndarray, long_edge: int) -> dict:
        """``extract`` for a BGR uint8 image in memory (the depth prior's working copies)."""
        return self._extract(_rgb_tensor(bgr, long_edge), False)

    def _extract(self, loaded, upside_down: bool) -> dict:
        import torch

        image, (sx, sy), (w, h) = loaded
        image = image.to(self.device)
        with torch.inference_mode():
            if self.method.key == "disk":
                found = self.extractor(image, n=self.max_keypoints, window_size=5, score_threshold=0.0, pad_if_not_divisible=True)[0]
                xy, desc = found.keypoints, found.descriptors
            elif self.method.key == "aliked":
                found = self.extractor(image)[0]
                xy, desc = found.keypoints, found.descriptors
            else:
                found = self.extractor.detectAndCompute(image, top_k=self.max_keypoints)[0]
                xy, desc = found["keypoints"], found["descriptors"]
        # kornia puts pixel centres at integers; COLMAP at +0.5.
        small_xy = xy.float()
        upright_xy = small_xy
        if upside_down:  # back to the upright small image: pixel centres at integers, so x -> W - 1 - x
            upright_xy = torch.tensor([image.shape[3] - 1, image.shape[2] - 1], device=small_xy.device) - small_xy
        keypoints = ((upright_xy + 0.5) * torch.tensor([sx, sy], device=small_xy.device)).cpu().numpy().astype(np.float32)
        return {"keypoints": keypoints, "small_xy": small_xy, "descriptors": desc.float(),
                "small_size": torch.tensor([[image.shape[3], image.shape[2]]], device=self.device, dtype=torch.float32)}

    def match(self, a: dict, b: dict) -> np.ndarray:
        """(M, 2) indices of matched keypoints."""
        import torch

        if len(a["small_xy"]) == 0 or len(b["small_xy"]) == 0:
            return np.zeros((0, 2), np.uint32)
        with torch.inference_mode():
            out = self.matcher({
                "image0": {"keypoints": a["small_xy"][None], "descriptors": a["descriptors"][None], "image_size": a["small_size"]},
                "image1": {"keypoints": b["small_xy"][None], "descriptors": b["descriptors"][None], "image_size": b["small_size"]},
            })
        return out["matches"][0].cpu().numpy().astype(np.uint32).reshape(-1, 2)


def build_database(db_path: Path, image_dir: Path, names: list[str], features: LearnedFeatures, *,
                   exhaustive: bool, long_edge: int, verification, num_threads: int, report: Report) -> dict:
    """Writes cameras, images, keypoints and matches, then runs pycolmap's geometric verification.
    Returns counts for the attempt summary."""
    label = features.method.label
    started = time.perf_counter()
    found = []
    for k, name in enumerate(names):
        report({"type": "step", "message": f"finding features ({label}): photo {k + 1} of {len(names)}", "minor": True})
        found.append(features.extract(image_dir / name, long_edge))
    extracted = time.perf_counter()
    pairs = image_pairs(len(names), exhaustive)
    matches, turned = {}, {}
    for k, (i, j) in enumerate(pairs):
        report({"type": "step", "message": f"matching photos ({label}): pair {k + 1} of {len(pairs)}", "minor": True})
        matches[(i, j)] = features.match(found[i], found[j])
    # ALIKED, DISK and XFeat are not rotation invariant: a photo taken upside down (over the top of
    # an object, or without an orientation tag) shares few matches, and spurious ones. A weak pair
    # is matched again with its second photo turned by 180 degrees, but only where it could join
    # photos the strong pairs leave apart: on photo sets spread wide most pairs are weak, and
    # retrying all of them cost a feature extraction per photo and a second match per weak pair.
    group = strong_groups(len(names), {p: len(m) for p, m in matches.items()}, TURNED_RETRY_BELOW)
    for i, j in pairs:
        if len(matches[(i, j)]) >= TURNED_RETRY_BELOW or group[i] == group[j]:
            continue
        report({"type": "step", "message": f"matching photos ({label}): {names[j]} turned over", "minor": True})
        if j not in turned:
            turned[j] = features.extract(image_dir / names[j], long_edge, upside_down=True)
        again = features.match(found[i], turned[j])
        if len(again) > TURNED_GAIN * max(1, len(matches[(i, j)])):
            again[:, 1] += len(found[j]["keypoints"])  # the turned keypoints follow the upright ones
            matches[(i, j)] = again
    matched = time.perf_counter()
    sizes = [image_size(image_dir / n) for n in names]
    db = pycolmap.Database.open(db_path)
    try:
        ids = _write_images(db, names, sizes)
        for index, (image_id, feats) in enumerate(zip(ids, found)):
            keypoints = feats["keypoints"]
            if index in turned:
                keypoints = np.concatenate([keypoints, turned[index]["keypoints"]])
            db.write_keypoints(image_id, keypoints)
        for (i, j), m in matches.items():
            if len(m):
                db.write_matches(ids[i], ids[j], m)
    finally:
        db.close()
    verifier = pycolmap.GeometricVerifierOptions()
    verifier.num_threads = num_threads
    pycolmap.geometric_verification(db_path, verifier_options=verifier, two_view_geometry_options=verification)
    return {"pairs_matched": len(pairs), "raw_matches": int(sum(len(m) for m in matches.values())),
            "keypoints": int(sum(len(f["keypoints"]) for f in found)),
            "turned_photos": [names[j] for j in sorted(turned)],
            "turned_pairs": int(sum(1 for (i, j), m in matches.items() if len(m) and m[:, 1].max() >= len(found[j]["keypoints"]))),
            "seconds_features": round(extracted - started, 2), "seconds_matching": round(matched - extracted, 2),
            "seconds_verification": round(time.perf_counter() - matched, 2)}


def strong_groups(count: int, match_counts: dict[tuple[int, int], int], minimum: int) -> list[int]:
    """Per photo, a label shared by the photos that pairs with at least ``minimum`` matches link."""
    label = list(range(count))

    def root(i: int) -> int:
        while label[i] != i:
            label[i] = label[label[i]]
            i = label[i]
        return i

    for (i, j), n in match_counts.items():
        if n >= minimum:
            label[root(i)] = root(j)
    return [root(i) for i in range(count)]


def image_size(path: Path) -> tuple[int, int]:
    bitmap = pycolmap.Bitmap.read(str(path), False)
    return bitmap.width, bitmap.height


def write_images(db_path: Path, image_dir: Path, names: list[str]) -> list[int]:
    """Cameras, rigs, frames and images of ``names`` into a new database, numbered in that order."""
    db = pycolmap.Database.open(db_path)
    try:
        return _write_images(db, names, [image_size(image_dir / n) for n in names])
    finally:
        db.close()


def _write_images(db, names, sizes) -> list[int]:
    """Cameras (one shared when all photos have one size, as SIFT extraction does), one rig per
    camera and one frame per image, as pycolmap's image reader writes them."""
    camera_ids: dict[tuple[int, int] | str, int] = {}
    shared = len(set(sizes)) == 1
    ids = []
    for name, (w, h) in zip(names, sizes):
        key = (w, h) if shared else name
        if key not in camera_ids:
            camera = pycolmap.Camera(model="SIMPLE_RADIAL", width=w, height=h,
                                     params=[PRIOR_FOCAL_FACTOR * max(w, h), w / 2, h / 2, 0.0])
            camera_id = db.write_camera(camera)
            rig = pycolmap.Rig()
            rig.add_ref_sensor(pycolmap.sensor_t(pycolmap.SensorType.CAMERA, camera_id))
            db.write_rig(rig)
            camera_ids[key] = camera_id
        camera_id = camera_ids[key]
        image_id = db.write_image(pycolmap.Image(name=name, camera_id=camera_id))
        frame = pycolmap.Frame()
        frame.rig_id = _rig_of_camera(db, camera_id)
        frame.add_data_id(pycolmap.data_t(pycolmap.sensor_t(pycolmap.SensorType.CAMERA, camera_id), image_id))
        db.write_frame(frame)
        ids.append(image_id)
    return ids


def _rig_of_camera(db, camera_id: int) -> int:
    return db.read_rig_with_sensor(pycolmap.sensor_t(pycolmap.SensorType.CAMERA, camera_id)).rig_id
