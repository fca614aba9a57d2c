"""poses: the cameras, estimated by pycolmap or imported (--cameras), as a COLMAP text model in sparse/."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..scene import Camera, CameraRig
from .base import Stage, StageResult


@dataclass
class PosesResult(StageResult):
    file = "poses.json"
    strategy: str | None = None
    registered: list = field(default_factory=list)
    unregistered: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    summary: dict | None = None
    choice: object = None
    left_out: object = None


class PosesStage(Stage):
    name = "poses"
    reads = ("cameras", "pose_features")
    outputs = ("sparse/", "poses.json")
    result_type = PosesResult

    def run(self, ctx) -> PosesResult:
        from ..io import colmap

        images = ctx.ingested().images
        if ctx.options.cameras is not None:
            rig = import_cameras(ctx, images)
            result = PosesResult(strategy=f"imported from {ctx.options.cameras}", registered=[c.name for c in rig],
                                 unregistered=[im["name"] for im in images if im["name"] not in rig.by_name()])
        else:
            from ..poses import estimate_poses

            paths = [ctx.out / im["path"] for im in images]
            hints = {im["name"]: im["focal_px"] for im in images if im.get("focal_px")}
            res = estimate_poses(paths, ctx.out / "poses_work", focal_px_hints=hints or None,
                                 emit=ctx.emit, cancel=ctx.cancel, features=ctx.options.pose_features)
            rig = res.rig
            rig.cameras = [undistort(c) for c in rig.cameras]
            result = PosesResult(strategy=res.strategy, registered=list(res.registered),
                                 unregistered=list(res.unregistered),
                                 attempts=json.loads(json.dumps(res.attempts, default=str)),
                                 summary=res.summary, choice=res.choice, left_out=res.left_out)
        colmap.write_text(rig, ctx.out / "sparse")
        return result


def import_cameras(ctx, images: list[dict]) -> CameraRig:
    from ..io import colmap, transforms

    src = Path(ctx.options.cameras)
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
            ctx.warn("no camera for this photo in the camera file; it is left out", im["source"])
            continue
        # the camera file describes the original photo; the working copy may be downscaled
        orig_w, orig_h = round(im["width"] / im["scale"]), round(im["height"] / im["scale"])
        if (cam.width, cam.height) != (orig_w, orig_h) and (cam.width, cam.height) != (im["width"], im["height"]):
            ctx.warn(f"camera size {cam.width}x{cam.height} differs from the photo ({orig_w}x{orig_h}); "
                     "intrinsics rescaled", im["source"])
        cam = cam.resized(im["width"], im["height"])
        cam = dataclasses.replace(cam, name=im["name"], image_path=ctx.out / im["path"])
        cams.append(undistort(cam))
    if len(cams) < 2:
        raise InputError(f"only {len(cams)} of {len(images)} photos have a camera in the camera file", path=src,
                         hint="image names in the camera file must match the photos' file names")
    return CameraRig(cams, rig.points)


def undistort(cam: Camera) -> Camera:
    """Remove lens distortion from the working image in place, so later stages see a pinhole."""
    if cam.distortion is None or cam.image_path is None:
        return cam
    import cv2

    img = cv2.imread(str(cam.image_path), cv2.IMREAD_UNCHANGED)
    if img is not None:
        und = cv2.undistort(img, cam.K, cam.distortion)
        ok, buf = cv2.imencode(Path(cam.image_path).suffix or ".png", und)
        if ok:
            from ..io.atomic import atomic_write_bytes

            atomic_write_bytes(cam.image_path, buf.tobytes())
    return dataclasses.replace(cam, distortion=None)
