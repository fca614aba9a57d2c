"""Scene tensors packed into the per-splat rows the splat shader reads.

One row per splat, float32, in this column order (the shader's attributes map onto it):
  0-2 mean, 3 opacity (after sigmoid), 4-9 world covariance xx xy xz yy yz zz,
  10-12 SH DC coefficient (raw, the shader adds 0.5), 13 highlight flag, 14 splat index, 15 unused.
In draw order these rows fill an RGBA32F texture, 4 texels per splat. Higher SH bands go into a texture indexed by the splat index (16 RGB texels per splat, the
first unused) so that an order change re-uploads only the rows.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.scene import GaussianScene

ROW_WIDTH = 16
COL_HIGHLIGHT = 13
SH_TEXTURE_WIDTH = 4096  # texels per row: 256 splats x 16 coefficients
SH_TEXELS_PER_SPLAT = 16

SPLATS_PER_TEXTURE_ROW = 1024  # the rows texture is 4096 RGBA texels wide, 4 texels per splat


def covariances(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """World covariances R S S^T R^T from (w,x,y,z) quaternions and log scales, as (N,6) upper triangles."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(-1, 3, 3)
    m = rot * torch.exp(log_scales)[:, None, :]
    cov = m @ m.transpose(1, 2)
    return torch.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], -1)


def pack_rows(scene: GaussianScene, highlight: np.ndarray | None = None) -> np.ndarray:
    """(N, 16) float32 rows for ``scene`` (see the module docstring for the columns)."""
    with torch.no_grad():
        s = scene.detach().to(device="cpu", dtype=torch.float32)
        rows = np.zeros((len(s), ROW_WIDTH), dtype=np.float32)
        rows[:, 0:3] = s.means.numpy()
        rows[:, 3] = torch.sigmoid(s.opacity_logits).numpy()
        rows[:, 4:10] = covariances(s.quats, s.log_scales).numpy()
        rows[:, 10:13] = s.sh[:, 0].numpy()
    if highlight is not None:
        rows[:, COL_HIGHLIGHT] = highlight
    rows[:, 14] = np.arange(len(rows), dtype=np.float32)
    return rows


def sh_texture(scene: GaussianScene, max_size: int) -> np.ndarray | None:
    """(H, 4096, 3) float32 texture of the SH bands above DC, or None for degree 0 or when it
    would not fit in a ``max_size`` texture (the viewer then shows DC colour only)."""
    k = scene.sh.shape[1]
    if k <= 1 or len(scene) == 0:
        return None
    per_row = SH_TEXTURE_WIDTH // SH_TEXELS_PER_SPLAT
    height = -(-len(scene) // per_row)
    if height > max_size or SH_TEXTURE_WIDTH > max_size:
        return None
    tex = np.zeros((height * per_row, SH_TEXELS_PER_SPLAT, 3), dtype=np.float32)
    tex[: len(scene), 1:k] = scene.sh[:, 1:].detach().to("cpu", torch.float32).numpy()
    return tex.reshape(height, SH_TEXTURE_WIDTH, 3)
