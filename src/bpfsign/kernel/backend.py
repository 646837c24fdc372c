"""The handful of kernel commands the loader needs, behind one interface.

Two backends implement :class:`Backend`: :class:`~bpfsign.kernel.syscall.SyscallBackend`
talks to the running kernel through bpf()/add_key()/keyctl(); a model backend
(later) replays the kernel's checks in Python. The loader and the CLI see only
this protocol, so they run the same sequence against either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import KernelError

if TYPE_CHECKING:
    from .syscall import SyscallBackend

__all__ = ["Backend", "LoaderRequest", "MapInfo", "ProgInfo", "default_backend", "run_loader"]


@dataclass(frozen=True)
class MapInfo:
    """The parts of ``struct bpf_map_info`` bpfsign reports."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    hash: bytes | None = None  # only when asked for (needs a frozen ARRAY)


@dataclass(frozen=True)
class ProgInfo:
    """The parts of ``struct bpf_prog_info`` bpfsign reports."""

    type: int
    id: int
    tag: bytes
    name: str
    gpl_compatible: bool
    verified_insns: int
    nr_map_ids: int


@dataclass(frozen=True, eq=False)
class LoaderRequest:
    """What ``bpf_load_and_run`` needs (lskel.md §10.2/§10.3), fixed per skeleton.

    Compared by identity, so a backend may cache what it derives from one
    (the syscall backend keeps its attr templates per request).
    """

    insns: bytes
    data: bytes
    excl_prog_hash: bytes | None  # exclusive loader map (signed/converted skeletons)
    signature: bytes | None  # None: unsigned
    keyring_id: int
    fd_array_cnt: int  # 1 only for a signed load-time load; 0 otherwise (EACCES)
    hash_request: bool  # the 6.18 scheme's OBJ_GET_INFO_BY_FD map-hash step
    log_level: int = 0


LOADER_MAP_NAME = "__loader.map"
LOADER_PROG_NAME = "__loader.prog"
LOADER_LICENSE = "Dual BSD/GPL"


class Backend(Protocol):
    """The kernel commands of a light-skeleton load, and the keyring calls.

    Every method raises :class:`~bpfsign.errors.KernelError` (or
    :class:`~bpfsign.errors.UnsupportedFeature`) when the kernel says no.
    """

    # -- maps
    def map_create(
        self, map_type: int, key_size: int, value_size: int, max_entries: int,
        name: str = "", *, flags: int = 0, excl_prog_hash: bytes | None = None,
    ) -> int: ...
    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None: ...
    def map_lookup(self, fd: int, key: bytes, value_size: int) -> bytes: ...
    def map_freeze(self, fd: int) -> None: ...
    def map_info(self, fd: int, *, want_hash: bool = False) -> MapInfo: ...

    # -- programs
    def prog_load(
        self, prog_type: int, insns: bytes, *, license: str = "GPL", name: str = "",
        flags: int = 0, fd_array: Sequence[int] = (), fd_array_cnt: int = 0,
        signature: bytes | None = None, keyring_id: int = 0, expected_attach_type: int = 0,
        log_level: int = 0,
    ) -> int: ...
    def prog_info(self, fd: int) -> ProgInfo: ...
    def test_run(self, prog_fd: int, ctx: bytearray) -> int: ...
    def test_run_packet(self, prog_fd: int, packet: bytes) -> int: ...
    def load_and_run(self, request: LoaderRequest, ctx: bytearray) -> None:
        """Create, fill and freeze the loader map, load the loader, run it on ``ctx``.

        ``ctx`` comes back holding the fds the loader created. Always closes the
        loader map and program. May be :func:`run_loader` over the primitives.
        """
        ...

    # -- attach, pin, close
    def raw_tracepoint_open(self, prog_fd: int, name: str | None) -> int: ...
    def link_create(self, prog_fd: int, target_fd: int, attach_type: int) -> int: ...
    def iter_create(self, link_fd: int) -> int: ...
    def obj_pin(self, fd: int, path: str) -> None: ...
    def close(self, fd: int) -> None: ...

    # -- keyrings
    def add_key(
        self, key_type: str, description: str | None, payload: bytes | None, keyring: int
    ) -> int: ...
    def key_search(self, keyring: int, key_type: str, description: str) -> int | None: ...
    def keyring_id(self, special: int, *, create: bool = False) -> int: ...
    def join_session_keyring(self, name: str | None = None) -> int: ...
    def key_link(self, key: int, keyring: int) -> None: ...
    def key_unlink(self, key: int, keyring: int) -> None: ...
    def key_describe(self, key: int) -> str: ...
    def key_read(self, key: int) -> bytes: ...


def run_loader(backend: Backend, req: LoaderRequest, ctx: bytearray) -> None:
    """``bpf_load_and_run`` over the Backend primitives (lskel.md §10.2/§10.3)."""
    map_fd = prog_fd = -1
    try:
        map_fd = backend.map_create(
            2, 4, len(req.data), 1, LOADER_MAP_NAME, excl_prog_hash=req.excl_prog_hash
        )
        backend.map_update(map_fd, bytes(4), req.data)
        backend.map_freeze(map_fd)
        if req.hash_request:
            backend.map_info(map_fd, want_hash=True)
        prog_fd = backend.prog_load(
            31, req.insns, license=LOADER_LICENSE, name=LOADER_PROG_NAME, flags=0x10,
            fd_array=(map_fd,), fd_array_cnt=req.fd_array_cnt, signature=req.signature,
            keyring_id=req.keyring_id, log_level=req.log_level,
        )
        retval = backend.test_run(prog_fd, ctx)
        if retval < 0:
            raise KernelError(
                -retval, "loader program", message="error returned by loader prog"
            )
    finally:
        if prog_fd >= 0:
            backend.close(prog_fd)
        if map_fd >= 0:
            backend.close(map_fd)


_default: SyscallBackend | None = None


def default_backend() -> SyscallBackend:
    """The process-wide real-kernel backend (created on first use)."""
    global _default
    if _default is None:
        from .syscall import SyscallBackend

        _default = SyscallBackend()
    return _default
