"""A small eBPF program builder on the instruction codec.

The policy, status and audit programs are a few dozen instructions each;
writing them as C would drag clang and libbpf's CO-RE into the tool. Here a
program is built in Python: named labels with forward and backward jumps,
helper calls by name, map references, and BTF-typed field loads whose offsets
the caller computed from the running kernel's BTF (docs/kernel.md §10: the layout
of ``prog->aux->sig`` is one build's, never a constant). :meth:`disasm` shows
what was built, with labels, helper names and the field each load reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import InputError
from . import insn as I

#: Helper ids (UAPI ``enum bpf_func_id``, stable ABI); a kernel's BTF may supply more.
HELPER_IDS: dict[str, int] = {
    "map_lookup_elem": 1,
    "map_update_elem": 2,
    "map_delete_elem": 3,
    "probe_read": 4,
    "ktime_get_ns": 5,
    "trace_printk": 6,
    "get_prandom_u32": 7,
    "get_smp_processor_id": 8,
    "tail_call": 12,
    "get_current_pid_tgid": 14,
    "get_current_uid_gid": 15,
    "get_current_comm": 16,
    "perf_event_output": 25,
    "probe_read_user": 112,
    "probe_read_kernel": 113,
    "probe_read_user_str": 114,
    "probe_read_kernel_str": 115,
    "ktime_get_boot_ns": 125,
    "seq_printf": 126,
    "seq_write": 127,
    "ringbuf_output": 130,
    "ringbuf_reserve": 131,
    "ringbuf_submit": 132,
    "ringbuf_discard": 133,
    "ringbuf_query": 134,
    "sys_bpf": 166,
    "btf_find_by_name_kind": 167,
    "sys_close": 168,
    "kallsyms_lookup_name": 179,
}

_SIZES = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}
_ALU = {
    "+=": 0x00,
    "-=": 0x10,
    "*=": 0x20,
    "/=": 0x30,
    "|=": 0x40,
    "&=": 0x50,
    "<<=": 0x60,
    ">>=": 0x70,
    "%=": 0x90,
    "^=": 0xA0,
    "=": 0xB0,
    "s>>=": 0xC0,
}
_JMP = {
    "==": I.JEQ,
    ">": I.JGT,
    ">=": I.JGE,
    "&": I.JSET,
    "!=": I.JNE,
    "s>": I.JSGT,
    "s>=": I.JSGE,
    "<": I.JLT,
    "<=": I.JLE,
    "s<": I.JSLT,
    "s<=": I.JSLE,
}
_BPF_X = 0x08
_TO_BE = 0x08  # BPF_END's source bit: convert to big-endian
_ATOMIC_ADD = 0x00


@dataclass(frozen=True)
class Reg:
    """A register, r0..r10 (r10 is the read-only frame pointer)."""

    n: int

    def __repr__(self) -> str:
        return f"r{self.n}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (Reg(n) for n in range(11))


@dataclass(frozen=True)
class FieldAccess:
    """One load of a BTF-typed field path: a pointer hop, or the field itself.

    ``offset``/``size`` are bytes from the object the previous hop loaded; a
    bitfield is read as its ``size``-byte storage unit, shifted right by
    ``bit_offset`` and cut to ``bit_size`` bits. ``what`` names the field for
    the disassembly.
    """

    offset: int
    size: int
    signed: bool
    bit_offset: int
    bit_size: int
    what: str


@dataclass
class _Jump:
    insn: I.Insn
    label: str


_Item = I.Insn | _Jump | tuple[I.Insn, I.Insn]


class ProgramBuilder:
    """Append instructions, then :meth:`assemble` (labels resolved) or :meth:`disasm`."""

    def __init__(self, helpers: Mapping[str, int] | None = None) -> None:
        self._items: list[_Item] = []
        self._labels: dict[str, int] = {}  # label -> item index
        self._notes: dict[int, str] = {}  # item index -> comment
        self._helpers = dict(HELPER_IDS)
        if helpers:
            self._helpers.update(helpers)
        self._helper_names = {v: k for k, v in self._helpers.items()}

    # -------------------------------------------------------------- plumbing
    def _emit(self, item: _Item, note: str = "") -> ProgramBuilder:
        if note:
            self._notes[len(self._items)] = note
        self._items.append(item)
        return self

    def label(self, name: str) -> ProgramBuilder:
        """Name the next instruction, as a jump target."""
        if name in self._labels:
            raise InputError(f"program builder: label {name!r} defined twice")
        self._labels[name] = len(self._items)
        return self

    def comment(self, text: str) -> ProgramBuilder:
        """Attach ``text`` to the next instruction in the disassembly."""
        idx = len(self._items)
        self._notes[idx] = f"{self._notes[idx]}; {text}" if idx in self._notes else text
        return self

    @staticmethod
    def _reg(r: Reg) -> int:
        if not isinstance(r, Reg):
            raise InputError(f"program builder: expected a register, got {r!r}")
        return r.n

    @staticmethod
    def _imm32(v: int) -> int:
        if not -(1 << 31) <= v < (1 << 32):
            raise InputError(f"program builder: immediate {v} does not fit 32 bits")
        return v - (1 << 32) if v >= 1 << 31 else v

    # ------------------------------------------------------------------- ALU
    def alu(self, op: str, dst: Reg, src: Reg | int, *, wide: bool = True) -> ProgramBuilder:
        """``dst op= src`` (``op`` as in C: ``+=``, ``&=``, ``=`` …); 32-bit when not ``wide``."""
        if op not in _ALU:
            raise InputError(f"program builder: unknown ALU op {op!r}")
        cls = I.ALU64 if wide else I.ALU
        if isinstance(src, Reg):
            return self._emit(I.Insn(cls | _ALU[op] | _BPF_X, self._reg(dst), src.n, 0, 0))
        return self._emit(I.Insn(cls | _ALU[op], self._reg(dst), 0, 0, self._imm32(src)))

    def mov(self, dst: Reg, src: Reg | int, *, wide: bool = True) -> ProgramBuilder:
        return self.alu("=", dst, src, wide=wide)

    def ld_imm64(self, dst: Reg, value: int, *, src: int = 0, note: str = "") -> ProgramBuilder:
        value &= (1 << 64) - 1
        lo, hi = value & 0xFFFFFFFF, value >> 32
        return self._emit(
            (
                I.Insn(I.OP_LD_IMM64, self._reg(dst), src, 0, self._imm32(lo)),
                I.Insn(0, 0, 0, 0, self._imm32(hi)),
            ),
            note,
        )

    def ld_map_fd(self, dst: Reg, fd: int, name: str = "") -> ProgramBuilder:
        """``dst = &map`` (ld_imm64 with BPF_PSEUDO_MAP_FD)."""
        return self.ld_imm64(dst, fd, src=I.PSEUDO_MAP_FD, note=f"map {name}" if name else "")

    def ld_map_value(self, dst: Reg, fd: int, offset: int = 0, name: str = "") -> ProgramBuilder:
        """``dst = &map.value[0] + offset`` (BPF_PSEUDO_MAP_VALUE; ARRAY maps)."""
        return self.ld_imm64(
            dst, fd | offset << 32, src=I.PSEUDO_MAP_VALUE, note=f"&{name or 'map'}.value+{offset}"
        )

    def ld_map_idx_value(
        self, dst: Reg, index: int, offset: int = 0, name: str = ""
    ) -> ProgramBuilder:
        """``dst = &fd_array[index].value[0] + offset`` (BPF_PSEUDO_MAP_IDX_VALUE).

        The map is named by its place in the load's ``fd_array``, not by an fd, so a
        program that reads constants from a map can itself be a constant.
        """
        return self.ld_imm64(
            dst,
            index | offset << 32,
            src=I.PSEUDO_MAP_IDX_VALUE,
            note=f"&{name or f'fd_array[{index}]'}.value+{offset}",
        )

    def to_be(self, dst: Reg, bits: int) -> ProgramBuilder:
        """``dst = htobe{bits}(dst)``: byte order for printing a byte array as one number."""
        if bits not in (16, 32, 64):
            raise InputError(f"program builder: cannot byte-swap {bits} bits")
        return self._emit(I.Insn(I.ALU | I.ALU_END | _TO_BE, self._reg(dst), 0, 0, bits))

    # --------------------------------------------------------------- memory
    def ldx(self, size: int, dst: Reg, src: Reg, off: int, note: str = "") -> ProgramBuilder:
        """``dst = *(u{size*8} *)(src + off)`` (zero-extended)."""
        return self._emit(
            I.Insn(
                I.LDX | I.MODE_MEM | self._size(size),
                self._reg(dst),
                self._reg(src),
                self._off(off),
                0,
            ),
            note,
        )

    def stx(self, size: int, dst: Reg, off: int, src: Reg) -> ProgramBuilder:
        """``*(u{size*8} *)(dst + off) = src``."""
        return self._emit(
            I.Insn(
                I.STX | I.MODE_MEM | self._size(size),
                self._reg(dst),
                self._reg(src),
                self._off(off),
                0,
            )
        )

    def st(self, size: int, dst: Reg, off: int, imm: int) -> ProgramBuilder:
        """``*(u{size*8} *)(dst + off) = imm``."""
        return self._emit(
            I.Insn(
                I.ST | I.MODE_MEM | self._size(size),
                self._reg(dst),
                0,
                self._off(off),
                self._imm32(imm),
            )
        )

    def atomic_add(self, size: int, dst: Reg, off: int, src: Reg) -> ProgramBuilder:
        """``lock *(u{size*8} *)(dst + off) += src``."""
        if size not in (4, 8):
            raise InputError(f"program builder: atomic add of {size} bytes (4 or 8 only)")
        return self._emit(
            I.Insn(
                I.STX | I.MODE_ATOMIC | self._size(size),
                self._reg(dst),
                self._reg(src),
                self._off(off),
                _ATOMIC_ADD,
            )
        )

    @staticmethod
    def _size(size: int) -> int:
        if size not in _SIZES:
            raise InputError(f"program builder: access size {size} (1, 2, 4 or 8)")
        return _SIZES[size]

    @staticmethod
    def _off(off: int) -> int:
        if not -(1 << 15) <= off < (1 << 15):
            raise InputError(f"program builder: offset {off} does not fit 16 bits")
        return off

    # ------------------------------------------------------ BTF-typed loads
    def load_field(self, dst: Reg, src: Reg, path: Sequence[FieldAccess]) -> ProgramBuilder:
        """``dst = src->a->b.c``: one pointer load per hop, then the field.

        On a BTF-typed pointer (tracing, LSM and iterator programs) the
        verifier turns these into fault-tolerant PROBE_MEM loads. The field is
        zero-extended; a signed one is sign-extended, a bitfield cut to width.
        """
        if not path:
            raise InputError("program builder: empty field path")
        base = src
        for hop in path[:-1]:
            self.ldx(8, dst, base, hop.offset, note=f"{hop.what} (pointer)")
            base = dst
        last = path[-1]
        if last.size not in _SIZES:
            raise InputError(
                f"program builder: {last.what} is {last.size} bytes; copy it with copy_field"
            )
        self.ldx(last.size, dst, base, last.offset, note=last.what)
        if last.bit_size:
            self.alu("<<=", dst, 64 - last.bit_offset - last.bit_size)
            self.alu("s>>=" if last.signed else ">>=", dst, 64 - last.bit_size)
        elif last.signed and last.size < 8:
            self.alu("<<=", dst, 64 - last.size * 8)
            self.alu("s>>=", dst, 64 - last.size * 8)
        return self

    def copy_field(
        self,
        dst: Reg,
        dst_off: int,
        src: Reg,
        path: Sequence[FieldAccess],
        tmp: Reg,
        *,
        max_size: int | None = None,
    ) -> ProgramBuilder:
        """Copy the bytes of ``src->…->field`` (an array or struct) to ``dst + dst_off``.

        Pointer hops are loaded into ``tmp``; the copy goes in 8/4/2/1-byte
        chunks through ``tmp`` as well.
        """
        base = src
        for hop in path[:-1]:
            self.ldx(8, tmp, base, hop.offset, note=f"{hop.what} (pointer)")
            base = tmp
        last = path[-1]
        size = last.size if max_size is None else min(last.size, max_size)
        if base is tmp and size:
            raise InputError(
                "program builder: copy_field through a pointer hop needs the "
                "hop in a register other than tmp; load it with load_field first"
            )
        done = 0
        while done < size:
            chunk = next(c for c in (8, 4, 2, 1) if c <= size - done)
            self.ldx(
                chunk, tmp, base, last.offset + done, note=f"{last.what}[{done}:{done + chunk}]"
            )
            self.stx(chunk, dst, dst_off + done, tmp)
            done += chunk
        return self

    # --------------------------------------------------------------- control
    def jmp(
        self, op: str, dst: Reg, src: Reg | int, label: str, *, wide: bool = True
    ) -> ProgramBuilder:
        """``if dst op src goto label`` (unsigned unless ``s<`` …; 32-bit when not ``wide``)."""
        if op not in _JMP:
            raise InputError(f"program builder: unknown jump condition {op!r}")
        cls = I.JMP if wide else I.JMP32
        if isinstance(src, Reg):
            ins = I.Insn(cls | _JMP[op] | _BPF_X, self._reg(dst), src.n, 0, 0)
        else:
            ins = I.Insn(cls | _JMP[op], self._reg(dst), 0, 0, self._imm32(src))
        return self._emit(_Jump(ins, label))

    def ja(self, label: str) -> ProgramBuilder:
        """``goto label``."""
        return self._emit(_Jump(I.Insn(I.JMP | I.JA, 0, 0, 0, 0), label))

    def call(self, helper: str | int) -> ProgramBuilder:
        """Call a helper by name (``ringbuf_reserve``) or id; r1-r5 are its arguments."""
        if isinstance(helper, str):
            hid = self._helpers.get(helper.removeprefix("bpf_"))
            if hid is None:
                raise InputError(f"program builder: unknown helper {helper!r}")
        else:
            hid = helper
        return self._emit(I.Insn(I.JMP | I.CALL, 0, 0, 0, hid))

    def exit(self) -> ProgramBuilder:
        return self._emit(I.Insn(I.JMP | I.EXIT, 0, 0, 0, 0))

    def ret(self, value: int) -> ProgramBuilder:
        """``r0 = value; exit``."""
        return self.mov(R0, value).exit()

    # ------------------------------------------------------------- assembly
    @property
    def pc(self) -> int:
        """The slot the next instruction takes (an ld_imm64 takes two): where a
        relocation record or ``func_info`` points."""
        return sum(2 if isinstance(item, tuple) else 1 for item in self._items)

    def _layout(self) -> list[int]:
        """Slot index of each item (and one past the end)."""
        pcs, pc = [], 0
        for item in self._items:
            pcs.append(pc)
            pc += 2 if isinstance(item, tuple) else 1
        pcs.append(pc)
        return pcs

    def insns(self) -> list[I.Insn]:
        """The program as slots, every label resolved."""
        pcs = self._layout()
        out: list[I.Insn] = []
        for idx, item in enumerate(self._items):
            if isinstance(item, tuple):
                out.extend(item)
            elif isinstance(item, _Jump):
                if item.label not in self._labels:
                    raise InputError(f"program builder: jump to undefined label {item.label!r}")
                rel = pcs[self._labels[item.label]] - pcs[idx] - 1
                if not -(1 << 15) <= rel < (1 << 15):
                    raise InputError(f"program builder: jump to {item.label!r} is {rel} slots away")
                out.append(I.Insn(item.insn.code, item.insn.dst, item.insn.src, rel, item.insn.imm))
            else:
                out.append(item)
        if not out:
            raise InputError("program builder: empty program")
        return out

    def assemble(self) -> bytes:
        """The program as bytes, ready for BPF_PROG_LOAD."""
        return I.encode(self.insns())

    def disasm(self) -> list[str]:
        """Readable listing: labels on their own line, helper names, jump targets, notes."""
        slots = self.insns()
        pcs = self._layout()
        at_label: dict[int, list[str]] = {}
        for name, idx in self._labels.items():
            at_label.setdefault(idx, []).append(name)
        lines = []
        for idx, item in enumerate([*self._items, None]):
            for name in at_label.get(idx, []):
                lines.append(f"{name}:")
            if item is None:
                break
            pc = pcs[idx]
            text = I.format_insn(slots[pc], pc, slots[pc + 1] if isinstance(item, tuple) else None)
            ins = slots[pc]
            if isinstance(item, _Jump):
                text = text.rsplit(" pc", 1)[0] + f" {item.label}"
            elif ins.is_call and ins.src == 0:
                text = f"call {self._helper_names.get(ins.imm, 'helper')}#{ins.imm}"
            note = self._notes.get(idx)
            line = f"{pc:4d}: {text}"
            lines.append(f"{line:<44} ; {note}" if note else line)
        return lines
