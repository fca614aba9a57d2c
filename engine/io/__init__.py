"""Reading and writing splat scenes and camera files.

Every scene format is a module here with ``read(path) -> GaussianScene``,
``write(scene, path, **options)`` (atomic), ``EXTENSIONS``, ``FORMAT_NAME`` and ``sniff(head)``.
Camera modules (``colmap``, ``transforms``) expose ``read(path) -> CameraRig``.

Entry points: :func:`load_scene`, :func:`save_scene`, :func:`load_cameras`, :func:`detect_format`
and :data:`FORMATS` (format name -> module, imported on first use).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import FormatError, InputError
from ..scene import Camera, GaussianScene, SceneError
from .detect import EXTENSIONS as FORMAT_EXTENSIONS
from .detect import detect_format, format_from_extension, formats_we_read


class _FormatModules(Mapping):
    """Format name -> module, imported lazily so that a format module may import ``engine.io``
    itself, and so that formats whose module is not there yet are simply absent."""

    def __init__(self, names):
        self._names = tuple(names)

    def _available(self):
        return [n for n in self._names if importlib.util.find_spec(f"{__name__}.{n}") is not None]

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self._names or importlib.util.find_spec(f"{__name__}.{name}") is None:
            raise KeyError(name)
        return importlib.import_module(f"{__name__}.{name}")

    def __iter__(self):
        return iter(self._available())

    def __len__(self) -> int:
        return len(self._available())

    def __repr__(self) -> str:
        return f"FORMATS({', '.join(self._available())})"


FORMATS: Mapping[str, ModuleType] = _FormatModules(FORMAT_EXTENSIONS)


def format_module(name: str, path: str | Path | None = None) -> ModuleType:
    if name not in FORMAT_EXTENSIONS:
        raise FormatError(f"unknown format {name!r}", path, f"formats: {', '.join(FORMAT_EXTENSIONS)}")
    try:
        return FORMATS[name]
    except KeyError:
        raise FormatError(f"{name} files are not supported by this build yet", path) from None


def load_scene(path: str | Path, **options) -> GaussianScene:
    """Read any supported splat file; the format comes from the content (see ``detect_format``).

    ``options`` go to the format's ``read`` (e.g. ``drop_invalid=True`` to drop NaN rows).
    """
    path = Path(path)
    module = format_module(detect_format(path), path)
    try:
        return module.read(path, **options)
    except SceneError as e:
        raise FormatError(f"the file holds an invalid scene: {e}", path) from e


def resolve_save_format(path: str | Path, format: str | None = None) -> str:
    if format is not None:
        if format not in FORMAT_EXTENSIONS:
            raise InputError(
                f"unknown output format {format!r}", path, f"choose one of {', '.join(FORMAT_EXTENSIONS)}"
            )
        return format
    by_name = format_from_extension(path)
    if by_name is None:
        raise InputError(
            "cannot tell the output format from the file name", path,
            f"use one of the extensions {formats_we_read()}, or choose the format with --format "
            f"({', '.join(FORMAT_EXTENSIONS)})",
        )
    return by_name


def save_scene(scene: GaussianScene, path: str | Path, format: str | None = None, **options) -> None:
    """Write ``scene`` to ``path`` atomically; ``format`` is a name from :data:`FORMATS` or, when
    None, comes from the extension (``.compressed.ply`` means compressed ply)."""
    name = resolve_save_format(path, format)
    module = format_module(name, path)
    _check_finite(scene, path)
    module.write(scene, Path(path), **options)


def _check_finite(scene: GaussianScene, path) -> None:
    # numpy rather than torch.isfinite: on the CPU it is ~10x faster for a 1M-splat scene.
    for name, tensor in scene.tensors().items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        values = tensor.detach().cpu().numpy().reshape(len(scene), -1)
        finite = np.isfinite(values)
        if not finite.all():
            bad = int((~finite.all(axis=1)).sum())
            raise InputError(
                f"cannot save this scene: {name} has non-finite values in {bad} of {len(scene)} Gaussians",
                path, "drop the broken Gaussians first",
            )


_COLMAP_FILES = {"cameras.txt", "images.txt", "cameras.bin", "images.bin", "points3d.txt", "points3d.bin"}


def load_cameras(path: str | Path) -> list[Camera]:
    """Cameras from a COLMAP model (its folder or one of its files) or a transforms ``.json``."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or folder", path, "check the path")
    if path.is_dir() or path.name.lower() in _COLMAP_FILES:
        module = "colmap"
    elif path.suffix.lower() == ".json":
        module = "transforms"
    else:
        raise FormatError(
            "not a camera file", path,
            "pass a COLMAP model folder (cameras/images .txt or .bin) or a transforms .json",
        )
    try:
        reader = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{module}":
            raise
        raise FormatError(f"reading {module} cameras is not supported by this build yet", path) from None
    return list(reader.read(path).cameras)


# Ratio of the zstd/gzip-compressed SPZ payload to its raw quantised size; measured on trained scenes
# it lies around 0.6-0.9, so the estimate is labelled "about".
SPZ_COMPRESSION = 0.75
# Measured the same way for Handful's lossless .handful (byte planes of float32 + zstd) and SOG's WebP
# (SOG on job-trained scenes of 700-16k splats: 12-13 B/splat with SH, about 3 kB of meta.json and zip).
HANDFUL_LOSSLESS_COMPRESSION = 0.85
SOG_COMPRESSION = 0.65
SOG_OVERHEAD = 3_000


def estimate_size(scene: GaussianScene, fmt: str) -> int:
    """Bytes a file of ``fmt`` takes for ``scene``, from each format's record layout."""
    n = len(scene)
    rest = 3 * (scene.sh.shape[1] - 1)  # higher-order SH values per splat
    if fmt == "ply":  # xyz, normals, f_dc, f_rest, opacity, scale, rot: float32 each
        return n * 4 * (17 + rest) + 1200
    if fmt == "splat":
        return n * 32
    if fmt == "compressed_ply":  # four uint32 per splat, 18 floats per 256-splat chunk, uchar SH
        return n * (16 + rest) + ((n + 255) // 256) * 18 * 4 + 1500
    if fmt == "spz":  # 24-bit positions, u8 alpha/colour/scale, 4-byte rotation, u8 SH, then compressed
        return int((n * (9 + 1 + 3 + 3 + 4 + rest)) * SPZ_COMPRESSION) + 32
    if fmt == "handful":  # the lossless default: float32 attributes, byte planes + zstd
        return int(n * 4 * (14 + rest) * HANDFUL_LOSSLESS_COMPRESSION) + 1024
    if fmt == "sog":  # 6 + 4 + 3 + 4 bytes of textures (+ 2 of SH labels), lossless WebP
        return int(n * (17 + (2 if rest else 0)) * SOG_COMPRESSION) + SOG_OVERHEAD
    if fmt == "gltf":  # float32 attributes + RGBA8 fallback colour
        return n * (4 * (14 + rest) + 4) + 3000
    raise FormatError(f"unknown format {fmt!r}", hint=f"formats we write: {', '.join(FORMAT_EXTENSIONS)}")



__all__ = [
    "estimate_size",
    "FORMATS",
    "load_scene",
    "save_scene",
    "load_cameras",
    "detect_format",
    "format_from_extension",
    "formats_we_read",
    "resolve_save_format",
]
