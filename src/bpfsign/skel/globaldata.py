"""Named, typed global data: the section structs of a light skeleton as ctypes.

The header declares each global-data section as a C struct
(``struct counter__bss { __u32 enter_events; ... } *bss;``); the C includer
reads ``skel->bss->enter_events`` through the compiler's layout. We compute
the same layout (x86-64 LP64, natural alignment, ``aligned(N)`` honoured) from
the parsed declarations and lay a ctypes structure over the section's bytes,
so Python reads and writes the same members at the same offsets.

A member whose type the header does not define (``struct multi_config cfg``:
the includer must define it) becomes opaque bytes, sized by where the next
member starts or where the section ends, and is flagged ``opaque``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .skeleton import GlobalVar, MapSpec

__all__ = ["FieldLayout", "GlobalData", "SectionLayout", "build_image", "section_layout"]

_CType = Any  # a ctypes type (mypy has no common base for scalars and arrays)

_FIXED: dict[str, _CType] = {
    "__u8": ctypes.c_uint8,
    "__s8": ctypes.c_int8,
    "__u16": ctypes.c_uint16,
    "__s16": ctypes.c_int16,
    "__u32": ctypes.c_uint32,
    "__s32": ctypes.c_int32,
    "__u64": ctypes.c_uint64,
    "__s64": ctypes.c_int64,
    "u8": ctypes.c_uint8,
    "s8": ctypes.c_int8,
    "u16": ctypes.c_uint16,
    "s16": ctypes.c_int16,
    "u32": ctypes.c_uint32,
    "s32": ctypes.c_int32,
    "u64": ctypes.c_uint64,
    "s64": ctypes.c_int64,
    "uint8_t": ctypes.c_uint8,
    "int8_t": ctypes.c_int8,
    "uint16_t": ctypes.c_uint16,
    "int16_t": ctypes.c_int16,
    "uint32_t": ctypes.c_uint32,
    "int32_t": ctypes.c_int32,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "__be16": ctypes.c_uint16,
    "__be32": ctypes.c_uint32,
    "__be64": ctypes.c_uint64,
    "__le16": ctypes.c_uint16,
    "__le32": ctypes.c_uint32,
    "__le64": ctypes.c_uint64,
    "bool": ctypes.c_bool,
    "_Bool": ctypes.c_bool,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "pid_t": ctypes.c_int,
    "uid_t": ctypes.c_uint,
    "gid_t": ctypes.c_uint,
    "size_t": ctypes.c_size_t,
    "ssize_t": ctypes.c_ssize_t,
}
_INT_WORDS = frozenset(("signed", "unsigned", "char", "short", "int", "long"))


def _base_type(type_: str) -> _CType | None:
    """The ctypes type of a scalar C type name, or None when the header does not define it."""
    fixed = _FIXED.get(type_)
    if fixed is not None:
        return fixed
    words = type_.split()
    if not words or not set(words) <= _INT_WORDS:
        return None  # struct/union/enum/unknown typedef
    unsigned = "unsigned" in words
    if "char" in words:
        if unsigned:
            return ctypes.c_ubyte
        return ctypes.c_byte if "signed" in words else ctypes.c_char
    if "short" in words:
        return ctypes.c_ushort if unsigned else ctypes.c_short
    longs = words.count("long")
    if longs >= 2:
        return ctypes.c_ulonglong if unsigned else ctypes.c_longlong
    if longs == 1:
        return ctypes.c_ulong if unsigned else ctypes.c_long
    return ctypes.c_uint if unsigned else ctypes.c_int


@dataclass(frozen=True)
class FieldLayout:
    """Where one member lives in the section, as the host C compiler places it."""

    name: str
    type: str  # the declared C type (with * and [N])
    offset: int
    size: int
    opaque: bool  # the header does not define the type: raw bytes of an inferred size


@dataclass(frozen=True)
class SectionLayout:
    section: str  # "bss", "data", "rodata", "data_custom" …
    fields: tuple[FieldLayout, ...]
    size: int  # sizeof(struct <skel>__<section>)
    struct: type[ctypes.Structure]
    #: members whose offset could not be inferred (two undefined types in a row): raw bytes only
    unplaced: tuple[str, ...] = ()

    @property
    def opaque(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.opaque)

    def field(self, name: str) -> FieldLayout:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _declared(var: GlobalVar) -> str:
    return var.type + (" *" if var.pointer else "") + "".join(f"[{n}]" for n in var.dims)


def _known(var: GlobalVar) -> tuple[_CType, int, int] | None:
    """(ctypes type, size, alignment) of a member, or None when its type is undefined here."""
    base = ctypes.c_uint64 if var.pointer else _base_type(var.type)
    if base is None or var.type == "?":
        return None
    align = ctypes.alignment(base)
    ctype = base
    for n in reversed(var.dims):
        ctype = ctype * n
    if var.aligned:
        align = max(align, var.aligned)
    return ctype, ctypes.sizeof(ctype), align


def _round_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def section_layout(spec: MapSpec, skeleton: str = "skel") -> SectionLayout:
    """The host layout of one section struct, with a ctypes type to match."""
    ident = spec.name
    image_size = len(spec.initial_value or b"")
    vars_ = list(spec.fields)
    known = [_known(v) for v in vars_]
    placed: list[
        tuple[GlobalVar, int, int, _CType | None, int]
    ] = []  # var, off, size, ctype, align
    unplaced: list[str] = []
    off = 0
    i = 0
    while i < len(vars_):
        var, k = vars_[i], known[i]
        if k is not None:
            ctype, size, align = k
            off = _round_up(off, align)
            placed.append((var, off, size, ctype, align))
            off += size
            i += 1
            continue
        # An undefined type: place it after the previous member (assume int alignment,
        # what a struct of scalars has) and size it by what follows.
        align = var.aligned or 4
        start = _round_up(off, align)
        tail = known[i + 1 :]
        if any(t is None for t in tail) or not image_size:
            unplaced.extend(v.name for v in vars_[i:])
            break
        rel = 0
        tail_align = 1
        for t in tail:
            assert t is not None
            rel = _round_up(rel, t[2]) + t[1]
            tail_align = max(tail_align, t[2])
        nxt = (image_size - rel) // tail_align * tail_align if tail else image_size
        if nxt <= start:
            unplaced.extend(v.name for v in vars_[i:])
            break
        placed.append((var, start, nxt - start, None, 1))
        off = nxt
        i += 1

    fields = []
    cfields: list[tuple[str, _CType]] = []
    pos = 0
    max_align = 1
    for n, (var, start, size, ctype, align) in enumerate(placed):
        if start > pos:
            cfields.append((f"_gap{n}", ctypes.c_ubyte * (start - pos)))
        cfields.append((var.name, ctype if ctype is not None else ctypes.c_ubyte * size))
        fields.append(FieldLayout(var.name, _declared(var), start, size, ctype is None))
        pos = start + size
        max_align = max(max_align, align)
    total = _round_up(pos, max_align) if not unplaced else max(pos, image_size)
    if total > pos:
        cfields.append(("_tail", ctypes.c_ubyte * (total - pos)))
    if image_size and pos > image_size:
        raise InputError(
            f"section {ident}: its struct as declared ends at byte {pos}, past the section "
            f"image ({image_size} bytes); the header's struct and its data disagree"
        )
    struct = type(f"{skeleton}__{ident}", (ctypes.Structure,), {"_pack_": 1, "_fields_": cfields})
    return SectionLayout(ident, tuple(fields), ctypes.sizeof(struct), struct, tuple(unplaced))


class GlobalData:
    """One section's members as attributes: ``loaded.bss.hits``, ``loaded.data.x = 3``.

    Writable sections are live views of the mmapped map; a read-only section
    (``.rodata``, frozen at load) is a copy of its value, which can no longer change.
    """

    __slots__ = ("_layout", "_names", "_obj", "_readonly")

    def __init__(self, layout: SectionLayout, obj: ctypes.Structure, readonly: bool) -> None:
        object.__setattr__(self, "_layout", layout)
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_readonly", readonly)
        object.__setattr__(self, "_names", {f.name: f for f in layout.fields})

    @property
    def layout(self) -> SectionLayout:
        layout: SectionLayout = self._layout
        return layout

    @property
    def readonly(self) -> bool:
        return bool(self._readonly)

    def __getattr__(self, name: str) -> Any:
        f = self._names.get(name)
        if f is None:
            raise AttributeError(self._unknown(name))
        value = getattr(self._obj, name)
        return bytes(value) if f.opaque else value

    def __setattr__(self, name: str, value: Any) -> None:
        f = self._names.get(name)
        if f is None:
            raise AttributeError(self._unknown(name))
        if self._readonly:
            raise InputError(
                f"{self._layout.section}.{name} is read-only: the kernel froze the "
                f"{self._layout.section} map at load; set it before load with "
                f"initial_values={{{self._layout.section!r}: {{{name!r}: ...}}}}"
            )
        _assign(self._obj, f, value, self._layout.section)

    def __dir__(self) -> list[str]:
        return [*self._names, "layout", "readonly", "as_dict"]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, f in self._names.items():
            v = getattr(self._obj, name)
            out[name] = (
                bytes(v)
                if f.opaque or isinstance(v, bytes)
                else (list(v) if isinstance(v, ctypes.Array) else v)
            )
        return out

    def _unknown(self, name: str) -> str:
        return (
            f"section {self._layout.section} has no member {name!r} "
            f"(it has: {', '.join(self._names) or 'none'})"
        )

    def __repr__(self) -> str:
        return f"<GlobalData {self._layout.section} {self.as_dict()!r}>"


def _assign(obj: ctypes.Structure, f: FieldLayout, value: Any, section: str) -> None:
    if f.opaque:
        data = bytes(value)
        if len(data) != f.size:
            raise InputError(
                f"{section}.{f.name} ({f.type}, not defined in the header) is {f.size} raw "
                f"bytes here; got {len(data)}"
            )
        ctypes.memmove(ctypes.addressof(obj) + f.offset, data, f.size)
        return
    try:
        setattr(obj, f.name, value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{section}.{f.name} ({f.type}): cannot store {value!r}: {exc}") from None


def build_image(layout: SectionLayout, image: bytes, values: Mapping[str, Any]) -> bytes:
    """The section image with named members set (before load); same length as ``image``."""
    buf = bytearray(max(layout.size, len(image)))
    buf[: len(image)] = image
    obj = layout.struct.from_buffer(buf)
    names = {f.name: f for f in layout.fields}
    for name, value in values.items():
        f = names.get(name)
        if f is None:
            raise InputError(
                f"section {layout.section} has no member {name!r} "
                f"(it has: {', '.join(names) or 'none'})"
            )
        _assign(obj, f, value, layout.section)
    del obj
    return bytes(buf[: len(image)])
