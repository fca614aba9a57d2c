"""Frames from a video: split it into equal segments and keep the sharpest frame of each.

Spreading picks over segments gives views from the whole walk-around; taking the sharpest frame in a
segment avoids the motion blur that hand-held video is full of.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import FormatError, InputError
from ..events import CancelToken
from .quality import sharpness

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
# Frames decoded and scored per segment: enough to find a sharp one, few enough to stay quick on
# long videos (the frames between are only grabbed, not converted).
CANDIDATES_PER_SEGMENT = 8


@dataclass
class VideoFrame:
    index: int  # frame number in the video
    rgb: np.ndarray  # (H, W, 3) uint8
    sharpness: float


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise InputError("does not exist", path, "check the path of the video")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FormatError("cannot open this video", path, "convert it to MP4 (H.264) and try again")
    return cap


def count_frames(path: Path) -> int:
    """Frames in the video: the container's count, or counted by reading when it has none."""
    cap = _open(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n > 0:
            return n
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _candidate_indices(num_frames: int, count: int) -> list[np.ndarray]:
    segments = min(count, num_frames)
    edges = np.linspace(0, num_frames, segments + 1).round().astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            k = min(CANDIDATES_PER_SEGMENT, b - a)
            out.append(np.unique(np.linspace(a, b - 1, k).round().astype(int)))
    return out


def sharp_frames(
    path: str | Path, count: int, cancel: CancelToken | None = None, num_frames: int | None = None
) -> Iterator[VideoFrame]:
    """Up to ``count`` well-spread, sharp frames in time order (one per segment).

    ``num_frames`` saves counting again when the caller has (see ``count_frames``).
    Raises InputError when the video has no readable frame."""
    path = Path(path)
    if count < 1:
        raise InputError(f"asked for {count} frames from a video; ask for at least 1", path)
    if num_frames is None:
        num_frames = count_frames(path)
    if num_frames == 0:
        raise InputError("this video has no frames that can be read", path, "check that it plays, or re-export it")
    cap = _open(path)
    yielded = 0
    try:
        position = 0  # index of the next frame the capture will return
        ended = False
        for candidates in _candidate_indices(num_frames, count):
            if cancel is not None:
                cancel.raise_if_cancelled()
            best: VideoFrame | None = None
            for index in candidates:
                while position < index and not ended:
                    ended = not cap.grab()
                    position += 1
                if ended:
                    break
                ok, bgr = cap.read()
                position += 1
                if not ok:
                    ended = True  # the container promised more frames than it holds
                    break
                grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
                score = sharpness(grey)
                if best is None or score > best.sharpness:
                    best = VideoFrame(int(index), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), score)
            if best is not None:
                yielded += 1
                yield best
            if ended:
                break
    finally:
        cap.release()
    if yielded == 0:
        raise InputError("this video has no frames that can be read", path, "check that it plays, or re-export it")
