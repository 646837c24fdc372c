"""Which loaded programs are signed: an ``iter/bpf_prog`` iterator reads ``prog->aux->sig``.

User space cannot ask (docs/kernel.md §10: neither ``bpf_prog_info`` nor fdinfo
carries the verdict), so a BPF iterator built with the program builder walks
every loaded program kernel-side and writes one fixed-size record per
program with ``bpf_seq_write``. ``bpfsign enforce --pin`` pins such an
iterator before it attaches the policy (as the kernel's bpf_preload pins its
iterators), so status keeps working while unsigned loads are refused: reading
a pinned iterator loads nothing.
"""

from __future__ import annotations

import os
import struct
import time

from ..errors import InputError, KernelError

TYPE_CHECKING = False  # the pinned-iterator path imports nothing it does not run (timed)
if TYPE_CHECKING:
    from typing import Any

    from ..skel.builder import ProgramBuilder
    from .policy import Layout
    from .syscall import SyscallBackend

#: id, type, tag[8], load_time, name[16], keyring_serial, verdict, keyring_type, magic
RECORD = struct.Struct("<II8sQ16siBBH")
RECORD_SIZE = RECORD.size  # 48
MAGIC = 0xB5F1  # format 1 of the record; a pinned iterator of another format is refused
ITER_NAME = "bpfsign_status"
PIN_NAME = "progs"

#: UAPI ``enum bpf_prog_type`` in bpftool's spelling (stable ABI).
PROG_TYPES = (
    "unspec",
    "socket_filter",
    "kprobe",
    "sched_cls",
    "sched_act",
    "tracepoint",
    "xdp",
    "perf_event",
    "cgroup_skb",
    "cgroup_sock",
    "lwt_in",
    "lwt_out",
    "lwt_xmit",
    "sock_ops",
    "sk_skb",
    "cgroup_device",
    "sk_msg",
    "raw_tracepoint",
    "cgroup_sock_addr",
    "lwt_seg6local",
    "lirc_mode2",
    "sk_reuseport",
    "flow_dissector",
    "cgroup_sysctl",
    "raw_tracepoint_writable",
    "cgroup_sockopt",
    "tracing",
    "struct_ops",
    "ext",
    "lsm",
    "sk_lookup",
    "syscall",
    "netfilter",
)


def prog_type_name(t: int) -> str:
    return PROG_TYPES[t] if 0 <= t < len(PROG_TYPES) else f"type {t}"


#: ``enum bpf_sig_verdict`` and ``enum bpf_sig_keyring`` names by value (docs/kernel.md §10);
#: policy.Verdict and policy.KeyringType are the same enums (tests/test_policy.py checks)
VERDICT_NAMES = ("UNSIGNED", "VERIFIED")
KEYRING_NAMES = ("NONE", "BUILTIN", "SECONDARY", "PLATFORM", "USER")


def _enum_name(names: tuple[str, ...], v: int) -> str:
    return names[v] if 0 <= v < len(names) else f"unknown ({v})"


_FIELDS = (
    "id",
    "type",
    "type_name",
    "name",
    "tag",
    "load_time_ns",
    "loaded_at",
    "verdict",
    "keyring_type",
    "keyring_serial",
)


class ProgStatus:
    """One loaded program as the iterator saw it (a plain class: no dataclasses import on
    the status path, which is timed against bpftool)."""

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        id: int,
        type: int,
        type_name: str,
        name: str,
        tag: str,
        load_time_ns: int,
        loaded_at: float,
        verdict: str,
        keyring_type: str,
        keyring_serial: int,
    ) -> None:
        self.id = id
        self.type = type
        self.type_name = type_name
        self.name = name
        self.tag = tag
        self.load_time_ns = load_time_ns  # CLOCK_BOOTTIME, as bpf_prog_info.load_time
        self.loaded_at = loaded_at  # Unix time
        self.verdict = verdict
        self.keyring_type = keyring_type
        self.keyring_serial = keyring_serial

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in _FIELDS}

    def __repr__(self) -> str:
        return "ProgStatus(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProgStatus) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


def build_iter_program(layout: Layout) -> ProgramBuilder:
    """``SEC("iter/bpf_prog")``: one :data:`RECORD` per program via ``bpf_seq_write``."""
    from ..skel.builder import R0, R1, R2, R3, R6, R7, R8, R10, ProgramBuilder

    rec = -RECORD_SIZE
    b = ProgramBuilder(layout.helpers)
    b.comment("ctx: struct bpf_iter__bpf_prog *").mov(R6, R1)
    b.ldx(8, R7, R6, layout.iter_prog.offset, note="ctx->prog (NULL at the end)")
    b.jmp("==", R7, 0, "out")
    for off in range(0, RECORD_SIZE, 8):
        b.st(8, R10, rec + off, 0)
    b.load_field(R8, R7, layout.prog_aux)
    b.load_field(R1, R8, [layout.aux_id]).stx(4, R10, rec + 0, R1)
    b.load_field(R1, R7, layout.prog_type).stx(4, R10, rec + 4, R1)
    b.copy_field(R10, rec + 8, R7, layout.prog_tag, R1, max_size=8)
    b.load_field(R1, R8, [layout.aux_load_time]).stx(8, R10, rec + 16, R1)
    b.copy_field(R10, rec + 24, R8, [layout.aux_name], R1, max_size=16)
    b.load_field(R1, R8, [layout.keyring_serial]).stx(4, R10, rec + 40, R1)
    b.load_field(R1, R8, [layout.verdict]).stx(1, R10, rec + 44, R1)
    b.load_field(R1, R8, [layout.keyring_type]).stx(1, R10, rec + 45, R1)
    b.st(2, R10, rec + 46, MAGIC)
    b.load_field(R1, R6, layout.iter_meta_seq)
    b.mov(R2, R10).alu("+=", R2, rec).mov(R3, RECORD_SIZE).call("seq_write")
    b.label("out").mov(R0, 0).exit()
    return b


def load_iterator(be: SyscallBackend, layout: Layout) -> tuple[int, int]:
    """Load and attach the status iterator: (prog fd, link fd)."""
    from . import _sys as S

    prog = be.prog_load(
        S.PROG_TYPE_TRACING,
        build_iter_program(layout).assemble(),
        license="GPL",
        name=ITER_NAME,
        expected_attach_type=S.BPF_TRACE_ITER,
        attach_btf_id=layout.iter_btf_id,
    )
    try:
        link = be.link_create(prog, 0, S.BPF_TRACE_ITER)
    except BaseException:
        be.close(prog)
        raise
    return prog, link


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except InterruptedError:
            continue
        except OSError as exc:
            raise KernelError(exc.errno or 0, "read(bpf iterator)") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def run_iterator(be: SyscallBackend, link_fd: int) -> bytes:
    fd = be.iter_create(link_fd)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def read_pinned(path: str) -> bytes:
    """Run a pinned iterator by reading its bpffs file (no program is loaded)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def parse(raw: bytes, source: str = "status iterator") -> list[ProgStatus]:
    if len(raw) % RECORD_SIZE:
        raise InputError(
            f"{len(raw)} bytes is not a whole number of {RECORD_SIZE}-byte records", path=source
        )
    boot_to_unix = time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_BOOTTIME)
    out = []
    for pid, ptype, tag, load_time, name, serial, verdict, ktype, magic in RECORD.iter_unpack(raw):
        if magic != MAGIC:
            raise InputError(
                f"record format {magic:#06x}, expected {MAGIC:#06x}: the iterator "
                "was pinned by another bpfsign version; reinstall the policy",
                path=source,
            )
        out.append(
            ProgStatus(
                id=pid,
                type=ptype,
                type_name=prog_type_name(ptype),
                name=name.split(b"\0", 1)[0].decode(errors="replace"),
                tag=tag.hex(),
                load_time_ns=load_time,
                loaded_at=round(boot_to_unix + load_time / 1e9, 3),
                verdict=_enum_name(VERDICT_NAMES, verdict),
                keyring_type=_enum_name(KEYRING_NAMES, ktype),
                keyring_serial=serial,
            )
        )
    return out


def list_programs(pin_dir: str | None = None) -> list[ProgStatus]:
    """Every loaded program with its verdict.

    Reads ``pin_dir/progs`` when a policy pinned its iterator there; otherwise
    loads a throwaway iterator (this needs a kernel that records the verdict,
    else :class:`~bpfsign.errors.UnsupportedFeature`).
    """
    if pin_dir is not None:
        pinned = os.path.join(pin_dir, PIN_NAME)
        if os.path.exists(pinned):
            return parse(read_pinned(pinned), pinned)
    from .btf import require_vmlinux
    from .policy import FEATURE, Layout
    from .syscall import SyscallBackend

    layout = Layout.from_btf(require_vmlinux(FEATURE))
    be = SyscallBackend()
    try:
        prog, link = load_iterator(be, layout)
    except KernelError as exc:
        if exc.errno != 1:  # EPERM
            raise
        raise KernelError(
            exc.errno,
            exc.command,
            exc.log,
            message=(
                "the status iterator's own (unsigned) load was refused: a BPF LSM policy is "
                "enforcing here; read the iterator that policy pinned, from its pin directory"
                + (f" (no {PIN_NAME} under {pin_dir})" if pin_dir else "")
            ),
        ) from None
    try:
        return parse(run_iterator(be, link))
    finally:
        be.close(link)
        be.close(prog)
