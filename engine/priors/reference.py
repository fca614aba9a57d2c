"""Reference depths for checking a depth prior on a real photo set whose cameras are known (shared
by the real-data test and ``benchmarks/depth_bench.py``).

The shared datasets ship cameras but no points, so the reference is made here, independently of
the prior: pycolmap's SIFT features and matches over more photos than the prior gets, triangulated
with the dataset's own cameras (``pycolmap.triangulate_points``), keeping points seen in at least
three photos. Each view's reference is the points whose track includes that view (so occluded ones
are never compared).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..camera_projection import project_points
from ..scene import Camera
from .depth_map import DepthMap
from .stereo import opencv_intrinsics

MIN_TRACK = 3


def llff_split(names: Sequence[str], count: int) -> tuple[list[str], list[str]]:
    """The LLFF sparse-view protocol: every 8th photo held out, ``count`` training photos spread
    evenly over the rest (names in sorted order). Returns (training, held out)."""
    names = sorted(names)
    held_out = names[::8]
    rest = [n for n in names if n not in held_out]
    pick = np.linspace(0, len(rest) - 1, count).round().astype(int)
    return [rest[i] for i in pick], held_out


def undistorted(image: np.ndarray, camera: Camera) -> tuple[np.ndarray, Camera]:
    """The photo without lens distortion and its pinhole camera (same intrinsics)."""
    from dataclasses import replace

    if camera.distortion is None:
        return image, camera
    K = opencv_intrinsics(camera)
    return cv2.undistort(image, K, camera.distortion, None, K), replace(camera, distortion=None)


def load_views(dataset_dir: str | Path, names: Sequence[str]) -> tuple[list[Camera], list[np.ndarray]]:
    """The dataset's pinhole cameras and undistorted photos (uint8 RGB) for ``names``."""
    from ..ingest import load_image
    from ..io import colmap

    dataset_dir = Path(dataset_dir)
    cameras = {Path(c.name).name: c for c in colmap.read(dataset_dir / "gt_colmap_text").cameras}
    cams, images = [], []
    for name in names:
        image, cam = undistorted(load_image(dataset_dir / "images" / name), cameras[name])
        cams.append(cam)
        images.append(image)
    return cams, images


def dataset_names(dataset_dir: str | Path) -> list[str]:
    from ..io import colmap

    return sorted(Path(c.name).name for c in colmap.read(Path(dataset_dir) / "gt_colmap_text").cameras)


def reference_points(dataset_dir: str | Path, names: Sequence[str], work: str | Path, *, long_edge: int = 504,
                     max_features: int = 2000, threads: int = 2) -> dict[str, np.ndarray]:
    """World points (N,3) seen by each named photo, triangulated from all of ``names`` with the
    dataset's cameras (``gt_colmap_text``)."""
    import pycolmap

    dataset_dir, work = Path(dataset_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    image_dir = dataset_dir / "images"
    gt = pycolmap.Reconstruction(str(dataset_dir / "gt_colmap_text"))
    cam = next(iter(gt.cameras.values()))
    pose = {im.name: im.cam_from_world() for im in gt.images.values()}
    db_path = work / "reference.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = cam.model.name
    reader.camera_params = ",".join(str(p) for p in cam.params)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.max_image_size = long_edge
    extraction.sift.max_num_features = max_features
    pycolmap.extract_features(db_path, image_dir, image_names=list(names), camera_mode=pycolmap.CameraMode.SINGLE,
                              reader_options=reader, extraction_options=extraction)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    pycolmap.match_exhaustive(db_path, matching_options=matching)
    # The reconstruction must hold the database's own cameras, rigs, frames and images (their ids),
    # posed with the dataset's cameras.
    rec = pycolmap.Reconstruction()
    db = pycolmap.Database.open(db_path)
    try:
        for c in db.read_all_cameras():
            rec.add_camera(c)
        for r in db.read_all_rigs():
            rec.add_rig(r)
        images = {im.image_id: im for im in db.read_all_images()}
        frames = db.read_all_frames()
        for f in frames:
            image = images[next(iter(f.data_ids)).id]
            f.rig_from_world = pose[image.name]
            rec.add_frame(f)
        for image in images.values():
            rec.add_image(image)
        for f in frames:
            rec.register_frame(f.frame_id)
    finally:
        db.close()
    result = pycolmap.triangulate_points(rec, db_path, image_dir, work / "triangulated")
    seen: dict[str, list] = {result.images[i].name: [] for i in result.images}
    for point in result.points3D.values():
        track = [e.image_id for e in point.track.elements]
        if len(set(track)) >= MIN_TRACK:
            for image_id in set(track):
                seen[result.images[image_id].name].append(point.xyz)
    return {name: np.array(p, np.float64).reshape(-1, 3) for name, p in seen.items()}


@dataclass
class DepthAgreement:
    median_relative_error: float
    share_over_5pct: float  # of the compared points
    coverage: float  # share of the reference points where the map has a confident depth
    compared: int


def depth_agreement(depth_map: DepthMap, points: np.ndarray, min_confidence: float = 0.5) -> DepthAgreement:
    """How a metric map's depths compare with reference points its view sees."""
    cam = depth_map.camera
    pix, z = project_points(points, cam)
    with np.errstate(invalid="ignore"):
        inside = (z > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < cam.width) & (pix[:, 1] >= 0) & (pix[:, 1] < cam.height)
    cols = np.floor(pix[inside, 0]).astype(np.int64)
    rows = np.floor(pix[inside, 1]).astype(np.int64)
    confident = depth_map.confidence[rows, cols] >= min_confidence
    err = np.abs(depth_map.depth[rows, cols][confident] / z[inside][confident] - 1)
    if len(err) == 0:
        return DepthAgreement(float("nan"), float("nan"), 0.0, 0)
    return DepthAgreement(float(np.median(err)), float(np.mean(err > 0.05)), float(confident.mean()), int(len(err)))
