"""A tiny private ctypes layer for the guest's raw cases (kernel.md §4, §5).

The raw negative cases need attrs that no well-behaved loader builds (an
unfrozen metadata map, a HASH map in ``fd_array``, an 8193-byte signature, a
non-NULL signature with ``fd_array_cnt`` 0…), so they drive bpf(), add_key()
and keyctl() directly. Layouts are the 7.3.4 UAPI.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import hashlib
import os
import struct
from dataclasses import dataclass, field

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_BPF, SYS_ADD_KEY, SYS_KEYCTL = 321, 248, 250
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, PROG_LOAD, OBJ_GET_INFO_BY_FD, PROG_TEST_RUN, MAP_FREEZE = 0, 1, 2, 5, 15, 10, 22
MAP_TYPE_HASH, MAP_TYPE_ARRAY = 1, 2
PROG_TYPE_SOCKET_FILTER, PROG_TYPE_SYSCALL = 1, 31
F_SLEEPABLE = 1 << 4
KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_GET_KEYRING_ID, KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_LINK = 0, 1, 8

#: r0 = 0; exit -- the 2-insn program of the measurements (kernel.md §0)
INSNS_RET0 = bytes.fromhex("b700000000000000" "9500000000000000")
#: ld_imm64 r1 = map fd_array[0] (BPF_PSEUDO_MAP_IDX); r0 = 0; exit -- uses its map
INSNS_USES_MAP0 = bytes.fromhex("1851000000000000" "0000000000000000") + INSNS_RET0


class SysError(OSError):
    """A failed syscall with the verifier log, when there is one."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"{what}: {errno_mod.errorcode.get(err, err)}")
        self.log = log


def _syscall(nr: int, *args: int) -> int:
    ret = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    if ret < 0:
        raise SysError(ctypes.get_errno(), f"syscall {nr}")
    return int(ret)


def _addr(buf: ctypes.Array[ctypes.c_char] | None) -> int:
    return 0 if buf is None else ctypes.addressof(buf)


def bpf(cmd: int, attr: bytearray) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_long(len(attr)))
    if ret < 0:
        raise SysError(ctypes.get_errno(), f"bpf cmd {cmd}")
    return int(ret)


def _cbuf(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data, len(data)) if data else ctypes.create_string_buffer(1)


def map_create(
    value_size: int,
    *,
    name: str = "__loader.map",
    excl_hash: bytes | None = None,
    map_type: int = MAP_TYPE_ARRAY,
    max_entries: int = 1,
) -> int:
    attr = bytearray(92)
    struct.pack_into("<IIII", attr, 0, map_type, 4, value_size, max_entries)
    attr[28 : 28 + len(name)] = name.encode()
    hbuf = _cbuf(excl_hash) if excl_hash is not None else None
    if hbuf is not None:
        struct.pack_into("<QI", attr, 80, _addr(hbuf), len(excl_hash or b""))
    return bpf(MAP_CREATE, attr)


def map_update(fd: int, value: bytes, key: int = 0) -> None:
    kbuf, vbuf = _cbuf(struct.pack("<I", key)), _cbuf(value)
    attr = bytearray(32)
    struct.pack_into("<IIQQQ", attr, 0, fd, 0, _addr(kbuf), _addr(vbuf), 0)
    bpf(MAP_UPDATE_ELEM, attr)


def map_freeze(fd: int) -> None:
    attr = bytearray(4)
    struct.pack_into("<I", attr, 0, fd)
    bpf(MAP_FREEZE, attr)


def metadata_map(
    value: bytes,
    excl_for: bytes | None,
    *,
    frozen: bool = True,
    name: str = "__loader.map",
    map_type: int = MAP_TYPE_ARRAY,
) -> int:
    """A metadata map holding ``value``, exclusive to sha256(``excl_for``) unless None."""
    excl = hashlib.sha256(excl_for).digest() if excl_for is not None else None
    fd = map_create(len(value), name=name, excl_hash=excl, map_type=map_type)
    try:
        map_update(fd, value)
        if frozen:
            map_freeze(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class LoadAttempt:
    """One PROG_LOAD's inputs; ``load()`` returns the fd or raises SysError with the log."""

    insns: bytes
    prog_type: int = PROG_TYPE_SYSCALL
    prog_flags: int = F_SLEEPABLE
    fd_array: list[int] = field(default_factory=list)
    fd_array_cnt: int = 0
    signature: bytes | None = None
    signature_size: int | None = None  # default len(signature)
    keyring_id: int = KEY_SPEC_SESSION_KEYRING
    name: str = "__loader.prog"
    log_size: int = 1 << 20

    def load(self) -> int:
        ibuf = _cbuf(self.insns)
        lic = ctypes.create_string_buffer(b"Dual BSD/GPL")
        log = ctypes.create_string_buffer(self.log_size)
        fds = (ctypes.c_int * max(1, len(self.fd_array)))(*self.fd_array)
        sbuf = _cbuf(self.signature) if self.signature is not None else None
        attr = bytearray(168)
        struct.pack_into("<IIQQIIQ", attr, 0, self.prog_type, len(self.insns) // 8,
                         _addr(ibuf), ctypes.addressof(lic), 1, self.log_size, ctypes.addressof(log))  # fmt: skip
        struct.pack_into("<I", attr, 44, self.prog_flags)
        attr[48 : 48 + len(self.name)] = self.name.encode()
        if self.fd_array:
            struct.pack_into("<Q", attr, 120, ctypes.addressof(fds))
        struct.pack_into("<I", attr, 148, self.fd_array_cnt)
        if sbuf is not None:
            size = len(self.signature or b"") if self.signature_size is None else self.signature_size
            struct.pack_into("<QIi", attr, 152, _addr(sbuf), size, self.keyring_id)
        try:
            return bpf(PROG_LOAD, attr)
        except SysError as exc:
            raise SysError(exc.errno, "BPF_PROG_LOAD", log.value.decode(errors="replace")) from None


def test_run(prog_fd: int, *, ctx: bytearray | None = None, data: bytes | None = None) -> int:
    """PROG_TEST_RUN; the ctx is copied back in place. Returns retval (as u32)."""
    cbuf = (ctypes.c_char * len(ctx)).from_buffer(ctx) if ctx else None
    dbuf = _cbuf(data) if data is not None else None
    attr = bytearray(80)
    struct.pack_into("<I", attr, 0, prog_fd)
    if dbuf is not None:
        struct.pack_into("<I", attr, 8, len(data or b""))
        struct.pack_into("<Q", attr, 16, _addr(dbuf))
        struct.pack_into("<I", attr, 32, 1)  # repeat
    if cbuf is not None:
        struct.pack_into("<I", attr, 40, len(ctx or b""))
        struct.pack_into("<Q", attr, 48, ctypes.addressof(cbuf))
    bpf(PROG_TEST_RUN, attr)
    return int(struct.unpack_from("<I", attr, 4)[0])


def map_lookup_u64(fd: int, key: int) -> int:
    kbuf, vbuf = _cbuf(struct.pack("<I", key)), ctypes.create_string_buffer(8)
    attr = bytearray(32)
    struct.pack_into("<IIQQ", attr, 0, fd, 0, _addr(kbuf), ctypes.addressof(vbuf))
    bpf(MAP_LOOKUP_ELEM, attr)
    return int(struct.unpack("<Q", vbuf.raw)[0])


def prog_type_of(fd: int) -> int:
    info = ctypes.create_string_buffer(232)
    attr = bytearray(16)
    struct.pack_into("<IIQ", attr, 0, fd, 232, ctypes.addressof(info))
    bpf(OBJ_GET_INFO_BY_FD, attr)
    return int(struct.unpack_from("<I", info.raw, 0)[0])


def join_session_keyring() -> int:
    """A fresh anonymous session keyring for this process (kernel.md §5); its serial."""
    return _syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, 0)


def keyring_serial(special: int) -> int:
    return _syscall(SYS_KEYCTL, KEYCTL_GET_KEYRING_ID, special, 0)


def link_key(key: int, keyring: int) -> None:
    """KEYCTL_LINK: make ``key`` visible to searches of ``keyring``."""
    _syscall(SYS_KEYCTL, KEYCTL_LINK, key, keyring)


def add_cert(der: bytes, description: str, keyring: int = KEY_SPEC_SESSION_KEYRING) -> int:
    """add_key("asymmetric", …) of a DER certificate; returns the KEY's serial."""
    t, d, p = ctypes.create_string_buffer(b"asymmetric"), ctypes.create_string_buffer(description.encode()), _cbuf(der)
    return _syscall(SYS_ADD_KEY, ctypes.addressof(t), ctypes.addressof(d), _addr(p), len(der), keyring)


class Kmsg:
    """/dev/kmsg from the point of opening on; ``drain()`` returns the new messages."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def drain(self) -> list[str]:
        out = []
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
            if "clocksource: Watchdog remote CPU" not in msg:  # vm.md §9 noise
                out.append(msg)

    def close(self) -> None:
        os.close(self.fd)
