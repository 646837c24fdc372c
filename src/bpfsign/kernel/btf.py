"""Just enough of a BTF reader to ask the running kernel about its own layout.

Probes need two questions answered from ``/sys/kernel/btf/vmlinux``: does
``struct bpf_map`` have a u32 ``excl`` at offset 32 (can a 6.18-style ``-S``
loader verify here?), and does ``enum bpf_sig_verdict`` exist (a load-time
kernel)? Layouts differ between releases (kernel.md §8.1), so we read them
rather than trusting a version number.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache

from ..errors import InputError

VMLINUX = "/sys/kernel/btf/vmlinux"

_MAGIC = 0xEB9F
# kind -> bytes that follow struct btf_type: fixed part, per-vlen part.
_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION, _KIND_ENUM = 1, 2, 3, 4, 5, 6
_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT = 8, 9, 10, 11
_KIND_TYPE_TAG, _KIND_ENUM64 = 18, 19
_EXTRA: dict[int, tuple[int, int]] = {
    1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
    8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
    15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12),
}
_MODIFIERS = {_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG}


@dataclass(frozen=True)
class Member:
    name: str
    offset: int  # bytes
    size: int  # bytes of the resolved type (0 when unsized, e.g. a pointer is 8)


class Btf:
    """A parsed BTF blob: types by id, names through the string section."""

    def __init__(self, blob: bytes, path: str = "<btf>") -> None:
        if len(blob) < 24:
            raise InputError("too short for a BTF header", path=path)
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != _MAGIC:
            raise InputError(f"not little-endian BTF (magic {magic:#06x})", path=path)
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self._blob = blob
        self._strs = hdr_len + str_off
        self._str_end = self._strs + str_len
        start = hdr_len + type_off
        end = start + type_len
        offsets = [0]  # type id 0 is void
        pos = start
        unpack = struct.Struct("<III").unpack_from
        extra = _EXTRA
        while pos < end:
            offsets.append(pos)
            _name, info, _st = unpack(blob, pos)
            kind = (info >> 24) & 0x1F
            fixed, per = extra.get(kind, (0, 0))
            pos += 12 + fixed + per * (info & 0xFFFF)
        self._offsets = offsets
        self._path = path

    def _name(self, off: int) -> str:
        end = self._blob.index(b"\0", self._strs + off)
        return self._blob[self._strs + off : end].decode(errors="replace")

    def _name_offsets(self, name: str) -> set[int]:
        """String-section offsets holding exactly ``name``: cheap pre-filter for find()."""
        needle = name.encode() + b"\0"
        blob, found = self._blob, set()
        pos = blob.find(needle, self._strs, self._str_end)
        while pos >= 0:
            if blob[pos - 1] == 0:
                found.add(pos - self._strs)
            pos = blob.find(needle, pos + 1, self._str_end)
        return found

    def find(self, name: str, kind: int) -> int | None:
        """The id of the first type of ``kind`` named ``name``."""
        wanted = self._name_offsets(name)
        if not wanted:
            return None
        unpack = struct.Struct("<II").unpack_from
        for tid, pos in enumerate(self._offsets):
            if tid == 0:
                continue
            name_off, info = unpack(self._blob, pos)
            if name_off in wanted and (info >> 24) & 0x1F == kind:
                return tid
        return None

    def _size(self, tid: int) -> int:
        for _ in range(32):
            if tid == 0:
                return 0
            _n, info, st = struct.unpack_from("<III", self._blob, self._offsets[tid])
            kind = (info >> 24) & 0x1F
            if kind in _MODIFIERS:
                tid = st
                continue
            if kind == _KIND_PTR:
                return 8
            if kind == _KIND_ARRAY:
                elem, _idx, nelems = struct.unpack_from("<III", self._blob, self._offsets[tid] + 12)
                return int(nelems) * self._size(elem)
            return int(st)
        return 0

    def struct_members(self, name: str) -> dict[str, Member] | None:
        """Members of ``struct name`` by name, or None when the struct is absent."""
        tid = self.find(name, _KIND_STRUCT)
        if tid is None:
            return None
        pos = self._offsets[tid]
        _n, info, _size = struct.unpack_from("<III", self._blob, pos)
        kflag = info >> 31
        out: dict[str, Member] = {}
        for i in range(info & 0xFFFF):
            m_name, m_type, m_off = struct.unpack_from("<III", self._blob, pos + 12 + 12 * i)
            bits = m_off & 0xFFFFFF if kflag else m_off
            mname = self._name(m_name)
            out[mname] = Member(mname, bits // 8, self._size(m_type))
        return out

    def enum_values(self, name: str) -> dict[str, int] | None:
        """Enumerators of ``enum name``, or None when the enum is absent."""
        tid = self.find(name, _KIND_ENUM)
        if tid is None:
            return None
        pos = self._offsets[tid]
        _n, info, _size = struct.unpack_from("<III", self._blob, pos)
        out = {}
        for i in range(info & 0xFFFF):
            e_name, e_val = struct.unpack_from("<Ii", self._blob, pos + 12 + 8 * i)
            out[self._name(e_name)] = e_val
        return out


@cache
def vmlinux() -> Btf | None:
    """The running kernel's BTF, or None when it is not exposed."""
    try:
        with open(VMLINUX, "rb") as f:
            return Btf(f.read(), VMLINUX)
    except OSError:
        return None
