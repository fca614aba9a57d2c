"""The byte container of a ``.handful`` scene file: a versioned header, zstd streams, a checksum.

Layout (little-endian; docs/handful-format.md is the full description):

    magic       8 bytes  b"HANDFUL\\x1a"
    version     u32      the container/scene format version (FORMAT_VERSION)
    header_len  u32      length of the JSON header that follows
    header      JSON     {"count", "sh_degree", "attributes": {...}, "streams": [{"name", "size", "csize"}]}
    streams     the streams' zstd frames, back to back in header order
                (version 2: a stream of more than FRAME_BYTES is several independent frames of
                FRAME_BYTES each, the last shorter, listed as "frames": [csize, ...], so that a reader
                decompresses them on every core)
                (version 3: streams listed under the header's "predicted" hold each splat's difference
                from the splat before, modulo 2^bits, and codebooks have 8-bit words; see scene_codec)
    crc32       u32      CRC-32 of every byte before it

The checksum is checked before anything is decoded, so a truncated or altered file is refused as a
whole (a FormatError), never read as a partial scene. A version newer than this build's is refused
before the checksum, because a later version may lay the file out differently.
"""

from __future__ import annotations

import json
import struct
import zlib
from concurrent.futures import Executor
from pathlib import Path

from engine.compress.codec import zstd_compress, zstd_decompress
from engine.errors import FormatError

MAGIC = b"HANDFUL\x1a"
FORMAT_VERSION = 3
FRAME_BYTES = 1 << 22  # 4 MiB: zstd's ratio barely changes past this, and a 1M-splat file gets dozens
_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_MAX_HEADER = 64 << 20


def pack(header: dict, streams: dict[str, bytes], zstd_level: int, pool: Executor | None = None,
         version_floor: int = 1) -> bytes:
    """The file's bytes: ``header`` (JSON-able; gets a "streams" list) and the named raw streams. The
    version written is the lowest that describes the file (1 while every stream is one frame; at least
    ``version_floor``, which the scene codec raises for what older readers would misread), so that older
    readers still open what they can."""
    pieces = [(name, raw[i : i + FRAME_BYTES]) for name, raw in streams.items()
              for i in range(0, max(len(raw), 1), FRAME_BYTES)]
    # the file's CRC covers every frame: no per-frame checksum
    squeeze = lambda part: zstd_compress(part, zstd_level, checksum=False)  # noqa: E731
    frames = list(pool.map(squeeze, [p for _, p in pieces]) if pool else map(squeeze, [p for _, p in pieces]))
    listing, k = [], 0
    for name, raw in streams.items():
        count = max(1, -(-len(raw) // FRAME_BYTES))
        sizes = [len(f) for f in frames[k : k + count]]
        entry = {"name": name, "size": len(raw), "csize": sum(sizes)}
        listing.append({**entry, "frames": sizes} if count > 1 else entry)
        k += count
    version = max(version_floor, 2 if any("frames" in s for s in listing) else 1)
    text = json.dumps({**header, "streams": listing}, separators=(",", ":")).encode("utf-8")
    body = b"".join([_PREFIX.pack(MAGIC, version, len(text)), text, *frames])
    return body + _CRC.pack(zlib.crc32(body))


def sniff(head: bytes) -> bool:
    return head[: len(MAGIC)] == MAGIC


def unpack(data: bytes, path: str | Path | None = None, pool: Executor | None = None) -> tuple[dict, dict[str, bytes]]:
    """(header, {stream name: raw bytes}) of a whole file, or a FormatError that says what is wrong;
    with ``pool`` the frames are decompressed on its threads (zstd releases the GIL)."""
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
        listing = [(str(s["name"]), int(s["size"]), [int(c) for c in s.get("frames", [s["csize"]])])
                   for s in header["streams"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise FormatError(f"has an unreadable header ({e})", path, "the file is damaged") from None
    offset, jobs = _PREFIX.size + header_len, []  # (name, frame bytes, its raw size)
    for name, size, csizes in listing:
        sizes = [FRAME_BYTES] * (len(csizes) - 1) + [size - FRAME_BYTES * (len(csizes) - 1)]
        if sizes[-1] < 0 or (len(csizes) > 1 and sizes[-1] == 0):
            raise FormatError(f"lists {len(csizes)} frames for its {size:,}-byte {name} stream", path,
                              "the file is damaged")
        for csize, raw_size in zip(csizes, sizes):
            if csize < 0 or offset + csize > len(body):
                raise FormatError(f"is truncated inside its {name} stream", path, "save or copy it again")
            jobs.append((name, body[offset : offset + csize], raw_size))
            offset += csize
    if offset != len(body):
        raise FormatError(f"has {len(body) - offset:,} unexpected bytes after its last stream", path)
    inflate = lambda job: zstd_decompress(job[1], job[2], path, job[0])  # noqa: E731
    parts = list(pool.map(inflate, jobs) if pool else map(inflate, jobs))
    streams: dict[str, list[bytes]] = {}
    for (name, _, _), part in zip(jobs, parts):
        streams.setdefault(name, []).append(part)
    return header, {name: p[0] if len(p) == 1 else b"".join(p) for name, p in streams.items()}


__all__ = ["MAGIC", "FORMAT_VERSION", "FRAME_BYTES", "pack", "unpack", "sniff"]
