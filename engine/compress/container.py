"""The byte container of a ``.handful`` scene file: a versioned header, zstd streams, a checksum.

Layout (little-endian; docs/handful-format.md is the full description):

    magic       8 bytes  b"HANDFUL\\x1a"
    version     u32      the container/scene format version (FORMAT_VERSION)
    header_len  u32      length of the JSON header that follows
    header      JSON     {"count", "sh_degree", "attributes": {...}, "streams": [{"name", "size", "csize"}]}
    streams     the streams' zstd frames, back to back in header order
    crc32       u32      CRC-32 of every byte before it

The checksum is checked before anything is decoded, so a truncated or altered file is refused as a
whole (a FormatError), never read as a partial scene. A version newer than this build's is refused
before the checksum, because a later version may lay the file out differently.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from engine.compress.codec import zstd_compress, zstd_decompress
from engine.errors import FormatError

MAGIC = b"HANDFUL\x1a"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_MAX_HEADER = 64 << 20


def pack(header: dict, streams: dict[str, bytes], zstd_level: int) -> bytes:
    """The file's bytes: ``header`` (JSON-able; gets a "streams" list) and the named raw streams."""
    frames, listing = [], []
    for name, raw in streams.items():
        frame = zstd_compress(raw, zstd_level, checksum=False)  # the file's CRC covers every frame
        frames.append(frame)
        listing.append({"name": name, "size": len(raw), "csize": len(frame)})
    text = json.dumps({**header, "streams": listing}, separators=(",", ":")).encode("utf-8")
    body = b"".join([_PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)), text, *frames])
    return body + _CRC.pack(zlib.crc32(body))


def sniff(head: bytes) -> bool:
    return head[: len(MAGIC)] == MAGIC


def unpack(data: bytes, path: str | Path | None = None) -> tuple[dict, dict[str, bytes]]:
    """(header, {stream name: raw bytes}) of a whole file, or a FormatError that says what is wrong."""
    if len(data) < len(MAGIC) or not sniff(data):
        raise FormatError("is not a Handful scene file (the HANDFUL header is missing)", path,
                          "choose a .handful file saved by Handful")
    if len(data) < _PREFIX.size + _CRC.size:
        raise FormatError(f"is truncated: {len(data)} bytes, less than the header", path, "save or copy it again")
    _, version, header_len = _PREFIX.unpack_from(data)
    if version > FORMAT_VERSION:
        raise FormatError(
            f"was written by a newer Handful (scene format version {version}; this build reads versions "
            f"1-{FORMAT_VERSION})", path, "update Handful to open it",
        )
    if version < 1:
        raise FormatError(f"claims scene format version {version}, which never existed", path, "the file is damaged")
    # a view, not a copy: the streams are sliced out of the caller's bytes
    body, (stored,) = memoryview(data)[: -_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != stored:
        raise FormatError("is damaged: its checksum does not match (truncated or changed after it was written)",
                          path, "save, export or copy it again")
    if header_len > min(_MAX_HEADER, len(body) - _PREFIX.size):
        raise FormatError(f"has a {header_len:,}-byte header in a {len(data):,}-byte file", path, "the file is damaged")
    try:
        header = json.loads(bytes(body[_PREFIX.size : _PREFIX.size + header_len]).decode("utf-8"))
        listing = [(str(s["name"]), int(s["size"]), int(s["csize"])) for s in header["streams"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise FormatError(f"has an unreadable header ({e})", path, "the file is damaged") from None
    offset, streams = _PREFIX.size + header_len, {}
    for name, size, csize in listing:
        if csize < 0 or offset + csize > len(body):
            raise FormatError(f"is truncated inside its {name} stream", path, "save or copy it again")
        streams[name] = zstd_decompress(body[offset : offset + csize], size, path, name)
        offset += csize
    if offset != len(body):
        raise FormatError(f"has {len(body) - offset:,} unexpected bytes after its last stream", path)
    return header, streams


__all__ = ["MAGIC", "FORMAT_VERSION", "pack", "unpack", "sniff"]
