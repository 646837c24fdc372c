"""What a light skeleton's loader program does inside, and where it stopped.

The loader (libbpf's gen_loader output, docs/lskel.md §8) makes its own
``bpf()`` calls through the ``sys_bpf`` helper, each as ``r1 = cmd;
r2 = &blob[attr]; r3 = size; call sys_bpf`` over an attr template in the
loader map's value. When one fails, the loader returns the negative errno and
nothing else. Two things still tell where it stopped:

* the attr templates are filled at run time, just before their call: the
  map fd of MAP_UPDATE_ELEM/MAP_FREEZE, the ``insns`` pointer of PROG_LOAD.
  Read back from the loader map after the run, the last filled template is
  the last call reached;
* each inner PROG_LOAD takes its log level and buffer from the ctx, so a
  second run with a log buffer in the ctx yields the failing program's
  verifier log.

This module decodes the calls from the instructions and reads those marks; it
makes no syscall.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from . import consts as C

__all__ = ["InnerCall", "inner_calls", "locate_failure"]

FUNC_SYS_BPF = 166
_MOV64_IMM = 0xB7
_STX_MEM_W = 0x63
_LD_IMM64 = 0x18
_CALL = 0x85
_PSEUDO_MAP_IDX_VALUE = 6
# offsets inside union bpf_attr
_MAP_NAME = 28  # BPF_MAP_CREATE map_name[16]
_PROG_NAME = 48  # BPF_PROG_LOAD prog_name[16]
_PROG_INSNS = 8  # BPF_PROG_LOAD insns (u64), stored just before the call
_ELEM_MAP_FD = 0  # BPF_MAP_UPDATE_ELEM / BPF_MAP_FREEZE map_fd (u32), ditto


@dataclass(frozen=True)
class InnerCall:
    """One ``sys_bpf`` call of the loader program."""

    pc: int
    cmd: int
    attr: int  # offset of its attr in the loader map value (the data blob)
    size: int
    target: str  # "map counts", "program count_getpid", "BTF", ...
    fd_slot: int | None = None  # where a successful MAP_CREATE stores its fd in the blob

    @property
    def command(self) -> str:
        return C.COMMAND_NAMES.get(self.cmd, f"bpf cmd {self.cmd}")

    def describe(self) -> str:
        return f"{self.command} of {self.target}" if self.target else self.command

    def status(self, blob: bytes) -> str | None:
        """What the marks in ``blob`` say of this call after a run.

        "done" (a MAP_CREATE whose fd was stored), "reached" (its attr was filled
        just before the call), "not done"/"not reached" (no mark), None (no mark
        is ever left).
        """
        if self.cmd == C.PROG_LOAD:
            return "reached" if _u(blob, self.attr + _PROG_INSNS, 8) else "not reached"
        if self.cmd in (C.MAP_UPDATE_ELEM, C.MAP_FREEZE):
            return "reached" if _u(blob, self.attr + _ELEM_MAP_FD, 4) else "not reached"
        if self.cmd == C.MAP_CREATE and self.fd_slot is not None:
            return "done" if _u(blob, self.fd_slot, 4) else "not done"
        return None


def _u(blob: bytes, off: int, size: int) -> int:
    if off < 0 or off + size > len(blob):
        return 0
    return int.from_bytes(blob[off : off + size], "little")


def _cstr(data: bytes, off: int, n: int = C.OBJ_NAME_LEN) -> str:
    raw = data[off : off + n]
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def inner_calls(insns: bytes, data: bytes) -> list[InnerCall]:
    """The loader's ``sys_bpf`` calls in program order (little-endian loaders)."""
    out: list[InnerCall] = []
    regs: dict[int, int] = {}  # r1..r3 as last set by a constant
    current_map = ""
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, rr, _off, imm = struct.unpack_from("<BBhi", insns, pc * 8)
        dst, src = rr & 0xF, rr >> 4
        if op == _LD_IMM64 and pc + 1 < n:
            hi = struct.unpack_from("<i", insns, pc * 8 + 12)[0]
            if src == _PSEUDO_MAP_IDX_VALUE and imm == 0:
                regs[dst] = hi
            else:
                regs.pop(dst, None)
            pc += 2
            continue
        if op == _MOV64_IMM:
            regs[dst] = imm
        elif op == _STX_MEM_W and src == 7 and dst in regs and out:
            # *(u32 *)(blob + X) = r7 right after a MAP_CREATE: its fd slot
            last = out[-1]
            if last.cmd == C.MAP_CREATE and last.fd_slot is None:
                out[-1] = InnerCall(
                    last.pc, last.cmd, last.attr, last.size, last.target, regs[dst] + _off
                )
        elif op == _CALL and src == 0:
            if imm == FUNC_SYS_BPF and all(r in regs for r in (1, 2, 3)):
                cmd, attr, size = regs[1], regs[2], regs[3]
                target = ""
                if cmd == C.MAP_CREATE:
                    current_map = _cstr(data, attr + _MAP_NAME)
                    target = f"map {current_map}"
                elif cmd == C.PROG_LOAD:
                    target = f"program {_cstr(data, attr + _PROG_NAME)}"
                elif cmd in (C.MAP_UPDATE_ELEM, C.MAP_FREEZE) and current_map:
                    target = f"map {current_map}"
                elif cmd == C.BTF_LOAD:
                    target = "the program's BTF"
                out.append(InnerCall(pc, cmd, attr, size, target))
            for r in range(6):
                regs.pop(r, None)
        elif dst in regs:
            regs.pop(dst)
        pc += 1
    return out


def locate_failure(calls: Sequence[InnerCall], blob: bytes | None) -> list[InnerCall]:
    """The calls the failed run may have stopped at, from the marks in ``blob``.

    Every call before the last one with a mark completed. From there on the
    candidates run up to the first call whose missing mark rules it out: one
    call when the marks pin it down; several when calls that leave no mark
    (BTF_LOAD, kernel symbol lookups) sit in between; empty when nothing is known.
    """
    if blob is None or not calls:
        return []
    status = [c.status(blob) for c in calls]
    last = max((i for i, st in enumerate(status) if st in ("done", "reached")), default=-1)
    start = last + 1 if last >= 0 and status[last] == "done" else max(last, 0)
    out: list[InnerCall] = []
    for i in range(start, len(calls)):
        st = status[i]
        if st == "not reached" and i != last:
            break
        out.append(calls[i])
        if st == "not done":
            break
        if st in ("reached", "not reached") and i != start:
            break
    return out
