"""Reading and writing files so that nothing is lost and nothing is unbounded.

Reads are size-checked before a byte is read, and only regular files are read
unless the caller allows otherwise: ``/dev/zero`` or a FIFO with no writer gets
a clear error instead of exhausting memory or blocking forever. Writes are
atomic: the target is either the old file or the whole new one, with its mode,
owner and group kept; a hard-linked or non-regular target is refused rather
than silently replaced, and temporary files a killed run left behind are
removed by the next write to the same target.
"""

from __future__ import annotations

import os
import stat

from .errors import InputError

TYPE_CHECKING = False  # the verify path reads files: keep its imports to os and stat
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

#: The largest light-skeleton header read: the kernel's largest signed payload (16 MiB)
#: written 4 characters a byte, plus the C around it, with room to spare.
MAX_HEADER = 256 << 20
#: Keys, certificates and signatures (the kernel takes signatures of at most 8 KiB; a
#: bigger one is still read, to be refused with the kernel's errno).
MAX_SMALL_FILE = 1 << 20
#: temp files are ``.NAME.bpfsign-PID-RANDOM.tmp`` so a later run can tell a dead writer's.
_TEMP = r"^\.(?P<name>.+)\.bpfsign-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$"


class TooLargeInput(InputError):
    """A file is larger than what may be read for its purpose; nothing of it was kept."""

    def __init__(self, message: str, *, path: str, size: int, limit: int) -> None:
        super().__init__(message, path=path)
        self.size = size
        self.limit = limit


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_input(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str = "file",
    allow_special: bool = False,
    check: Callable[[os.stat_result], None] | None = None,
) -> bytes:
    """The bytes of ``path``, refusing non-regular files and anything over ``limit`` bytes.

    The size is checked from ``fstat`` before reading, and the read stops one
    byte past the limit, so a file that grows (or a special file, when
    ``allow_special``) can never make the read unbounded. The open never
    blocks, even on a FIFO without a writer. ``check`` sees the ``fstat`` of the
    very file that is read (e.g. a private key's permissions) before any byte.
    """
    shown = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise InputError("file not found", path=shown) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=shown) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError("is a directory, expected a file", path=shown)
        regular = stat.S_ISREG(st.st_mode)
        if not regular and not allow_special:
            raise InputError(
                f"is {_kind(st.st_mode)}, not a regular file; bpfsign reads a {what} only "
                "from a regular file",
                path=shown,
            )
        if check is not None:
            check(st)
        if regular and st.st_size > limit:
            raise TooLargeInput(
                f"is {st.st_size} bytes, more than the {limit} bytes a {what} may have",
                path=shown,
                size=st.st_size,
                limit=limit,
            )
        if not regular:
            os.set_blocking(fd, True)
        chunks = []
        total = 0
        want = (st.st_size if regular else 0) + 1
        while True:
            try:
                chunk = os.read(fd, max(min(want, limit + 1 - total), 1))
            except OSError as exc:
                raise InputError(f"cannot read: {exc.strerror}", path=shown) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise TooLargeInput(
                    f"has more than the {limit} bytes a {what} may have",
                    path=shown,
                    size=total,
                    limit=limit,
                )
            want = 1 << 20
        return b"".join(chunks)
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Iterable[bytes],
    *,
    mode: int | None = None,
    break_hardlinks: bool = False,
) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync, rename, fsync dir.

    ``data`` may be an iterable of chunks, so a big file need not exist whole in memory.

    A symlink is followed, so signing a linked header in place updates the real
    file instead of replacing the link. ``mode`` (e.g. 0o600 for keys) is
    applied before any byte is written, so a secret is never readable by
    others, not even briefly. Without ``mode`` an existing file keeps its
    permissions, and it always keeps its owner and group; a new one gets 0o644
    minus umask. An existing target that is not a regular file (a device, a
    FIFO) is refused, and so is one with other hard links, which a rename would
    silently detach, unless ``break_hardlinks``. Errors name ``path``, not the
    temp file.
    """
    import contextlib
    import errno
    import secrets
    from pathlib import Path

    shown = os.fspath(path)
    target = Path(os.path.realpath(path))
    directory = target.parent
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", path=shown) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError("is a directory, expected a file name to write", path=shown)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"is {_kind(st.st_mode)}; bpfsign replaces only regular files "
                "(write to a regular file's path instead)",
                path=shown,
            )
        if st.st_nlink > 1 and not break_hardlinks:
            raise InputError(
                f"has {st.st_nlink} hard links; replacing it would detach it from the "
                "others (write to a new file, or allow breaking the links)",
                path=shown,
            )
    if not directory.is_dir():
        raise InputError(f"cannot write: directory {str(directory)!r} does not exist", path=shown)
    remove_stale_temps(target)
    if mode is None:
        if st is not None:
            mode = st.st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o644 & ~umask
    tmp = directory / f".{target.name}.bpfsign-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", path=shown) from None
    try:
        try:
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, mode)
            chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            why = exc.strerror
            if exc.errno == errno.EPERM and st is not None:
                why = f"{why} (cannot keep its owner {st.st_uid}:{st.st_gid})"
            raise InputError(f"cannot write: {why}", path=shown) from None
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove temp files of ``target`` that a killed writer left; warn about each one.

    Only files named by :func:`atomic_write` for this target whose writer's pid
    is gone are touched; a live writer's temp file is left alone.
    """
    import contextlib
    import re
    import warnings

    removed: list[Path] = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        m = re.match(_TEMP, name)
        if m is None or m["name"] != target.name or _alive(int(m["pid"])):
            continue
        stale = target.parent / name
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            removed.append(stale)
            warnings.warn(
                f"removed {stale}, an incomplete write of {target} left by a killed run "
                f"(pid {m['pid']}); {target} itself was never touched by it",
                RuntimeWarning,
                stacklevel=3,
            )
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
