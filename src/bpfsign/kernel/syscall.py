"""The real-kernel backend: each Backend method is one call through ``_sys``."""

from __future__ import annotations

import ctypes
import errno
import os
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import KernelError
from . import _sys as S
from .backend import (
    FEATURES,
    LOADER_LICENSE,
    LOADER_MAP_NAME,
    LOADER_PROG_NAME,
    Backend,
    LoaderRequest,
    LoaderSteps,
    MapInfo,
    ProgInfo,
)

#: the hot path's bpf(): the choke point's syscall with no Python wrapper (_sys.raw_bpf)
_RAW_BPF = S.raw_bpf()
# and what it reads per load, as module globals (one lookup each, not two)
_MAP_CREATE, _MAP_UPDATE_ELEM, _MAP_FREEZE = S.MAP_CREATE, S.MAP_UPDATE_ELEM, S.MAP_FREEZE
_PROG_LOAD, _PROG_TEST_RUN = S.PROG_LOAD, S.PROG_TEST_RUN
_SIZE_MAP_CREATE, _SIZE_MAP_ELEM, _SIZE_FREEZE = S.SIZE_MAP_CREATE, S.SIZE_MAP_ELEM, S.SIZE_FREEZE
_SIZE_PROG_LOAD, _SIZE_TEST_RUN = S.SIZE_PROG_LOAD, S.SIZE_TEST_RUN
_c_char, _addressof = ctypes.c_char, ctypes.addressof
_bpf_failed = S.bpf_failed


def _name16(name: str) -> bytes:
    raw = name.encode()
    return raw[: S.OBJ_NAME_LEN - 1]


class SyscallBackend:
    """:class:`~bpfsign.kernel.backend.Backend` over the running kernel."""

    def __init__(self) -> None:
        self._prepared: weakref.WeakKeyDictionary[LoaderRequest, _Prepared] = (
            weakref.WeakKeyDictionary()
        )

    def loader_steps(self, request: LoaderRequest) -> _Prepared:
        """``bpf_load_and_run``'s steps over attr templates prepared once per request."""
        prepared = self._prepared.get(request)
        if prepared is None:
            prepared = self._prepared[request] = _Prepared(request)
        return prepared

    def probe(self, feature: str) -> bool | None:
        """Asked of the running kernel (:mod:`~bpfsign.kernel.probes`, cached there)."""
        from . import probes

        if feature == "inloader_loaders":
            return probes.inloader_loaders().supported
        if feature == "loadtime_verification":
            return probes.loadtime_verification().supported
        if feature == "run_programs":
            return True
        raise ValueError(f"unknown feature {feature!r} (known: {', '.join(FEATURES)})")

    # ------------------------------------------------------------------ maps
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
    ) -> int:
        attr = S.MapCreateAttr(
            map_type=map_type,
            key_size=key_size,
            value_size=value_size,
            max_entries=max_entries,
            map_flags=flags,
            map_name=_name16(name),
        )
        if excl_prog_hash is not None:
            buf = ctypes.create_string_buffer(excl_prog_hash, len(excl_prog_hash))
            attr.excl_prog_hash = S.addr(buf)
            attr.excl_prog_hash_size = len(excl_prog_hash)
        return S.bpf(S.MAP_CREATE, attr, S.SIZE_MAP_CREATE)

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        S.map_update(fd, key, value, flags)

    def map_lookup(self, fd: int, key: bytes, value_size: int) -> bytes:
        kbuf = ctypes.create_string_buffer(key, len(key))
        vbuf = ctypes.create_string_buffer(value_size)
        attr = S.MapElemAttr(map_fd=fd, key=S.addr(kbuf), value=S.addr(vbuf))
        S.bpf(S.MAP_LOOKUP_ELEM, attr, S.SIZE_MAP_ELEM)
        return vbuf.raw

    def map_freeze(self, fd: int) -> None:
        S.map_freeze(fd)

    def btf_load(self, data: bytes) -> int:
        """``BPF_BTF_LOAD``: the new BTF object's fd."""
        return S.btf_load(data)

    def map_info(self, fd: int, *, want_hash: bool = False) -> MapInfo:
        info = S.MapInfo()
        hbuf = ctypes.create_string_buffer(S.HASH_SIZE)
        if want_hash:
            info.hash, info.hash_size = S.addr(hbuf), S.HASH_SIZE
        attr = S.InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=S.addr(info))
        S.bpf(S.OBJ_GET_INFO_BY_FD, attr, S.SIZE_INFO)
        return MapInfo(
            type=info.type,
            id=info.id,
            key_size=info.key_size,
            value_size=info.value_size,
            max_entries=info.max_entries,
            map_flags=info.map_flags,
            name=info.name.decode(errors="replace"),
            hash=hbuf.raw if want_hash else None,
        )

    # -------------------------------------------------------------- programs
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
        attach_btf_id: int = 0,
    ) -> int:
        """``BPF_PROG_LOAD``; ``attach_btf_id`` (a vmlinux BTF id) for LSM/tracing programs."""
        ibuf = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(license.encode())
        attr = S.ProgLoadAttr(
            prog_type=prog_type,
            insn_cnt=len(insns) // 8,
            insns=S.addr(ibuf),
            license=S.addr(lic),
            prog_flags=flags,
            prog_name=_name16(name),
            expected_attach_type=expected_attach_type,
            fd_array_cnt=fd_array_cnt,
            keyring_id=keyring_id,
            attach_btf_id=attach_btf_id,
        )
        fds = (ctypes.c_int32 * max(len(fd_array), 1))(*fd_array)
        if fd_array:
            attr.fd_array = S.addr(fds)
        sbuf = None
        if signature is not None:
            sbuf = ctypes.create_string_buffer(signature, max(len(signature), 1))
            attr.signature, attr.signature_size = S.addr(sbuf), len(signature)
        log = None
        if log_level:
            log = ctypes.create_string_buffer(S.LOG_BUF_SIZE)
            attr.log_level, attr.log_size, attr.log_buf = log_level, S.LOG_BUF_SIZE, S.addr(log)
        return S.prog_load(attr)

    def prog_info(self, fd: int) -> ProgInfo:
        info = S.ProgInfo()
        attr = S.InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=S.addr(info))
        S.bpf(S.OBJ_GET_INFO_BY_FD, attr, S.SIZE_INFO)
        return ProgInfo(
            type=info.type,
            id=info.id,
            tag=bytes(info.tag),
            name=info.name.decode(errors="replace"),
            gpl_compatible=bool(info.gpl_compatible & 1),
            verified_insns=info.verified_insns,
            nr_map_ids=info.nr_map_ids,
        )

    def test_run(self, prog_fd: int, ctx: bytearray) -> int:
        """Run ``prog_fd`` once with ``ctx`` (copied back in place); returns the s32 retval."""
        cbuf = (ctypes.c_char * len(ctx)).from_buffer(ctx)
        attr = S.TestRunAttr(prog_fd=prog_fd, ctx_size_in=len(ctx), ctx_in=S.addr(cbuf))
        S.bpf(S.PROG_TEST_RUN, attr, S.SIZE_TEST_RUN)
        del cbuf
        return ctypes.c_int32(attr.retval).value

    def test_run_packet(self, prog_fd: int, packet: bytes) -> int:
        """Run a packet program (e.g. a socket filter) once on ``packet``; returns the u32 retval.

        The kernel builds an skb from ``packet`` (an Ethernet frame, at least 14
        bytes) and pulls the MAC header, as on receive.
        """
        dbuf = ctypes.create_string_buffer(packet, len(packet))
        attr = S.TestRunAttr(
            prog_fd=prog_fd, data_size_in=len(packet), data_in=S.addr(dbuf), repeat=1
        )
        S.bpf(S.PROG_TEST_RUN, attr, S.SIZE_TEST_RUN)
        return int(attr.retval)

    # ------------------------------------------------------ attach, pin, close
    def raw_tracepoint_open(self, prog_fd: int, name: str | None) -> int:
        nbuf = ctypes.create_string_buffer(name.encode()) if name is not None else None
        attr = S.RawTracepointAttr(prog_fd=prog_fd, name=S.addr(nbuf) if nbuf is not None else 0)
        return S.bpf(S.RAW_TRACEPOINT_OPEN, attr, S.SIZE_RAW_TP)

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int) -> int:
        attr = S.LinkCreateAttr(prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type)
        return S.bpf(S.LINK_CREATE, attr, S.SIZE_LINK_CREATE)

    def iter_create(self, link_fd: int) -> int:
        """A readable fd that runs an attached iterator program on each read()."""
        return S.bpf(S.ITER_CREATE, S.IterCreateAttr(link_fd=link_fd), S.SIZE_ITER_CREATE)

    def obj_pin(self, fd: int, path: str) -> None:
        pbuf = ctypes.create_string_buffer(os.fsencode(path))
        S.bpf(S.OBJ_PIN, S.ObjPinAttr(pathname=S.addr(pbuf), bpf_fd=fd), S.SIZE_OBJ_PIN)

    def obj_get(self, path: str, *, flags: int = 0) -> int:
        """``BPF_OBJ_GET``: an fd for the object pinned at ``path`` in bpffs."""
        pbuf = ctypes.create_string_buffer(os.fsencode(path))
        return S.bpf(
            S.OBJ_GET, S.ObjPinAttr(pathname=S.addr(pbuf), file_flags=flags), S.SIZE_OBJ_PIN
        )

    def prog_get_next_id(self, start: int) -> int | None:
        """The id of the first loaded program after ``start``, or None past the last one."""
        attr = S.GetIdAttr(id=start)
        _, err = S.bpf_errno(S.PROG_GET_NEXT_ID, attr, S.SIZE_GET_ID)
        if err == errno.ENOENT:
            return None
        if err:
            raise KernelError(err, "BPF_PROG_GET_NEXT_ID")
        return int(attr.next_id)

    def prog_get_fd_by_id(self, prog_id: int) -> int:
        return S.bpf(S.PROG_GET_FD_BY_ID, S.GetIdAttr(id=prog_id), S.SIZE_GET_ID)

    #: os.close itself: a LoadedSkeleton closes its fds through it on every load
    close = staticmethod(os.close)

    # -------------------------------------------------------------- keyrings
    def add_key(
        self, key_type: str, description: str | None, payload: bytes | None, keyring: int
    ) -> int:
        desc = description.encode() if description is not None else None
        return S.add_key(key_type.encode(), desc, payload, keyring)

    def key_search(self, keyring: int, key_type: str, description: str) -> int | None:
        """KEYCTL_SEARCH (recursive, no linking); None when nothing matches."""
        try:
            return S.keyctl(
                S.KEYCTL_SEARCH,
                keyring,
                key_type.encode(),
                description.encode(),
                0,
                what=f"search {key_type} {description!r}",
            )
        except KernelError as exc:
            if exc.errno in (errno.ENOKEY, errno.ENOENT, errno.EKEYEXPIRED, errno.EKEYREVOKED):
                return None
            raise

    def keyring_id(self, special: int, *, create: bool = False) -> int:
        return S.keyctl(S.KEYCTL_GET_KEYRING_ID, special, int(create), what=f"keyring {special}")

    def join_session_keyring(self, name: str | None = None) -> int:
        return S.keyctl(
            S.KEYCTL_JOIN_SESSION_KEYRING,
            name.encode() if name is not None else None,
            what="join a session keyring",
        )

    def key_link(self, key: int, keyring: int) -> None:
        S.keyctl(S.KEYCTL_LINK, key, keyring, what=f"link key {key} into keyring {keyring}")

    def key_unlink(self, key: int, keyring: int) -> None:
        S.keyctl(S.KEYCTL_UNLINK, key, keyring, what=f"unlink key {key} from keyring {keyring}")

    def key_describe(self, key: int) -> str:
        return self._read_string(S.KEYCTL_DESCRIBE, key).decode(errors="replace").rstrip("\0")

    def key_read(self, key: int) -> bytes:
        return self._read_string(S.KEYCTL_READ, key)

    @staticmethod
    def _read_string(op: int, key: int) -> bytes:
        """keyctl DESCRIBE/READ: ask for the size, then read (retry if it grew)."""
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            need = S.keyctl(op, key, buf, size, what=f"key {key}")
            if need <= size:
                return buf.raw[:need]
            size = need


class _Prepared:
    """The loader steps of one LoaderRequest, over buffers and attr templates built once.

    Pointers inside the templates point at buffers this object owns, so the
    templates stay valid as long as it lives.
    """

    def __init__(self, req: LoaderRequest) -> None:
        self.insns = ctypes.create_string_buffer(req.insns, len(req.insns))
        self.data = ctypes.create_string_buffer(req.data, len(req.data))
        self.data_size = len(req.data)
        self.key = ctypes.create_string_buffer(4)
        self.license = ctypes.create_string_buffer(LOADER_LICENSE.encode())
        self.hash = ctypes.create_string_buffer(S.HASH_SIZE)
        self.excl = None
        create = S.MapCreateAttr(
            map_type=S.MAP_TYPE_ARRAY,
            key_size=4,
            value_size=len(req.data),
            max_entries=1,
            map_name=LOADER_MAP_NAME.encode(),
        )
        if req.excl_prog_hash is not None:
            self.excl = ctypes.create_string_buffer(req.excl_prog_hash, len(req.excl_prog_hash))
            create.excl_prog_hash = S.addr(self.excl)
            create.excl_prog_hash_size = len(req.excl_prog_hash)
        self.create = create  # never written by the kernel: shared by every load
        self.create_ref = ctypes.byref(create)
        self.hash_request = req.hash_request
        self.update = bytes(S.MapElemAttr(key=S.addr(self.key), value=S.addr(self.data)))
        self.sig = None
        load = S.ProgLoadAttr(
            prog_type=S.PROG_TYPE_SYSCALL,
            insn_cnt=len(req.insns) // 8,
            insns=S.addr(self.insns),
            license=S.addr(self.license),
            prog_flags=S.BPF_F_SLEEPABLE,
            prog_name=LOADER_PROG_NAME.encode(),
            fd_array_cnt=req.fd_array_cnt,
            keyring_id=req.keyring_id,
        )
        if req.signature is not None:
            self.sig = ctypes.create_string_buffer(req.signature, max(len(req.signature), 1))
            load.signature, load.signature_size = S.addr(self.sig), len(req.signature)
        self.log = None
        if req.log_level:
            self.log = ctypes.create_string_buffer(S.LOG_BUF_SIZE)
            load.log_level, load.log_size, load.log_buf = (
                req.log_level,
                S.LOG_BUF_SIZE,
                S.addr(self.log),
            )
        self.load = bytes(load)
        self._calls: list[_Call] = []  # attrs for sequence(), free for reuse

    def sequence(self, ctx: Ctx, run: bool, where: list[str]) -> tuple[int, bytes | None]:
        """The whole ``bpf_load_and_run`` in one function: the hot path of every load.

        The calls, their order, their attrs and the errors are those of the step
        methods below (the generic sequence in backend.py), but each bpf() is one
        ctypes call whose failure alone goes through ``_sys``'s error handling, and
        the attrs are reused from load to load (a free list, so concurrent loads each
        get their own): allocating them per load costs more than the rest of the
        Python side. As libbpf, the loader map is closed before the loader program.
        """
        bpf = _RAW_BPF
        calls = self._calls
        try:  # (pop, not "if calls": another thread may take the last one in between)
            call = calls.pop()
        except IndexError:
            call = _Call(self)
        # where[0] is written only on the way to a failure: each store costs on every load
        map_fd = prog_fd = -1
        try:
            map_fd = bpf(_MAP_CREATE, self.create_ref, _SIZE_MAP_CREATE)
            if map_fd < 0:
                map_fd = _bpf_failed(_MAP_CREATE, self.create, _SIZE_MAP_CREATE)
            elem = call.elem
            elem.map_fd = map_fd
            if bpf(_MAP_UPDATE_ELEM, call.elem_ref, _SIZE_MAP_ELEM) < 0:
                where[0] = "fill"
                _bpf_failed(_MAP_UPDATE_ELEM, elem, _SIZE_MAP_ELEM)
            if bpf(_MAP_FREEZE, call.elem_ref, _SIZE_FREEZE) < 0:  # reads map_fd only
                where[0] = "freeze"
                _bpf_failed(_MAP_FREEZE, elem, _SIZE_FREEZE)
            if self.hash_request:
                where[0] = "hash"
                self.request_hash(map_fd)
            call.fd_array.value = map_fd
            prog_fd = bpf(_PROG_LOAD, call.load_ref, _SIZE_PROG_LOAD)
            if prog_fd < 0:
                where[0] = "load"
                prog_fd = S.prog_load_failed(call.load)
            if not run:
                calls.append(call)
                return 0, None
            # the loader's ctx is a ctypes array already; a bytearray is wrapped
            cbuf = (_c_char * len(ctx)).from_buffer(ctx) if isinstance(ctx, bytearray) else ctx
            attr = call.run
            attr.prog_fd, attr.ctx_in, attr.ctx_size_in = prog_fd, _addressof(cbuf), len(ctx)
            if bpf(_PROG_TEST_RUN, call.run_ref, _SIZE_TEST_RUN) < 0:
                where[0] = "run"
                _bpf_failed(_PROG_TEST_RUN, attr, _SIZE_TEST_RUN)
            del cbuf
            retval: int = attr.retval
            calls.append(call)  # only after a clean pass: a failure may leave it changed
            if retval < 0x80000000:
                return retval, None
            try:  # the loader failed inside: its map holds the marks of how far it got
                return retval - 0x100000000, self.read_map(map_fd)
            except KernelError:
                return retval - 0x100000000, None
        finally:
            if map_fd >= 0:
                os.close(map_fd)
            if prog_fd >= 0:
                os.close(prog_fd)

    def create_map(self) -> int:
        return S.bpf(S.MAP_CREATE, self.create, S.SIZE_MAP_CREATE)

    def fill_map(self, map_fd: int) -> None:
        elem = S.MapElemAttr.from_buffer_copy(self.update)
        elem.map_fd = map_fd
        S.bpf(S.MAP_UPDATE_ELEM, elem, S.SIZE_MAP_ELEM)

    def freeze_map(self, map_fd: int) -> None:
        S.map_freeze(map_fd)

    def request_hash(self, map_fd: int) -> None:
        info = S.MapInfo(hash=S.addr(self.hash), hash_size=S.HASH_SIZE)
        S.bpf(
            S.OBJ_GET_INFO_BY_FD,
            S.InfoAttr(bpf_fd=map_fd, info_len=104, info=S.addr(info)),
            S.SIZE_INFO,
        )

    def load_prog(self, map_fd: int) -> int:
        fds = ctypes.c_int32(map_fd)
        load = S.ProgLoadAttr.from_buffer_copy(self.load)
        load.fd_array = S.addr(fds)
        return S.prog_load(load)

    def run(self, prog_fd: int, ctx: Ctx) -> int:
        cbuf = (ctypes.c_char * len(ctx)).from_buffer(ctx)
        run = S.TestRunAttr(prog_fd=prog_fd, ctx_size_in=len(ctx), ctx_in=S.addr(cbuf))
        S.bpf(S.PROG_TEST_RUN, run, S.SIZE_TEST_RUN)
        del cbuf
        retval: int = run.retval
        return retval - 0x100000000 if retval >= 0x80000000 else retval

    def read_map(self, map_fd: int) -> bytes:
        vbuf = ctypes.create_string_buffer(self.data_size)
        attr = S.MapElemAttr(map_fd=map_fd, key=S.addr(self.key), value=S.addr(vbuf))
        S.bpf(S.MAP_LOOKUP_ELEM, attr, S.SIZE_MAP_ELEM)
        return vbuf.raw

    close = staticmethod(os.close)


class _Call:
    """The attrs of one :meth:`_Prepared.sequence` run that carry per-load fds.

    Built from the request's templates; pointers inside point at the
    :class:`_Prepared`'s buffers (which it keeps alive) or at this object's own.
    """

    __slots__ = ("elem", "elem_ref", "fd_array", "load", "load_ref", "run", "run_ref")

    def __init__(self, prepared: _Prepared) -> None:
        self.elem = S.MapElemAttr.from_buffer_copy(prepared.update)
        self.elem_ref = ctypes.byref(self.elem)
        self.fd_array = ctypes.c_int32(-1)
        self.load = S.ProgLoadAttr.from_buffer_copy(prepared.load)
        self.load.fd_array = ctypes.addressof(self.fd_array)
        self.load_ref = ctypes.byref(self.load)
        self.run = S.TestRunAttr()
        self.run_ref = ctypes.byref(self.run)


if TYPE_CHECKING:  # SyscallBackend implements the whole protocol
    from .backend import Ctx

    _conforms: Backend = SyscallBackend()
    _steps: LoaderSteps = _Prepared(LoaderRequest(b"", b"", None, None, 0, 0, False))
