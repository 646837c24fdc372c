"""Helpers shared by the guest cases: the raw loads, outcomes, the checks, /dev/kmsg.

The raw negative cases build PROG_LOADs no well-behaved loader sends (an
unfrozen metadata map, a HASH map in ``fd_array``, an 8193-byte signature, a
signature with ``fd_array_cnt`` 0…). They go through bpfsign's own backend,
like every load, so what they assert (``KernelError.errno`` and ``.log``) is
what bpfsign's users see; the log comes from the backend's log retry.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _vmoffline import model_backend, offline_errno

from bpfsign.errors import KernelError
from bpfsign.kernel import _sys as S
from bpfsign.kernel.backend import (
    LOADER_LICENSE,
    LOADER_MAP_NAME,
    LOADER_PROG_NAME,
    Backend,
    default_backend,
)

__all__ = [
    "INSNS_RET0",
    "INSNS_USES_MAP0",
    "CaseKmsg",
    "GuestKeys",
    "Kmsg",
    "attempt",
    "both",
    "check",
    "load",
    "metadata_map",
    "model_backend",
    "offline_errno",
    "opened",
    "outcome",
]

#: r0 = 0; exit -- the 2-insn program of the measurements (docs/kernel.md §0)
INSNS_RET0 = bytes.fromhex("b7000000000000009500000000000000")
#: ld_imm64 r1 = map fd_array[0] (BPF_PSEUDO_MAP_IDX); r0 = 0; exit -- uses its map
INSNS_USES_MAP0 = bytes.fromhex("18510000000000000000000000000000") + INSNS_RET0

KEY_SPEC_SESSION_KEYRING = S.KEY_SPEC_SESSION_KEYRING


def metadata_map(
    value: bytes,
    excl_for: bytes | None,
    *,
    frozen: bool = True,
    name: str = LOADER_MAP_NAME,
    map_type: int = S.MAP_TYPE_ARRAY,
    max_entries: int = 1,
    be: Backend | None = None,
) -> int:
    """A metadata map holding ``value`` (entry 0), exclusive to sha256(``excl_for``) unless None."""
    be = be or default_backend()
    excl = hashlib.sha256(excl_for).digest() if excl_for is not None else None
    fd = be.map_create(map_type, 4, len(value), max_entries, name, excl_prog_hash=excl)
    try:
        be.map_update(fd, bytes(4), value)
        if frozen:
            be.map_freeze(fd)
    except BaseException:
        be.close(fd)
        raise
    return fd


def load(
    insns: bytes,
    *,
    fd_array: Sequence[int] = (),
    fd_array_cnt: int = 0,
    signature: bytes | None = None,
    keyring_id: int = KEY_SPEC_SESSION_KEYRING,
    log_level: int = 0,
    be: Backend | None = None,
) -> int:
    """The loader's PROG_LOAD as skel_internal.h issues it (sleepable SYSCALL); the fd.

    ``keyring_id`` is sent only with a signature, as libbpf does. With
    ``log_level`` 0 (as bpfsign loads) a failure's log comes from the backend's
    retry; otherwise from the first attempt.
    """
    return (be or default_backend()).prog_load(
        S.PROG_TYPE_SYSCALL, insns, license=LOADER_LICENSE, name=LOADER_PROG_NAME,
        flags=S.BPF_F_SLEEPABLE, fd_array=fd_array, fd_array_cnt=fd_array_cnt,
        signature=signature, keyring_id=keyring_id if signature is not None else 0,
        log_level=log_level,
    )  # fmt: skip


def attempt(insns: bytes, be: Backend | None = None, **kw: Any) -> tuple[int | None, str]:
    """:func:`load`: (None, "") when the program loads (it is closed again), else
    (errno, verifier log) from the backend's :class:`KernelError`."""
    be = be or default_backend()
    try:
        fd = load(insns, be=be, **kw)
    except KernelError as exc:
        assert exc.command == "BPF_PROG_LOAD", exc
        # the log must explain this failure, not another one the log retry ran into
        assert "the retry with a verifier log failed" not in str(exc), exc
        return exc.errno, exc.log.strip()
    be.close(fd)
    return None, ""


#: the rules engine's answer to the last ``both()`` case, for ``check()`` (see there)
_ENGINE: list[tuple[int | None, str] | None] = [None]


def both(gk: GuestKeys, case: Any) -> tuple[Any, Any]:
    """``case(backend)`` on the kernel, then on the kernel model of the guest (the same calls).

    The same calls also go to the rules engine alone (``_vmoffline.EngineBackend``);
    ``check()`` compares its answer where the offline verifier of bytes has no say.
    """
    from _vmoffline import EngineBackend

    got, model = case(default_backend()), case(model_backend(gk))
    _ENGINE[0] = case(EngineBackend(gk))
    return got, model


def verdict_line(got: tuple[int | None, str]) -> tuple[int | None, str]:
    """(errno, the log line that says why): the verifier's closing statistics are dropped."""
    err, log = got
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith("processed ")]
    return err, lines[-1] if lines else ""


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
    signers: dict[str, Any]  # name -> bpfsign.crypto.keys.FileSigner
    pairs: dict[str, Any]  # name -> bpfsign.crypto.keys.KeyPair
    key_serials: dict[str, int] = field(default_factory=dict)  # certs added: name -> key serial
    refused: dict[str, int] = field(default_factory=dict)  # certs add_key refused: name -> errno
    workdir: Path = Path("/tmp")


class Kmsg:
    """/dev/kmsg from the point of opening on; ``drain()`` returns the new messages."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def drain(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except OSError as exc:  # EPIPE: records were overwritten; go on
                if exc.errno != errno_mod.EPIPE:
                    raise
                continue
            msg = rec.decode(errors="replace").split(";", 1)[-1].split("\n", 1)[0]
            if "clocksource: Watchdog remote CPU" not in msg:  # docs/vm.md §9 noise
                out.append(msg)

    def close(self) -> None:
        os.close(self.fd)


class CaseKmsg:
    """The kernel messages logged since the case started."""

    def __init__(self, source: Kmsg) -> None:
        self._source = source
        self._lines: list[str] = []

    def read(self) -> list[str]:
        self._lines.extend(self._source.drain())
        return list(self._lines)


@contextmanager
def opened(*fds: int, be: Backend | None = None) -> Iterator[tuple[int, ...]]:
    try:
        yield fds
    finally:
        for fd in fds:
            (be or default_backend()).close(fd)


def check(
    agreement: list[tuple[str, str, str, str]],
    case: str,
    got: tuple[int | None, str],
    want_errno: int | None,
    want_log: str | None,
    *,
    model: tuple[int | None, str],
    offline: int | str | None,
) -> None:
    """Assert the kernel's errno and log line, and that the kernel model gives the same.

    ``model`` is the KernelModel's (errno, log) for the same calls; it must equal the
    kernel's errno and verifier-log line. ``offline`` is the offline verifier's errno
    (None = accepts), or "n/a (...)" where it has no say (map state, scheme): it sees
    bytes, not maps or fd_array.
    """
    err, log = got
    engine, _ENGINE[0] = _ENGINE[0], None
    if isinstance(offline, str) and engine is not None:
        # the rules engine (verify --kernel 7.3, explain) on the same calls: errno and log line
        assert verdict_line(engine) == verdict_line(got), (
            f"{case}: rules engine {verdict_line(engine)} != kernel {verdict_line(got)}"
        )
        offline = engine[0]
    off = offline if isinstance(offline, str) else outcome(offline)
    mod = outcome(model[0])
    agreement.append((case, outcome(err), mod, off))
    assert err == want_errno, (
        f"{case}: kernel gave {outcome(err)}, want {outcome(want_errno)}; log: {log!r}"
    )
    if want_log is not None:
        if want_log == "":
            assert log == "", f"{case}: expected an empty verifier log, got {log!r}"
        else:
            assert want_log in log.splitlines(), f"{case}: log line {want_log!r} not in {log!r}"
    assert verdict_line(model) == verdict_line(got), (
        f"{case}: kernel model {verdict_line(model)} != kernel {verdict_line(got)}; kernel log {log!r}"
    )
    if isinstance(offline, str):
        assert offline.startswith("n/a"), offline
    else:
        assert offline == err, (
            f"{case}: offline verifier {outcome(offline)} != kernel {outcome(err)}"
        )
