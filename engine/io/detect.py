"""Which splat format a file holds, decided by its content (magic bytes, header), not only its name.

- ``ply`` header with an ``element chunk``: PlayCanvas compressed ply; any other ``ply`` header: 3DGS ply.
- gzip magic (spz v2/v3) or ``NGSP`` (spz v4): spz.
- ``HANDFUL\x1a``: Handful's own scene file; a zip named ``.sog`` or a ``meta.json`` describing
  ``means``: SOG; ``glTF`` magic (binary) or a ``.gltf`` JSON: glTF with KHR_gaussian_splatting.
- .splat has no header: accepted for a ``.splat`` name when the size is a whole number of 32-byte
  records and the first records decode to plausible splats.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import FormatError
from . import splat

HEAD_BYTES = 4096
GZIP_MAGIC = b"\x1f\x8b"
SPZ_V4_MAGIC = b"NGSP"
HANDFUL_MAGIC = b"HANDFUL\x1a"
ZIP_MAGIC = b"PK\x03\x04"
GLB_MAGIC = b"glTF"
_PLY_HEADER_END = re.compile(rb"end_header[ \t]*\r?\n")
_MAX_PLY_HEADER = 1 << 20

# name -> the extensions people use (the longest suffix wins: ".compressed.ply" before ".ply").
EXTENSIONS = {
    "ply": (".ply",),
    "splat": (".splat",),
    "spz": (".spz",),
    "compressed_ply": (".compressed.ply",),
    "handful": (".handful",),
    "sog": (".sog", "meta.json"),
    "gltf": (".gltf", ".glb"),
}


def formats_we_read() -> str:
    return ", ".join(f"{name} ({' '.join(ext)})" for name, ext in EXTENSIONS.items())


def format_from_extension(path: str | Path) -> str | None:
    name = Path(path).name.lower()
    matches = [(len(ext), fmt) for fmt, exts in EXTENSIONS.items() for ext in exts if name.endswith(ext)]
    return max(matches)[1] if matches else None


def _ply_header(path: Path, head: bytes) -> bytes:
    if _PLY_HEADER_END.search(head) or len(head) < HEAD_BYTES:
        return head
    with open(path, "rb") as f:  # a header with many comments can pass 4 KiB
        return f.read(_MAX_PLY_HEADER)


def detect_format(path: str | Path) -> str:
    """The format name (a key of ``EXTENSIONS``) of the file at ``path``, or a FormatError."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file", path, "check the path")
    if path.is_dir():
        raise FormatError("is a folder, not a splat file", path, f"formats we read: {formats_we_read()}")
    size = path.stat().st_size
    if size == 0:
        raise FormatError("the file is empty", path, "export the scene again")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)

    if head.startswith(b"ply\n") or head.startswith(b"ply\r\n"):
        header = _ply_header(path, head)
        end = _PLY_HEADER_END.search(header)
        header = header[: end.end()] if end else header
        return "compressed_ply" if re.search(rb"^element chunk ", header, re.M) else "ply"
    if head.startswith(GZIP_MAGIC) or head.startswith(SPZ_V4_MAGIC):
        return "spz"
    if head.startswith(HANDFUL_MAGIC):
        return "handful"
    if head.startswith(ZIP_MAGIC) and format_from_extension(path) == "sog":
        return "sog"
    if head.startswith(GLB_MAGIC) or (format_from_extension(path) == "gltf" and b'"asset"' in head):
        return "gltf"
    if path.name.lower() == "meta.json" and b'"means"' in head:
        return "sog"
    by_name = format_from_extension(path)
    if by_name == "splat":
        if size % splat.RECORD_BYTES:
            raise FormatError(
                f"a .splat file is a whole number of 32-byte splats, but this one has {size:,} bytes",
                path, "the file is truncated or not a .splat file",
            )
        if splat.sniff(head):
            return "splat"
        raise FormatError(
            "the file is named .splat but its first splats have impossible positions or scales", path,
            "the file is corrupt or not an antimatter15 .splat",
        )
    what = f"its name says {by_name} but its content does not match" if by_name else "unknown format"
    raise FormatError(what, path, f"formats we read: {formats_we_read()}")


__all__ = ["detect_format", "format_from_extension", "formats_we_read", "EXTENSIONS", "HEAD_BYTES"]
