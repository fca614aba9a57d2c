"""The antimatter15 .splat format: no header, 32 bytes per splat, no SH.

Each record: position 3 x float32, scale 3 x float32 (linear, not log), RGBA 4 x uint8 with
``A = sigmoid(opacity) * 255`` and ``RGB = clamp(0.5 + C0 * dc) * 255``, rotation 4 x uint8
``q / |q| * 128 + 128`` in w,x,y,z order. Like antimatter15's converter, the writer orders splats by
``scale_x * scale_y * scale_z * opacity`` descending (large, opaque splats first), so web viewers that
stream the file show the important splats early.

Round-trip tolerances (the format's quantisation; the writer rounds to nearest):
- positions: exact (float32); log scales: float32 ``log(exp(s))``, within 1e-5 absolute.
- base colour ``0.5 + C0 * dc``: within 0.5/255 where it lies in [0, 1] (clamped outside it).
- opacity ``sigmoid(logit)``: within 0.5/255; read back clamped to [0.5/255, 1 - 0.5/255] so that
  the logit stays finite.
- rotation: ``|<q, q'>| >= 0.9998`` for unit quaternions (each component within 1/128 after the
  255 clip, then renormalised).
- higher SH bands are dropped (read back as degree 0); group ids and features are not stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compress.codec import normalize_quats, round_u8
from ..errors import FormatError
from ..scene import SH_C0, GaussianScene
from .atomic import atomic_write
from .reading import non_finite_hint

FORMAT_NAME = "splat"
EXTENSIONS = (".splat",)
RECORD_BYTES = 32
RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert RECORD.itemsize == RECORD_BYTES

_ALPHA_EDGE = 0.5 / 255
# A scale this far outside anything a scene uses means the bytes are not a .splat.
_PLAUSIBLE_EXTENT = 1e8


def _plausible(records: np.ndarray, min_fraction: float = 0.9) -> bool:
    """Most records have finite, bounded positions and non-negative bounded scales (a few broken
    splats are the reader's business: it reports how many). Random bytes fail this: about half of
    random float32s are negative and many are huge or NaN."""
    if len(records) == 0:
        return False
    pos, scale = records["position"], records["scale"]
    with np.errstate(invalid="ignore"):
        ok = (
            (np.abs(pos) < _PLAUSIBLE_EXTENT).all(axis=1)
            & (scale >= 0).all(axis=1)
            & (scale < _PLAUSIBLE_EXTENT).all(axis=1)
        )
    return bool(ok.mean() >= min_fraction)


def sniff(head: bytes) -> bool:
    """.splat has no magic: true when the whole records in ``head`` decode to plausible splats.

    Only meaningful together with the ``.splat`` extension and a size that is a multiple of 32.
    """
    whole = len(head) - len(head) % RECORD_BYTES
    return _plausible(np.frombuffer(head[:whole], dtype=RECORD))


def sort_order(scene: GaussianScene) -> np.ndarray:
    """Indices by ``volume * opacity`` descending (stable, so ties keep the scene's order).

    Compared in log space, ``sum(log_scales) + log(sigmoid(logit))``: the same order without the
    overflow and underflow of ``exp``."""
    log_volume = scene.log_scales.detach().cpu().numpy().astype(np.float64).sum(axis=1)
    log_opacity = -np.logaddexp(0.0, -scene.opacity_logits.detach().cpu().numpy().astype(np.float64))
    return np.argsort(-(log_volume + log_opacity), kind="stable")


def encode(scene: GaussianScene, sort: bool = True) -> np.ndarray:
    n = len(scene)
    cpu = lambda t: t.detach().cpu().numpy().astype(np.float32, copy=False)  # noqa: E731
    # Filled through plain float32/uint8 views of the records: numpy's per-field assignment into a
    # structured array is several times slower.
    raw = np.empty((n, RECORD_BYTES), dtype=np.uint8)
    floats = raw.view("<f4")
    floats[:, 0:3] = cpu(scene.means)
    with np.errstate(over="ignore"):
        floats[:, 3:6] = np.exp(cpu(scene.log_scales))
        alpha = 255 / (1 + np.exp(-cpu(scene.opacity_logits)))
    raw[:, 24:27] = round_u8(np.clip(0.5 + np.float32(SH_C0) * cpu(scene.sh[:, 0]), 0, 1) * 255)
    raw[:, 27] = round_u8(alpha)
    quats = cpu(scene.quats)
    raw[:, 28:32] = round_u8(normalize_quats(quats) * 128 + 128)
    if sort:  # whole 32-byte rows at once (fancy indexing a structured array is much slower)
        raw = np.take(raw, sort_order(scene), axis=0)
    return raw.view(RECORD).reshape(n)


def decode(records: np.ndarray, path: str | Path = "<memory>", drop_invalid: bool = False) -> GaussianScene:
    pos = records["position"].astype(np.float32)
    scale = records["scale"].astype(np.float64)
    with np.errstate(invalid="ignore"):
        invalid = ~(np.isfinite(pos).all(axis=1) & np.isfinite(scale).all(axis=1) & (scale >= 0).all(axis=1))
    bad = int(invalid.sum())
    if bad:
        if not drop_invalid:
            raise FormatError(
                f"{bad:,} of {len(records):,} splats have NaN, infinite or negative position/scale values",
                path, non_finite_hint(path),
            )
        keep = ~invalid
        records, pos, scale = records[keep], pos[keep], scale[keep]

    rgba = records["rgba"].astype(np.float64) / 255
    alpha = np.clip(rgba[:, 3], _ALPHA_EDGE, 1 - _ALPHA_EDGE)
    quats = (records["rot"].astype(np.float64) - 128) / 128
    quats = normalize_quats(quats)
    # A zero scale (a flat splat) has no log; the smallest positive float32 keeps it flat and finite.
    log_scales = np.log(np.maximum(scale, np.finfo(np.float32).tiny))
    sh = ((rgba[:, :3] - 0.5) / SH_C0)[:, None, :]
    return GaussianScene.from_numpy(
        means=pos, quats=quats, log_scales=log_scales, opacity_logits=np.log(alpha / (1 - alpha)), sh=sh
    )


def read(path: str | Path, drop_invalid: bool = False) -> GaussianScene:
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise FormatError("the file is empty", path, "export the scene again")
    if size % RECORD_BYTES:
        raise FormatError(
            f"a .splat file is a whole number of 32-byte splats, but this one has {size:,} bytes "
            f"({size // RECORD_BYTES:,} splats and {size % RECORD_BYTES} stray bytes)",
            path, "the file is truncated or not a .splat file",
        )
    records = np.fromfile(path, dtype=RECORD)
    return decode(records, path, drop_invalid=drop_invalid)


def write(scene: GaussianScene, path: str | Path, sort: bool = True) -> None:
    """Write ``scene`` as .splat (SH above degree 0, groups and features are not stored)."""
    records = encode(scene, sort=sort)
    with atomic_write(path) as f:
        f.write(records.view(np.uint8).data)


__all__ = ["FORMAT_NAME", "EXTENSIONS", "RECORD", "sniff", "read", "write", "encode", "decode", "sort_order"]
