"""A BTF reader: the running kernel's own types, so nothing layout-dependent is a constant.

Probes ask small questions (does ``struct bpf_map`` have a u32 ``excl`` at
offset 32? does ``enum bpf_sig_verdict`` exist?), and the policy, status and
audit programs take every offset they read from here: ``bpf_prog.type``,
``bpf_prog.aux``, ``aux->sig.*`` and the LSM hook's argument order. Layouts
differ between releases (docs/kernel.md §8.1, §10), so we read them rather than
trusting a version number.

Types are decoded on demand from the blob; only the table of where each type
starts is built up front (one pass over the type section).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from ..errors import InputError, UnsupportedFeature
from ..skel.builder import FieldAccess

VMLINUX = "/sys/kernel/btf/vmlinux"

_MAGIC = 0xEB9F
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FWD = 1, 2, 3, 4, 5, 6, 7
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_FUNC, KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_FLOAT = 12, 13, 14, 15, 16
KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 17, 18, 19
KIND_NAMES = {
    0: "VOID",
    1: "INT",
    2: "PTR",
    3: "ARRAY",
    4: "STRUCT",
    5: "UNION",
    6: "ENUM",
    7: "FWD",
    8: "TYPEDEF",
    9: "VOLATILE",
    10: "CONST",
    11: "RESTRICT",
    12: "FUNC",
    13: "FUNC_PROTO",
    14: "VAR",
    15: "DATASEC",
    16: "FLOAT",
    17: "DECL_TAG",
    18: "TYPE_TAG",
    19: "ENUM64",
}
# kind -> bytes that follow struct btf_type: fixed part, per-vlen part.
_EXTRA: dict[int, tuple[int, int]] = {
    1: (4, 0),
    2: (0, 0),
    3: (12, 0),
    4: (0, 12),
    5: (0, 12),
    6: (0, 8),
    7: (0, 0),
    8: (0, 0),
    9: (0, 0),
    10: (0, 0),
    11: (0, 0),
    12: (0, 0),
    13: (0, 8),
    14: (4, 0),
    15: (0, 12),
    16: (0, 0),
    17: (4, 0),
    18: (0, 0),
    19: (0, 12),
}
_MODIFIERS = frozenset({KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG})
_INT_SIGNED = 0x1
_MAX_CHAIN = 64  # typedef/modifier chains longer than this are a corrupt blob
_U32 = struct.Struct("<III")


@dataclass(frozen=True)
class Type:
    """One ``struct btf_type`` header: ``ref`` is its size or the type it refers to."""

    id: int
    kind: int
    name: str
    vlen: int
    kflag: bool
    ref: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind {self.kind}")


@dataclass(frozen=True)
class Member:
    """A struct/union member. ``offset``/``size`` in bytes; bitfields add bit detail."""

    name: str
    offset: int  # bytes (of the containing storage unit for a bitfield)
    size: int  # bytes of the resolved type (a pointer is 8)
    type_id: int = field(default=0, compare=False)
    bit_offset: int = field(default=0, compare=False)  # from the start of the struct
    bitfield_size: int = field(default=0, compare=False)  # 0: not a bitfield


class Btf:
    """A parsed BTF blob: types by id, names through the string section."""

    def __init__(self, blob: bytes, path: str = "<btf>") -> None:
        if len(blob) < 24:
            raise InputError("too short for a BTF header", path=path)
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != _MAGIC:
            raise InputError(f"not little-endian BTF (magic {magic:#06x})", path=path)
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        start = hdr_len + type_off
        end = start + type_len
        if hdr_len < 24 or end > len(blob) or hdr_len + str_off + str_len > len(blob):
            raise InputError("BTF header points past the end of the blob", path=path)
        self._blob = blob
        self._strs = hdr_len + str_off
        self._str_end = self._strs + str_len
        offsets = [0]  # type id 0 is void
        pos = start
        unpack = _U32.unpack_from
        extra = _EXTRA
        try:
            while pos < end:
                offsets.append(pos)
                _name, info, _st = unpack(blob, pos)
                fixed, per = extra.get((info >> 24) & 0x1F, (0, 0))
                pos += 12 + fixed + per * (info & 0xFFFF)
        except struct.error:
            pos = end + 1
        if pos > end:
            raise InputError("BTF type section is truncated", path=path)
        self._offsets = offsets
        self._path = path

    def __len__(self) -> int:
        return len(self._offsets)

    # ------------------------------------------------------------ raw access
    def _name(self, off: int) -> str:
        start = self._strs + off
        if not off or start >= self._str_end:
            return ""
        end = self._blob.index(b"\0", start)
        return self._blob[start:end].decode(errors="replace")

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

    def type(self, tid: int) -> Type:
        """The header of type ``tid`` (0 is void)."""
        if tid == 0:
            return Type(0, 0, "void", 0, False, 0)
        if not 0 < tid < len(self._offsets):
            raise InputError(
                f"BTF type id {tid} out of range (1..{len(self._offsets) - 1})", path=self._path
            )
        name_off, info, ref = _U32.unpack_from(self._blob, self._offsets[tid])
        return Type(
            tid, (info >> 24) & 0x1F, self._name(name_off), info & 0xFFFF, bool(info >> 31), ref
        )

    def _records(self, t: Type, fmt: str) -> Iterator[tuple[int, ...]]:
        size = struct.calcsize(fmt)
        base = self._offsets[t.id] + 12 + _EXTRA[t.kind][0]
        for i in range(t.vlen):
            yield struct.unpack_from(fmt, self._blob, base + size * i)

    # ---------------------------------------------------------------- lookup
    def find(self, name: str, kind: int) -> int | None:
        """The id of the first type of ``kind`` named ``name``."""
        wanted = self._name_offsets(name)
        if not wanted:
            return None
        unpack = struct.Struct("<II").unpack_from
        blob = self._blob
        for tid in range(1, len(self._offsets)):
            name_off, info = unpack(blob, self._offsets[tid])
            if name_off in wanted and (info >> 24) & 0x1F == kind:
                return tid
        return None

    def require(self, name: str, kind: int, feature: str) -> int:
        """Like :meth:`find`, but a missing type means this kernel lacks ``feature``."""
        tid = self.find(name, kind)
        if tid is None:
            raise UnsupportedFeature(
                feature, f"the kernel's BTF ({self._path}) has no {KIND_NAMES[kind]} {name}"
            )
        return tid

    def resolve(self, tid: int) -> Type:
        """Skip typedefs and const/volatile/restrict/type-tag modifiers."""
        for _ in range(_MAX_CHAIN):
            t = self.type(tid)
            if t.kind not in _MODIFIERS:
                return t
            tid = t.ref
        raise InputError(
            f"BTF type {tid}: modifier chain longer than {_MAX_CHAIN}", path=self._path
        )

    def size(self, tid: int) -> int:
        """Byte size of a type (modifiers skipped; a pointer is 8; void/func 0)."""
        t = self.resolve(tid)
        if t.kind == KIND_PTR:
            return 8
        if t.kind == KIND_ARRAY:
            elem, _idx, nelems = self._array(t)
            return nelems * self.size(elem)
        if t.kind in (
            KIND_INT,
            KIND_STRUCT,
            KIND_UNION,
            KIND_ENUM,
            KIND_ENUM64,
            KIND_FLOAT,
            KIND_DATASEC,
        ):
            return t.ref
        return 0

    def _array(self, t: Type) -> tuple[int, int, int]:
        elem, idx, nelems = struct.unpack_from("<III", self._blob, self._offsets[t.id] + 12)
        return elem, idx, nelems

    def is_signed(self, tid: int) -> bool:
        t = self.resolve(tid)
        if t.kind == KIND_INT:
            (enc,) = struct.unpack_from("<I", self._blob, self._offsets[t.id] + 12)
            return bool((enc >> 24) & _INT_SIGNED)
        if t.kind in (KIND_ENUM, KIND_ENUM64):
            return t.kflag
        return False

    # ------------------------------------------------------- structs, unions
    def members(self, tid: int) -> list[Member]:
        """Members of the struct or union ``tid`` (modifiers skipped), in order."""
        t = self.resolve(tid)
        if t.kind not in (KIND_STRUCT, KIND_UNION):
            raise InputError(
                f"BTF type {tid} ({t.kind_name} {t.name}) is not a struct or union", path=self._path
            )
        out = []
        for m_name, m_type, m_off in self._records(t, "<III"):
            bits, bsize = (m_off & 0xFFFFFF, m_off >> 24) if t.kflag else (m_off, 0)
            if not bsize:
                mt = self.resolve(m_type)
                if mt.kind == KIND_INT:  # kflag=0 bitfields live in the INT encoding
                    (enc,) = struct.unpack_from("<I", self._blob, self._offsets[mt.id] + 12)
                    ibits, ioff = enc & 0xFF, (enc >> 16) & 0xFF
                    if ibits != mt.ref * 8 or ioff:
                        bits, bsize = bits + ioff, ibits
            size = self.size(m_type)
            out.append(Member(self._name(m_name), bits // 8, size, m_type, bits, bsize))
        return out

    def struct_members(self, name: str) -> dict[str, Member] | None:
        """Members of ``struct name`` by name, or None when the struct is absent."""
        tid = self.find(name, KIND_STRUCT)
        if tid is None:
            return None
        return {m.name: m for m in self.members(tid)}

    def member(self, tid: int, name: str) -> Member | None:
        """Member ``name`` of struct/union ``tid``, looking inside anonymous members.

        The returned offset is from the start of ``tid``.
        """
        for m in self.members(tid):
            if m.name == name:
                return m
            if not m.name and self.resolve(m.type_id).kind in (KIND_STRUCT, KIND_UNION):
                inner = self.member(m.type_id, name)
                if inner is not None:
                    return Member(
                        inner.name,
                        (m.bit_offset + inner.bit_offset) // 8,
                        inner.size,
                        inner.type_id,
                        m.bit_offset + inner.bit_offset,
                        inner.bitfield_size,
                    )
        return None

    def access(self, struct_name: str, path: str, *, feature: str = "") -> list[FieldAccess]:
        """The loads that read ``path`` (``aux->sig.verdict``) from a ``struct_name *``.

        One :class:`FieldAccess` per ``->`` hop: every one but the last loads a
        pointer; the last loads the field (with a bitfield's shift and width).
        Arrays and structs come back whole (their offset and size), for copying.
        A member the kernel does not have raises :class:`UnsupportedFeature`
        naming ``feature`` (or the path).
        """
        what = feature or f"{struct_name}->{path}"
        found = self.find(struct_name, KIND_STRUCT)
        if found is None:
            raise UnsupportedFeature(what, f"the kernel's BTF has no struct {struct_name}")
        tid = found
        hops = path.split("->")
        out: list[FieldAccess] = []
        for i, hop in enumerate(hops):
            where = f"{struct_name}->" + "->".join(hops[: i + 1])
            bit = 0
            member: Member | None = None
            cur = tid
            for name in hop.split("."):
                owner = self.resolve(cur)
                member = self.member(cur, name) if owner.kind in (KIND_STRUCT, KIND_UNION) else None
                if member is None:
                    raise UnsupportedFeature(
                        what,
                        f"{owner.kind_name.lower()} {owner.name or '(anon)'} has no member "
                        f"{name!r} in the kernel's BTF ({self._path})",
                    )
                bit += member.bit_offset
                cur = member.type_id
            assert member is not None
            mt = self.resolve(member.type_id)
            if i < len(hops) - 1:
                if mt.kind != KIND_PTR:
                    raise InputError(
                        f"{where} is not a pointer, cannot follow '->'", path=self._path
                    )
                target = self.resolve(mt.ref)
                if target.kind not in (KIND_STRUCT, KIND_UNION):
                    raise InputError(f"{where} does not point to a struct", path=self._path)
                out.append(FieldAccess(bit // 8, 8, False, 0, 0, where))
                tid = target.id
            elif member.bitfield_size:
                unit = 8 if (bit % 32) + member.bitfield_size > 32 else 4
                base = (bit // (unit * 8)) * unit
                out.append(
                    FieldAccess(
                        base,
                        unit,
                        self.is_signed(member.type_id),
                        bit - base * 8,
                        member.bitfield_size,
                        where,
                    )
                )
            else:
                out.append(
                    FieldAccess(bit // 8, member.size, self.is_signed(member.type_id), 0, 0, where)
                )
        return out

    # ------------------------------------------------------------ enums, funcs
    def enum(self, tid: int) -> dict[str, int]:
        """Enumerators of ENUM or ENUM64 ``tid``, with their signedness applied."""
        t = self.resolve(tid)
        out: dict[str, int] = {}
        if t.kind == KIND_ENUM:
            for e_name, e_val in self._records(t, "<II"):
                out[self._name(e_name)] = e_val - (1 << 32) if t.kflag and e_val >> 31 else e_val
        elif t.kind == KIND_ENUM64:
            for e_name, lo, hi in self._records(t, "<III"):
                v = lo | hi << 32
                out[self._name(e_name)] = v - (1 << 64) if t.kflag and v >> 63 else v
        else:
            raise InputError(f"BTF type {tid} ({t.kind_name}) is not an enum", path=self._path)
        return out

    def enum_values(self, name: str) -> dict[str, int] | None:
        """Enumerators of ``enum name`` (ENUM or ENUM64), or None when it is absent."""
        tid = self.find(name, KIND_ENUM)
        if tid is None:
            tid = self.find(name, KIND_ENUM64)
        return None if tid is None else self.enum(tid)

    def func_params(self, func: str) -> list[tuple[str, int]]:
        """(name, type id) of each parameter of FUNC ``func``, through its FUNC_PROTO."""
        tid = self.find(func, KIND_FUNC)
        if tid is None:
            raise UnsupportedFeature(func, f"the kernel's BTF has no FUNC {func}")
        proto = self.type(self.type(tid).ref)
        if proto.kind != KIND_FUNC_PROTO:
            raise InputError(f"FUNC {func} does not point to a FUNC_PROTO", path=self._path)
        return [(self._name(n), t) for n, t in self._records(proto, "<II")]

    def pointee(self, tid: int) -> Type:
        """What pointer ``tid`` points to (modifiers skipped on both sides)."""
        t = self.resolve(tid)
        if t.kind != KIND_PTR:
            raise InputError(f"BTF type {tid} ({t.kind_name}) is not a pointer", path=self._path)
        return self.resolve(t.ref)


@cache
def vmlinux() -> Btf | None:
    """The running kernel's BTF, or None when it is not exposed."""
    try:
        with open(VMLINUX, "rb") as f:
            return Btf(f.read(), VMLINUX)
    except OSError:
        return None


def require_vmlinux(feature: str) -> Btf:
    """The running kernel's BTF, or :class:`UnsupportedFeature` naming ``feature``."""
    btf = vmlinux()
    if btf is None:
        raise UnsupportedFeature(
            feature, f"{VMLINUX} is missing: the kernel was built without CONFIG_DEBUG_INFO_BTF"
        )
    return btf
