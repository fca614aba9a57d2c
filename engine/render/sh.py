"""View-dependent colour from spherical harmonics, as the reference 3DGS and gsplat evaluate it."""

from __future__ import annotations

import torch

# Real SH basis constants (degree 0-3) in the ordering and signs of the reference 3DGS code.
_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Basis values (..., (degree+1)^2) at unit directions (..., 3)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def sh_to_rgb(sh: torch.Tensor, means: torch.Tensor, camera_center: torch.Tensor, degree: int) -> torch.Tensor:
    """RGB (N,3) seen from ``camera_center``: SH bands up to ``degree``, +0.5, clamped at 0 (not at 1)."""
    k = (degree + 1) ** 2
    if sh.shape[1] < k:
        raise ValueError(f"sh has {sh.shape[1]} coefficients per channel, degree {degree} needs {k}")
    if degree == 0:
        rgb = _C0 * sh[:, 0]
    else:
        dirs = means - camera_center
        # The clamp keeps a Gaussian sitting exactly at the camera centre finite (direction 0 -> bands 1+ vanish).
        dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = sh_basis(degree, dirs)
        rgb = (basis.unsqueeze(-1) * sh[:, :k]).sum(dim=1)
    return (rgb + 0.5).clamp_min(0.0)
