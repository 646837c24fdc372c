"""The one door to the kernel: ctypes attr layouts and the bpf/add_key/keyctl calls.

Every syscall bpfsign makes goes through :func:`bpf`, :func:`add_key` or
:func:`keyctl`, so errno handling (EINTR/EAGAIN retry, errno → typed error,
the verifier log for PROG_LOAD) lives in one place. Attr layouts are x86-64
little-endian and sized exactly as libbpf sends them (docs/kernel.md §4): the
kernel zero-extends shorter attrs and rejects non-zero bytes past a command's
last field, so the size matters as much as the offsets.
"""

import ctypes
import errno as _errno
import os

from ..errors import KernelError, UnsupportedFeature, errno_name

# The public numbers live in consts; _sys re-exports them for its own callers.
from .consts import *  # noqa: F403  (re-exported for _sys's callers)
from .consts import (
    BTF_LOAD,
    COMMAND_NAMES,
    KEYCTL_NAMES,
    MAP_FREEZE,
    MAP_UPDATE_ELEM,
    OBJ_NAME_LEN,
    OBJ_PIN,
    PROG_LOAD,
)

TYPE_CHECKING = False  # typing stays out of start-up (status is timed): its names are quoted
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Final

# x86-64 syscall numbers (docs/kernel.md §2).
NR_BPF: "Final" = 321
NR_ADD_KEY: "Final" = 248
NR_KEYCTL: "Final" = 250

LOG_BUF_SIZE: "Final" = 1 << 20
CAP_SYS_ADMIN: "Final" = 21
CAP_PERFMON: "Final" = 38
CAP_BPF: "Final" = 39
UNPRIVILEGED_BPF_DISABLED = "/proc/sys/kernel/unprivileged_bpf_disabled"

_u32, _s32, _u64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64


class MapCreateAttr(ctypes.Structure):
    """``BPF_MAP_CREATE``, 92 bytes (ends at ``excl_prog_hash_size``)."""

    _pack_ = 4  # the u64s sit at 8-aligned offsets anyway; pack keeps the size at 92
    _fields_ = [
        ("map_type", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("inner_map_fd", _u32),
        ("numa_node", _u32),
        ("map_name", ctypes.c_char * OBJ_NAME_LEN),
        ("map_ifindex", _u32),
        ("btf_fd", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("map_extra", _u64),
        ("value_type_btf_obj_fd", _s32),
        ("map_token_fd", _s32),
        ("excl_prog_hash", _u64),
        ("excl_prog_hash_size", _u32),
    ]


class MapElemAttr(ctypes.Structure):
    """``BPF_MAP_*_ELEM`` (32 bytes) and, with size 4, ``BPF_MAP_FREEZE``."""

    _fields_ = [("map_fd", _u32), ("_pad", _u32), ("key", _u64), ("value", _u64), ("flags", _u64)]


class ProgLoadAttr(ctypes.Structure):
    """``BPF_PROG_LOAD``, 168 bytes (ends at ``keyring_id``)."""

    _fields_ = [
        ("prog_type", _u32),
        ("insn_cnt", _u32),
        ("insns", _u64),
        ("license", _u64),
        ("log_level", _u32),
        ("log_size", _u32),
        ("log_buf", _u64),
        ("kern_version", _u32),
        ("prog_flags", _u32),
        ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
        ("prog_ifindex", _u32),
        ("expected_attach_type", _u32),
        ("prog_btf_fd", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("func_info_cnt", _u32),
        ("line_info_rec_size", _u32),
        ("line_info", _u64),
        ("line_info_cnt", _u32),
        ("attach_btf_id", _u32),
        ("attach_prog_fd", _u32),
        ("core_relo_cnt", _u32),
        ("fd_array", _u64),
        ("core_relos", _u64),
        ("core_relo_rec_size", _u32),
        ("log_true_size", _u32),
        ("prog_token_fd", _s32),
        ("fd_array_cnt", _u32),
        ("signature", _u64),
        ("signature_size", _u32),
        ("keyring_id", _s32),
    ]


class TestRunAttr(ctypes.Structure):
    """``BPF_PROG_TEST_RUN``: fields end at 76, the union member is 80 (8-aligned)."""

    __test__ = False  # not a pytest class
    _fields_ = [
        ("prog_fd", _u32),
        ("retval", _u32),
        ("data_size_in", _u32),
        ("data_size_out", _u32),
        ("data_in", _u64),
        ("data_out", _u64),
        ("repeat", _u32),
        ("duration", _u32),
        ("ctx_size_in", _u32),
        ("ctx_size_out", _u32),
        ("ctx_in", _u64),
        ("ctx_out", _u64),
        ("flags", _u32),
        ("cpu", _u32),
        ("batch_size", _u32),
        ("_pad", _u32),
    ]


class LinkCreateAttr(ctypes.Structure):
    """``BPF_LINK_CREATE`` header; iterator links need nothing past ``flags``.

    At 16 the UAPI has a union (``target_btf_id``, ``iter_info``/``iter_info_len``, …);
    only the iterator member is modelled.
    """

    _fields_ = [
        ("prog_fd", _u32),
        ("target_fd", _u32),
        ("attach_type", _u32),
        ("flags", _u32),
        ("iter_info", _u64),
        ("iter_info_len", _u32),
        ("_pad", _u32),
    ]


class IterCreateAttr(ctypes.Structure):
    """``BPF_ITER_CREATE``: a link fd in, a readable seq_file fd out."""

    _fields_ = [("link_fd", _u32), ("flags", _u32)]


class BtfLoadAttr(ctypes.Structure):
    """``BPF_BTF_LOAD`` up to ``btf_log_level`` (the kernel zero-fills the rest)."""

    _fields_ = [("btf", _u64), ("btf_log_buf", _u64), ("btf_size", _u32), ("btf_log_size", _u32),
                ("btf_log_level", _u32)]  # fmt: skip


# The other layouts live in _sysattrs and are built on first use: ctypes class creation
# is a measurable share of `bpfsign status`, which needs none of them.
_LATER = ("InfoAttr", "MapInfo", "ProgInfo", "RawTracepointAttr", "ObjPinAttr", "GetIdAttr")
if TYPE_CHECKING:
    from ._sysattrs import GetIdAttr as GetIdAttr
    from ._sysattrs import InfoAttr as InfoAttr
    from ._sysattrs import MapInfo as MapInfo
    from ._sysattrs import ObjPinAttr as ObjPinAttr
    from ._sysattrs import ProgInfo as ProgInfo
    from ._sysattrs import RawTracepointAttr as RawTracepointAttr
else:  # mypy sees no __getattr__, so a misspelt _sys.X stays an error

    def __getattr__(name):
        """``_sys.MapInfo`` and the rest of :data:`_LATER`: imported once, then plain globals."""
        if name not in _LATER:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from . import _sysattrs

        later = {n: getattr(_sysattrs, n) for n in _LATER}
        globals().update(later)
        return later[name]


#: The sizes libbpf sends for each attr (docs/kernel.md §4, docs/lskel.md §10.2).
SIZE_MAP_CREATE: "Final" = 92
SIZE_MAP_ELEM: "Final" = 32
SIZE_FREEZE: "Final" = 4
SIZE_INFO: "Final" = 16
SIZE_PROG_LOAD: "Final" = 168
SIZE_TEST_RUN: "Final" = 80
SIZE_RAW_TP: "Final" = 16
SIZE_LINK_CREATE: "Final" = 16
SIZE_OBJ_PIN: "Final" = 20
SIZE_GET_ID: "Final" = 12
SIZE_BTF_LOAD: "Final" = 28
SIZE_ITER_CREATE: "Final" = 8

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_get_errno = ctypes.get_errno
_RETRY = frozenset((_errno.EINTR, _errno.EAGAIN))
_MAX_RETRIES = 5


def addr(obj: "ctypes._CData") -> int:
    """The address of a ctypes object, for a u64 pointer field."""
    return ctypes.addressof(obj)


def _call(nr: int, *args: object) -> tuple[int, int]:
    """``syscall(nr, *args)``, retried on EINTR/EAGAIN: ``(result, 0)`` or ``(-1, errno)``.

    The one retry loop of every syscall bpfsign makes (bpf, add_key, keyctl).
    """
    err = 0
    for _ in range(_MAX_RETRIES):
        ret: int = _syscall(nr, *args)
        if ret >= 0:
            return ret, 0
        err = _get_errno()
        if err not in _RETRY:
            break
    return -1, err


def bpf(cmd: int, attr: ctypes.Structure, size: int) -> int:
    """``bpf(cmd, &attr, size)``; returns the result or raises :class:`KernelError`.

    Pointer fields of ``attr`` are plain integers: the caller keeps the objects
    they point to alive until this returns (a local variable is enough).
    """
    ret, err = _call(NR_BPF, cmd, ctypes.byref(attr), size)
    if err == 0:
        return ret
    raise _bpf_error(cmd, err)


def _bpf_error(cmd: int, err: int) -> KernelError:
    return KernelError(
        err,
        COMMAND_NAMES.get(cmd, f"bpf cmd {cmd}"),
        message=eperm_hint(cmd) if err == _errno.EPERM else "",
    )


def raw_bpf() -> "Callable[[int, object, int], int]":
    """``bpf(cmd, attr_pointer, size)`` with no wrapper at all, for a hot path.

    The caller checks the result itself and hands a failure to :func:`bpf_failed`
    (or :func:`prog_load_failed`) right away, before any other call can touch
    errno. Made on request: functools stays out of the imports of ``status``,
    which is timed against bpftool and never needs it.
    """
    import functools

    return functools.partial(_syscall, NR_BPF)


def btf_load(blob: bytes) -> int:
    """BPF_BTF_LOAD of a BTF blob: its fd (the caller closes it)."""
    buf = ctypes.create_string_buffer(blob, len(blob))
    return bpf(BTF_LOAD, BtfLoadAttr(btf=addr(buf), btf_size=len(blob)), SIZE_BTF_LOAD)


def map_update(fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    """BPF_MAP_UPDATE_ELEM of one key and value."""
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value, len(value))
    attr = MapElemAttr(map_fd=fd, key=addr(kbuf), value=addr(vbuf), flags=flags)
    bpf(MAP_UPDATE_ELEM, attr, SIZE_MAP_ELEM)


def map_freeze(fd: int) -> None:
    """BPF_MAP_FREEZE: no more writes from user space."""
    bpf(MAP_FREEZE, MapElemAttr(map_fd=fd), SIZE_FREEZE)


def bpf_failed(cmd: int, attr: ctypes.Structure, size: int) -> int:
    """After a :func:`raw_bpf` call returned < 0: what :func:`bpf` would have done next.

    Retries on EINTR/EAGAIN (the result, if a retry succeeds), else raises the
    :class:`KernelError` :func:`bpf` raises.
    """
    err = _get_errno()
    if err in _RETRY:
        ret, err = _call(NR_BPF, cmd, ctypes.byref(attr), size)
        if err == 0:
            return ret
    raise _bpf_error(cmd, err)


def _effective_caps() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def eperm_hint(cmd: int | None = None) -> str:
    """Why bpf() says EPERM, as far as this process can tell (the error path only)."""
    caps = _effective_caps()
    if caps is not None and all(caps >> bit & 1 for bit in (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)):
        where = (
            "; the path must be on a bpf filesystem (mount -t bpf bpf DIR)"
            if cmd == OBJ_PIN
            else ""
        )
        return (
            "not permitted although this process has CAP_BPF, CAP_PERFMON and "
            f"CAP_SYS_ADMIN: an LSM or a rule of this command refused it{where}"
        )
    have = []
    if caps is not None:
        for name, bit in (
            ("CAP_BPF", CAP_BPF),
            ("CAP_PERFMON", CAP_PERFMON),
            ("CAP_SYS_ADMIN", CAP_SYS_ADMIN),
        ):
            have.append(name + ("" if caps >> bit & 1 else " missing"))
    try:
        with open(UNPRIVILEGED_BPF_DISABLED) as f:
            disabled = f.read().strip()
    except OSError:
        disabled = "?"
    return (
        "not permitted: bpf() needs CAP_BPF (plus CAP_PERFMON for tracing programs or "
        "CAP_NET_ADMIN for networking ones) or root; this process runs as uid "
        f"{os.geteuid()} ({', '.join(have) or 'capabilities unknown'}) and "
        f"kernel.unprivileged_bpf_disabled = {disabled}"
        + (" (unprivileged bpf() is off)" if disabled not in ("0", "?") else "")
        + "; run it as root with full capabilities, or grant them (an LSM may refuse it too)"
    )


def bpf_errno(cmd: int, attr: ctypes.Structure, size: int) -> tuple[int, int]:
    """Like :func:`bpf` but returns ``(result, errno)`` instead of raising: for probes."""
    return _call(NR_BPF, cmd, ctypes.byref(attr), size)


def prog_load(attr: ProgLoadAttr) -> int:
    """``BPF_PROG_LOAD`` with the failure made useful.

    The fast path asks for no log. On failure we retry once with log level 1
    and a 1 MiB buffer so the error carries the verifier's explanation; an
    EOPNOTSUPP on a signed load becomes :class:`UnsupportedFeature`. The errno
    is always the first attempt's: a retry that fails differently (asking for a
    log changes what the kernel checks) keeps its log out of the error, since
    that log explains another failure.
    """
    ret, err = _call(NR_BPF, PROG_LOAD, ctypes.byref(attr), SIZE_PROG_LOAD)
    if err == 0:
        return ret
    return _prog_load_error(attr, err)


def prog_load_failed(attr: ProgLoadAttr) -> int:
    """After a :func:`raw_bpf` ``BPF_PROG_LOAD`` returned < 0: what :func:`prog_load` does next."""
    err = _get_errno()
    if err in _RETRY:
        return prog_load(attr)
    return _prog_load_error(attr, err)


def _prog_load_error(attr: ProgLoadAttr, err: int) -> int:
    """The failure path of :func:`prog_load` (a retry with a log may still succeed)."""
    signed = attr.signature != 0
    if signed and err == _errno.EOPNOTSUPP:
        raise UnsupportedFeature(
            "signed BPF_PROG_LOAD",
            "the kernel lacks signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is "
            "not set), so every signed load fails with EOPNOTSUPP; load it on a kernel built "
            "with it (e.g. Debian's Linux 7.x), or without its signature",
            errno=err,
        )
    log = ""
    if attr.log_level and attr.log_buf:  # the caller asked for a log: it is in their buffer
        log = (
            ctypes.string_at(attr.log_buf, attr.log_size)
            .split(b"\0", 1)[0]
            .decode(errors="replace")
        )
    else:
        buf = ctypes.create_string_buffer(LOG_BUF_SIZE)
        attr.log_level, attr.log_size, attr.log_buf = 1, LOG_BUF_SIZE, addr(buf)
        try:
            fd = bpf(PROG_LOAD, attr, SIZE_PROG_LOAD)
        except KernelError as again:
            if again.errno == err:
                log = buf.value.decode(errors="replace")
            else:
                raise KernelError(
                    err,
                    "BPF_PROG_LOAD",
                    message=(
                        f"the retry with a verifier log failed with {errno_name(again.errno)} "
                        "instead, so there is no log for this failure"
                    ),
                ) from None
        else:  # passed on retry (a transient failure): keep it
            return fd
        finally:
            attr.log_level, attr.log_size, attr.log_buf = 0, 0, 0
    raise KernelError(
        err, "BPF_PROG_LOAD", log=log, message=explain(err, log, signature_size=attr.signature_size)
    )


def explain(err: int, log: str, *, signature_size: int = 0) -> str:
    """The fix for a PROG_LOAD refusal: the rules engine's hint (kernel/rules.py).

    An EPERM with no log is about privileges, which only this module knows.
    """
    from .rules import hint

    text = hint(err, log, signature_size=signature_size)
    if not text and err == _errno.EPERM and not log:
        return eperm_hint(PROG_LOAD)
    return text


def add_key(key_type: bytes, description: bytes | None, payload: bytes | None, keyring: int) -> int:
    """``add_key(2)``; returns the new key's serial.

    A None description lets the key type derive one (asymmetric keys: the
    certificate's subject and key id).
    """
    serial, err = _call(
        NR_ADD_KEY,
        ctypes.c_char_p(key_type),
        ctypes.c_char_p(description),
        ctypes.c_char_p(payload),
        ctypes.c_size_t(len(payload or b"")),
        ctypes.c_long(keyring),
    )
    if err == 0:
        return serial
    what = f"{key_type.decode()} key" + (f" {description.decode()!r}" if description else "")
    raise KernelError(err, "add_key", message=f"{what} into keyring {keyring}")


def keyctl(op: int, *args: "int | bytes | ctypes._CData | None", what: str = "") -> int:
    """``keyctl(op, ...)``; integer args are passed as longs, bytes as char pointers."""
    conv: list[object] = []
    for a in args:
        if a is None:
            conv.append(ctypes.c_void_p(0))
        elif isinstance(a, bytes):
            conv.append(ctypes.c_char_p(a))
        elif isinstance(a, int):
            conv.append(ctypes.c_long(a))
        else:
            conv.append(ctypes.byref(a))
    ret, err = _call(NR_KEYCTL, ctypes.c_long(op), *conv)
    if err == 0:
        return ret
    raise KernelError(err, f"keyctl({KEYCTL_NAMES.get(op, op)})", message=what)
