"""One view's depth with a confidence per pixel, and its .npz file."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import FormatError
from ..io.atomic import atomic_write_bytes
from ..scene import Camera, SceneError

KINDS = ("metric", "relative")
QUANTITIES = ("depth", "inverse")  # what a map's values grow with: depth, or inverse depth (disparity)
FILE_VERSION = 2  # 2: the quantity; a version-1 file's relative map is read as inverse (what it assumed)


@dataclass
class DepthMap:
    depth: np.ndarray  # (H,W) float32, camera-space z; 0 where unknown
    confidence: np.ndarray  # (H,W) float32 in [0,1]; 0 where unknown
    camera: Camera  # the view it belongs to (its width/height = the map's size)
    kind: str  # "metric" (scene units) or "relative" (an unknown affine function of ``quantity``)
    source: str  # the backend that made it, in words
    # "depth" (multi-view stereo, metric monocular models) or "inverse": relative monocular models
    # (Depth Anything, DPT) predict disparity, larger when nearer; the depth losses compare like with like.
    # None: depth for a metric map, inverse for a relative one (what monocular models mostly predict)
    quantity: str | None = None

    def __post_init__(self):
        # copies: unknown pixels are zeroed below, never in the caller's arrays
        self.depth = np.array(self.depth, dtype=np.float32)
        self.confidence = np.array(self.confidence, dtype=np.float32)
        shape = (self.camera.height, self.camera.width)
        if self.depth.shape != shape or self.confidence.shape != shape:
            raise SceneError(
                f"depth map {self.depth.shape} / confidence {self.confidence.shape} do not match the camera's "
                f"{self.camera.width}x{self.camera.height} image"
            )
        if self.kind not in KINDS:
            raise SceneError(f"depth kind must be one of {KINDS}, got {self.kind!r}")
        if self.quantity is None:
            self.quantity = "inverse" if self.kind == "relative" else "depth"
        if self.quantity not in QUANTITIES:
            raise SceneError(f"depth quantity must be one of {QUANTITIES}, got {self.quantity!r}")
        if self.kind == "metric" and self.quantity != "depth":
            raise SceneError("a metric depth map holds depth in scene units, not inverse depth")
        unknown = ~np.isfinite(self.depth) | ~np.isfinite(self.confidence)
        if self.kind == "metric":
            unknown |= self.depth <= 0
        self.depth[unknown] = 0
        self.confidence[unknown] = 0
        np.clip(self.confidence, 0, 1, out=self.confidence)

    @property
    def valid(self) -> np.ndarray:
        return self.confidence > 0

    def resized(self, width: int, height: int) -> "DepthMap":
        """The map at another size. Depths are taken from the nearest pixel, never averaged: an average
        across an object's edge is a depth between the object and what is behind it, where there is
        nothing. Shrinking averages the confidence over the area (a pixel half off a hole is half sure)."""
        width, height = int(width), int(height)
        camera = self.camera.resized(width, height)
        depth = cv2.resize(self.depth, (width, height), interpolation=cv2.INTER_NEAREST)
        shrinking = width < self.camera.width or height < self.camera.height
        conf = cv2.resize(self.confidence, (width, height),
                          interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST)
        conf = np.where(depth > 0, conf, 0) if self.kind == "metric" else conf
        return DepthMap(depth, conf, camera, self.kind, self.source, self.quantity)

    # ----------------------------------------------------------------- file
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        c = self.camera
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            version=np.int32(FILE_VERSION),
            depth=self.depth,
            confidence=self.confidence,
            R=c.R,
            t=c.t,
            intrinsics=np.array([c.fx, c.fy, c.cx, c.cy]),
            size=np.array([c.width, c.height], np.int64),
            camera_name=np.array(c.name),
            kind=np.array(self.kind),
            source=np.array(self.source),
            quantity=np.array(self.quantity),
        )
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DepthMap":
        path = Path(path)
        hint = "run the depth stage again to rewrite it"
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise FormatError("the depth map file does not exist", path, hint) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise FormatError(f"is not a readable depth map ({e})", path, hint) from None
        missing = {"version", "depth", "confidence", "R", "t", "intrinsics", "size", "kind", "source"} - set(data)
        if missing:
            raise FormatError(f"is not a depth map: it lacks {', '.join(sorted(missing))}", path, hint)
        if int(data["version"]) > FILE_VERSION:
            raise FormatError(f"depth map file version {int(data['version'])} is newer than this Handful reads",
                              path, "update Handful")
        try:
            fx, fy, cx, cy = (float(v) for v in data["intrinsics"])
            width, height = (int(v) for v in data["size"])
            camera = Camera(R=data["R"], t=data["t"], fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height,
                            name=str(data.get("camera_name", "")))
            kind = str(data["kind"])
            quantity = str(data["quantity"]) if "quantity" in data else None  # version 1: by its kind
            return cls(data["depth"], data["confidence"], camera, kind, str(data["source"]), quantity)
        except (SceneError, ValueError, TypeError) as e:
            raise FormatError(f"holds an invalid depth map ({e})", path, hint) from None
