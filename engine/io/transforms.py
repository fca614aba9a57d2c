"""``transforms.json`` (NeRF/Blender, instant-ngp, nerfstudio) <-> ``CameraRig``.

The file stores camera-to-world matrices in the OpenGL camera convention (x right, y up, looking
down -z); ours is OpenCV world-to-camera (y down, z forward), so the camera's y and z axes flip.
Intrinsics come from ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` (nerfstudio, instant-ngp) or from
``camera_angle_x`` (Blender), at the top level or overridden per frame; the principal point defaults
to the image centre and the size, when absent, is read from the image file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import FormatError
from ..scene import Camera, CameraRig, PointCloud, SceneError
from .atomic import atomic_write_text

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y",
                  "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".webp", ".exr")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
_PINHOLE_MODELS = {None, "PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL"}


def _resolve_image(root: Path, file_path: str) -> Path:
    """The image a frame names; Blender's ``file_path`` often omits the extension."""
    path = root / file_path
    if path.suffix and path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return path


def _name_for(root: Path, image: Path) -> str:
    try:
        return image.relative_to(root).as_posix()
    except ValueError:
        return image.as_posix()


def _number(value, key: str, where: str, path: Path) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise FormatError(f"{where}: {key} must be a number, got {value!r}", path) from None
    if not math.isfinite(x):
        raise FormatError(f"{where}: {key} is not finite ({value!r})", path)
    return x


def _rotation_from(m: np.ndarray, where: str, path: Path) -> np.ndarray:
    """The nearest rotation to ``m``; Blender exports in float32, so rows are orthonormal only to ~1e-7."""
    u, s, vt = np.linalg.svd(m)
    if np.abs(s - 1).max() > 1e-3 or np.linalg.det(m) <= 0:
        raise FormatError(
            f"{where}: transform_matrix is not a rigid camera pose (axis scales {np.round(s, 4).tolist()})",
            path,
            "remove scaling from the camera transforms before exporting",
        )
    return u @ vt


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError("does not exist", path, "give the path of a transforms.json file") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"line {e.lineno}: not valid JSON ({e.msg})", path) from None
    except (UnicodeDecodeError, OSError) as e:
        raise FormatError(f"cannot read as JSON text ({e})", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise FormatError("has no 'frames' list: not a transforms.json camera file", path)
    return data


def _intrinsics(params: dict, image: Path, where: str, path: Path) -> dict:
    model = params.get("camera_model")
    if model not in _PINHOLE_MODELS:
        raise FormatError(
            f"{where}: camera_model {model} is not supported (only pinhole cameras with OpenCV distortion)",
            path,
            "undistort the images first (e.g. nerfstudio's ns-process-data)",
        )
    if "w" in params and "h" in params:
        w, h = (int(round(_number(params[k], k, where, path))) for k in ("w", "h"))
    else:
        if not image.is_file():
            raise FormatError(
                f"{where}: no image size (w, h) given and the image {image} does not exist to read it from",
                path,
                "add w and h to the file, or put the images beside it",
            )
        from ..ingest.images import image_size

        w, h = image_size(image)
    if "fl_x" in params:
        fx = _number(params["fl_x"], "fl_x", where, path)
    elif "camera_angle_x" in params:
        fx = 0.5 * w / math.tan(0.5 * _number(params["camera_angle_x"], "camera_angle_x", where, path))
    else:
        raise FormatError(f"{where}: no focal length (fl_x or camera_angle_x)", path)
    if "fl_y" in params:
        fy = _number(params["fl_y"], "fl_y", where, path)
    elif "camera_angle_y" in params and "fl_x" not in params:
        fy = 0.5 * h / math.tan(0.5 * _number(params["camera_angle_y"], "camera_angle_y", where, path))
    else:
        fy = fx
    cx = _number(params.get("cx", w / 2), "cx", where, path)
    cy = _number(params.get("cy", h / 2), "cy", where, path)
    coeffs = {k: _number(params.get(k, 0.0), k, where, path) for k in ("k1", "k2", "k3", "k4", "p1", "p2")}
    if coeffs["k4"]:
        raise FormatError(f"{where}: distortion k4 is not supported (OpenCV k1, k2, p1, p2, k3 only)", path)
    distortion = np.array([coeffs["k1"], coeffs["k2"], coeffs["p1"], coeffs["p2"], coeffs["k3"]])
    return dict(fx=fx, fy=fy, cx=cx, cy=cy, width=w, height=h, distortion=distortion if distortion.any() else None)


def _read_points(root: Path, data: dict, path: Path) -> PointCloud | None:
    ply_name = data.get("ply_file_path")
    if not ply_name:
        return None
    ply_path = root / ply_name
    try:
        from plyfile import PlyData

        vertex = PlyData.read(str(ply_path))["vertex"]
        xyz = np.stack([vertex[k] for k in ("x", "y", "z")], axis=1)
        names = vertex.data.dtype.names
        if all(k in names for k in ("red", "green", "blue")):
            rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1) / 255.0
        else:
            rgb = np.full_like(xyz, 0.5)
    except FileNotFoundError:
        raise FormatError(f"names point file {ply_name!r}, which does not exist", path) from None
    except Exception as e:  # plyfile raises several unrelated types for bad files
        raise FormatError(f"cannot read the points it names ({e})", ply_path) from None
    return PointCloud(xyz, rgb)


def read(path: str | Path) -> CameraRig:
    """Cameras of a transforms.json, named by their image path relative to the file (with extension)."""
    path = Path(path)
    data = _load_json(path)
    root = path.parent
    shared = {k: data[k] for k in INTRINSIC_KEYS if k in data}
    cameras = []
    camera_ids: dict[tuple, int] = {}
    for i, frame in enumerate(data["frames"]):
        where = f"frame {i}"
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise FormatError(f"{where}: needs file_path and transform_matrix", path)
        where = f"frame {i} ({frame['file_path']})"
        try:
            m = np.asarray(frame["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise FormatError(f"{where}: transform_matrix is not a matrix of numbers", path) from None
        if m.shape not in ((4, 4), (3, 4)) or not np.isfinite(m).all():
            raise FormatError(f"{where}: transform_matrix must be 4x4 (or 3x4) finite numbers, got {m.shape}", path)
        image = _resolve_image(root, str(frame["file_path"]))
        k = _intrinsics({**shared, **{key: frame[key] for key in INTRINSIC_KEYS if key in frame}}, image, where, path)
        rotation_c2w = _rotation_from(m[:3, :3], where, path) @ OPENGL_TO_OPENCV
        R = rotation_c2w.T
        t = -R @ m[:3, 3]
        key = (k["fx"], k["fy"], k["cx"], k["cy"], k["width"], k["height"],
               None if k["distortion"] is None else tuple(k["distortion"]))
        camera_id = camera_ids.setdefault(key, len(camera_ids) + 1)
        try:
            cameras.append(Camera(R=R, t=t, name=_name_for(root, image), image_path=image, camera_id=camera_id, **k))
        except SceneError as e:
            raise FormatError(f"{where}: {e}", path) from None
    return CameraRig(cameras=cameras, points=_read_points(root, data, path))


def _intrinsics_dict(cam: Camera) -> dict:
    d = {"fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy, "w": cam.width, "h": cam.height}
    if cam.distortion is not None:
        d.update(zip(("k1", "k2", "p1", "p2", "k3"), (float(x) for x in cam.distortion)))
        d["camera_model"] = "OPENCV"
    else:
        d["camera_model"] = "PINHOLE"
    return d


def write(rig: CameraRig, path: str | Path) -> Path:
    """A nerfstudio-style transforms.json; intrinsics at the top when all cameras share them.

    ``file_path`` is each camera's image relative to the file when it has one, else its name."""
    path = Path(path)
    root = path.parent
    intrinsics = [_intrinsics_dict(c) for c in rig.cameras]
    shared = intrinsics[0] if intrinsics and all(d == intrinsics[0] for d in intrinsics) else None
    data: dict = dict(shared) if shared else {}
    frames = []
    for cam, own in zip(rig.cameras, intrinsics):
        c2w = np.eye(4)
        c2w[:3, :3] = cam.R.T @ OPENGL_TO_OPENCV
        c2w[:3, 3] = cam.center
        if cam.image_path is not None:
            try:
                file_path = Path(cam.image_path).resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                file_path = Path(cam.image_path).resolve().as_posix()
        else:
            file_path = str(PurePosixPath(cam.name))
        frame = {"file_path": file_path, "transform_matrix": c2w.tolist()}
        if shared is None:
            frame.update(own)
        frames.append(frame)
    data["frames"] = frames
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


__all__ = ["read", "write"]
