"""Atomic file writes: a temporary file in the target folder, renamed over the target at the end.

A failed or interrupted write never leaves a partial file under the target name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import InputError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def cannot_write(error: OSError, path: str | Path, hint: str) -> InputError:
    """The message for a file or folder the system refuses to write (read-only, no permission, full)."""
    return InputError(f"cannot write here ({error.strerror or error})", path, hint)


def ensure_writable_folder(folder: str | Path, hint: str) -> Path:
    """Create ``folder`` (with its parents) and check that a file can be written in it, before any work
    starts; on failure remove the folders it made and raise :func:`cannot_write`'s error."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        for made in missing:  # deepest first: nothing half-made is left behind
            with contextlib.suppress(OSError):
                made.rmdir()
        raise cannot_write(e, folder, hint) from e
    return folder
