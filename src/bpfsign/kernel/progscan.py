"""What the signature path reads from a program's instructions.

The digest an exclusive map's ``excl_prog_hash`` is compared with
(docs/kernel.md §7), the ``ld_imm64`` map references the verifier binds, and
the 6.18 loader's read of ``struct bpf_map`` at offset 32 (§8.1). Plain
``struct`` decoding: ``bpfsign verify`` reaches this on its start-up path.
"""

from __future__ import annotations

import struct

__all__ = ["map_loads", "program_digest", "reads_map_offset_32"]

PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 1, 2, 5, 6
LD_IMM64 = 0x18
LDX_MEM_W = 0x61
#: struct bpf_map offset 32: u32 ``excl`` on 6.18.44, the ``ops`` pointer on 7.3.4 (§8.1)
BPF_MAP_EXCL_OFFSET = 32


def _decode(insns: bytes, pc: int, big: bool) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of insn ``pc``; a big-endian insn swaps the register nibbles."""
    op, regs, off, imm = struct.unpack_from(">BBhi" if big else "<BBhi", insns, pc * 8)
    return (op, regs >> 4, regs & 0xF, off, imm) if big else (op, regs & 0xF, regs >> 4, off, imm)


def program_digest(insns: bytes, big: bool = False) -> bytes:
    """``prog->digest``: SHA-256 of the insns with MAP_FD/MAP_VALUE immediates zeroed (§7).

    The IDX forms (src_reg 5/6), which gen_loader loaders use, are not masked.
    """
    buf = bytearray(insns)
    n = len(buf) // 8
    pc = 0
    while pc < n:
        off = pc * 8
        if buf[off] == LD_IMM64 and pc + 1 < n:
            src = buf[off + 1] & 0xF if big else buf[off + 1] >> 4
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                buf[off + 4 : off + 8] = bytes(4)
                buf[off + 12 : off + 16] = bytes(4)
            pc += 2
            continue
        pc += 1
    import hashlib  # not at the top: verify of a plain file never needs it (start-up cost)

    return hashlib.sha256(bytes(buf)).digest()


def map_loads(insns: bytes, big: bool = False) -> list[tuple[int, int, int]]:
    """(pc, src_reg, imm) of every ``ld_imm64`` that names a map (src_reg 1, 2, 5 or 6)."""
    out = []
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, _dst, src, _off, imm = _decode(insns, pc, big)
        if op == LD_IMM64:
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE):
                out.append((pc, src, imm))
            pc += 2
            continue
        pc += 1
    return out


def reads_map_offset_32(insns: bytes, big: bool = False) -> int | None:
    """The pc of a u32 load at offset 32 from a register holding a map (ld_imm64 src 1/5).

    The bpftool <= 7.8 -S loader's exclusivity check (``61 12 20 00 …``): a
    straight-line register track is enough for that prefix.
    """
    map_regs: set[int] = set()
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, dst, src, off, _imm = _decode(insns, pc, big)
        if op == LD_IMM64:
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX):
                map_regs.add(dst)
            else:
                map_regs.discard(dst)
            pc += 2
            continue
        if op == LDX_MEM_W and src in map_regs and off == BPF_MAP_EXCL_OFFSET:
            return pc
        cls = op & 0x07
        if cls in (0x04, 0x07, 0x01) or cls == 0x00:  # ALU, ALU64, LDX, LD
            map_regs.discard(dst)
        elif cls in (0x05, 0x06) and (op & 0xF0) in (0x80, 0x90):  # call / exit
            map_regs.difference_update(range(6))
        pc += 1
    return None
