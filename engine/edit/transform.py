"""Moving, turning and resizing Gaussians: means, orientations, sizes, and the view-dependent colour.

A rigid turn R about a pivot, a uniform scale s and a shift: x' = pivot + s R (x - pivot) + shift. The
orientation quaternion is pre-multiplied by R's, log scales grow by log s, and the SH bands above DC are
turned with the object, so a highlight stays where it was on the object: the new coefficients c' satisfy
f'(d) = f(R^T d) for every direction d. Each band is closed under rotation, so solving that in the least
squares sense on a fixed set of directions is exact (up to rounding); no library here ships Wigner-D
matrices for the reference 3DGS basis ordering and signs, so this is written out.
"""

from __future__ import annotations

import numpy as np
import torch

from ..render.sh import sh_basis
from ..scene import rotmat_to_quat, sh_degree_from_coeffs


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (w, x, y, z) quaternions; ``a`` (4,) is broadcast over ``b`` (N,4)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def _fibonacci_directions(count: int) -> np.ndarray:
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    r = np.sqrt(1 - z * z)
    phi = np.pi * (1 + 5**0.5) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


def sh_rotation_matrix(rotation: np.ndarray, degree: int) -> np.ndarray:
    """(K, K) matrix M with c' = M c for one colour channel's K = (degree+1)^2 SH coefficients."""
    dirs = torch.from_numpy(_fibonacci_directions(64))
    turned = dirs @ torch.from_numpy(np.asarray(rotation, dtype=np.float64))  # rows R^T d
    basis = sh_basis(degree, dirs).numpy()
    basis_turned = sh_basis(degree, turned).numpy()
    return np.linalg.lstsq(basis, basis_turned, rcond=None)[0]


def transform_rows(arrays: dict[str, np.ndarray], index: np.ndarray, rotation: np.ndarray, scale: float,
                   shift: np.ndarray, pivot: np.ndarray, turn_sh: bool = True) -> dict[str, np.ndarray]:
    """New means, quats, log_scales and sh rows for the Gaussians ``index`` (float32, like the scene)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    means = arrays["means"][index].astype(np.float64)
    new_means = pivot + scale * np.einsum("ij,kj->ik", means - pivot, rotation) + shift
    q = quat_multiply(rotmat_to_quat(rotation), arrays["quats"][index].astype(np.float64))
    out = {
        "means": new_means.astype(np.float32),
        "quats": q.astype(np.float32),
        "log_scales": (arrays["log_scales"][index].astype(np.float64) + np.log(scale)).astype(np.float32),
    }
    sh = arrays["sh"][index]
    degree = sh_degree_from_coeffs(sh.shape[1])
    if turn_sh and degree > 0 and not np.allclose(rotation, np.eye(3)):
        m = sh_rotation_matrix(rotation, degree)
        n, k, _ = sh.shape  # one (K,K) x (K, N*3) product: einsum over this layout is ~50x slower
        flat = np.ascontiguousarray(sh.astype(np.float64).transpose(1, 0, 2)).reshape(k, n * 3)
        turned = (m @ flat).reshape(k, n, 3).transpose(1, 0, 2).astype(np.float32)
        turned[:, 0] = sh[:, 0]  # DC is view-independent: keep it bit for bit
        out["sh"] = turned
    return out


def rotation_from_euler_degrees(angles) -> np.ndarray:
    """Rotation matrix for x, y, z angles in degrees applied in that order (extrinsic)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", np.asarray(angles, dtype=np.float64), degrees=True).as_matrix()
