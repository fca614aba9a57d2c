"""Handful's own compressed scene file (``.handful``): see docs/handful-format.md.

``write(scene, path)`` stores the scene losslessly (float32 attributes, zstd; the default when
Handful saves a scene); ``write(scene, path, quality="low"|"medium"|"high")`` runs the compression
pipeline without cameras first (``python -m engine compress`` uses the training cameras). Any
version-1 file reads back with ``read``; a newer version, a truncated or an altered file gives a
FormatError and never a partial scene.
"""

from __future__ import annotations

from pathlib import Path

from engine.compress import container
from engine.compress.scene_codec import LOSSLESS, decode_scene, encode_scene
from engine.io.atomic import atomic_write_bytes
from engine.io.reading import read_bytes
from engine.scene import GaussianScene

FORMAT_NAME = "handful"
EXTENSIONS = (".handful",)


def sniff(head: bytes) -> bool:
    return container.sniff(head)


def read(path: str | Path) -> GaussianScene:
    path = Path(path)
    return decode_scene(read_bytes(path, "a .handful scene file"), path)


def write(scene: GaussianScene, path: str | Path, quality: str | None = None) -> None:
    if quality is None:
        data = encode_scene(scene, LOSSLESS)
    else:
        from engine.compress.pipeline import compress

        data, _, _ = compress(scene, quality)
    atomic_write_bytes(Path(path), data)


__all__ = ["FORMAT_NAME", "EXTENSIONS", "sniff", "read", "write"]
