"""View selections on the evaluation datasets (shared by the real-data tests and the benchmark)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


def dataset_images(dataset_dir: Path) -> list[Path]:
    """The photos of a dataset: ``images/``, or ``train/`` for the NeRF synthetic sets."""
    folder = Path(dataset_dir) / "images"
    if not folder.is_dir():
        folder = Path(dataset_dir) / "train"
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def reference_cameras(dataset_dir: Path):
    """The reference cameras of the dataset's photos (``dataset_images``), named by file name.

    Only the photos' own folder counts: the NeRF synthetic sets' model also holds ``test/r_0.png``
    beside ``train/r_0.png``, and named by file name alone the test camera took the train photo's place.
    """
    from engine.scene import CameraRig

    from .reference import read_reference_rig

    dataset_dir = Path(dataset_dir)
    folder = dataset_images(dataset_dir)[0].parent.name
    cameras = []
    for cam in read_reference_rig(dataset_dir / "gt_colmap_text").cameras:
        parent = Path(cam.name).parent.name
        if parent in ("", folder):
            cam.name = Path(cam.name).name
            cameras.append(cam)
    return CameraRig(cameras)


def nearest_views(dataset_dir: Path, count: int, start: str) -> list[Path]:
    """``start`` and the ``count - 1`` photos whose reference cameras see the object-centred scene
    from the directions nearest to it (for synthetic sets whose views are scattered over a sphere)."""
    dataset_dir = Path(dataset_dir)
    by_file = reference_cameras(dataset_dir).by_name()
    photos = {p.name: p for p in dataset_images(dataset_dir)}
    names = [n for n in by_file if n in photos]
    directions = np.array([by_file[n].center / np.linalg.norm(by_file[n].center) for n in names])
    cosine = directions @ directions[names.index(start)]
    order = np.argsort(-cosine, kind="stable")[:count]
    return [photos[names[i]] for i in sorted(order)]


def spread_views(dataset_dir: Path, count: int) -> list[Path]:
    """``count`` photos spread evenly over the dataset's (name-sorted) sequence."""
    images = dataset_images(dataset_dir)
    index = np.linspace(0, len(images) - 1, count).round().astype(int)
    return [images[i] for i in index]


def ring_order(dataset_dir: Path) -> list[Path]:
    """Middlebury ring photos sorted by their position on the ring (``*_ang.txt``).

    Per the dataset's README, (lat, lon) is the same viewpoint as (-lat, 180 + lon) rotated 180
    degrees in the image, so every view is mapped to one latitude before sorting by longitude.
    Photos whose viewpoint repeats an earlier one (same ring position) are dropped.
    """
    dataset_dir = Path(dataset_dir)
    angle_file = next(dataset_dir.glob("*_ang.txt"))
    positions = []
    for line in angle_file.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        lat, lon, name = float(parts[0]), float(parts[1]), parts[2]
        if lat > 0:
            lon += 180.0
        lon = (lon + 180.0) % 360.0 - 180.0
        positions.append((round(lon, 3), name))
    positions.sort()
    seen, ordered = set(), []
    for lon, name in positions:
        key = round(lon % 360.0, 1)
        if key not in seen:
            seen.add(key)
            ordered.append(dataset_dir / "images" / name)
    return ordered


def consecutive_ring_views(dataset_dir: Path, count: int, start: str) -> list[Path]:
    """``count`` neighbouring ring photos starting at the photo named ``start``."""
    ordered = ring_order(dataset_dir)
    names = [p.name for p in ordered]
    i = names.index(start)
    return [ordered[(i + k) % len(ordered)] for k in range(count)]


# The sparse-view acceptance cases: (case name, dataset folder, how the photos are chosen).
# templeSR: neighbouring ring views starting at templeSR0003 (about 23 degrees apart; the run
# includes views taken upside down from the other latitude).
ACCEPTANCE_CASES = {
    "fern_3": ("llff_fern", lambda d: spread_views(d, 3)),
    "fern_4": ("llff_fern", lambda d: spread_views(d, 4)),
    "fern_6": ("llff_fern", lambda d: spread_views(d, 6)),
    "fountain_3": ("strecha_fountain_p11", lambda d: spread_views(d, 3)),
    "fountain_4": ("strecha_fountain_p11", lambda d: spread_views(d, 4)),
    "templeSR_4": ("middlebury_templeSR", lambda d: consecutive_ring_views(d, 4, "templeSR0003.png")),
    "templeSR_6": ("middlebury_templeSR", lambda d: consecutive_ring_views(d, 6, "templeSR0003.png")),
}


def _spread(count: int):
    return lambda d: spread_views(d, count)


def _ring(count: int):
    return lambda d: consecutive_ring_views(d, count, "templeSR0003.png")


def _nearest(count: int):
    return lambda d: nearest_views(d, count, "r_0.png")


# The benchmark's cases: every dataset with 3, 4 and 6 photos spread over it (neighbouring ring
# views for templeSR, the nearest views on the sphere for the synthetic lego).
BENCHMARK_CASES = {
    f"{short}_{count}": (folder, choose(count))
    for short, folder, choose in (
        ("fern", "llff_fern", _spread), ("fountain", "strecha_fountain_p11", _spread),
        ("castle", "strecha_castle_p19", _spread), ("entry", "strecha_entry_p10", _spread),
        ("templeSR", "middlebury_templeSR", _ring), ("lego", "nerf_synthetic_lego", _nearest),
    )
    for count in (3, 4, 6)
}
