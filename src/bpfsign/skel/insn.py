"""eBPF instruction codec: decode, encode, disassemble, and cut a range out.

Light-skeleton loaders are plain eBPF programs. Converting a bpftool ``-S``
loader to the load-time scheme means deleting its in-loader check block and
re-pointing every jump that crosses it; everything here serves that and the
``inspect --disasm`` view.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ..errors import InputError

Endian = Literal["little", "big"]

INSN_SIZE = 8

# Instruction classes (code & 0x07).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)

# Sizes (code & 0x18) and modes (code & 0xe0) for loads/stores.
_SIZE_NAME = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0

# Jump ops (code & 0xf0).
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE = (
    0x00,
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
    0x80,
    0x90,
    0xA0,
    0xB0,
    0xC0,
    0xD0,
)
_JMP_OP = {
    JEQ: "==",
    JGT: ">",
    JGE: ">=",
    JSET: "&",
    JNE: "!=",
    JSGT: "s>",
    JSGE: "s>=",
    JLT: "<",
    JLE: "<=",
    JSLT: "s<",
    JSLE: "s<=",
}
_ALU_OP = {
    0x00: "+=",
    0x10: "-=",
    0x20: "*=",
    0x30: "/=",
    0x40: "|=",
    0x50: "&=",
    0x60: "<<=",
    0x70: ">>=",
    0x90: "%=",
    0xA0: "^=",
    0xB0: "=",
    0xC0: "s>>=",
}
ALU_NEG, ALU_END, ALU_MOV = 0x80, 0xD0, 0xB0
OP_LD_IMM64 = LD | 0x18 | MODE_IMM  # 0x18

# ld_imm64 pseudo source registers (docs/kernel.md §2).
(
    PSEUDO_MAP_FD,
    PSEUDO_MAP_VALUE,
    PSEUDO_BTF_ID,
    PSEUDO_FUNC,
    PSEUDO_MAP_IDX,
    PSEUDO_MAP_IDX_VALUE,
) = (
    1,
    2,
    3,
    4,
    5,
    6,
)
PSEUDO_NAMES = {
    PSEUDO_MAP_FD: "MAP_FD",
    PSEUDO_MAP_VALUE: "MAP_VALUE",
    PSEUDO_BTF_ID: "BTF_ID",
    PSEUDO_FUNC: "FUNC",
    PSEUDO_MAP_IDX: "MAP_IDX",
    PSEUDO_MAP_IDX_VALUE: "MAP_IDX_VALUE",
}
# call src_reg values.
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2

#: Helper names for the ids gen_loader loaders use, plus the commonest others.
HELPERS: dict[int, str] = {
    1: "map_lookup_elem",
    2: "map_update_elem",
    3: "map_delete_elem",
    4: "probe_read",
    5: "ktime_get_ns",
    6: "trace_printk",
    12: "tail_call",
    14: "get_current_pid_tgid",
    16: "get_current_comm",
    25: "perf_event_output",
    112: "probe_read_user",
    113: "probe_read_kernel",
    114: "probe_read_user_str",
    115: "probe_read_kernel_str",
    130: "ringbuf_output",
    131: "ringbuf_reserve",
    132: "ringbuf_submit",
    148: "copy_from_user",
    166: "sys_bpf",
    167: "btf_find_by_name_kind",
    168: "sys_close",
    179: "kallsyms_lookup_name",
}


@dataclass(frozen=True)
class Insn:
    """One 8-byte slot. An ``ld_imm64`` is two slots; the second has code 0."""

    code: int
    dst: int
    src: int
    off: int
    imm: int

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def op(self) -> int:
        return self.code & 0xF0

    @property
    def is_ld_imm64(self) -> bool:
        return self.code == OP_LD_IMM64

    @property
    def is_jump(self) -> bool:
        """A JMP/JMP32 branch (not call, not exit): it has a pc-relative target."""
        return self.cls in (JMP, JMP32) and self.op not in (CALL, EXIT)

    @property
    def is_call(self) -> bool:
        return self.cls == JMP and self.op == CALL

    @property
    def is_pseudo_call(self) -> bool:
        """A BPF-to-BPF call: ``imm`` is pc-relative."""
        return self.is_call and self.src == PSEUDO_CALL

    @property
    def is_gotol(self) -> bool:
        """``JMP32 | JA``: an unconditional jump whose offset is in ``imm``."""
        return self.cls == JMP32 and self.op == JA

    def rel(self) -> int | None:
        """The pc-relative displacement this slot carries, if any."""
        if self.is_gotol or self.is_pseudo_call or (self.is_ld_imm64 and self.src == PSEUDO_FUNC):
            return self.imm
        if self.is_jump:
            return self.off
        return None

    def with_rel(self, rel: int) -> Insn:
        if self.is_gotol or self.is_pseudo_call or (self.is_ld_imm64 and self.src == PSEUDO_FUNC):
            return replace(self, imm=rel)
        return replace(self, off=rel)


def decode(data: bytes, endian: Endian = "little") -> list[Insn]:
    """Split ``data`` into slots. The register nibbles swap with the byte order."""
    if len(data) % INSN_SIZE:
        raise InputError(f"instruction blob is {len(data)} bytes, not a multiple of {INSN_SIZE}")
    fmt = "<BBhi" if endian == "little" else ">BBhi"
    out = []
    for code, regs, off, imm in struct.iter_unpack(fmt, data):
        if endian == "little":
            dst, src = regs & 0x0F, regs >> 4
        else:
            dst, src = regs >> 4, regs & 0x0F
        out.append(Insn(code, dst, src, off, imm))
    return out


def encode(insns: Iterable[Insn], endian: Endian = "little") -> bytes:
    fmt = struct.Struct("<BBhi" if endian == "little" else ">BBhi")
    parts = []
    for i in insns:
        regs = (i.dst | i.src << 4) if endian == "little" else (i.dst << 4 | i.src)
        parts.append(fmt.pack(i.code, regs, i.off, i.imm))
    return b"".join(parts)


def detect_endian(data: bytes) -> Endian:
    """Byte order of a gen_loader program.

    Every loader starts with ``r6 = r1`` (``bf 16`` little, ``bf 61`` big);
    otherwise fall back to which order gives plausible register numbers.
    """
    if len(data) >= 2 and data[0] == 0xBF:
        if data[1] == 0x16:
            return "little"
        if data[1] == 0x61:
            return "big"
    sample = data[: min(len(data) - len(data) % 8, 800)]

    def plausible(endian: Endian) -> int:
        return sum(
            i.dst <= 10 and i.src <= 10 and abs(i.off) < 4096 for i in decode(sample, endian)
        )

    return "little" if plausible("little") >= plausible("big") else "big"


def ld_imm64_value(lo: Insn, hi: Insn) -> int:
    return (lo.imm & 0xFFFFFFFF) | (hi.imm & 0xFFFFFFFF) << 32


def slot_starts(insns: Sequence[Insn]) -> list[bool]:
    """For each slot, whether an instruction starts there (False on ld_imm64 second halves)."""
    starts = [True] * len(insns)
    i = 0
    while i < len(insns):
        if insns[i].is_ld_imm64 and i + 1 < len(insns):
            starts[i + 1] = False
            i += 2
        else:
            i += 1
    return starts


def targets(insns: Sequence[Insn]) -> dict[int, int]:
    """pc -> target pc for every slot that carries a pc-relative displacement."""
    starts = slot_starts(insns)
    out = {}
    for pc, insn in enumerate(insns):
        if not starts[pc]:
            continue
        rel = insn.rel()
        if rel is not None:
            out[pc] = pc + 1 + rel
    return out


@dataclass(frozen=True)
class Removal:
    """What ``remove_range`` did."""

    start: int
    count: int
    fixed: tuple[int, ...]  # old pcs of the jumps/calls whose displacement changed


def remove_range(
    insns: bytes,
    start: int,
    count: int,
    *,
    endian: Endian = "little",
    allow_entry_at_start: bool = False,
) -> bytes:
    """Delete ``count`` slots at ``start`` and re-point every jump that crosses them."""
    return remove_range_ex(
        insns, start, count, endian=endian, allow_entry_at_start=allow_entry_at_start
    )[0]


def remove_range_ex(
    insns: bytes,
    start: int,
    count: int,
    *,
    endian: Endian = "little",
    allow_entry_at_start: bool = False,
) -> tuple[bytes, Removal]:
    """``remove_range`` that also says which jumps it fixed.

    A jump from outside into the range has nowhere to go and is refused. The
    one exception (``allow_entry_at_start``, docs/lskel.md §10.7) is a jump to the
    range's first slot: it then lands on whatever follows the range.
    """
    slots = decode(insns, endian)
    end = start + count
    if start < 0 or count <= 0 or end > len(slots):
        raise InputError(f"cannot remove insns {start}..{end - 1}: program has {len(slots)}")
    starts = slot_starts(slots)
    if not starts[start] or (end < len(slots) and not starts[end]):
        raise InputError(f"insns {start}..{end - 1} split an ld_imm64 pair")

    def new_pc(old: int) -> int:
        return old if old < start else old - count

    out: list[Insn] = []
    fixed = []
    for pc, insn in enumerate(slots):
        if start <= pc < end:
            continue
        rel = insn.rel() if starts[pc] else None
        if rel is not None:
            target = pc + 1 + rel
            if start <= target < end:
                if not (allow_entry_at_start and target == start):
                    raise InputError(
                        f"insn {pc} jumps to {target}, inside the range {start}..{end - 1} "
                        "being removed; refusing to guess where it should go"
                    )
                new_target = start
            else:
                new_target = new_pc(target)
            new_rel = new_target - new_pc(pc) - 1
            if new_rel != rel:
                limit = (
                    (1 << 31)
                    if (insn.is_gotol or insn.is_pseudo_call or insn.is_ld_imm64)
                    else (1 << 15)
                )
                if not -limit <= new_rel < limit:
                    raise InputError(f"insn {pc}: new displacement {new_rel} does not fit")
                insn = insn.with_rel(new_rel)
                fixed.append(pc)
        out.append(insn)
    return encode(out, endian), Removal(start, count, tuple(fixed))


# ---------------------------------------------------------------- disassembler


def _reg(n: int, wide: bool = True) -> str:
    return f"{'r' if wide else 'w'}{n}"


def _mem(size: int, reg: int, off: int) -> str:
    return f"*({_SIZE_NAME[size]} *)(r{reg} {off:+d})"


def _hex(v: int) -> str:
    return f"0x{v:x}" if v >= 0 else f"-0x{-v:x}"


def format_insn(insn: Insn, pc: int, nxt: Insn | None = None) -> str:
    """One instruction as bpftool-like text (``nxt`` is the ld_imm64 second slot)."""
    c, cls, op = insn.code, insn.cls, insn.op
    if insn.is_ld_imm64 and nxt is not None:
        value = ld_imm64_value(insn, nxt)
        d = _reg(insn.dst)
        if insn.src == PSEUDO_MAP_FD:
            return f"{d} = map[fd:{insn.imm}]"
        if insn.src == PSEUDO_MAP_VALUE:
            return f"{d} = map[fd:{insn.imm}][0]+{nxt.imm}"
        if insn.src == PSEUDO_MAP_IDX:
            return f"{d} = map[idx:{insn.imm}]"
        if insn.src == PSEUDO_MAP_IDX_VALUE:
            return f"{d} = map[idx:{insn.imm}][0]+{nxt.imm}"
        if insn.src == PSEUDO_BTF_ID:
            return f"{d} = btf_id[{insn.imm}]"
        if insn.src == PSEUDO_FUNC:
            return f"{d} = subprog[{insn.imm:+d}]"
        return f"{d} = 0x{value:x} ll"
    if cls in (ALU, ALU64):
        wide = cls == ALU64
        d = _reg(insn.dst, wide)
        src = _reg(insn.src, wide) if c & 0x08 else str(insn.imm)
        if op == ALU_NEG:
            return f"{d} = -{d}"
        if op == ALU_END:
            kind = ("be" if c & 0x08 else "le") if cls == ALU else "bswap"
            return f"{_reg(insn.dst)} = {kind}{insn.imm} {_reg(insn.dst)}"
        if op == ALU_MOV and insn.off and c & 0x08:
            return f"{d} = (s{insn.off}){src}"
        if op in (0x30, 0x90) and insn.off == 1:
            return f"{d} s{_ALU_OP[op]} {src}"
        name = _ALU_OP.get(op)
        return f"{d} {name} {src}" if name else f"<alu 0x{c:02x}>"
    if cls == LDX:
        mode = c & 0xE0
        if mode in (MODE_MEM, MODE_MEMSX):
            sx = "s" if mode == MODE_MEMSX else ""
            return f"{_reg(insn.dst)} = {sx}{_mem(c & 0x18, insn.src, insn.off)}"
    if cls == ST and c & 0xE0 == MODE_MEM:
        return f"{_mem(c & 0x18, insn.dst, insn.off)} = {insn.imm}"
    if cls == STX:
        mode = c & 0xE0
        if mode == MODE_MEM:
            return f"{_mem(c & 0x18, insn.dst, insn.off)} = {_reg(insn.src)}"
        if mode == MODE_ATOMIC:
            return (
                f"lock {_mem(c & 0x18, insn.dst, insn.off)} atomic(0x{insn.imm:x}) {_reg(insn.src)}"
            )
    if cls in (JMP, JMP32):
        wide = cls == JMP
        if op == EXIT:
            return "exit"
        if op == CALL:
            if insn.src == PSEUDO_CALL:
                return f"call pc{insn.imm:+d}"
            if insn.src == PSEUDO_KFUNC_CALL:
                return f"call kfunc#{insn.imm}"
            return f"call {HELPERS.get(insn.imm, 'helper')}#{insn.imm}"
        if op == JA:
            return f"gotol pc{insn.imm:+d}" if cls == JMP32 else f"goto pc{insn.off:+d}"
        a = _reg(insn.dst, wide)
        b = _reg(insn.src, wide) if c & 0x08 else _hex(insn.imm)
        return f"if {a} {_JMP_OP.get(op, '?')} {b} goto pc{insn.off:+d}"
    if cls == LD and c & 0xE0 in (MODE_ABS, MODE_IND):
        return f"r0 = ld_{'abs' if c & 0xE0 == MODE_ABS else 'ind'} {_SIZE_NAME[c & 0x18]}"
    return f"<unknown 0x{c:02x}>"


def disasm(insns: bytes | Sequence[Insn], endian: Endian = "little") -> list[str]:
    """bpftool-style listing: ``   7: (61) r1 = *(u32 *)(r10 -136)``."""
    slots = decode(insns, endian) if isinstance(insns, bytes | bytearray) else list(insns)
    out = []
    pc = 0
    while pc < len(slots):
        insn = slots[pc]
        if insn.is_ld_imm64 and pc + 1 < len(slots):
            out.append(f"{pc:4d}: ({insn.code:02x}) {format_insn(insn, pc, slots[pc + 1])}")
            pc += 2
        else:
            out.append(f"{pc:4d}: ({insn.code:02x}) {format_insn(insn, pc)}")
            pc += 1
    return out
