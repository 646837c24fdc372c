"""Helpers shared by the guest cases: outcomes, the keyring setup, the checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _vmoffline import offline_errno
from _vmsys import LoadAttempt, SysError

__all__ = ["CaseKmsg", "GuestKeys", "attempt", "check", "offline_errno", "opened", "outcome"]


def outcome(err: int | None) -> str:
    """'loads' or the errno's name and number, as the table shows it."""
    if err is None:
        return "loads"
    from bpfsign.errors import errno_name

    return f"{errno_name(err)} ({err})"


@dataclass
class GuestKeys:
    """The guest's keyring setup; the offline TrustStore mirrors it."""

    session_serial: int
    signers: dict[str, Any]  # name -> bpfsign.keys.FileSigner
    pairs: dict[str, Any]  # name -> bpfsign.keys.KeyPair
    key_serials: dict[str, int] = field(default_factory=dict)  # certs added: name -> key serial
    refused: dict[str, int] = field(default_factory=dict)  # certs add_key refused: name -> errno
    workdir: Path = Path("/tmp")


class CaseKmsg:
    """The kernel messages logged since the case started."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._lines: list[str] = []

    def read(self) -> list[str]:
        self._lines.extend(self._source.drain())
        return list(self._lines)


def attempt(att: LoadAttempt) -> tuple[int | None, str]:
    """(None, log) when the program loads (it is closed again), else (errno, log)."""
    try:
        fd = att.load()
    except SysError as exc:
        return exc.errno, exc.log.strip()
    os.close(fd)
    return None, ""


@contextmanager
def opened(*fds: int) -> Iterator[tuple[int, ...]]:
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def check(
    agreement: list[tuple[str, str, str]],
    case: str,
    got: tuple[int | None, str],
    want_errno: int | None,
    want_log: str | None,
    *,
    offline: int | str | None,
) -> None:
    """Assert the kernel's errno and log line, and record the offline verdict beside it.

    ``offline`` is the offline verifier's errno (None = accepts), or a string
    saying why the case is kernel-only.
    """
    err, log = got
    off = offline if isinstance(offline, str) else outcome(offline)
    agreement.append((case, outcome(err), off))
    assert err == want_errno, f"{case}: kernel gave {outcome(err)}, want {outcome(want_errno)}; log: {log!r}"
    if want_log is not None:
        if want_log == "":
            assert log == "", f"{case}: expected an empty verifier log, got {log!r}"
        else:
            assert want_log in log.splitlines(), f"{case}: log line {want_log!r} not in {log!r}"
    if isinstance(offline, str):
        assert offline.startswith("kernel-only"), offline
    else:
        assert offline == err, f"{case}: offline verifier {outcome(offline)} != kernel {outcome(err)}"


