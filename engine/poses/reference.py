"""Reference cameras from a COLMAP model folder (text or binary), as a CameraRig."""

from __future__ import annotations

from pathlib import Path

from engine.errors import FormatError
from engine.scene import Camera, CameraRig


def read_reference_rig(model_dir: str | Path, image_root: str | Path | None = None) -> CameraRig:
    """Cameras of a COLMAP model; uses ``engine.io.colmap.read`` when that module exists."""
    model_dir = Path(model_dir)
    try:
        from engine.io import colmap as colmap_io  # written by another engineer; optional for now
    except ImportError:
        colmap_io = None
    if colmap_io is not None and hasattr(colmap_io, "read"):
        return colmap_io.read(model_dir)
    import pycolmap

    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError for bad folders
        raise FormatError(f"cannot read the COLMAP model: {exc}", model_dir, "expected cameras, images and points3D files") from exc
    cameras = []
    for image_id in sorted(rec.reg_image_ids()):
        image = rec.images[image_id]
        cameras.append(camera_from_pycolmap(image, rec.cameras[image.camera_id], image_root))
    return CameraRig(cameras)


def camera_from_pycolmap(image, cam, image_root=None) -> Camera:
    """A Camera from a pycolmap Image and Camera (pinhole part plus radial terms as distortion)."""
    m = image.cam_from_world().matrix()
    model = cam.model.name
    p = list(cam.params)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
        dist = p[3:5]
    elif model in ("PINHOLE", "OPENCV"):
        fx, fy, cx, cy = p[:4]
        dist = p[4:8] if model == "OPENCV" else []
    else:
        raise FormatError(f"camera model {model} is not supported here", image.name, "use PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV")
    distortion = None
    if dist:
        k = [0.0] * 5
        if model == "OPENCV":
            k[:4] = dist
        else:
            k[0] = dist[0]
            if len(dist) > 1:
                k[1] = dist[1]
        distortion = k
    name = image.name
    return Camera(
        R=m[:, :3], t=m[:, 3], fx=fx, fy=fy, cx=cx, cy=cy, width=cam.width, height=cam.height,
        name=name, image_path=None if image_root is None else Path(image_root) / name,
        camera_id=int(image.camera_id), distortion=distortion,
    )
