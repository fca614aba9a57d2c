"""PlayCanvas SOG (Spatially Ordered Gaussians, meta.json version 2): lossless WebP textures + meta.json,
either as files beside ``meta.json`` or bundled in one ``.sog`` zip. Read by SuperSplat, the PlayCanvas
engine and ``@playcanvas/splat-transform``.

Layout, after PlayCanvas's public format description (developer.playcanvas.com, "The SOG format"):
every per-splat texture is W x H RGBA with W = 4 ceil(sqrt(n) / 4), H = 4 ceil(n / W / 4); splat i is
pixel (i mod W, i div W); splats are stored in Morton order.

- means_l / means_u: low / high bytes of 16-bit x, y, z of ``sign(v) ln(|v| + 1)`` between the
  per-axis ``mins`` / ``maxs`` in meta.json.
- quats: the three smaller components c of the unit quaternion (largest made positive) as 8-bit
  unorm(c sqrt(1/2) + 1/2), alpha = 252 + index of the largest component (w, x, y, z order).
- scales: R, G, B index a 256-entry codebook of log scales (``scales.codebook``; ours is an even grid,
  of GRID_LEVELS words, like every codebook here).
- sh0: R, G, B index a 256-entry codebook of DC coefficients (``sh0.codebook``); A = sigmoid(opacity).
- shN (optional): ``shN_labels`` R + 256 G is a palette index; ``shN_centroids`` (64 entries per row,
  one pixel per coefficient) holds R, G, B indices into the 256-entry ``shN.codebook``. Ours: entry 0 is
  all zeros, shared by the splats whose higher bands add less than SH_TOLERANCE; bands no splat needs are
  left out of the file.

Splats whose opacity is below the renderers' alpha threshold (1/255) reach no pixel and are not written.

Axes are those of the 3DGS .ply (the engine's). WebP is written with ``exact=True``: without it libwebp
may rewrite the colour of pixels whose alpha is 0 (splats of opacity < 1/255), changing their data.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.compress import codec
from engine.compress.vq import kmeans
from engine.errors import FormatError
from engine.io.atomic import atomic_write_bytes
from engine.render.projection import ALPHA_THRESHOLD
from engine.io.reading import read_bytes
from engine.scene import GaussianScene, quat_to_rotmat, sh_coeffs_for_degree, sh_degree_from_coeffs

FORMAT_NAME = "sog"
EXTENSIONS = (".sog",)  # and a folder's meta.json (engine.io.detect knows the name)
META_VERSION = 2
PALETTE_ROW = 64
_ALPHA_EDGE = 0.5 / 255
_INV_SPHERE = 1.0 / math.sqrt(4.0 * math.pi)
# Chosen on Handful-trained fern and lego scenes with all SH bands (16k splats, benchmarks/compress_bench.py):
# a splat's higher bands adding less than one 8-bit step of RMS colour over the sphere are left out (palette
# entry 0), one palette entry per 64 splats, and grids of 128 words for scales and DC and 64 for the palette
# took fern from 17.7 to 13.0 bytes per splat for 0.007 dB of held-out PSNR (38.5 -> 37.6 dB against the
# uncompressed renders).
SH_TOLERANCE = 1.0 / 255
SPLATS_PER_ENTRY = 64.0
# 0.25: on the CPU Standard lego and fern scenes (25k splats) 12.51 -> 12.24 and 11.31 -> 11.03 bytes per splat for
# 0.03 and 0.001 dB of held-out PSNR (benchmarks/compress_bench.py); 0.5 and 1 cost 0.05 and 0.14 dB on lego
SHAPE_TOLERANCE = 0.25
GRID_LEVELS = {"scales": 128, "sh0": 128, "shN": 64}  # words of each 1D codebook's even grid (at most 256)


def sniff(head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04" or b'"means"' in head


# ===================================================================== writing


def _log_transform(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def _short(values) -> list[float]:
    """Floats with 9 significant digits: exact for float32, and half the JSON of Python's repr."""
    return [float(f"{v:.9g}") for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _texture_size(n: int) -> tuple[int, int]:
    width = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    return width, max(4, math.ceil(n / width / 4) * 4)


def _codebook_1d(values: np.ndarray, levels: int = 256, zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(256 sorted words, uint8 index of each value's nearest word): an even grid of ``levels`` words from
    the smallest value to the largest (the format's 256 filled up with the last), each word rounded to 6
    significant digits (short in meta.json, and the reader's value). Fewer levels: a coarser step, fewer
    distinct indices, fewer bits after WebP. ``zero``: the grid is shifted (its step widened by one
    level's worth) so that 0 is a word, for the palette's all-zero entry.

    Why a grid and not k-means: the textures are entropy-coded (WebP), and for entropy-coded scalar
    quantisation an even step is close to optimal, while k-means spreads the indices evenly (the most
    bits) and, fitted on a sample, leaves the rare large scales and bright colours of the tails far from
    any word. On the 500-step fern scene (13k splats) the grid gave 11.6 instead of 12.6 bytes per splat, and renders at
    42 instead of 27 dB against the uncompressed scene (benchmarks/compress_bench.py).
    """
    flat = values.reshape(-1).astype(np.float64)
    lo, hi = (flat.min(), flat.max()) if len(flat) else (0.0, 0.0)
    if zero and lo < 0 < hi:
        step = (hi - lo) / (levels - 2)
        first = math.floor(lo / step)
        grid = np.array([float(f"{w:.6g}") for w in (first + np.arange(levels)) * step])
    else:
        grid = np.array([float(f"{w:.6g}") for w in np.linspace(lo, hi, levels)])
    # exact nearest word by the midpoints (rounding keeps the grid sorted)
    index = np.searchsorted((grid[1:] + grid[:-1]) / 2, flat)
    words = np.concatenate([grid, np.full(256 - levels, grid[-1])])
    return words, index.astype(np.uint8).reshape(values.shape)


def _position_slack(logm, lo, hi, scales, unit_quats, tolerance: float) -> np.ndarray:
    """Steps of the 16-bit log-space grid each coordinate may move (beyond the half step of rounding) while
    the splat's centre moves at most ``tolerance`` in its own Mahalanobis distance: a third of it per axis,
    and along axis a that is ``tolerance / 3 / sqrt(inverse covariance_aa)``. A step of
    ``sign(v) ln(|v| + 1)`` is ``|v| + 1`` times as long in the world."""
    rot = quat_to_rotmat(unit_quats)
    inverse_diagonal = np.einsum("nak,nk->na", rot**2, 1.0 / np.maximum(scales, 1e-30) ** 2)
    step = np.where(hi > lo, (hi - lo) / 65535.0, np.inf)
    world_step = step * np.expm1(np.abs(logm)) + step
    allowed = tolerance / 3.0 / np.sqrt(inverse_diagonal) / world_step
    return np.clip(np.floor(allowed - 0.5), 0, 65535).astype(np.int64)


def _rotation_slack(largest, scales, tolerance: float, width: int) -> np.ndarray:
    """Steps each stored quaternion component may move while the ellipsoid's edge moves at most ``tolerance``
    times its smallest scale: turning by angle t moves it by at most t (longest - shortest axis). Three
    components off by k steps of sqrt 2 / 255 are off by e <= sqrt 3 k sqrt 2 / 255 together, the rebuilt
    largest one (>= 1/2) by at most sqrt 3 e, so the rotation turns by at most 2 |dq| <= 4 e. Only towards a
    neighbour of the same largest component (otherwise the stored three are different components)."""
    spread = scales.max(axis=1) - scales.min(axis=1)
    angle = tolerance * scales.min(axis=1) / np.maximum(spread, 1e-30)
    steps = np.clip(np.floor(angle / (4.0 * math.sqrt(3.0) * math.sqrt(2.0) / 255.0) - 0.5), 0, 255)
    index = np.arange(len(largest))
    previous = np.where(index % width > 0, index - 1, index - width)
    same = (previous >= 0) & (largest[np.maximum(previous, 0)] == largest)
    return np.where(same, steps, 0).astype(np.int64)[:, None]


def _webp_image(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # method 4 (libwebp's default): on the 16k-splat fern's textures method 6 took 9.2 CPU s instead of 0.31
    # for 0.04 % fewer bytes
    Image.fromarray(image, "RGBA").save(buf, "WEBP", lossless=True, exact=True, quality=100, method=4)
    return buf.getvalue()


def _webp(pixels: np.ndarray, width: int, height: int) -> bytes:
    image = np.zeros((width * height, 4), dtype=np.uint8)
    image[:, 3] = 255
    image[: len(pixels), : pixels.shape[1]] = pixels
    return _webp_image(image.reshape(height, width, 4))


def _kept_bands(sh: np.ndarray, tolerance: float) -> tuple[np.ndarray, int]:
    """(sh without the top bands that no splat needs, the bands kept): a band is dropped from the file
    while the bands dropped so far add at most ``tolerance`` RMS colour to every splat."""
    degree = sh_degree_from_coeffs(sh.shape[1])
    cut = np.zeros(len(sh))
    while degree > 0:
        band = sh[:, degree * degree : (degree + 1) ** 2].astype(np.float64)
        energy = cut + (band**2).sum(axis=(1, 2)) / 3.0 * _INV_SPHERE**2
        if len(sh) and energy.max() > tolerance**2:
            break
        cut, degree = energy, degree - 1
    return sh[:, : (degree + 1) ** 2], degree


def encode(scene: GaussianScene, sh_tolerance: float | None = None, splats_per_entry: float | None = None,
           grid_levels: dict | None = None, shape_tolerance: float | None = None) -> tuple[dict, dict[str, bytes]]:
    """(meta.json as a dict, {file name: WebP bytes}). ``sh_tolerance``: the RMS colour below which a
    splat's higher SH bands are left out; ``splats_per_entry``: splats per SH palette entry;
    ``grid_levels``: words per codebook grid; ``shape_tolerance``: how far each splat's centre (in its own
    Mahalanobis distance) and the edge of its ellipsoid (through its rotation, as a share of its smallest
    scale) may move so that its texels match their neighbours' (``codec.snap_towards_previous``; 0: the
    nearest step). Defaults: the module's constants."""
    levels = {**GRID_LEVELS, **(grid_levels or {})}
    sh_tolerance = SH_TOLERANCE if sh_tolerance is None else sh_tolerance
    splats_per_entry = SPLATS_PER_ENTRY if splats_per_entry is None else splats_per_entry
    scene = scene.detach().to("cpu")
    # a splat whose opacity is below the renderers' alpha threshold never reaches a pixel: not written
    scene = scene.subset(torch.sigmoid(scene.opacity_logits.float()) >= ALPHA_THRESHOLD)
    n = len(scene)
    means = scene.means.numpy().astype(np.float64)
    order = codec.morton_order(means)
    width, height = _texture_size(n)
    files: dict[str, bytes] = {}

    logm = _log_transform(means[order])
    lo, hi = codec.column_range(logm)
    q = codec.quantize_range(logm, lo, hi, 16)
    scales = np.exp(scene.log_scales.numpy()[order].astype(np.float64))
    unit_quats = codec.normalize_quats(scene.quats.numpy()[order])
    shape_tolerance = SHAPE_TOLERANCE if shape_tolerance is None else shape_tolerance
    if shape_tolerance > 0 and n:
        slack = _position_slack(logm, lo, hi, scales, unit_quats, shape_tolerance)
        q = codec.snap_towards_previous(q, slack, width)
    files["means_l.webp"] = _webp((q & 0xFF).astype(np.uint8), width, height)
    files["means_u.webp"] = _webp((q >> 8).astype(np.uint8), width, height)

    largest, others = codec.smallest_three(unit_quats)
    quats = codec.unorm(others * codec.SQRT1_2 + 0.5, 8)
    if shape_tolerance > 0 and n:
        quats = codec.snap_towards_previous(quats, _rotation_slack(largest, scales, shape_tolerance, width), width)
    quats = np.concatenate([quats, 252 + largest[:, None]], axis=1)
    files["quats.webp"] = _webp(quats.astype(np.uint8), width, height)

    scale_book, scale_idx = _codebook_1d(scene.log_scales.numpy()[order], levels["scales"])
    files["scales.webp"] = _webp(scale_idx, width, height)

    sh = scene.sh.numpy()[order]
    dc_book, dc_idx = _codebook_1d(sh[:, 0], levels["sh0"])
    alpha = codec.round_u8(codec.sigmoid(scene.opacity_logits.numpy()[order]) * 255)
    files["sh0.webp"] = _webp(np.concatenate([dc_idx, alpha[:, None]], axis=1), width, height)

    meta = {
        "version": META_VERSION,
        "asset": {"generator": "Handful"},
        "count": n,
        "antialias": False,
        "means": {"mins": _short(lo), "maxs": _short(hi), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": _short(scale_book), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": _short(dc_book), "files": ["sh0.webp"]},
    }
    sh, bands = _kept_bands(sh, sh_tolerance)
    coeffs = sh.shape[1] - 1
    if coeffs and n:
        rest = sh[:, 1:].transpose(0, 2, 1).reshape(n, 3 * coeffs)  # channel-major, like f_rest
        # splats whose higher bands add less than the tolerance share palette entry 0, all zeros
        colour = np.sqrt((rest.astype(np.float64) ** 2).sum(axis=1) / 3.0) * _INV_SPHERE
        rows = np.flatnonzero(colour > sh_tolerance)
        labels = np.zeros(n, dtype=np.int64)
        centroids = np.zeros((1, 3 * coeffs), dtype=np.float32)
        if len(rows):
            palette = int(min(65535, max(1, round(len(rows) / splats_per_entry))))
            fitted, lab = kmeans(rest[rows], palette)
            centroids = np.concatenate([centroids, fitted])
            labels[rows] = lab + 1
        palette = len(centroids)
        rest_book, rest_idx = _codebook_1d(centroids, levels["shN"], zero=True)
        rows = math.ceil(palette / PALETTE_ROW)
        pixels = np.zeros((rows * PALETTE_ROW, coeffs, 4), dtype=np.uint8)
        pixels[..., 3] = 255
        pixels[:palette, :, :3] = rest_idx.reshape(palette, 3, coeffs).transpose(0, 2, 1)
        image = pixels.reshape(rows, PALETTE_ROW * coeffs, 4)
        files["shN_centroids.webp"] = _webp_image(image)
        lab = np.stack([labels & 0xFF, labels >> 8], axis=1).astype(np.uint8)
        files["shN_labels.webp"] = _webp(lab, width, height)
        meta["shN"] = {"count": palette, "bands": bands, "codebook": _short(rest_book),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    return meta, files


def write(scene: GaussianScene, path: str | Path) -> None:
    """A ``.sog`` bundle (one zip), or, for a path named ``meta.json``, the files beside it."""
    meta, files = encode(scene)
    write_bundle(meta, files, path)


def write_bundle(meta: dict, files: dict[str, bytes], path: str | Path) -> None:
    """Write what ``encode`` made: a ``.sog`` zip, or for a path named ``meta.json`` the files beside it."""
    path = Path(path)
    meta_bytes = json.dumps(meta).encode("utf-8")
    if path.name.lower().endswith("meta.json"):
        for name, data in files.items():
            atomic_write_bytes(path.with_name(name), data)
        atomic_write_bytes(path, meta_bytes)  # last: a reader never finds meta.json without its textures
        return
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:  # WebP is compressed already
        z.writestr("meta.json", meta_bytes, compress_type=zipfile.ZIP_DEFLATED)
        for name, data in files.items():
            z.writestr(name, data)
    atomic_write_bytes(path, buf.getvalue())


# ===================================================================== reading


def _open_files(path: Path):
    """(meta dict, a function name -> bytes) for a bundle or a meta.json with files beside it."""
    data = read_bytes(path, "a SOG file (.sog or meta.json)")
    if data[:4] == b"PK\x03\x04":
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
            names = {Path(n).name: n for n in z.namelist()}
            load = lambda name: z.read(names[name])  # noqa: E731
            meta_bytes = load("meta.json")
        except (zipfile.BadZipFile, KeyError, EOFError, zlib.error) as e:
            raise FormatError(f"is not a readable SOG bundle ({e})", path, "export it again") from None
    else:
        meta_bytes = data
        load = lambda name: read_bytes(path.with_name(Path(name).name), "a SOG texture")  # noqa: E731
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"has an unreadable meta.json ({e})", path) from None
    return meta, load


def _texture(load, name: str, count: int, path: Path) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(load(name)))
        image.load()
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise FormatError(f"has an unreadable texture {name} ({e})", path, "export it again") from None
    rgba = np.asarray(image.convert("RGBA")).reshape(-1, 4)
    if len(rgba) < count:
        raise FormatError(f"has a texture {name} of {len(rgba):,} pixels for {count:,} splats", path)
    return rgba[:count]


def read(path: str | Path) -> GaussianScene:
    path = Path(path)
    meta, load = _open_files(path)
    try:
        version = int(meta.get("version", 1))
        if version != META_VERSION:
            raise FormatError(f"is SOG version {version}; version {META_VERSION} can be read", path,
                              "convert it with splat-transform")
        n = int(meta["count"])
        m, s, c = meta["means"], meta["scales"], meta["sh0"]
        lo_t, hi_t = _texture(load, m["files"][0], n, path), _texture(load, m["files"][1], n, path)
        q16 = lo_t[:, :3].astype(np.uint32) | (hi_t[:, :3].astype(np.uint32) << 8)
        logm = codec.dequantize_range(q16, np.asarray(m["mins"]), np.asarray(m["maxs"]), 16)
        means = np.sign(logm) * np.expm1(np.abs(logm))
        qt = _texture(load, meta["quats"]["files"][0], n, path).astype(np.int64)
        tag = np.clip(qt[:, 3] - 252, 0, 3)
        quats = codec.from_smallest_three(tag, (qt[:, :3] / 255.0 - 0.5) / codec.SQRT1_2)
        scale_book = np.asarray(s["codebook"], dtype=np.float64)
        log_scales = scale_book[_texture(load, s["files"][0], n, path)[:, :3]]
        sh0 = _texture(load, c["files"][0], n, path)
        dc = np.asarray(c["codebook"], dtype=np.float64)[sh0[:, :3]]
        logits = codec.logit(sh0[:, 3] / 255.0, _ALPHA_EDGE)
        sh = dc[:, None, :]
        if "shN" in meta:
            shn = meta["shN"]
            bands, palette = int(shn["bands"]), int(shn["count"])
            coeffs = sh_coeffs_for_degree(bands) - 1
            labels_t = _texture(load, shn["files"][1], n, path)
            labels = labels_t[:, 0].astype(np.int64) | (labels_t[:, 1].astype(np.int64) << 8)
            cent = np.asarray(Image.open(io.BytesIO(load(shn["files"][0]))).convert("RGBA"))
            cent = cent.reshape(-1, PALETTE_ROW, coeffs, 4).reshape(-1, coeffs, 4)[:palette, :, :3]
            book = np.asarray(shn["codebook"], dtype=np.float64)
            if len(labels) and labels.max() >= palette:
                raise FormatError("has SH labels past its palette", path)
            rest = book[cent][labels]  # (n, coeffs, 3)
            sh = np.concatenate([sh, rest], axis=1)
    except FormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OSError) as e:
        raise FormatError(f"is not a valid SOG scene ({type(e).__name__}: {e})", path, "export it again") from None
    return GaussianScene.from_numpy(means, quats, log_scales, logits, sh)


__all__ = ["FORMAT_NAME", "EXTENSIONS", "sniff", "read", "write", "write_bundle", "encode"]
