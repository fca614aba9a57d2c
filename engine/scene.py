"""The data model every stage shares: Gaussian scenes, cameras and sparse point clouds.

Conventions (see docs/architecture.md):
- Cameras follow OpenCV/COLMAP: x right, y down, z forward; ``R``, ``t`` map world to camera
  (``x_cam = R @ x_world + t``); intrinsics in pixels with COLMAP's pixel-centre convention (the
  centre of the top-left pixel is at (0.5, 0.5)).
- Gaussians: ``means`` (N,3); ``quats`` (N,4) as w,x,y,z, normalised when used; ``log_scales``
  (N,3); ``opacity_logits`` (N,); ``sh`` (N,(d+1)^2,3) with ``sh[:, 0]`` the DC term; optional
  ``group_ids`` (N,) int32 and identity ``features`` (N,F).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .errors import HandfulError
from .units import human_bytes

SH_C0 = 0.28209479177387814
MAX_SH_DEGREE = 3


class SceneError(HandfulError, ValueError):
    """A scene or camera whose data cannot be valid (bad shapes, non-finite values, ...)."""


def sh_coeffs_for_degree(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    degree = int(round(math.sqrt(num_coeffs))) - 1
    if degree < 0 or degree > MAX_SH_DEGREE or (degree + 1) ** 2 != num_coeffs:
        raise SceneError(
            f"{num_coeffs} spherical-harmonic coefficients per colour channel is not a degree 0-3 set "
            "(expected 1, 4, 9 or 16)"
        )
    return degree


def rgb_to_sh_dc(rgb: torch.Tensor | np.ndarray):
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: torch.Tensor | np.ndarray):
    return 0.5 + SH_C0 * dc


@dataclass
class GaussianScene:
    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    group_ids: torch.Tensor | None = None
    features: torch.Tensor | None = None

    _TENSOR_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh", "group_ids", "features")

    def __post_init__(self):
        self.validate(check_finite=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls, sh_degree: int = 0, dtype=torch.float32, device="cpu") -> "GaussianScene":
        k = sh_coeffs_for_degree(sh_degree)
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        return cls(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, k, 3))

    @classmethod
    def from_numpy(
        cls,
        means,
        quats,
        log_scales,
        opacity_logits,
        sh,
        group_ids=None,
        features=None,
        device="cpu",
    ) -> "GaussianScene":
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=device)  # noqa: E731
        return cls(
            t(means),
            t(quats),
            t(log_scales),
            t(opacity_logits),
            t(sh),
            None if group_ids is None else torch.as_tensor(np.asarray(group_ids, dtype=np.int32), device=device),
            None if features is None else t(features),
        )

    @classmethod
    def from_points(
        cls,
        xyz,
        rgb,
        sh_degree: int = 0,
        scale: float | np.ndarray | None = None,
        opacity: float = 0.1,
        device="cpu",
    ) -> "GaussianScene":
        """Isotropic Gaussians at points with colours in [0, 1] (an initialisation, e.g. from SfM).

        ``scale`` defaults to the mean distance to the three nearest neighbours of each point.
        """
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
        n = len(xyz)
        if scale is None:
            scale = nearest_neighbour_scale(xyz)
        scales = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1, 1), (n, 3))
        sh = np.zeros((n, sh_coeffs_for_degree(sh_degree), 3))
        sh[:, 0] = rgb_to_sh_dc(np.clip(rgb, 0, 1))
        quats = np.zeros((n, 4))
        quats[:, 0] = 1
        logit = math.log(opacity / (1 - opacity))
        return cls.from_numpy(
            xyz, quats, np.log(np.maximum(scales, 1e-7)), np.full(n, logit), sh, device=device
        )

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return len(self)

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(int(self.sh.shape[1]))

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def normalized_quats(self) -> torch.Tensor:
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def colors_dc(self) -> torch.Tensor:
        """Base colour (view-independent) in [0, 1] as other tools show it."""
        return sh_dc_to_rgb(self.sh[:, 0]).clamp(0, 1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in self._TENSOR_FIELDS if getattr(self, k) is not None}

    # ----------------------------------------------------------------- validation
    def validate(self, check_finite: bool = True) -> "GaussianScene":
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expect = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
        }
        for name, shape in expect.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise SceneError(f"{name} must be a torch tensor, got {type(t).__name__}")
            if tuple(t.shape) != shape:
                raise SceneError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise SceneError(f"sh has shape {tuple(self.sh.shape)}, expected ({n}, (d+1)^2, 3)")
        sh_degree_from_coeffs(int(self.sh.shape[1]))
        if self.group_ids is not None and tuple(self.group_ids.shape) != (n,):
            raise SceneError(f"group_ids has shape {tuple(self.group_ids.shape)}, expected ({n},)")
        if self.features is not None and (self.features.ndim != 2 or self.features.shape[0] != n):
            raise SceneError(f"features has shape {tuple(self.features.shape)}, expected ({n}, F)")
        devices = {t.device for t in self.tensors().values()}
        if len(devices) > 1:
            raise SceneError(f"scene tensors live on several devices: {sorted(map(str, devices))}")
        if check_finite:
            for name, t in self.tensors().items():
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1).sum()) if t.numel() else 0
                    raise SceneError(f"{name} has non-finite values in {bad} of {n} Gaussians")
        return self

    # ----------------------------------------------------------------- transforms
    def _map(self, fn) -> "GaussianScene":
        kw = {k: (None if getattr(self, k) is None else fn(k, getattr(self, k))) for k in self._TENSOR_FIELDS}
        return GaussianScene(**kw)

    def to(self, device=None, dtype=None) -> "GaussianScene":
        def move(name, t):
            if t.is_floating_point() and dtype is not None:
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return self._map(move)

    def detach(self) -> "GaussianScene":
        return self._map(lambda _, t: t.detach())

    def clone(self) -> "GaussianScene":
        return self._map(lambda _, t: t.detach().clone())

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int] | slice) -> "GaussianScene":
        """Gaussians selected by a boolean mask or an index array (used by deletes and groups)."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        elif not isinstance(index, (torch.Tensor, slice)):
            index = torch.as_tensor(list(index), dtype=torch.long)
        if isinstance(index, torch.Tensor):
            index = index.to(self.device)
            if index.dtype == torch.bool and index.shape != (len(self),):
                raise SceneError(f"mask has shape {tuple(index.shape)}, expected ({len(self)},)")
        return self._map(lambda _, t: t[index])

    def with_sh_degree(self, degree: int) -> "GaussianScene":
        """Drop (or zero-pad) higher SH bands."""
        if not 0 <= degree <= MAX_SH_DEGREE:
            raise SceneError(f"SH degree must be 0-3, got {degree}")
        k = sh_coeffs_for_degree(degree)
        sh = self.sh[:, :k]
        if sh.shape[1] < k:
            pad = torch.zeros(len(self), k - sh.shape[1], 3, dtype=sh.dtype, device=sh.device)
            sh = torch.cat([sh, pad], dim=1)
        return replace(self, sh=sh.contiguous())

    @staticmethod
    def concatenate(scenes: Iterable["GaussianScene"]) -> "GaussianScene":
        scenes = list(scenes)
        if not scenes:
            raise SceneError("nothing to concatenate")
        degree = max(s.sh_degree for s in scenes)
        scenes = [s.with_sh_degree(degree) for s in scenes]
        kw = {}
        for k in GaussianScene._TENSOR_FIELDS:
            parts = [getattr(s, k) for s in scenes]
            if all(p is None for p in parts):
                kw[k] = None
            elif k == "group_ids":
                kw[k] = torch.cat(
                    [p if p is not None else torch.full((len(s),), -1, dtype=torch.int32, device=s.device)
                     for p, s in zip(parts, scenes)]
                )
            elif any(p is None for p in parts):
                raise SceneError(f"cannot concatenate scenes where only some have {k}")
            else:
                kw[k] = torch.cat(parts)
        return GaussianScene(**kw)

    # ----------------------------------------------------------------- summaries
    def bounds(self, percentile: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds of the means; with ``percentile`` (e.g. 1.0) robust to outliers."""
        if len(self) == 0:
            return np.zeros(3), np.zeros(3)
        m = self.means.detach().cpu().double().numpy()
        if percentile is None:
            return m.min(0), m.max(0)
        return np.percentile(m, percentile, axis=0), np.percentile(m, 100 - percentile, axis=0)

    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in self.tensors().values())

    def summary(self) -> dict:
        lo, hi = self.bounds()
        return {
            "num_gaussians": len(self),
            "sh_degree": self.sh_degree,
            "bounds_min": [float(x) for x in lo],
            "bounds_max": [float(x) for x in hi],
            "memory_bytes": self.nbytes(),
            "has_groups": self.group_ids is not None,
            "feature_dim": 0 if self.features is None else int(self.features.shape[1]),
            "device": str(self.device),
        }

    def describe(self) -> str:
        s = self.summary()
        lo, hi = s["bounds_min"], s["bounds_max"]
        return (
            f"{s['num_gaussians']:,} Gaussians, SH degree {s['sh_degree']}, "
            f"bounds [{lo[0]:.3g}, {lo[1]:.3g}, {lo[2]:.3g}] .. [{hi[0]:.3g}, {hi[1]:.3g}, {hi[2]:.3g}], "
            f"{human_bytes(s['memory_bytes'])} in memory"
        )


def nearest_neighbour_scale(xyz: np.ndarray, k: int = 3) -> np.ndarray:
    """Mean distance to the k nearest neighbours: the usual initial Gaussian size for a point cloud."""
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) < 2:
        return np.full(len(xyz), 0.01)
    kk = min(k + 1, len(xyz))
    d, _ = cKDTree(xyz).query(xyz, k=kk)
    d = d[:, 1:].mean(axis=1)
    positive = d[d > 0]
    floor = float(np.median(positive)) * 0.01 if len(positive) else 1e-3
    return np.maximum(d, max(floor, 1e-7))


# ===================================================================== cameras


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternion(s) w,x,y,z to rotation matrix(es) (numpy)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrix (3,3) to unit quaternion w,x,y,z with w >= 0."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


@dataclass
class Camera:
    """A pinhole camera with an image (distortion is removed at ingest)."""

    R: np.ndarray  # (3,3) world -> camera rotation
    t: np.ndarray  # (3,)  world -> camera translation
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    name: str = ""
    image_path: Path | None = None
    camera_id: int = 1
    # OpenCV coefficients (k1, k2, p1, p2, k3) while the image still carries lens distortion;
    # None once undistorted (ingest undistorts, so rendering and training always see a pinhole).
    distortion: np.ndarray | None = None

    def __post_init__(self):
        if self.distortion is not None:
            d = np.zeros(5)
            src = np.asarray(self.distortion, dtype=np.float64).reshape(-1)[:5]
            d[: len(src)] = src
            self.distortion = None if not d.any() else d
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3)
        self.fx, self.fy, self.cx, self.cy = map(float, (self.fx, self.fy, self.cx, self.cy))
        self.width, self.height = int(self.width), int(self.height)
        if self.image_path is not None:
            self.image_path = Path(self.image_path)
        self.validate()

    def validate(self) -> "Camera":
        if self.width <= 0 or self.height <= 0:
            raise SceneError(f"camera {self.name!r}: image size {self.width}x{self.height} is empty")
        if not (self.fx > 0 and self.fy > 0 and math.isfinite(self.fx) and math.isfinite(self.fy)):
            raise SceneError(f"camera {self.name!r}: focal length ({self.fx}, {self.fy}) must be positive")
        if not (np.isfinite(self.R).all() and np.isfinite(self.t).all()):
            raise SceneError(f"camera {self.name!r}: pose has non-finite values")
        if abs(np.linalg.det(self.R) - 1) > 1e-3 or not np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-3):
            raise SceneError(f"camera {self.name!r}: R is not a rotation matrix")
        return self

    @classmethod
    def from_qvec(cls, qvec, tvec, **kw) -> "Camera":
        return cls(R=quat_to_rotmat(qvec), t=tvec, **kw)

    @classmethod
    def look_at(cls, eye, target, up=(0, -1, 0), **kw) -> "Camera":
        """A camera at ``eye`` looking at ``target``; ``up`` is the world direction that appears up
        in the image (default -y, matching the y-down camera convention)."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(-up, z)  # image x (right) = image y (down = -up) cross z (forward)
        if np.linalg.norm(x) < 1e-9:
            x = np.cross(np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 0, 1.0]), z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        return cls(R=R, t=-R @ eye, **kw)

    @property
    def qvec(self) -> np.ndarray:
        return rotmat_to_quat(self.R)

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    @property
    def world_to_camera(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    @property
    def camera_to_world(self) -> np.ndarray:
        return np.linalg.inv(self.world_to_camera)

    def viewmat(self, device="cpu", dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(self.world_to_camera, device=device, dtype=dtype)

    def K_tensor(self, device="cpu", dtype=torch.float32) -> torch.Tensor:
        return torch.as_tensor(self.K, device=device, dtype=dtype)

    def scaled(self, factor: float) -> "Camera":
        """The same camera for an image resized by ``factor`` (pixel-centre convention: exact)."""
        w = max(1, int(round(self.width * factor)))
        h = max(1, int(round(self.height * factor)))
        sx, sy = w / self.width, h / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy, width=w, height=h)

    def resized(self, width: int, height: int) -> "Camera":
        sx, sy = width / self.width, height / self.height
        return replace(
            self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy, width=width, height=height
        )

    @property
    def fov_x(self) -> float:
        return 2 * math.atan(self.width / (2 * self.fx))

    @property
    def fov_y(self) -> float:
        return 2 * math.atan(self.height / (2 * self.fy))


@dataclass
class PointCloud:
    """Sparse 3D points (e.g. from SfM), colours in [0, 1]."""

    xyz: np.ndarray
    rgb: np.ndarray
    error: np.ndarray | None = None
    track_length: np.ndarray | None = None

    def __post_init__(self):
        self.xyz = np.asarray(self.xyz, dtype=np.float64).reshape(-1, 3)
        self.rgb = np.asarray(self.rgb, dtype=np.float64).reshape(-1, 3)
        if len(self.rgb) != len(self.xyz):
            raise SceneError(f"{len(self.xyz)} points but {len(self.rgb)} colours")

    def __len__(self) -> int:
        return len(self.xyz)


@dataclass
class CameraRig:
    """Cameras (and optionally the sparse points that came with them)."""

    cameras: list[Camera] = field(default_factory=list)
    points: PointCloud | None = None

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, i):
        return self.cameras[i]

    def by_name(self) -> dict[str, Camera]:
        return {c.name: c for c in self.cameras}

    def centers(self) -> np.ndarray:
        return np.array([c.center for c in self.cameras]).reshape(-1, 3)

    def scene_extent(self) -> float:
        """Radius of the camera centres around their mean (1.1x), the scale densification uses."""
        c = self.centers()
        if len(c) < 2:
            return 1.0
        return float(np.linalg.norm(c - c.mean(0), axis=1).max() * 1.1) or 1.0


__all__ = [
    "GaussianScene",
    "Camera",
    "CameraRig",
    "PointCloud",
    "SceneError",
    "SH_C0",
    "MAX_SH_DEGREE",
    "rgb_to_sh_dc",
    "sh_dc_to_rgb",
    "sh_coeffs_for_degree",
    "sh_degree_from_coeffs",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "nearest_neighbour_scale",
]
