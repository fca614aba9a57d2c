"""Reading a file's bytes with errors a person can act on (missing, a folder, unreadable, empty)."""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError


def read_bytes(path: Path, what: str, limit: int = -1) -> bytes:
    """The first ``limit`` bytes (all by default) of ``path``; ``what`` names the expected kind of
    file in messages (e.g. "an .spz file")."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(limit)
    except FileNotFoundError:
        raise FormatError("file not found", path, "check the path") from None
    except IsADirectoryError:
        raise FormatError(f"is a folder, not {what}", path) from None
    except OSError as e:
        raise FormatError(f"cannot be read ({e.strerror})", path) from None
    if not data:
        raise FormatError("is empty (0 bytes)", path, "the file was not written completely; export it again")
    return data


def non_finite_hint(path: str | Path) -> str:
    """What to do about a file with NaN/infinite splats: the command that drops them (``--drop-invalid``)."""
    path = Path(path)
    return (f"re-export the scene, or drop those splats with "
            f"`handful-cli convert {path} {path.with_name(path.stem + '-finite.ply')} --drop-invalid`")
