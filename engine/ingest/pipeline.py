"""``ingest``: photos, folders and videos in; upright, downscaled working images and a report out."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import FormatError, InputError
from ..events import CancelToken, EventSink, Progress, Warning, null_sink
from ..io.atomic import atomic_write, atomic_write_bytes, atomic_write_text
from . import quality
from .exif import focal_px_from_exif_data
from .images import EXIF_ORIENTATION, IMAGE_EXTENSIONS, decode_image
from .video import VIDEO_EXTENSIONS, count_frames, sharp_frames

STAGE = "ingest"
MANIFEST = "ingest.json"
JPEG_QUALITY = 95
# Two views are the least that camera positions can be solved from (the README states the same range).
MIN_PHOTOS = 2
MAX_DUPLICATE_WARNINGS = 10  # a static stretch of video can pair up dozens of frames
_LOSSLESS_SOURCES = {".png", ".tif", ".tiff", ".bmp"}
_JPEG = {".jpg", ".jpeg", ".jpe"}


@dataclass
class IngestedImage:
    name: str  # file name in the working folder, unique and stable for the same inputs
    source: Path  # the photo or video it came from
    path: Path  # the working image
    width: int
    height: int
    scale: float  # working size / original size
    focal_px: float | None  # from EXIF, at the working resolution
    sharpness: float = 0.0  # variance of the Laplacian at a 512 px long edge
    frame_index: int | None = None  # for frames taken from a video


@dataclass
class IngestResult:
    images: list[IngestedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        def image(i: IngestedImage) -> dict:
            d = asdict(i)
            d["source"], d["path"] = str(i.source), i.path.name
            return d

        return {
            "images": [image(i) for i in self.images],
            "warnings": list(self.warnings),
            "skipped": [[str(p), reason] for p, reason in self.skipped],
        }

    def save(self, out_dir: str | Path) -> Path:
        path = Path(out_dir) / MANIFEST
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, out_dir: str | Path) -> "IngestResult":
        """The result a finished ingest left in ``out_dir`` (for resuming a job)."""
        out_dir = Path(out_dir)
        path = out_dir / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            images = [
                IngestedImage(**{**d, "source": Path(d["source"]), "path": out_dir / d["path"]})
                for d in data["images"]
            ]
            skipped = [(Path(p), reason) for p, reason in data["skipped"]]
            return cls(images, list(data["warnings"]), skipped)
        except FileNotFoundError:
            raise FormatError("is missing: the ingest stage has not finished here", path) from None
        except (ValueError, KeyError, TypeError) as e:
            raise FormatError(f"is not a valid ingest manifest ({e})", path, "run the ingest stage again") from None


# ----------------------------------------------------------------------------- inputs


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _expand(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """Photos and videos named by ``inputs`` (files or folders, not searched recursively), in order."""
    photos: list[Path] = []
    videos: list[Path] = []
    seen: set[Path] = set()
    if not inputs:
        raise InputError("no photos given", hint=f"choose at least {MIN_PHOTOS} photos, a folder of photos, or a video")
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError("does not exist", path, "check the path, or choose the photos again")
        if path.is_dir():
            entries = [
                p for p in sorted(path.iterdir(), key=_natural_key)
                if p.is_file() and not p.name.startswith(".")
                and (p.suffix.lower() in IMAGE_EXTENSIONS or _is_video(p))
            ]
            if not entries:
                raise InputError(
                    "this folder holds no photos or videos",
                    path,
                    f"photos: {', '.join(sorted(IMAGE_EXTENSIONS))}; videos: {', '.join(sorted(VIDEO_EXTENSIONS))}",
                )
        else:
            entries = [path]
        for entry in entries:
            key = entry.resolve()
            if key in seen:
                continue
            seen.add(key)
            (videos if _is_video(entry) else photos).append(entry)
    return photos, videos


def _evenly_spaced(items: list, keep: int) -> list:
    if keep >= len(items):
        return items
    if keep <= 0:
        return []
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, keep).round()]


def _budget(num_photos: int, num_videos: int, video_frames: int, max_images: int | None) -> tuple[int, int]:
    """(photos to keep, frames per video) within ``max_images``."""
    total = num_photos + num_videos * video_frames
    if max_images is None or total <= max_images:
        return num_photos, video_frames
    share = max_images / total
    per_video = max(1, math.floor(video_frames * share)) if num_videos else 0
    photos = max(0, min(num_photos, max_images - per_video * num_videos))
    return photos, per_video


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _unique_name(stem: str, ext: str, taken: set[str]) -> str:
    # Plain ASCII names without spaces travel through every tool (COLMAP text models end names at a space).
    base = _UNSAFE.sub("_", stem).strip("._") or "image"
    name, k = f"{base}{ext}", 2
    while name.lower() in taken:
        name, k = f"{base}_{k}{ext}", k + 1
    taken.add(name.lower())
    return name


# ----------------------------------------------------------------------------- one image


def _working_size(width: int, height: int, max_long_edge: int) -> tuple[int, int]:
    s = min(1.0, max_long_edge / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def _encode(pixels: np.ndarray, ext: str) -> bytes:
    if pixels.shape[2] == 4:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    else:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode(ext, bgr, params)
    if not ok:
        raise FormatError(f"could not encode a {ext} image")
    return data.tobytes()


def _resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resized RGB or RGBA; RGBA is averaged with colour weighted by alpha, so that the colour stored
    under transparent pixels (often black) does not bleed into the subject's edges."""
    if pixels.shape[2] != 4:
        return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    rgba = pixels.astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255.0
    small = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    alpha = small[..., 3:]
    small[..., :3] = np.where(alpha > 0, small[..., :3] * 255.0 / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


@dataclass
class _Prepared:
    pixels: np.ndarray
    original_size: tuple[int, int]
    focal_px: float | None
    copy_from: Path | None  # the source can be copied byte for byte


def _prepare_photo(path: Path, max_long_edge: int) -> _Prepared:
    decoded = decode_image(path, max_long_edge)
    w, h = decoded.original_size
    work_w, work_h = _working_size(w, h, max_long_edge)
    pixels = decoded.pixels
    if pixels.shape[1] != work_w or pixels.shape[0] != work_h:
        pixels = _resized(pixels, (work_w, work_h))
    focal = focal_px_from_exif_data(decoded.exif, work_w, work_h, stored_long_edge=max(w, h))
    upright = decoded.exif.get(EXIF_ORIENTATION, 1) in (1, None)
    unchanged = (work_w, work_h) == (w, h) and upright
    # A photo that needs no change is copied: no re-encoding loss, and much faster.
    ext = path.suffix.lower()
    copyable = ext in _JPEG or (ext == ".png" and decoded.mode in ("RGB", "RGBA"))
    copy_from = path if unchanged and copyable else None
    return _Prepared(pixels, (w, h), focal, copy_from)


# ----------------------------------------------------------------------------- the stage


def ingest(
    inputs: list[Path],
    out_dir: Path,
    *,
    max_long_edge: int = 1600,
    max_images: int | None = None,
    video_frames: int = 40,
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
) -> IngestResult:
    """Working images for a job: upright, at most ``max_long_edge`` px, uniquely named in ``out_dir``.

    Unreadable photos are skipped with a reason; blur, near-duplicates and mixed sizes are warned
    about. Raises InputError for missing inputs, empty folders, unreadable videos and fewer than two
    usable images. The result is also saved as ``out_dir/ingest.json``.
    """
    if max_long_edge < 16:
        raise InputError(f"max_long_edge={max_long_edge} is too small; use at least 16 px")
    if max_images is not None and max_images < MIN_PHOTOS:
        raise InputError(f"max_images={max_images} leaves too few photos; use at least {MIN_PHOTOS}")
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    out_dir = Path(out_dir)
    photos, videos = _expand([Path(p) for p in inputs])
    out_dir.mkdir(parents=True, exist_ok=True)
    result = IngestResult()

    def warn(message: str, path: Path | None = None) -> None:
        result.warnings.append(message if path is None else f"{path.name}: {message}")
        emit(Warning(message, None if path is None else str(path)))

    def skip(path: Path, reason: str) -> None:
        result.skipped.append((path, reason))
        emit(Warning(f"skipped: {reason}", str(path)))

    video_lengths = {}
    for video in videos:
        video_lengths[video] = count_frames(video)
        if video_lengths[video] == 0:
            raise InputError("this video has no frames that can be read", video, "check that it plays, or re-export it")
    keep_photos, per_video = _budget(len(photos), len(videos), video_frames, max_images)
    if keep_photos < len(photos):
        warn(f"using {keep_photos} of {len(photos)} photos, evenly spread (limit of {max_images} images)")
        photos = _evenly_spaced(photos, keep_photos)
    total = len(photos) + sum(min(per_video, n) for n in video_lengths.values())

    taken: set[str] = {MANIFEST}
    by_content: dict[bytes, str] = {}
    scores: list[float] = []
    thumbs: list[np.ndarray] = []
    original_sizes: list[tuple[int, int]] = []
    done = 0

    def add(source: Path, stem: str, ext: str, prepared: _Prepared, frame_index: int | None = None) -> None:
        pixels = prepared.pixels
        digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).digest()
        if digest in by_content:
            skip(source, f"identical to {by_content[digest]}")
            return
        name = _unique_name(stem, ext, taken)
        target = out_dir / name
        if prepared.copy_from is not None:
            with atomic_write(target) as f, open(prepared.copy_from, "rb") as src:
                shutil.copyfileobj(src, f)
        else:
            atomic_write_bytes(target, _encode(pixels, ext))
        by_content[digest] = name
        grey = quality.grey(pixels)
        scores.append(quality.sharpness(grey))
        thumbs.append(quality.thumbnail(grey))
        original_sizes.append(prepared.original_size)
        h, w = pixels.shape[:2]
        result.images.append(
            IngestedImage(
                name=name, source=source, path=target, width=w, height=h,
                scale=max(w, h) / max(prepared.original_size), focal_px=prepared.focal_px,
                sharpness=scores[-1], frame_index=frame_index,
            )
        )

    for photo in photos:
        emit(Progress(STAGE, done, total, f"reading {photo.name}"))
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            prepared = _prepare_photo(photo, max_long_edge)
        except FormatError as e:
            skip(photo, e.message)
        else:
            if prepared.copy_from is not None:
                ext = ".jpg" if photo.suffix.lower() in _JPEG else ".png"
            else:
                lossless = photo.suffix.lower() in _LOSSLESS_SOURCES or prepared.pixels.shape[2] == 4
                ext = ".png" if lossless else ".jpg"
            add(photo, photo.stem, ext, prepared)
        done += 1

    for video in videos:
        for frame in sharp_frames(video, per_video, cancel=cancel, num_frames=video_lengths[video]):
            h, w = frame.rgb.shape[:2]
            work_w, work_h = _working_size(w, h, max_long_edge)
            pixels = frame.rgb
            if (work_w, work_h) != (w, h):
                pixels = cv2.resize(pixels, (work_w, work_h), interpolation=cv2.INTER_AREA)
            add(video, f"{video.stem}_f{frame.index:06d}", ".jpg", _Prepared(pixels, (w, h), None, None), frame.index)
            done += 1
            emit(Progress(STAGE, done, total, f"{video.name}: frame {frame.index}"))
            if cancel is not None:
                cancel.raise_if_cancelled()

    images = result.images
    for i in quality.blurry_indices(scores):
        median = float(np.median(scores))
        warn(
            f"looks blurry (sharpness {scores[i]:.0f}, the set's median is {median:.0f}); "
            "blurry photos make the scene soft: retake it or leave it out",
            images[i].source if images[i].frame_index is None else images[i].path,
        )
    pairs = quality.near_duplicate_pairs(thumbs)
    for i, j, score in pairs[:MAX_DUPLICATE_WARNINGS]:
        warn(
            f"{images[j].name} is nearly the same photo as {images[i].name} (similarity {score:.3f}); "
            "photos from the same spot add little: move a step between shots"
        )
    if len(pairs) > MAX_DUPLICATE_WARNINGS:
        warn(f"{len(pairs) - MAX_DUPLICATE_WARNINGS} more pairs of nearly identical photos")
    for message in quality.size_mix_warnings(original_sizes):
        warn(message)

    emit(Progress(STAGE, total, total, f"{len(images)} images ready"))
    if len(images) < MIN_PHOTOS:
        found = len(photos) + sum(min(per_video, n) for n in video_lengths.values())
        reasons = "; ".join(f"{p.name}: {r}" for p, r in result.skipped[:5])
        raise InputError(
            f"{len(images)} usable image{'s' if len(images) != 1 else ''} of {found} found"
            + (f" ({reasons})" if reasons else ""),
            hint=f"a scene needs at least {MIN_PHOTOS} photos of it from different positions (10-50 work best)",
        )
    result.save(out_dir)
    return result
