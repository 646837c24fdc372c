"""A kernel object's file descriptor that is closed exactly once.

Like cilium/ebpf's ``sys.FD`` or Python's own files: :meth:`FD.close` is
idempotent, and an ``FD`` dropped while still open is closed by its finalizer,
which warns with :class:`ResourceWarning` (shown under ``python -X dev`` or
``-W default``), because a BPF map, program or link lives as long as one fd
refers to it. The closer is the backend's, so the same type wraps the kernel
model's fds.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable

__all__ = ["FD"]


class FD:
    """One open fd of a map, program or link (``int(fd)`` is the number)."""

    __slots__ = ("_closer", "_raw", "what")

    def __init__(self, raw: int, what: str, closer: Callable[[int], None] = os.close) -> None:
        self._raw = raw if raw >= 0 else -1  # a negative number: nothing to own
        self._closer = closer
        self.what = what  # "map counts", "prog count_getpid", "link count_getpid"

    @property
    def raw(self) -> int:
        """The fd number; ValueError once closed (a closed fd number may be reused)."""
        if self._raw < 0:
            raise ValueError(f"{self.what}: fd is closed")
        return self._raw

    @property
    def number(self) -> int:
        """The fd number, or -1 once closed (never raises: for reports)."""
        return self._raw

    def __int__(self) -> int:
        return self.raw

    __index__ = __int__

    def fileno(self) -> int:
        return self.raw

    @property
    def closed(self) -> bool:
        return self._raw < 0

    def close(self) -> None:
        """Close the fd; later calls do nothing."""
        raw, self._raw = self._raw, -1
        if raw >= 0:
            self._closer(raw)

    def detach(self) -> int:
        """Give up ownership: return the number, never close it."""
        raw, self._raw = self.raw, -1
        return raw

    def __del__(self) -> None:
        if getattr(self, "_raw", -1) >= 0:
            warnings.warn(
                f"unclosed fd {self._raw} ({self.what})", ResourceWarning, stacklevel=1, source=self
            )
            with contextlib.suppress(OSError):
                self.close()

    def __repr__(self) -> str:
        state = "closed" if self._raw < 0 else str(self._raw)
        return f"<FD {state} {self.what}>"
