"""Atomic file writes: a file is either the old one or the whole new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError


def atomic_write(
    path: str | os.PathLike[str], data: bytes | Iterable[bytes], *, mode: int | None = None
) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and rename.

    ``data`` may be an iterable of chunks, so a big file need not exist whole in memory.

    A symlink is followed, so signing a linked header in place updates the real
    file instead of replacing the link. ``mode`` (e.g. 0o600 for keys) is
    applied before any byte is written, so a secret is never readable by
    others, not even briefly. Without ``mode`` an existing file keeps its
    permissions and a new one gets 0o644 minus umask. Errors name ``path``, not
    the temp file.
    """
    shown = os.fspath(path)
    target = Path(os.path.realpath(path))
    directory = target.parent
    if target.is_dir():
        raise InputError("is a directory, expected a file name to write", path=shown)
    if not directory.is_dir():
        raise InputError(f"cannot write: directory {str(directory)!r} does not exist", path=shown)
    if mode is None:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o644 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", path=shown) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, bytes | bytearray | memoryview):
                fh.write(data)
            else:
                for chunk in data:
                    fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write: {exc.strerror}", path=shown) from None
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
