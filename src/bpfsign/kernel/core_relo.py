"""CO-RE done by the kernel: a small program BTF and ``bpf_core_relo`` records for BPF_PROG_LOAD.

A program that reads kernel structs needs their offsets on the running kernel.
Instead of parsing all of ``/sys/kernel/btf/vmlinux`` in Python (about 125,000
types, seconds under emulation), the program is written against a few *local*
types that name only the members it reads, at made-up offsets; each load that
reads one carries a relocation (local root type, access string such as
``0:3:2`` = member 3, then member 2 of that, kind ``FIELD_BYTE_OFFSET``), and
the kernel matches the local types to its own by name at load time and patches
the offsets in (``core_relos``/``core_relo_cnt``/``core_relo_rec_size`` with the
local BTF as ``prog_btf_fd``, the way light-skeleton loaders do). The kernel
needs ``func_info`` for the local BTF to be attached, so the writer also makes
the program's FUNC/FUNC_PROTO.

Only what such programs use is written: INT, PTR, ARRAY, STRUCT (members by
bit offset, no bitfields), a forward ENUM (name only: enums match by name),
FUNC_PROTO and FUNC. The encoding is the kernel's BTF (``include/uapi/linux/btf.h``).
"""

from __future__ import annotations

import struct

MAGIC = 0xEB9F
HDR = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type_off/len, str_off/len
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_ENUM = 1, 2, 3, 4, 6
KIND_FUNC, KIND_FUNC_PROTO = 12, 13
INT_SIGNED = 1
FUNC_GLOBAL = 1
#: ``enum bpf_core_relo_kind``: the byte offset of a field (libbpf's BPF_CORE_FIELD_BYTE_OFFSET)
FIELD_BYTE_OFFSET = 0
RELO = struct.Struct(
    "<IIII"
)  # struct bpf_core_relo: insn_off (bytes), type_id, access_str_off, kind
FUNC_INFO = struct.Struct("<II")  # struct bpf_func_info: insn_off (insns), type_id


class BtfWriter:
    """Builds a BTF blob type by type; ids are 1, 2, … in the order of the calls."""

    def __init__(self) -> None:
        self._types: list[bytes] = []
        self._strs = bytearray(b"\0")
        self._str_off: dict[str, int] = {"": 0}

    def name(self, s: str) -> int:
        """The string-section offset of ``s`` (added once)."""
        off = self._str_off.get(s)
        if off is None:
            off = self._str_off[s] = len(self._strs)
            self._strs += s.encode() + b"\0"
        return off

    def _add(self, kind: int, name: str, vlen: int, size_or_type: int, tail: bytes = b"") -> int:
        info = (kind << 24) | vlen
        self._types.append(struct.pack("<III", self.name(name), info, size_or_type) + tail)
        return len(self._types)

    def int_(self, name: str, size: int, *, signed: bool = False) -> int:
        encoding = INT_SIGNED if signed else 0
        return self._add(KIND_INT, name, 0, size, struct.pack("<I", encoding << 24 | size * 8))

    def ptr(self, target: int) -> int:
        return self._add(KIND_PTR, "", 0, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._add(KIND_ARRAY, "", 0, 0, struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]]) -> int:
        """``members``: (name, type id, byte offset)."""
        tail = b"".join(struct.pack("<III", self.name(n), t, off * 8) for n, t, off in members)
        return self._add(KIND_STRUCT, name, len(members), size, tail)

    def enum_fwd(self, name: str, size: int = 4) -> int:
        """``enum name;`` with no enumerators: enough for a field of that enum to match."""
        return self._add(KIND_ENUM, name, 0, size)

    def func_proto(self, ret: int, params: list[tuple[str, int]]) -> int:
        tail = b"".join(struct.pack("<II", self.name(n), t) for n, t in params)
        return self._add(KIND_FUNC_PROTO, "", len(params), ret, tail)

    def func(self, name: str, proto: int, linkage: int = FUNC_GLOBAL) -> int:
        return self._add(KIND_FUNC, name, linkage, proto)

    def blob(self) -> bytes:
        types = b"".join(self._types)
        strs = bytes(self._strs)
        return HDR.pack(MAGIC, 1, 0, HDR.size, 0, len(types), len(types), len(strs)) + types + strs


def relos(records: list[tuple[int, int, int]]) -> bytes:
    """``bpf_core_relo`` records, FIELD_BYTE_OFFSET each: (insn index, type id, access str off)."""
    return b"".join(RELO.pack(i * 8, t, s, FIELD_BYTE_OFFSET) for i, t, s in records)
