"""Which loaded programs are signed: an ``iter/bpf_prog`` iterator reads ``prog->aux->sig``.

User space cannot ask (docs/kernel.md §10: neither ``bpf_prog_info`` nor fdinfo
carries the verdict), so a BPF iterator built with the program builder walks
every loaded program kernel-side and writes one fixed-size record per
program with ``bpf_seq_write``. ``bpfsign enforce --pin`` pins such an
iterator before it attaches the policy (as the kernel's bpf_preload pins its
iterators), so status keeps working while unsigned loads are refused: reading
a pinned iterator loads nothing.

Without a pinned iterator, ``status`` loads its own, and leaves the offsets to
the kernel: the program is fixed, written against a few local types, and the
kernel relocates its field loads against its own BTF at load time (CO-RE,
:mod:`.core_relo`), so no Python parses ``/sys/kernel/btf/vmlinux``. The one
BTF id it needs (the ``bpf_iter_bpf_prog`` attach point) comes from the
kernel's ``bpf_btf_find_by_name_kind`` in a tiny syscall program. For
``status --json`` that own iterator prints the JSON rows itself with
``bpf_seq_printf`` (names and formats in a frozen constants map), so a run
does no Python work per program; from records, :func:`records_json` writes the
same text.
"""

import os
import struct
import time

from ..errors import Error, InputError, KernelError

TYPE_CHECKING = False  # the pinned-iterator path imports nothing it does not run (timed)
if TYPE_CHECKING:
    import mmap
    from typing import Any

    from ..skel.builder import ProgramBuilder
    from .policy import Layout
    from .syscall import SyscallBackend

#: id, type, tag[8], load_time, name[16], keyring_serial, verdict, keyring_type, magic
RECORD = struct.Struct("<II8sQ16siBBH")
RECORD_SIZE = RECORD.size  # 48
MAGIC = 0xB5F1  # format 1 of the record; a pinned iterator of another format is refused
MAGIC_OFFSET = RECORD_SIZE - 2
NAME_OFFSET = 24  # name[16] follows id, type, tag[8] and load_time
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


_UNNAMED_TYPE = "type {}"
_UNKNOWN = "unknown ({})"


def prog_type_name(t: int) -> str:
    return PROG_TYPES[t] if 0 <= t < len(PROG_TYPES) else _UNNAMED_TYPE.format(t)


#: ``enum bpf_sig_verdict`` and ``enum bpf_sig_keyring`` names by value (docs/kernel.md §10);
#: policy.Verdict and policy.KeyringType are the same enums (tests/test_policy.py checks)
VERDICT_NAMES = ("UNSIGNED", "VERIFIED")
KEYRING_NAMES = ("NONE", "BUILTIN", "SECONDARY", "PLATFORM", "USER")


def enum_name(names: tuple[str, ...], v: int) -> str:
    return names[v] if 0 <= v < len(names) else _UNKNOWN.format(v)


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

    def as_dict(self) -> "dict[str, Any]":
        return {f: getattr(self, f) for f in _FIELDS}

    def __repr__(self) -> str:
        return "ProgStatus(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProgStatus) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]


def build_iter_program(layout: "Layout") -> "ProgramBuilder":
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


def load_iterator(be: "SyscallBackend", layout: "Layout") -> tuple[int, int]:
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


def run_iterator(be: "SyscallBackend", link_fd: int) -> bytes:
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


def boot_offset_ns() -> int:
    """Nanoseconds to add to a CLOCK_BOOTTIME reading (``load_time``) to get Unix time.

    ``loaded_at`` is that sum cut to whole milliseconds, in seconds (the JSON
    iterator does the same sum and cut in BPF: no floating point there).
    """
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def bad_magic(magic: int, source: str) -> InputError:
    return InputError(
        f"record format {magic:#06x}, expected {MAGIC:#06x}: the iterator "
        "was pinned by another bpfsign version; reinstall the policy",
        path=source,
    )


def names_of(raw: bytes) -> tuple[bytes, ...]:
    """Every record's name field (16 bytes, NUL-padded), in one unpack."""
    skip = f"{NAME_OFFSET}x16s{RECORD_SIZE - NAME_OFFSET - 16}x"
    return struct.unpack("<" + skip * (len(raw) // RECORD_SIZE), raw)


def check_size(raw: bytes, source: str) -> None:
    if len(raw) % RECORD_SIZE:
        raise InputError(
            f"{len(raw)} bytes is not a whole number of {RECORD_SIZE}-byte records", path=source
        )


def parse(raw: bytes, source: str = "status iterator") -> list[ProgStatus]:
    check_size(raw, source)
    boot_ns = boot_offset_ns()
    out = []
    for pid, ptype, tag, load_time, name, serial, verdict, ktype, magic in RECORD.iter_unpack(raw):
        if magic != MAGIC:
            raise bad_magic(magic, source)
        out.append(
            ProgStatus(
                id=pid,
                type=ptype,
                type_name=prog_type_name(ptype),
                name=name.split(b"\0", 1)[0].decode(errors="replace"),
                tag=tag.hex(),
                load_time_ns=load_time,
                loaded_at=(boot_ns + load_time) // 1_000_000 / 1000,
                verdict=enum_name(VERDICT_NAMES, verdict),
                keyring_type=enum_name(KEYRING_NAMES, ktype),
                keyring_serial=serial,
            )
        )
    return out


FEATURE = "reading the BPF signature verdict"  # the policy's words (tests/test_policy.py checks)
NO_VERDICT = (
    "this kernel records no verdict (its BTF has no bpf_prog_aux.sig); "
    "it needs a kernel with load-time BPF signature verification (Linux 7.x)"
)
VMLINUX = "/sys/kernel/btf/vmlinux"
ITER_TARGET = "bpf_iter_bpf_prog"  # the FUNC an iter/bpf_prog program attaches to
_HELPER_SEQ_WRITE = 127  # UAPI helper ids: stable ABI
_HELPER_BTF_FIND_BY_NAME_KIND = 167
_KIND_FUNC = 12


def _btf_strings(fd: int) -> bytes:
    """The string section of the BTF open at ``fd``.

    Mapped where the kernel allows it (a bin file in sysfs hands out at most a
    page per read), else read through.
    """
    import mmap

    try:
        with mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
            return _strings_of(m)
    except (OSError, ValueError):
        pass
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return _strings_of(b"".join(chunks))


def _strings_of(blob: "bytes | mmap.mmap") -> bytes:
    if len(blob) < 24 or blob[:2] != b"\x9f\xeb":
        raise InputError("not little-endian BTF", path=VMLINUX)
    hdr_len, _t_off, _t_len, str_off, str_len = struct.unpack_from("<IIIII", blob, 4)
    start = hdr_len + str_off
    if start + str_len > len(blob):
        raise InputError("BTF header points past the end of the blob", path=VMLINUX)
    return blob[start : start + str_len]


def _check_verdict_btf() -> None:
    """Refuse a kernel that records no verdict.

    ``enum bpf_sig_verdict`` exists exactly where ``aux->sig`` does (docs/kernel.md
    §10); a name missing from the BTF string section is missing from the BTF, so
    reading only that section (C-speed search, no type decoding) decides it.
    """
    from ..errors import UnsupportedFeature

    try:
        fd = os.open(VMLINUX, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise UnsupportedFeature(
            FEATURE, f"{VMLINUX} is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF"
        ) from None
    try:
        strs = _btf_strings(fd)
    finally:
        os.close(fd)
    if b"\0bpf_sig_verdict\0" not in strs:
        raise UnsupportedFeature(FEATURE, NO_VERDICT)


#: Local types of the CO-RE iterator: only the members it reads, at the offsets its
#: instructions use; the kernel matches them to its own types by name (and looks
#: through anonymous unions: ``bpf_prog.tag``, ``bpf_iter__bpf_prog.prog``).
#: (struct, [(member, byte offset)]), in :func:`_core_btf`'s type order.
CORE_OFFSETS = {
    "bpf_iter__bpf_prog": {"meta": 0, "prog": 8},
    "bpf_iter_meta": {"seq": 0},
    "bpf_prog": {"type": 0, "tag": 8, "aux": 16},
    "bpf_prog_aux": {"id": 0, "load_time": 8, "name": 16, "sig": 32},
    "sig": {"keyring_serial": 0, "keyring_type": 4, "verdict": 5},  # aux->sig (anonymous)
}
#: Each relocated load: (insn index, root struct, CO-RE access string). Checked against the
#: builder's program by tests/test_status_core.py.
CORE_RELOS = (
    (1, "bpf_iter__bpf_prog", "0:1"),  # ctx->prog
    (9, "bpf_prog", "0:2"),  # prog->aux
    (10, "bpf_prog_aux", "0:0"),  # aux->id
    (12, "bpf_prog", "0:0"),  # prog->type
    (14, "bpf_prog", "0:1"),  # prog->tag
    (16, "bpf_prog_aux", "0:1"),  # aux->load_time
    (18, "bpf_prog_aux", "0:2:0"),  # aux->name[0..8]
    (20, "bpf_prog_aux", "0:2:8"),  # aux->name[8..16]
    (22, "bpf_prog_aux", "0:3:0"),  # aux->sig.keyring_serial
    (24, "bpf_prog_aux", "0:3:2"),  # aux->sig.verdict
    (26, "bpf_prog_aux", "0:3:1"),  # aux->sig.keyring_type
    (29, "bpf_iter__bpf_prog", "0:0"),  # ctx->meta
    (30, "bpf_iter_meta", "0:0"),  # meta->seq
)


def build_core_iter_program() -> "tuple[ProgramBuilder, list[tuple[int, str, str]]]":
    """The status iterator for CO-RE: :func:`build_iter_program` at :data:`CORE_OFFSETS`.

    Returns the program and, per relocated load, (insn index, root struct, access
    string). Its assembly is :data:`CORE_INSNS` (what runs: the builder is not
    imported on the status path; tests/test_status_core.py checks they agree).
    """
    from ..skel.builder import R0, R1, R2, R3, R6, R7, R8, R10, ProgramBuilder

    o = CORE_OFFSETS
    rec = -RECORD_SIZE
    b = ProgramBuilder({"seq_write": _HELPER_SEQ_WRITE})
    relos: list[tuple[int, str, str]] = []
    n = 0  # every instruction here is one slot

    def emit(count: int = 1, relo: tuple[str, str] | None = None) -> None:
        nonlocal n
        if relo is not None:
            relos.append((n, *relo))
        n += count

    b.comment("ctx: struct bpf_iter__bpf_prog *").mov(R6, R1)
    emit()
    b.ldx(8, R7, R6, o["bpf_iter__bpf_prog"]["prog"], note="ctx->prog (NULL at the end)")
    emit(relo=("bpf_iter__bpf_prog", "0:1"))
    b.jmp("==", R7, 0, "out")
    emit()
    for off in range(0, RECORD_SIZE, 8):
        b.st(8, R10, rec + off, 0)
        emit()
    aux, sig = o["bpf_prog_aux"], o["bpf_prog_aux"]["sig"]
    b.ldx(8, R8, R7, o["bpf_prog"]["aux"], note="prog->aux")
    emit(relo=("bpf_prog", "0:2"))
    loads = (
        (4, R8, aux["id"], 0, ("bpf_prog_aux", "0:0"), "aux->id"),
        (4, R7, o["bpf_prog"]["type"], 4, ("bpf_prog", "0:0"), "prog->type"),
        (8, R7, o["bpf_prog"]["tag"], 8, ("bpf_prog", "0:1"), "prog->tag"),
        (8, R8, aux["load_time"], 16, ("bpf_prog_aux", "0:1"), "aux->load_time"),
        (8, R8, aux["name"], 24, ("bpf_prog_aux", "0:2:0"), "aux->name[0:8]"),
        (8, R8, aux["name"] + 8, 32, ("bpf_prog_aux", "0:2:8"), "aux->name[8:16]"),
        (4, R8, sig + o["sig"]["keyring_serial"], 40, ("bpf_prog_aux", "0:3:0"), "keyring_serial"),
        (1, R8, sig + o["sig"]["verdict"], 44, ("bpf_prog_aux", "0:3:2"), "aux->sig.verdict"),
        (1, R8, sig + o["sig"]["keyring_type"], 45, ("bpf_prog_aux", "0:3:1"), "keyring_type"),
    )
    for size, base, off, rec_off, relo, what in loads:
        b.ldx(size, R1, base, off, note=what).stx(size, R10, rec + rec_off, R1)
        emit(relo=relo)
        emit()
    b.st(2, R10, rec + 46, MAGIC)
    emit()
    b.ldx(8, R1, R6, o["bpf_iter__bpf_prog"]["meta"], note="ctx->meta")
    emit(relo=("bpf_iter__bpf_prog", "0:0"))
    b.ldx(8, R1, R1, o["bpf_iter_meta"]["seq"], note="meta->seq")
    emit(relo=("bpf_iter_meta", "0:0"))
    b.mov(R2, R10).alu("+=", R2, rec).mov(R3, RECORD_SIZE).call("seq_write")
    b.label("out").mov(R0, 0).exit()
    return b, relos


#: :func:`build_core_iter_program` assembled (tests/test_status_core.py regenerates it).
CORE_INSNS = bytes.fromhex(
    "bf16000000000000796708000000000015072000000000007a0ad0ff00000000"
    "7a0ad8ff000000007a0ae0ff000000007a0ae8ff000000007a0af0ff00000000"
    "7a0af8ff0000000079781000000000006181000000000000631ad0ff00000000"
    "6171000000000000631ad4ff0000000079710800000000007b1ad8ff00000000"
    "79810800000000007b1ae0ff0000000079811000000000007b1ae8ff00000000"
    "79811800000000007b1af0ff000000006181200000000000631af8ff00000000"
    "7181250000000000731afcff000000007181240000000000731afdff00000000"
    "6a0afefff1b5000079610000000000007911000000000000bfa2000000000000"
    "07020000d0ffffffb703000030000000850000007f000000b700000000000000"
    "9500000000000000"
)

#: :func:`_core_btf`'s blob: the local BTF (tests/test_status_core.py regenerates it).
CORE_BTF = bytes.fromhex(
    "9feb01001800000000000000b0010000b0010000e70000000100000000000001"
    "0100000008000000040000000000000104000000200000000800000000000001"
    "04000000200000010c0000000000000108000000400000000000000003000004"
    "080000001000000003000000000000001f00000001000000200000002c000000"
    "0100000028000000000000000000000300000000010000000200000010000000"
    "4a00000004000004280000003400000002000000000000003700000004000000"
    "4000000041000000060000008000000046000000050000000001000057000000"
    "0000000604000000000000000000000300000000010000000200000008000000"
    "0000000000000002070000007200000003000004180000006500000008000000"
    "000000006a00000009000000400000006e0000000a0000008000000000000000"
    "00000002000000007f00000001000004080000007b0000000c00000000000000"
    "00000000000000020d00000000000000000000020b0000009700000002000004"
    "100000008d0000000e00000000000000920000000f0000004000000000000000"
    "0000000210000000000000000100000d03000000aa00000011000000ae000000"
    "0100000c120000000075380075333200696e7400753634006b657972696e675f"
    "73657269616c006b657972696e675f747970650076657264696374006964006c"
    "6f61645f74696d65006e616d6500736967006270665f70726f675f6175780062"
    "70665f70726f675f7479706500747970650074616700617578006270665f7072"
    "6f6700736571006270665f697465725f6d657461006d6574610070726f670062"
    "70665f697465725f5f6270665f70726f6700637478006270667369676e5f7374"
    "6174757300303a3100303a3200303a3000303a323a3000303a323a3800303a33"
    "3a3000303a333a3200303a333a3100"
)
#: its ``bpf_core_relo`` records, one per load in CORE_RELOS, packed (core_relo.relos).
CORE_RELO_RECORDS = bytes.fromhex(
    "0800000010000000bd00000000000000480000000b000000c100000000000000"
    "5000000007000000c500000000000000600000000b000000c500000000000000"
    "700000000b000000bd000000000000008000000007000000bd00000000000000"
    "9000000007000000c900000000000000a000000007000000cf00000000000000"
    "b000000007000000d500000000000000c000000007000000db00000000000000"
    "d000000007000000e100000000000000e800000010000000c500000000000000"
    "f00000000d000000c500000000000000"
)
#: the program's one ``bpf_func_info`` (insn 0, the local FUNC's id).
CORE_FUNC_INFO = bytes.fromhex("0000000013000000")


# ------------------------------------------------------------ the JSON iterator
#: ``status --json`` with no pinned iterator: the kernel writes the JSON itself, one
#: ``bpf_seq_printf`` per program, so a run is one read and no Python per program.
#: Each row is :func:`records_json`'s text for the same record (tests check both ways).
JSON_ROW = (
    '{"id": %u, "keyring_serial": %d, "keyring_type": "%s", "load_time_ns": %llu, '
    '"loaded_at": %llu.%03llu, "name": "%s", "tag": "%016llx", "type": %u, '
    '"type_name": "%s", "verdict": "%s"},\n'
)
JSON_ARGS = 11  # the row's arguments, u64 each, on the stack (bpf_seq_printf takes <= 12)
#: A type, verdict or keyring value that its table does not name is printed as a
#: number, by one of 8 variants of the row: bit 0 the type, bit 1 the verdict, bit 2
#: the keyring (``type N``, ``unknown (N)``, as :func:`prog_type_name` and
#: :func:`enum_name` write them).
JSON_UNNAMED_TYPE, JSON_UNKNOWN_VERDICT, JSON_UNKNOWN_KEYRING = 1, 2, 4
_HELPER_SEQ_PRINTF = 126
#: The read-only map the program reads its constants from, one value: the Unix time
#: of boot in ns, the 8 row formats, then the names of types, verdicts and keyrings
#: in fixed slots indexed by value.
_FMT_SLOT, _TYPE_SLOT, _ENUM_SLOT = 256, 32, 16
JSON_BOOT = 0
JSON_FMTS = 8
JSON_TYPE_NAMES = JSON_FMTS + 8 * _FMT_SLOT
JSON_VERDICT_NAMES = JSON_TYPE_NAMES + len(PROG_TYPES) * _TYPE_SLOT
JSON_KEYRING_NAMES = JSON_VERDICT_NAMES + len(VERDICT_NAMES) * _ENUM_SLOT
JSON_RODATA_SIZE = JSON_KEYRING_NAMES + len(KEYRING_NAMES) * _ENUM_SLOT
_JSON_SLOTS = struct.Struct(
    f"<Q{8 * f'{_FMT_SLOT}s'}{len(PROG_TYPES) * f'{_TYPE_SLOT}s'}"
    f"{(len(VERDICT_NAMES) + len(KEYRING_NAMES)) * f'{_ENUM_SLOT}s'}"
)


def json_formats() -> list[str]:
    """The row format for each combination of unnamed values, by its bits."""
    out = []
    for bits in range(8):
        row = JSON_ROW
        for bit, field, text in (
            (JSON_UNNAMED_TYPE, "type_name", _UNNAMED_TYPE),
            (JSON_UNKNOWN_VERDICT, "verdict", _UNKNOWN),
            (JSON_UNKNOWN_KEYRING, "keyring_type", _UNKNOWN),
        ):
            if bits & bit:
                row = row.replace(f'"{field}": "%s"', f'"{field}": "{text.format("%u")}"')
        out.append(row)
    return out


def json_rodata(boot_ns: int) -> bytes:
    """The JSON iterator's constants (its map value), with this boot's Unix time in ns."""
    names = "\0".join((*json_formats(), *PROG_TYPES, *VERDICT_NAMES, *KEYRING_NAMES))
    # struct pads each string with NULs to its slot (tests check each keeps one)
    return _JSON_SLOTS.pack(boot_ns % (1 << 64), *names.encode().split(b"\0"))


def build_core_json_program() -> "tuple[ProgramBuilder, list[tuple[int, str, str]]]":
    """``SEC("iter/bpf_prog")`` printing :data:`JSON_ROW` per program, for CO-RE.

    Reads what :func:`build_core_iter_program` reads, at :data:`CORE_OFFSETS`
    (the same local BTF), and prints it with its constants map as
    ``fd_array[0]``. Returns the program and its relocations (insn index, root
    struct, access string); its assembly is :data:`CORE_JSON_INSNS`.
    """
    from ..skel.builder import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, ProgramBuilder

    o = CORE_OFFSETS
    aux, sig = o["bpf_prog_aux"], o["bpf_prog_aux"]["sig"]
    b = ProgramBuilder({"seq_printf": _HELPER_SEQ_PRINTF})
    relos: list[tuple[int, str, str]] = []
    args = -8 * JSON_ARGS

    def arg(k: int) -> int:
        return args + 8 * k

    def relo(root: str, access: str) -> ProgramBuilder:
        relos.append((b.pc, root, access))
        return b

    def named(k: int, table: int, count: int, width: int, bit: int, what: str) -> None:
        """r1 holds a value: arg k is its name in ``table``, else the value itself and
        ``bit`` set in r0 (the format that prints a number there)."""
        b.stx(8, R10, arg(k), R1).jmp("<", R1, count, f"{what}_named")
        b.alu("|=", R0, bit).ja(f"{what}_done")
        b.label(f"{what}_named").alu("*=", R1, width).mov(R2, R9).alu("+=", R2, table)
        b.alu("+=", R2, R1).stx(8, R10, arg(k), R2)
        b.label(f"{what}_done")

    b.comment("ctx: struct bpf_iter__bpf_prog *").mov(R6, R1)
    relo("bpf_iter__bpf_prog", "0:1").ldx(8, R7, R6, o["bpf_iter__bpf_prog"]["prog"], "ctx->prog")
    b.jmp("==", R7, 0, "out")
    relo("bpf_prog", "0:2").ldx(8, R8, R7, o["bpf_prog"]["aux"], note="prog->aux")
    b.ld_map_idx_value(R9, 0, name="constants")
    b.comment("r0: which values print as numbers (the format's bits)").mov(R0, 0)
    relo("bpf_prog_aux", "0:0").ldx(4, R1, R8, aux["id"], note="aux->id")
    b.stx(8, R10, arg(0), R1)
    relo("bpf_prog_aux", "0:3:0").ldx(4, R1, R8, sig + o["sig"]["keyring_serial"], "keyring_serial")
    b.stx(8, R10, arg(1), R1)
    relo("bpf_prog_aux", "0:3:1").ldx(1, R1, R8, sig + o["sig"]["keyring_type"], "keyring_type")
    named(2, JSON_KEYRING_NAMES, len(KEYRING_NAMES), _ENUM_SLOT, JSON_UNKNOWN_KEYRING, "keyring")
    relo("bpf_prog_aux", "0:1").ldx(8, R1, R8, aux["load_time"], note="aux->load_time")
    b.stx(8, R10, arg(3), R1)
    b.ldx(8, R2, R9, JSON_BOOT, note="boot time, Unix ns").alu("+=", R1, R2)
    b.mov(R2, R1).alu("/=", R2, 10**9).stx(8, R10, arg(4), R2)
    b.alu("/=", R1, 10**6).alu("%=", R1, 1000).stx(8, R10, arg(5), R1)
    b.mov(R1, R8)
    relo("bpf_prog_aux", "0:2").alu("+=", R1, aux["name"]).stx(8, R10, arg(6), R1)
    relo("bpf_prog", "0:1").ldx(8, R1, R7, o["bpf_prog"]["tag"], note="prog->tag")
    b.to_be(R1, 64).stx(8, R10, arg(7), R1)
    relo("bpf_prog", "0:0").ldx(4, R1, R7, o["bpf_prog"]["type"], note="prog->type")
    b.stx(8, R10, arg(8), R1)
    named(9, JSON_TYPE_NAMES, len(PROG_TYPES), _TYPE_SLOT, JSON_UNNAMED_TYPE, "type")
    relo("bpf_prog_aux", "0:3:2").ldx(1, R1, R8, sig + o["sig"]["verdict"], "aux->sig.verdict")
    named(10, JSON_VERDICT_NAMES, len(VERDICT_NAMES), _ENUM_SLOT, JSON_UNKNOWN_VERDICT, "verdict")
    relo("bpf_iter__bpf_prog", "0:0").ldx(8, R1, R6, o["bpf_iter__bpf_prog"]["meta"], "ctx->meta")
    relo("bpf_iter_meta", "0:0").ldx(8, R1, R1, o["bpf_iter_meta"]["seq"], note="meta->seq")
    b.alu("*=", R0, _FMT_SLOT).mov(R2, R9).alu("+=", R2, JSON_FMTS).alu("+=", R2, R0)
    b.mov(R3, _FMT_SLOT).mov(R4, R10).alu("+=", R4, args).mov(R5, 8 * JSON_ARGS)
    b.call("seq_printf")
    b.label("out").mov(R0, 0).exit()
    return b, relos


#: Each relocated instruction of the JSON iterator: (insn index, root struct, access string).
#: Checked against the builder's program by tests/test_status_core.py.
CORE_JSON_RELOS = (
    (1, "bpf_iter__bpf_prog", "0:1"),
    (3, "bpf_prog", "0:2"),
    (7, "bpf_prog_aux", "0:0"),
    (9, "bpf_prog_aux", "0:3:0"),
    (11, "bpf_prog_aux", "0:3:1"),
    (21, "bpf_prog_aux", "0:1"),
    (32, "bpf_prog_aux", "0:2"),
    (34, "bpf_prog", "0:1"),
    (37, "bpf_prog", "0:0"),
    (48, "bpf_prog_aux", "0:3:2"),
    (58, "bpf_iter__bpf_prog", "0:0"),
    (59, "bpf_iter_meta", "0:0"),
)
#: :func:`build_core_json_program` assembled (tests/test_status_core.py regenerates it).
CORE_JSON_INSNS = bytes.fromhex(
    "bf16000000000000796708000000000015074200000000007978100000000000"
    "18690000000000000000000000000000b7000000000000006181000000000000"
    "7b1aa8ff0000000061812000000000007b1ab0ff000000007181240000000000"
    "7b1ab8ff00000000a50102000500000047000000040000000500050000000000"
    "2701000010000000bf9200000000000007020000480c00000f12000000000000"
    "7b2ab8ff0000000079810800000000007b1ac0ff000000007992000000000000"
    "0f21000000000000bf120000000000003702000000ca9a3b7b2ac8ff00000000"
    "3701000040420f0097010000e80300007b1ad0ff00000000bf81000000000000"
    "07010000100000007b1ad8ff000000007971080000000000dc01000040000000"
    "7b1ae0ff0000000061710000000000007b1ae8ff000000007b1af0ff00000000"
    "a501020021000000470000000100000005000500000000002701000020000000"
    "bf9200000000000007020000080800000f120000000000007b2af0ff00000000"
    "71812500000000007b1af8ff00000000a5010200020000004700000002000000"
    "05000500000000002701000010000000bf9200000000000007020000280c0000"
    "0f120000000000007b2af8ff0000000079610000000000007911000000000000"
    "2700000000010000bf9200000000000007020000080000000f02000000000000"
    "b703000000010000bfa400000000000007040000a8ffffffb705000058000000"
    "850000007e000000b7000000000000009500000000000000"
)
#: its ``bpf_core_relo`` records against :data:`CORE_BTF`, packed.
CORE_JSON_RELO_RECORDS = bytes.fromhex(
    "0800000010000000bd00000000000000180000000b000000c100000000000000"
    "3800000007000000c5000000000000004800000007000000d500000000000000"
    "5800000007000000e100000000000000a800000007000000bd00000000000000"
    "0001000007000000c100000000000000100100000b000000bd00000000000000"
    "280100000b000000c5000000000000008001000007000000db00000000000000"
    "d001000010000000c500000000000000d80100000d000000c500000000000000"
)


def _core_btf(
    relocations: tuple[tuple[int, str, str], ...] = CORE_RELOS,
) -> tuple[bytes, list[tuple[int, int, int]], int]:
    """The local BTF: (blob, relocation records (insn, type id, access off), FUNC id).

    Both iterators share the blob (the JSON one's access strings are among the
    record one's); ``relocations`` picks whose records come back.

    Built with :class:`~bpfsign.kernel.core_relo.BtfWriter`; a load uses its output
    as the constants above (CORE_BTF …), which tests/test_status_core.py checks
    against it, so that ``bpfsign status`` does not build it on every run.
    """
    from .core_relo import BtfWriter

    w = BtfWriter()
    u8, u32 = w.int_("u8", 1), w.int_("u32", 4)
    s32, u64 = w.int_("int", 4, signed=True), w.int_("u64", 8)
    o = CORE_OFFSETS
    sig = w.struct("", 8, [("keyring_serial", s32, 0), ("keyring_type", u8, 4), ("verdict", u8, 5)])
    aux = w.struct(
        "bpf_prog_aux",
        40,
        [
            ("id", u32, o["bpf_prog_aux"]["id"]),
            ("load_time", u64, o["bpf_prog_aux"]["load_time"]),
            ("name", w.array(u8, u32, 16), o["bpf_prog_aux"]["name"]),
            ("sig", sig, o["bpf_prog_aux"]["sig"]),
        ],
    )
    prog = w.struct(
        "bpf_prog",
        24,
        [
            ("type", w.enum_fwd("bpf_prog_type"), o["bpf_prog"]["type"]),
            ("tag", w.array(u8, u32, 8), o["bpf_prog"]["tag"]),
            ("aux", w.ptr(aux), o["bpf_prog"]["aux"]),
        ],
    )
    meta = w.struct("bpf_iter_meta", 8, [("seq", w.ptr(0), o["bpf_iter_meta"]["seq"])])
    ctx = w.struct(
        "bpf_iter__bpf_prog",
        16,
        [
            ("meta", w.ptr(meta), o["bpf_iter__bpf_prog"]["meta"]),
            ("prog", w.ptr(prog), o["bpf_iter__bpf_prog"]["prog"]),
        ],
    )
    func = w.func(ITER_NAME, w.func_proto(s32, [("ctx", w.ptr(ctx))]))
    ids = {"bpf_iter__bpf_prog": ctx, "bpf_iter_meta": meta, "bpf_prog": prog, "bpf_prog_aux": aux}
    for _, _, access in CORE_RELOS:  # the strings in one order, whichever records are asked
        w.name(access)
    records = [(i, ids[root], w.name(access)) for i, root, access in relocations]
    return w.blob(), records, func


def _find_btf_func(name: str, pin_dir: str | None = None) -> int:
    """The kernel's BTF id of FUNC ``name``, asked of the kernel itself.

    ``bpf_btf_find_by_name_kind`` is a helper of (sleepable) syscall programs: the
    program puts ``name`` on its stack, calls it, and returns the id, which
    BPF_PROG_TEST_RUN hands back as ``retval``.
    """
    import ctypes

    from . import _sys as S

    raw = name.encode() + b"\0"
    padded = raw + b"\0" * (-len(raw) % 4)
    base = -len(padded)
    insns = [
        struct.pack(
            "<BBhi", 0x62, 10, base + i, int.from_bytes(padded[i : i + 4], "little", signed=True)
        )
        for i in range(0, len(padded), 4)
    ]  # *(u32 *)(r10 + off) = imm: the name, NUL-terminated
    insns += [
        struct.pack("<BBhi", 0xBF, 0x01 | 10 << 4, 0, 0),  # r1 = r10
        struct.pack("<BBhi", 0x07, 1, 0, base),  # r1 += base
        struct.pack("<BBhi", 0xB7, 2, 0, len(raw)),  # r2 = size with the NUL
        struct.pack("<BBhi", 0xB7, 3, 0, _KIND_FUNC),  # r3 = BTF_KIND_FUNC
        struct.pack("<BBhi", 0xB7, 4, 0, 0),  # r4 = flags
        struct.pack("<BBhi", 0x85, 0, 0, _HELPER_BTF_FIND_BY_NAME_KIND),
        struct.pack("<BBhi", 0x95, 0, 0, 0),  # exit: r0 = id, or -errno
    ]
    code = b"".join(insns)
    ibuf = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = S.ProgLoadAttr(
        prog_type=S.PROG_TYPE_SYSCALL,
        insn_cnt=len(insns),
        insns=S.addr(ibuf),
        license=S.addr(lic),
        prog_flags=S.BPF_F_SLEEPABLE,
        prog_name=b"bpfsign_btfid",
    )
    fd = _load_or_explain(attr, pin_dir)
    try:
        run = S.TestRunAttr(prog_fd=fd)
        S.bpf(S.PROG_TEST_RUN, run, S.SIZE_TEST_RUN)
    finally:
        os.close(fd)
    if not 0 < run.retval < 1 << 31:
        from ..errors import UnsupportedFeature

        raise UnsupportedFeature(
            FEATURE,
            f"the kernel's BTF has no FUNC {name} (lookup returned {run.retval - (1 << 32)})",
        )
    return int(run.retval)


def _load_or_explain(attr: "Any", pin_dir: str | None = None) -> int:
    """BPF_PROG_LOAD; an EPERM says that an enforcing policy refused our own load."""
    from . import _sys as S

    try:
        return S.prog_load(attr)
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


def load_core_iterator(
    pin_dir: str | None = None, *, as_json: bool = False, boot_ns: int | None = None
) -> tuple[int, int]:
    """Load and attach the CO-RE status iterator: (prog fd, link fd).

    The record iterator, or with ``as_json`` the one that prints JSON rows
    (:func:`build_core_json_program`, its constants map made here, with ``boot_ns``
    or else :func:`boot_offset_ns` now). Loads the local BTF, asks the kernel for the attach point's id, and loads
    the fixed program with its relocations; every fd but the two returned is
    closed. On a kernel without the verdict the relocations of ``aux->sig``
    find nothing and the load fails: any failure is first checked against the
    kernel's BTF (:func:`_check_verdict_btf`), so that kernel hears "records no
    verdict" rather than how the load failed.
    """
    from ..errors import Error
    from . import _sys as S

    try:
        prog = _load_core_prog(pin_dir, as_json=as_json, boot_ns=boot_ns)
    except Error:
        _check_verdict_btf()
        raise
    try:
        link = S.bpf(
            S.LINK_CREATE,
            S.LinkCreateAttr(prog_fd=prog, attach_type=S.BPF_TRACE_ITER),
            S.SIZE_LINK_CREATE,
        )
    except BaseException:
        os.close(prog)
        raise
    return prog, link


def _load_core_prog(pin_dir: str | None, *, as_json: bool, boot_ns: int | None) -> int:
    import ctypes

    from . import _sys as S

    if as_json:
        insns, relos, count = CORE_JSON_INSNS, CORE_JSON_RELO_RECORDS, len(CORE_JSON_RELOS)
    else:
        insns, relos, count = CORE_INSNS, CORE_RELO_RECORDS, len(CORE_RELOS)
    btf_fd = S.btf_load(CORE_BTF)
    consts = -1
    try:
        attach = _find_btf_func(ITER_TARGET, pin_dir)
        ibuf = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(b"GPL")
        finfo = ctypes.create_string_buffer(CORE_FUNC_INFO, len(CORE_FUNC_INFO))
        rbuf = ctypes.create_string_buffer(relos, len(relos))
        attr = S.ProgLoadAttr(
            prog_type=S.PROG_TYPE_TRACING,
            insn_cnt=len(insns) // 8,
            insns=S.addr(ibuf),
            license=S.addr(lic),
            prog_name=ITER_NAME.encode(),
            expected_attach_type=S.BPF_TRACE_ITER,
            attach_btf_id=attach,
            prog_btf_fd=btf_fd,
            func_info_rec_size=len(CORE_FUNC_INFO),
            func_info=S.addr(finfo),
            func_info_cnt=1,
            core_relos=S.addr(rbuf),
            core_relo_cnt=count,
            core_relo_rec_size=len(relos) // count,
        )
        if as_json:
            consts = _constants_map(json_rodata(boot_offset_ns() if boot_ns is None else boot_ns))
            fds = (ctypes.c_int32 * 1)(consts)
            attr.fd_array = S.addr(fds)
        return _load_or_explain(attr, pin_dir)
    finally:
        if consts >= 0:
            os.close(consts)  # the program holds the map
        os.close(btf_fd)


def _constants_map(value: bytes) -> int:
    """A frozen one-value array map holding ``value``, read-only to programs: its fd."""
    from . import _sys as S

    fd = S.bpf(
        S.MAP_CREATE,
        S.MapCreateAttr(
            map_type=S.MAP_TYPE_ARRAY,
            key_size=4,
            value_size=len(value),
            max_entries=1,
            map_flags=S.BPF_F_RDONLY_PROG,
            map_name=ITER_NAME.encode(),
        ),
        S.SIZE_MAP_CREATE,
    )
    try:
        S.map_update(fd, bytes(4), value)
        S.map_freeze(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _run_own_iterator(pin_dir: str | None, *, as_json: bool = False) -> bytes:
    """Load an iterator of our own, read it once, close everything: its output."""
    from . import _sys as S

    prog, link = load_core_iterator(pin_dir, as_json=as_json)
    try:
        fd = S.bpf(S.ITER_CREATE, S.IterCreateAttr(link_fd=link), S.SIZE_ITER_CREATE)
        try:
            return _read_all(fd)
        finally:
            os.close(fd)
    finally:
        os.close(link)
        os.close(prog)


def read_records(pin_dir: str | None = None) -> tuple[bytes, str]:
    """The iterator's raw records and where they came from (for :func:`parse`).

    Reads ``pin_dir/progs`` when a policy pinned its iterator there; otherwise
    loads a throwaway iterator (:func:`load_core_iterator`), reads it once and
    closes it.
    """
    pinned = _pinned(pin_dir)
    if pinned is not None:
        return read_pinned(pinned), pinned
    return _run_own_iterator(pin_dir), "status iterator"


def _pinned(pin_dir: str | None) -> str | None:
    """The iterator a policy pinned under ``pin_dir``, if there is one."""
    if pin_dir is None:
        return None
    pinned = os.path.join(pin_dir, PIN_NAME)
    return pinned if os.path.exists(pinned) else None


def json_listing(pin_dir: str | None = None) -> str:
    """Every loaded program as a JSON array, one object per line (``status --json``).

    From the pinned iterator's records (:func:`records_json`) when a policy
    pinned one under ``pin_dir``; otherwise the kernel writes the rows itself
    (:func:`build_core_json_program`), and this only brackets them.
    """
    pinned = _pinned(pin_dir)
    if pinned is not None:
        return records_json(read_pinned(pinned), pinned)
    return json_array(_run_own_iterator(pin_dir, as_json=True))


def json_array(text: bytes, source: str = "status iterator") -> str:
    """The JSON iterator's rows (each ending ``,\\n``) as :func:`records_json`'s array.

    The listing always holds the iterator itself, so no rows, or a cut row,
    means the kernel refused to print them: an error, never an empty list.
    """
    if not text.endswith(b"},\n"):
        raise Error(
            f"{source}: printed {len(text)} bytes, not whole JSON rows "
            "(the kernel's bpf_seq_printf refused them)"
        )
    return "[\n" + text[:-2].decode(errors="replace") + "\n]\n"


# ------------------------------------------------------------- JSON from records
def _json_str(s: str) -> str:
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    import json

    return json.dumps(s)


#: Name bytes that JSON takes as they are (printable ASCII but the quote and backslash).
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


#: ... and the NUL that pads a name (the kernel's names are letters, digits, '_' and '.')
_PLAIN_OR_NUL = _PLAIN + b"\0"


def records_json(raw: bytes, source: str, boot_ns: int | None = None) -> str:
    """The records as a JSON array, one object per line, keys sorted.

    The values of ``json.dumps(row.as_dict(), sort_keys=True)`` for each parsed row
    (tests/test_status_core.py checks), and the text the JSON iterator prints for
    the same program. Made straight from the records: no :class:`ProgStatus`
    objects and no json module. The common case -- every name plain, every
    type, verdict and keyring one that has a name -- is one comprehension with no
    call per record but the field conversions; anything else takes
    :func:`_json_rows`. ``loaded_at`` keeps its three decimals
    (``1733360000.120``), as the iterator prints them.
    """
    check_size(raw, source)
    count = len(raw) // RECORD_SIZE
    magic = MAGIC.to_bytes(2, "little")
    if raw[MAGIC_OFFSET::RECORD_SIZE] != magic[:1] * count or (
        raw[MAGIC_OFFSET + 1 :: RECORD_SIZE] != magic[1:] * count
    ):
        parse(raw, source)  # raises, naming the first record's wrong format
    boot = boot_offset_ns() if boot_ns is None else boot_ns
    if b"".join(names_of(raw)).translate(None, _PLAIN_OR_NUL):  # a name to escape
        return _array(_json_rows(raw, boot))
    types, verdicts, keyrings, nul = PROG_TYPES, VERDICT_NAMES, KEYRING_NAMES, b"\0"
    try:  # (the names in these tables need no escaping: tests/test_status_core.py)
        rows = [
            f'{{"id": {pid}, "keyring_serial": {serial}, "keyring_type": "{keyrings[kt]}", '
            f'"load_time_ns": {t}, "loaded_at": {(boot + t) // 1000000 / 1000:.3f}, '
            f'"name": "{name.partition(nul)[0].decode()}", "tag": "{tag.hex()}", '
            f'"type": {pt}, "type_name": "{types[pt]}", "verdict": "{verdicts[v]}"}}'
            for pid, pt, tag, t, name, serial, v, kt, _ in RECORD.iter_unpack(raw)
        ]
    except IndexError:  # a type, verdict or keyring value with no name
        rows = _json_rows(raw, boot)
    return _array(rows)


def _array(rows: list[str]) -> str:
    return "[\n" + ",\n".join(rows) + "\n]\n"


def _json_rows(raw: bytes, boot_ns: int) -> list[str]:
    """:func:`records_json`'s rows for any records: names escaped, unnamed values named."""
    tails: dict[tuple[int, int], str] = {}  # the type and verdict fields close each object
    keyrings: dict[int, str] = {}
    rows = []
    for pid, ptype, tag, load_time, name, serial, verdict, ktype, _ in RECORD.iter_unpack(raw):
        tail = tails.get((ptype, verdict))
        if tail is None:
            tail = tails[ptype, verdict] = (
                f'"type": {ptype}, "type_name": {_json_str(prog_type_name(ptype))}, '
                f'"verdict": {_json_str(enum_name(VERDICT_NAMES, verdict))}}}'
            )
        k = keyrings.get(ktype)
        if k is None:
            k = keyrings[ktype] = _json_str(enum_name(KEYRING_NAMES, ktype))
        raw_name = name.partition(b"\0")[0]
        if raw_name.translate(None, _PLAIN):
            n = _json_str(raw_name.decode(errors="replace"))
        else:
            n = f'"{raw_name.decode()}"'
        rows.append(
            f'{{"id": {pid}, "keyring_serial": {serial}, "keyring_type": {k}, '
            f'"load_time_ns": {load_time}, '
            f'"loaded_at": {(boot_ns + load_time) // 1000000 / 1000:.3f}, '
            f'"name": {n}, "tag": "{tag.hex()}", {tail}'
        )
    return rows


def list_programs(pin_dir: str | None = None) -> list[ProgStatus]:
    """Every loaded program with its verdict (:func:`read_records`, then :func:`parse`).

    A kernel that records no verdict gets :class:`~bpfsign.errors.UnsupportedFeature`.
    """
    return parse(*read_records(pin_dir))
