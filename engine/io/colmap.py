"""COLMAP sparse models (text and binary) <-> ``CameraRig``.

Parsed here rather than through ``pycolmap.Reconstruction`` because a person needs to hear which
file and which line is wrong (pycolmap aborts with a bare C++ message), and because reading a few
text files should not need the native library; the tests check every value against pycolmap.

Formats (COLMAP's documentation, "Output format"):
- cameras: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``
- images: ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then a line of ``X Y POINT3D_ID`` triples;
  the pose maps world to camera.
- points3D: ``POINT3D_ID X Y Z R G B ERROR TRACK[]`` with the track as ``IMAGE_ID POINT2D_IDX`` pairs.
Binary files hold the same records, little-endian, each file starting with a uint64 count.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..scene import Camera, CameraRig, PointCloud, SceneError, quat_to_rotmat
from .atomic import atomic_write, atomic_write_text

# model name -> (COLMAP model id, number of parameters), for every model COLMAP defines, so that a
# binary file with any model can be walked and the error can name the model.
CAMERA_MODELS: dict[str, tuple[int, int]] = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
    "OPENCV_FISHEYE": (5, 8),
    "FULL_OPENCV": (6, 12),
    "FOV": (7, 5),
    "SIMPLE_RADIAL_FISHEYE": (8, 4),
    "RADIAL_FISHEYE": (9, 5),
    "THIN_PRISM_FISHEYE": (10, 12),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16),
    "SIMPLE_DIVISION": (12, 4),
    "DIVISION": (13, 5),
    "SIMPLE_FISHEYE": (14, 3),
    "FISHEYE": (15, 4),
    "EUCM": (16, 6),
    "EQUIRECTANGULAR": (17, 2),
}
MODEL_BY_ID = {model_id: name for name, (model_id, _) in CAMERA_MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")

FILE_STEMS = ("cameras", "images", "points3D")


@dataclass
class _Intrinsics:
    model: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: np.ndarray | None  # OpenCV (k1, k2, p1, p2, k3)


@dataclass
class _ImageRecord:
    image_id: int
    qvec: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str


def _intrinsics(model: str, width: int, height: int, params, where: str, path: Path) -> _Intrinsics:
    p = [float(x) for x in params]
    hint = "convert or undistort the model to PINHOLE/OPENCV (e.g. `colmap image_undistorter`)"
    if model not in CAMERA_MODELS:
        raise FormatError(f"{where}: unknown camera model {model!r}", path, hint)
    expected = CAMERA_MODELS[model][1]
    if len(p) != expected:
        raise FormatError(f"{where}: camera model {model} needs {expected} parameters, found {len(p)}", path)
    zero = np.zeros(5)
    if model == "SIMPLE_PINHOLE":
        f, cx, cy = p
        return _Intrinsics(model, width, height, f, f, cx, cy, None)
    if model == "PINHOLE":
        fx, fy, cx, cy = p
        return _Intrinsics(model, width, height, fx, fy, cx, cy, None)
    if model == "SIMPLE_RADIAL":
        f, cx, cy, k = p
        d = zero.copy()
        d[0] = k
        return _Intrinsics(model, width, height, f, f, cx, cy, d)
    if model == "RADIAL":
        f, cx, cy, k1, k2 = p
        d = zero.copy()
        d[:2] = k1, k2
        return _Intrinsics(model, width, height, f, f, cx, cy, d)
    if model == "OPENCV":
        fx, fy, cx, cy, k1, k2, p1, p2 = p
        return _Intrinsics(model, width, height, fx, fy, cx, cy, np.array([k1, k2, p1, p2, 0.0]))
    if model == "FULL_OPENCV" and not any(p[9:12]):
        # The rational terms k4..k6 are zero: exactly OpenCV's five-coefficient model.
        fx, fy, cx, cy, k1, k2, p1, p2, k3 = p[:9]
        return _Intrinsics(model, width, height, fx, fy, cx, cy, np.array([k1, k2, p1, p2, k3]))
    raise FormatError(
        f"{where}: camera model {model} is not supported (supported: {', '.join(SUPPORTED_MODELS[:5])})",
        path,
        hint,
    )


# ===================================================================== text


def _data_lines(path: Path):
    """(line number, stripped line) for every line, comments included as empty strings."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not a COLMAP text file (byte {e.start} is not UTF-8)", path) from None
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", path) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        yield number, "" if line.startswith("#") else line


def _read_cameras_text(path: Path) -> dict[int, _Intrinsics]:
    cameras = {}
    for number, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        where = f"line {number}"
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
        except (IndexError, ValueError):
            raise FormatError(
                f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', got {line[:80]!r}", path
            ) from None
        try:
            params = [float(x) for x in fields[4:]]
        except ValueError:
            raise FormatError(f"{where}: camera parameters must be numbers, got {line[:80]!r}", path) from None
        cameras[camera_id] = _intrinsics(model, width, height, params, where, path)
    return cameras


def _looks_like_image_line(line: str) -> bool:
    """An image line ends its numbers with a name; a 2D-points line is numbers only."""
    fields = line.split(maxsplit=10)
    if len(fields) < 10:
        return False
    try:
        float(fields[9])
    except ValueError:
        return True
    return False


def _read_images_text(path: Path) -> list[_ImageRecord]:
    images = []
    expect_points = False  # each image line is followed by its 2D points (possibly an empty line)
    for number, line in _data_lines(path):
        if expect_points and not _looks_like_image_line(line):
            expect_points = False  # the 2D observations: not needed for a rig
            continue
        expect_points = False
        if not line:
            continue
        fields = line.split(maxsplit=9)
        try:
            if len(fields) < 10:
                raise ValueError
            image_id = int(fields[0])
            values = np.array([float(x) for x in fields[1:8]])
            camera_id = int(fields[8])
        except ValueError:
            raise FormatError(
                f"line {number}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {line[:80]!r}", path
            ) from None
        images.append(_ImageRecord(image_id, values[:4], values[4:], camera_id, fields[9]))
        expect_points = True
    return images


def _read_points_text(path: Path) -> PointCloud:
    xyz, rgb, error, track = [], [], [], []
    for number, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            if len(fields) < 8 or (len(fields) - 8) % 2:
                raise ValueError
            xyz.append([float(x) for x in fields[1:4]])
            rgb.append([int(x) for x in fields[4:7]])
            error.append(float(fields[7]))
            track.append((len(fields) - 8) // 2)
        except ValueError:
            raise FormatError(
                f"line {number}: expected 'POINT3D_ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...', "
                f"got {line[:80]!r}",
                path,
            ) from None
    return _point_cloud(xyz, rgb, error, track)


def _point_cloud(xyz, rgb, error, track) -> PointCloud:
    return PointCloud(
        xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0,
        error=np.asarray(error, dtype=np.float64),
        track_length=np.asarray(track, dtype=np.int64),
    )


# ===================================================================== binary


class _BinaryReader:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as e:
            raise FormatError(f"cannot read: {e.strerror}", path) from None
        self.offset = 0

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise FormatError(
                f"truncated: {what} needs {size} bytes at byte {self.offset}, the file has {len(self.data)}",
                self.path,
                "the model was not written completely; export it again",
            )
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int, what: str) -> None:
        if self.offset + size > len(self.data):
            raise FormatError(
                f"truncated: {what} needs {size} bytes at byte {self.offset}, the file has {len(self.data)}",
                self.path,
                "the model was not written completely; export it again",
            )
        self.offset += size

    def c_string(self, what: str) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise FormatError(f"truncated: {what} has no end at byte {self.offset}", self.path)
        raw = self.data[self.offset : end]
        self.offset = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{what} at byte {self.offset} is not UTF-8 text", self.path) from None

    def count(self, what: str, record_min_bytes: int) -> int:
        (n,) = self.unpack("<Q", f"the number of {what}")
        if n * record_min_bytes > len(self.data) - self.offset:
            raise FormatError(
                f"claims {n} {what}, but the file is only {len(self.data)} bytes", self.path,
                "the file is truncated or not a COLMAP binary model",
            )
        return n

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise FormatError(
                f"{len(self.data) - self.offset} unexpected bytes after the last record (byte {self.offset})",
                self.path,
            )


def _read_cameras_binary(path: Path) -> dict[int, _Intrinsics]:
    r = _BinaryReader(path)
    cameras = {}
    for i in range(r.count("cameras", 24)):
        what = f"camera record {i + 1}"
        camera_id, model_id, width, height = r.unpack("<IiQQ", what)
        if model_id not in MODEL_BY_ID:
            raise FormatError(f"{what} (byte {r.offset - 24}): unknown camera model id {model_id}", path)
        model = MODEL_BY_ID[model_id]
        params = r.unpack(f"<{CAMERA_MODELS[model][1]}d", what)
        cameras[camera_id] = _intrinsics(model, width, height, params, what, path)
    r.finish()
    return cameras


def _read_images_binary(path: Path) -> list[_ImageRecord]:
    r = _BinaryReader(path)
    images = []
    for i in range(r.count("images", 64 + 1 + 8)):
        what = f"image record {i + 1}"
        values = r.unpack("<I7dI", what)
        name = r.c_string(f"{what} name")
        (num_points,) = r.unpack("<Q", what)
        r.skip(24 * num_points, f"{what} ({num_points} 2D points)")
        images.append(_ImageRecord(values[0], np.array(values[1:5]), np.array(values[5:8]), values[8], name))
    r.finish()
    return images


def _read_points_binary(path: Path) -> PointCloud:
    r = _BinaryReader(path)
    n = r.count("points", 43 + 8)
    xyz = np.empty((n, 3))
    rgb = np.empty((n, 3))
    error = np.empty(n)
    track = np.empty(n, dtype=np.int64)
    for i in range(n):
        values = r.unpack("<Q3d3BdQ", f"point record {i + 1}")
        xyz[i], rgb[i], error[i], track[i] = values[1:4], values[4:7], values[7], values[8]
        r.skip(8 * track[i], f"point record {i + 1} track")
    r.finish()
    return PointCloud(xyz=xyz, rgb=rgb / 255.0, error=error, track_length=track)


# ===================================================================== locate + assemble


def find_model(path: str | Path) -> tuple[Path, str]:
    """The folder holding a model and its kind ("text" or "binary") from a folder or one of its files."""
    path = Path(path)
    if not path.exists():
        raise FormatError("does not exist", path, "give a COLMAP model folder or its cameras/images file")
    if path.is_file():
        if path.stem not in FILE_STEMS or path.suffix not in (".txt", ".bin"):
            raise FormatError(
                "is not a COLMAP model file (expected cameras, images or points3D with .txt or .bin)", path
            )
        return path.parent, "text" if path.suffix == ".txt" else "binary"
    candidates = [path, path / "sparse" / "0", path / "sparse", path / "0"]
    for folder in candidates:
        for kind, ext in (("binary", ".bin"), ("text", ".txt")):
            if (folder / f"cameras{ext}").is_file() and (folder / f"images{ext}").is_file():
                return folder, kind
    raise FormatError(
        "holds no COLMAP model (looked for cameras and images .txt/.bin here and in sparse/0)",
        path,
        "point to the folder that contains cameras.txt/images.txt or cameras.bin/images.bin",
    )


def _guess_image_dir(model_dir: Path, names: list[str]) -> Path | None:
    """Where the photos are: COLMAP projects keep them in ``images/`` beside ``sparse/``."""
    if not names:
        return None
    candidates = []
    for base in (model_dir, *list(model_dir.parents)[:3]):
        candidates += [base / "images", base]
    for folder in candidates:
        if (folder / names[0]).is_file():
            return folder
    return None


def read(path: str | Path, image_dir: str | Path | None = None) -> CameraRig:
    """Cameras (one per image, ``name`` = image name) and points of a COLMAP model.

    ``path`` is a model folder (or a project folder with ``sparse/0``) or any one of its files.
    ``image_path`` is set when the photos are found (``image_dir``, or ``images/`` nearby).
    """
    folder, kind = find_model(path)
    ext = ".txt" if kind == "text" else ".bin"
    read_cameras, read_images, read_points = (
        (_read_cameras_text, _read_images_text, _read_points_text)
        if kind == "text"
        else (_read_cameras_binary, _read_images_binary, _read_points_binary)
    )
    cameras_path, images_path, points_path = (folder / f"{stem}{ext}" for stem in FILE_STEMS)
    for required in (cameras_path, images_path):
        if not required.is_file():
            raise FormatError("is missing from the COLMAP model", required, "export the full model again")
    intrinsics = read_cameras(cameras_path)
    records = sorted(read_images(images_path), key=lambda r: r.image_id)
    points = read_points(points_path) if points_path.is_file() else None

    names = [r.name for r in records]
    image_root = Path(image_dir) if image_dir is not None else _guess_image_dir(folder, names)
    cameras = []
    for record in records:
        k = intrinsics.get(record.camera_id)
        if k is None:
            raise FormatError(
                f"image {record.name!r} (id {record.image_id}) uses camera {record.camera_id}, "
                f"which {cameras_path.name} does not define",
                images_path,
            )
        try:
            cameras.append(
                Camera(
                    R=quat_to_rotmat(record.qvec),
                    t=record.tvec,
                    fx=k.fx, fy=k.fy, cx=k.cx, cy=k.cy,
                    width=k.width, height=k.height,
                    name=record.name,
                    image_path=None if image_root is None else image_root / record.name,
                    camera_id=record.camera_id,
                    distortion=k.distortion,
                )
            )
        except (SceneError, ValueError) as e:
            raise FormatError(f"image {record.name!r} (id {record.image_id}): {e}", images_path) from None
    return CameraRig(cameras=cameras, points=points)


# ===================================================================== write


def _assign_camera_ids(rig: CameraRig) -> tuple[list[int], dict[int, tuple]]:
    """COLMAP camera ids per image: a camera's own id unless another camera with that id differs."""
    by_id: dict[int, tuple] = {}
    ids = []
    next_id = max([c.camera_id for c in rig.cameras] + [0]) + 1
    by_key: dict[tuple, int] = {}
    for cam in rig.cameras:
        d = None if cam.distortion is None else tuple(float(x) for x in cam.distortion)
        key = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, d)
        wanted = cam.camera_id if cam.camera_id > 0 else next_id
        if by_id.get(wanted, key) != key:
            wanted = by_key.get(key) or next_id
        if wanted == next_id:
            next_id += 1
        by_id[wanted] = key
        by_key.setdefault(key, wanted)
        ids.append(wanted)
    return ids, by_id


def _model_for(key: tuple) -> tuple[str, list[float]]:
    w, h, fx, fy, cx, cy, d = key
    if d is None:
        return "PINHOLE", [fx, fy, cx, cy]
    k1, k2, p1, p2, k3 = d
    if k3 == 0:
        return "OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2]
    return "FULL_OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2, k3, 0.0, 0.0, 0.0]


def _num(x) -> str:
    return repr(float(x))  # shortest text that reads back to the same double


def _check_names(rig: CameraRig, text: bool) -> None:
    for cam in rig.cameras:
        if not cam.name or "\0" in cam.name or "\n" in cam.name or cam.name != cam.name.strip():
            raise FormatError(
                f"camera name {cam.name!r} cannot be stored in a COLMAP model",
                hint="name each camera after its image file",
            )
        if text and any(ch.isspace() for ch in cam.name):
            # COLMAP's text reader ends the name at the first space.
            raise FormatError(
                f"image name {cam.name!r} contains a space, which COLMAP text models cannot hold",
                hint="write a binary model instead, or rename the image",
            )


def _point_rows(rig: CameraRig):
    pts = rig.points
    if pts is None or len(pts) == 0:
        return
    rgb = np.clip(np.round(np.asarray(pts.rgb) * 255), 0, 255).astype(int)
    error = np.full(len(pts), -1.0) if pts.error is None else np.asarray(pts.error, dtype=np.float64)
    for i in range(len(pts)):
        yield i + 1, pts.xyz[i], rgb[i], error[i]


def write_text(rig: CameraRig, folder: str | Path) -> Path:
    """cameras.txt, images.txt, points3D.txt in ``folder`` (atomically each); returns the folder.

    Points are written without tracks (a rig keeps no 2D observations), so track lengths read back as 0.
    """
    folder = Path(folder)
    _check_names(rig, text=True)
    ids, intrinsics = _assign_camera_ids(rig)

    out = io.StringIO()
    out.write("# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n")
    out.write(f"# Number of cameras: {len(intrinsics)}\n")
    for camera_id in sorted(intrinsics):
        key = intrinsics[camera_id]
        model, params = _model_for(key)
        out.write(f"{camera_id} {model} {key[0]} {key[1]} {' '.join(map(_num, params))}\n")
    atomic_write_text(folder / "cameras.txt", out.getvalue())

    out = io.StringIO()
    out.write(
        "# Image list with two lines of data per image:\n"
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
        "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
        f"# Number of images: {len(rig.cameras)}, mean observations per image: 0\n"
    )
    for image_id, (cam, camera_id) in enumerate(zip(rig.cameras, ids), start=1):
        values = " ".join(map(_num, [*cam.qvec, *cam.t]))
        out.write(f"{image_id} {values} {camera_id} {cam.name}\n\n")
    atomic_write_text(folder / "images.txt", out.getvalue())

    out = io.StringIO()
    n = 0 if rig.points is None else len(rig.points)
    out.write(
        "# 3D point list with one line of data per point:\n"
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        f"# Number of points: {n}, mean track length: 0\n"
    )
    for point_id, xyz, rgb, error in _point_rows(rig):
        out.write(f"{point_id} {' '.join(map(_num, xyz))} {rgb[0]} {rgb[1]} {rgb[2]} {_num(error)}\n")
    atomic_write_text(folder / "points3D.txt", out.getvalue())
    return folder


def write_binary(rig: CameraRig, folder: str | Path) -> Path:
    """cameras.bin, images.bin, points3D.bin in ``folder`` (atomically each); returns the folder."""
    folder = Path(folder)
    _check_names(rig, text=False)
    ids, intrinsics = _assign_camera_ids(rig)

    with atomic_write(folder / "cameras.bin") as f:
        f.write(struct.pack("<Q", len(intrinsics)))
        for camera_id in sorted(intrinsics):
            key = intrinsics[camera_id]
            model, params = _model_for(key)
            f.write(struct.pack("<IiQQ", camera_id, CAMERA_MODELS[model][0], key[0], key[1]))
            f.write(struct.pack(f"<{len(params)}d", *params))

    with atomic_write(folder / "images.bin") as f:
        f.write(struct.pack("<Q", len(rig.cameras)))
        for image_id, (cam, camera_id) in enumerate(zip(rig.cameras, ids), start=1):
            f.write(struct.pack("<I7dI", image_id, *cam.qvec, *cam.t, camera_id))
            f.write(cam.name.encode("utf-8") + b"\0")
            f.write(struct.pack("<Q", 0))

    with atomic_write(folder / "points3D.bin") as f:
        n = 0 if rig.points is None else len(rig.points)
        f.write(struct.pack("<Q", n))
        for point_id, xyz, rgb, error in _point_rows(rig):
            f.write(struct.pack("<Q3d3BdQ", point_id, *xyz, *(int(c) for c in rgb), error, 0))
    return folder


__all__ = ["read", "write_text", "write_binary", "find_model", "CAMERA_MODELS", "SUPPORTED_MODELS"]
