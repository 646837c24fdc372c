"""The handful of kernel commands the loader needs, behind one interface.

Two backends implement :class:`Backend`: :class:`~bpfsign.kernel.syscall.SyscallBackend`
talks to the running kernel through bpf()/add_key()/keyctl();
:class:`~bpfsign.kernel.model.KernelModel` replays the kernel's checks in
Python. The loader and the CLI see only this protocol, so they run the same
sequence against either; what a backend can do is asked (:meth:`Backend.probe`),
never inferred from its class.

:func:`run_loader` is the one ``bpf_load_and_run`` sequence (docs/lskel.md
§10.2/§10.3). A backend hands it the steps (:meth:`Backend.loader_steps`): the
syscall backend from attr templates built once per request, any other from its
primitives (:class:`PrimitiveSteps`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import KernelError, errno_name
from . import consts as C

if TYPE_CHECKING:
    import ctypes

    from .syscall import SyscallBackend

    #: A loader ctx (``struct bpf_loader_ctx`` and what follows): any writable buffer;
    #: the loader passes a ctypes array, which the syscall backend hands over as is.
    Ctx = bytearray | ctypes.Array[ctypes.c_char]

__all__ = [
    "FEATURES",
    "Backend",
    "LoaderRequest",
    "LoaderSteps",
    "MapInfo",
    "PrimitiveSteps",
    "ProgInfo",
    "default_backend",
    "run_loader",
    "sequence",
]


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
    """What ``bpf_load_and_run`` needs (docs/lskel.md §10.2/§10.3), fixed per skeleton.

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
    name: str = ""  # the skeleton's, for error messages


LOADER_MAP_NAME = "__loader.map"
LOADER_PROG_NAME = "__loader.prog"
LOADER_LICENSE = "Dual BSD/GPL"

#: What :meth:`Backend.probe` answers about (True, False, or None for unknown):
#: ``inloader_loaders`` -- a bpftool <= 7.8 ``-S`` loader's exclusivity check passes
#: the verifier here (struct bpf_map has u32 ``excl`` at offset 32, docs/kernel.md §8.1);
#: ``loadtime_verification`` -- signed loads verify insns ‖ metadata maps at load time
#: (docs/kernel.md §6.2); ``run_programs`` -- BPF_PROG_TEST_RUN really runs programs.
FEATURES = ("inloader_loaders", "loadtime_verification", "run_programs")


class LoaderSteps(Protocol):
    """The steps of ``bpf_load_and_run`` for one :class:`LoaderRequest`, in order."""

    def create_map(self) -> int: ...
    def fill_map(self, map_fd: int) -> None: ...
    def freeze_map(self, map_fd: int) -> None: ...
    def request_hash(self, map_fd: int) -> None: ...
    def load_prog(self, map_fd: int) -> int: ...
    def run(self, prog_fd: int, ctx: Ctx) -> int:
        """Run the loader once on ``ctx`` (fds come back in it); its s32 return value."""
        ...

    def read_map(self, map_fd: int) -> bytes:
        """The loader map's value now (after a run: with the run's marks, see loaderprog)."""
        ...

    def close(self, fd: int) -> None: ...

    def sequence(self, ctx: Ctx, run: bool, where: list[str]) -> tuple[int, bytes | None]:
        """All the steps in order (:func:`sequence` over these methods, or a faster
        equivalent): the loader's return value, and the loader map after a failed
        run. ``where[0]`` names the step under way, for the error.
        """
        ...


class Backend(Protocol):
    """The kernel commands of a light-skeleton load, and the keyring calls.

    Every method raises :class:`~bpfsign.errors.KernelError` (or
    :class:`~bpfsign.errors.UnsupportedFeature`) when the kernel says no.
    """

    def probe(self, feature: str) -> bool | None:
        """Whether this kernel has ``feature`` (one of :data:`FEATURES`); None: unknown."""
        ...

    # -- maps
    def map_create(
        self,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str = "",
        *,
        flags: int = 0,
        excl_prog_hash: bytes | None = None,
    ) -> int: ...
    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None: ...
    def map_lookup(self, fd: int, key: bytes, value_size: int) -> bytes: ...
    def map_freeze(self, fd: int) -> None: ...
    def btf_load(self, data: bytes) -> int: ...
    def map_info(self, fd: int, *, want_hash: bool = False) -> MapInfo: ...

    # -- programs
    def prog_load(
        self,
        prog_type: int,
        insns: bytes,
        *,
        license: str = "GPL",
        name: str = "",
        flags: int = 0,
        fd_array: Sequence[int] = (),
        fd_array_cnt: int = 0,
        signature: bytes | None = None,
        keyring_id: int = 0,
        expected_attach_type: int = 0,
        log_level: int = 0,
    ) -> int: ...
    def prog_info(self, fd: int) -> ProgInfo: ...
    def test_run(self, prog_fd: int, ctx: bytearray) -> int: ...
    def test_run_packet(self, prog_fd: int, packet: bytes) -> int: ...
    def loader_steps(self, request: LoaderRequest) -> LoaderSteps:
        """The steps :func:`run_loader` runs for ``request`` (may be cached per request)."""
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


class PrimitiveSteps:
    """:class:`LoaderSteps` over a backend's primitives (any backend without a fast path)."""

    def __init__(self, backend: Backend, req: LoaderRequest) -> None:
        self.backend = backend
        self.req = req

    def create_map(self) -> int:
        return self.backend.map_create(
            C.MAP_TYPE_ARRAY,
            4,
            len(self.req.data),
            1,
            LOADER_MAP_NAME,
            excl_prog_hash=self.req.excl_prog_hash,
        )

    def fill_map(self, map_fd: int) -> None:
        self.backend.map_update(map_fd, bytes(4), self.req.data)

    def freeze_map(self, map_fd: int) -> None:
        self.backend.map_freeze(map_fd)

    def request_hash(self, map_fd: int) -> None:
        self.backend.map_info(map_fd, want_hash=True)

    def load_prog(self, map_fd: int) -> int:
        req = self.req
        return self.backend.prog_load(
            C.PROG_TYPE_SYSCALL,
            req.insns,
            license=LOADER_LICENSE,
            name=LOADER_PROG_NAME,
            flags=C.BPF_F_SLEEPABLE,
            fd_array=(map_fd,),
            fd_array_cnt=req.fd_array_cnt,
            signature=req.signature,
            keyring_id=req.keyring_id,
            log_level=req.log_level,
        )

    def run(self, prog_fd: int, ctx: Ctx) -> int:
        if isinstance(ctx, bytearray):
            return self.backend.test_run(prog_fd, ctx)
        buf = bytearray(ctx)  # a backend's test_run takes a bytearray
        retval = self.backend.test_run(prog_fd, buf)
        _copy_into(ctx, buf)
        return retval

    def read_map(self, map_fd: int) -> bytes:
        return self.backend.map_lookup(map_fd, bytes(4), len(self.req.data))

    def close(self, fd: int) -> None:
        self.backend.close(fd)

    def sequence(self, ctx: Ctx, run: bool, where: list[str]) -> tuple[int, bytes | None]:
        return sequence(self, self.req, ctx, run, where)


#: The steps of run_loader, as error messages name them.
_STEPS = {
    "create": f"map create of {LOADER_MAP_NAME}",
    "fill": f"map update of {LOADER_MAP_NAME}",
    "freeze": f"map freeze of {LOADER_MAP_NAME}",
    "hash": f"map hash of {LOADER_MAP_NAME}",
    "load": f"loader program load of {LOADER_PROG_NAME}",
    "run": f"loader run of {LOADER_PROG_NAME}",
}
#: struct bpf_loader_ctx: u32 sz, flags, log_level, log_size; u64 log_buf (docs/lskel.md §2.1)
_CTX_LOG = struct.Struct("<IIQ")
_CTX_LOG_OFFSET = 8
_LOG_SIZE = 1 << 20


def _copy_into(ctx: Ctx, data: bytearray) -> None:
    """``ctx[:] = data`` for either kind of ctx."""
    memoryview(ctx).cast("B")[:] = data


def run_loader(
    backend: Backend,
    req: LoaderRequest,
    ctx: Ctx,
    *,
    run: bool = True,
    steps: LoaderSteps | None = None,
) -> None:
    """``bpf_load_and_run``: create, fill and freeze the loader map, (hash), load, run.

    ``ctx`` comes back holding the fds the loader created. The loader map and
    program are always closed. Each failure is a KernelError naming its step
    (``KernelError.step``); a loader that fails inside says at which of its
    own calls and with which verifier log, as far as that can be known.
    ``run=False`` stops after the loader's PROG_LOAD (its verdict only). ``steps``:
    ``backend.loader_steps(req)`` kept by the caller (a loader loading many times).
    """
    if steps is None:
        steps = backend.loader_steps(req)
    where = ["create"]
    try:
        retval, blob = steps.sequence(ctx, run, where)
    except KernelError as exc:
        raise _at_step(exc, req.name, where[0]) from None
    if retval < 0:
        _loader_failed(backend, req, ctx, -retval, blob)


def sequence(
    steps: LoaderSteps, req: LoaderRequest, ctx: Ctx, run: bool, where: list[str]
) -> tuple[int, bytes | None]:
    """The sequence over ``steps``' methods: (the loader's return value, the loader map
    after a failed run). As libbpf, the loader map is closed before the loader program.
    """
    map_fd = prog_fd = -1
    try:
        map_fd = steps.create_map()
        where[0] = "fill"
        steps.fill_map(map_fd)
        where[0] = "freeze"
        steps.freeze_map(map_fd)
        if req.hash_request:
            where[0] = "hash"
            steps.request_hash(map_fd)
        where[0] = "load"
        prog_fd = steps.load_prog(map_fd)
        if not run:
            return 0, None
        where[0] = "run"
        retval = steps.run(prog_fd, ctx)
        if retval >= 0:
            return retval, None
        try:
            return retval, steps.read_map(map_fd)
        except KernelError:
            return retval, None
    finally:
        if map_fd >= 0:
            steps.close(map_fd)
        if prog_fd >= 0:
            steps.close(prog_fd)


def _at_step(exc: KernelError, who: str, step: str) -> KernelError:
    where = f"{who + ': ' if who else ''}{_STEPS[step]} failed"
    return KernelError(
        exc.errno, exc.command, log=exc.log, message=exc.hint, step=step, where=where
    )


def _loader_failed(
    backend: Backend, req: LoaderRequest, ctx: Ctx, err: int, blob: bytes | None
) -> None:
    """The loader returned -err: say where inside it stopped, with the verifier log if any.

    Runs the sequence once more with a log buffer in the ctx (the loader hands
    it to its inner PROG_LOADs). Should that run pass, its fds are kept.
    """
    import ctypes

    from . import loaderprog

    log = ""
    retry = bytearray(ctx)
    buf = ctypes.create_string_buffer(_LOG_SIZE)
    _CTX_LOG.pack_into(retry, _CTX_LOG_OFFSET, 1, _LOG_SIZE, ctypes.addressof(buf))
    try:
        again, blob2 = backend.loader_steps(req).sequence(retry, True, ["create"])
    except KernelError:  # the first failure is the one reported
        again, blob2 = 0, None
    else:
        if again >= 0:  # passed this time: keep what it loaded
            _CTX_LOG.pack_into(retry, _CTX_LOG_OFFSET, 0, 0, 0)
            _copy_into(ctx, retry)
            return
        if -again == err:
            log = buf.value.decode(errors="replace")
            blob = blob2 if blob2 is not None else blob
    calls = loaderprog.locate_failure(loaderprog.inner_calls(req.insns, req.data), blob)
    text = (
        f"{req.name + ': ' if req.name else ''}{_STEPS['run']} returned -{err} ({errno_name(err)})"
    )
    if len(calls) == 1:
        text += f"; it failed at its {calls[0].describe()}"
    elif calls:
        text += "; it failed at one of its " + ", ".join(c.describe() for c in calls)
    if not any(c.cmd == C.PROG_LOAD for c in calls):
        log = ""  # a log from an earlier program that loaded is not this failure's
    raise KernelError(err, "loader program", log=log, step="run", where=text)


_default: SyscallBackend | None = None


def default_backend() -> SyscallBackend:
    """The process-wide real-kernel backend (created on first use)."""
    global _default
    if _default is None:
        from .syscall import SyscallBackend

        _default = SyscallBackend()
    return _default
