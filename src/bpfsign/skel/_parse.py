"""The light-skeleton header parser: C tokens → :class:`~.model.Skeleton`.

A header is C source that carries byte blobs as string literals (docs/lskel.md
§3-§4). We read it with a small C tokenizer rather than line regexes, so the
three generator styles (new ``opts_data[]``, old numeric sizes, and
clang-formatted old style) parse with the same code. Every blob keeps the
source span it came from, so the writer can edit only those spans.
"""

from __future__ import annotations

import re

from . import escapes
from . import insn as _insn
from ._tokenize import Source as _Source
from ._tokenize import Tok as _Tok
from .model import (
    GlobalVar,
    Layout,
    MapSpec,
    NotAHeaderError,
    ProgSpec,
    RegularSkeletonError,
    Skeleton,
    Span,
    ctx_size,
)

# -------------------------------------------------------------------- parser


_C_INT = re.compile(
    r"(0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)(?:[uU](?:ll|LL|[lL])?|(?:ll|LL|[lL])[uU]?)?"
)


def _c_int(src: _Source, tok: _Tok, what: str) -> int:
    """A C integer literal: decimal, 0x hex, 0 octal, 0b binary, with any u/l/ll suffix."""
    m = _C_INT.fullmatch(tok.text) if tok.kind == "num" else None
    if m is None:
        raise src.error(f"bad integer literal {tok.text[:40]!r} for {what}", tok.start)
    digits = m.group(1)
    if digits[:2] in ("0x", "0X", "0b", "0B"):
        return int(digits, 0)
    if len(digits) > 20:
        raise src.error(f"integer literal {digits[:40]!r} is too large for {what}", tok.start)
    return int(digits, 8) if digits.startswith("0") else int(digits)


def _decode_literal(src: _Source, tok: _Tok, what: str, lenient: bool) -> bytes:
    return _decode_spelled(src, tok, what, lenient)[0]


def _decode_spelled(src: _Source, tok: _Tok, what: str, lenient: bool) -> tuple[bytes, bool]:
    try:
        return escapes.decode_spelled(src.text, tok.start + 1, tok.end - 1, what, lenient=lenient)
    except escapes.LiteralError as exc:
        raise src.error(exc.reason, exc.offset) from None


# Markers of a light skeleton (gen_loader's ctx) and of a regular one (an ELF in a blob).
_LSKEL_MARKERS = ("bpf_loader_ctx",)
_SKEL_MARKERS = (
    "bpf_object__open_skeleton",
    "struct bpf_object_skeleton",
    "bpf_object__load_skeleton",
)


def sniff(text: str) -> str:
    """What ``text`` is: ``"lskel"``, ``"skel"`` (a regular skeleton) or ``"not-a-header"``.

    Cheap (a few substring searches), so a caller can choose a path before parsing.
    A NUL character means binary data, never C text.
    """
    if "\x00" in text:
        return "not-a-header"
    if any(m in text for m in _SKEL_MARKERS):
        return "skel"
    if any(m in text for m in _LSKEL_MARKERS):
        return "lskel"
    return "not-a-header"


class _Blob:
    """A decoded blob literal and the source span it came from."""

    __slots__ = ("span", "strict", "value")

    def __init__(self, value: bytes, span: Span, strict: bool = False) -> None:
        self.value = value
        self.span = span
        #: one literal of only \\xNN, \\0 and line breaks (a candidate for print_hex's spelling)
        self.strict = strict


class _Scan:
    """What one pass over the tokens found (plain attributes: no dataclass to build at import)."""

    def __init__(self) -> None:
        self.arrays: dict[str, _Blob] = {}
        # opts.<field> = ... : kind "blob" (inline literal), "ref" (array name),
        # "sizeof" (array name), "num" (int), "keyring", "ctx"
        self.assigns: dict[str, tuple[str, object, int]] = {}
        self.inline: dict[str, _Blob] = {}
        self.numeric: dict[str, tuple[int, Span]] = {}
        self.preps: dict[str, tuple[bytes, int, int]] = {}  # name -> image, mmap, line
        self.finalize: dict[str, tuple[int, bool]] = {}  # name -> mmap, readonly
        self.struct_name: str | None = None
        self.maps: list[str] = []
        self.progs: list[str] = []
        self.links: list[str] = []
        self.links_line_end: int | None = None
        self.struct_indent = "\t"
        self.keyring_field = False
        self.attach: dict[str, str | None] = {}
        self.ctx_assign_line: int | None = None
        self.indent = "\t"
        self.load_call: int | None = None
        self.struct_line_indent = ""
        # section ident ("bss", "data_custom") -> token range of its struct members
        self.section_structs: dict[str, tuple[int, int]] = {}


class _Parser:
    def __init__(self, src: _Source, lenient: bool) -> None:
        self.src = src
        self.t = src.toks
        self.lenient = lenient
        self.s = _Scan()
        self.last_data_array: _Blob | None = None

    # token helpers
    def _texts(self, i: int, n: int) -> list[str]:
        t = self.t
        return [t.text(k) for k in range(i, min(i + n, len(t)))]

    def _seq(self, i: int, *texts: str) -> int | None:
        """Match literal token texts at i; return the index after them."""
        if self._texts(i, len(texts)) == list(texts):
            return i + len(texts)
        return None

    def _kind(self, i: int, kind: str) -> bool:
        return i < len(self.t) and self.t[i].kind == kind

    def _strings(self, i: int, what: str) -> tuple[_Blob, int] | None:
        """One or more adjacent literals at i (adjacent ones concatenate)."""
        j = i
        parts = []
        while self._kind(j, "str"):
            parts.append(self.t[j])
            j += 1
        if not parts:
            return None
        if len(parts) > 1 and not self.lenient:
            raise self.src.error(
                f"the {what} blob is split into {len(parts)} adjacent literals; bpftool writes one "
                "(parse with lenient=True to concatenate them)",
                parts[1].start,
            )
        decoded = [_decode_spelled(self.src, p, what, self.lenient) for p in parts]
        value = b"".join(d[0] for d in decoded)
        strict = len(decoded) == 1 and decoded[0][1]
        del decoded
        span = Span(parts[0].start, parts[-1].end, self.src.line(parts[0].start))
        return _Blob(value, span, strict), j

    def _size_expr(self, i: int) -> tuple[str, _Tok, int] | None:
        """``NUM`` or ``sizeof(NAME) - 1``: (kind, the number or name token, next index)."""
        if self._kind(i, "num"):
            return "num", self.t[i], i + 1
        j = self._seq(i, "sizeof", "(")
        if j is not None and self._kind(j, "id"):
            k = self._seq(j + 1, ")", "-", "1")
            if k is not None:
                return "sizeof", self.t[j], k
        return None

    def run(self) -> _Scan:
        t = self.t
        i = 0
        n = len(t)
        while i < n:
            tok = t[i]
            if tok.kind != "id":
                i += 1
                continue
            text = tok.text
            nxt = None
            if text == "static":
                nxt = self._array(i)
            elif text == "opts":
                nxt = self._opts_assign(i)
            elif text == "skel":
                nxt = self._skel_assign(i)
            elif text == "struct" and self.s.struct_name is None:
                nxt = self._struct(i)
            elif text == "skel_finalize_map_data":
                nxt = self._finalize(i)
            elif text == "bpf_load_and_run":
                self.s.load_call = tok.start
            elif (
                text.endswith("__attach")
                and self.s.struct_name
                and text.startswith(self.s.struct_name + "__")
            ):
                nxt = self._attach(i)
            i = nxt if nxt is not None and nxt > i else i + 1
        return self.s

    def _array(self, i: int) -> int | None:
        j = self._seq(i, "static", "const", "char")
        if j is None or not self._kind(j, "id"):
            return None
        name = self.t[j].text
        j = self._seq(j + 1, "[", "]")
        if j is None:
            return None
        k = self._seq(j, "__attribute__", "(", "(", "__aligned__", "(")
        if k is not None and self._kind(k, "num"):
            k2 = self._seq(k + 1, ")", ")", ")")
            if k2 is not None:
                j = k2
        j2 = self._seq(j, "=")
        if j2 is None:
            return None
        got = self._strings(j2, name)
        if got is None:
            return None
        blob, j = got
        if self._seq(j, ";") is None:
            raise self.src.error(f"expected ';' after the {name} literal", self.t[j - 1].end)
        if name == "data":
            self.last_data_array = blob
        else:
            self.s.arrays[name] = blob
        return j + 1

    def _opts_assign(self, i: int) -> int | None:
        j = self._seq(i, "opts", ".")
        if j is None or not self._kind(j, "id") or self._seq(j + 1, "=") is None:
            return None
        fld = self.t[j].text
        j += 2
        start = self.t[i].start
        if fld == "ctx":
            self.s.ctx_assign_line = self.src.line_start(start)
            self.s.indent = self.src.text[self.s.ctx_assign_line : start]
            return j
        k = self._seq(j, "(", "void", "*", ")")
        if k is not None:
            got = self._strings(k, f"opts.{fld}")
            if got is not None:
                blob, k2 = got
                self.s.inline[fld] = blob
                self.s.assigns[fld] = ("blob", blob, start)
                return k2
            if self._kind(k, "id"):
                self.s.assigns[fld] = ("ref", self.t[k].text, start)
                return k + 1
            return None
        size = self._size_expr(j)
        if size is not None:
            kind, tok, k = size
            if kind == "num":
                number = _c_int(self.src, tok, f"opts.{fld}")
                span = Span(tok.start, tok.end, self.src.line(tok.start))
                self.s.numeric[fld] = (number, span)
                self.s.assigns[fld] = ("num", number, start)
            else:
                self.s.assigns[fld] = ("sizeof", tok.text, start)
            return k
        if self._seq(j, "skel", "->", "keyring_id") is not None:
            self.s.assigns[fld] = ("keyring", None, start)
            return j + 3
        return None

    def _skel_assign(self, i: int) -> int | None:
        j = self._seq(i, "skel", "->")
        if j is None or not self._kind(j, "id"):
            return None
        name = self.t[j].text
        j = self._seq(j + 1, "=")
        if j is None:
            return None
        # optional cast: (__typeof__(skel->name)) or (void *) etc.
        k = self._seq(j, "(", "__typeof__", "(", "skel", "->", name, ")", ")")
        if k is not None:
            j = k
        k = self._seq(j, "skel_prep_map_data", "(", "(", "void", "*", ")")
        if k is None:
            return None
        line_off = self.t[i].start
        got = self._strings(k, f"skel->{name} image")
        if got is not None:
            blob, k = got
        elif self._seq(k, "data") is not None and self.last_data_array is not None:
            blob, k = self.last_data_array, k + 1
        else:
            return None
        k2 = self._seq(k, ",")
        if k2 is None or not self._kind(k2, "num"):
            return None
        mmap_size = _c_int(self.src, self.t[k2], f"skel->{name}'s mmap size")
        k3 = self._seq(k2 + 1, ",")
        size = self._size_expr(k3) if k3 is not None else None
        if size is None:
            return None
        kind, tok, k4 = size
        if kind == "num" and _c_int(self.src, tok, f"skel->{name}'s size") != len(blob.value):
            raise self.src.error(
                f"skel->{name} image size {_c_int(self.src, tok, '')} disagrees with its literal "
                f"({len(blob.value)} bytes)",
                tok.start,
            )
        self.s.preps[name] = (blob.value, mmap_size, self.src.line(line_off))
        return k4

    def _finalize(self, i: int) -> int | None:
        j = self._seq(i, "skel_finalize_map_data", "(", "&", "skel", "->", "maps", ".")
        if j is None or not self._kind(j, "id"):
            return None
        name = self.t[j].text
        j = self._seq(j + 1, ".", "initial_value", ",")
        if j is None or not self._kind(j, "num"):
            return None
        mmap_size = _c_int(self.src, self.t[j], f"{name}'s mmap size")
        prot = []
        k = j + 2
        while k < len(self.t) and self.t[k].text != ",":
            prot.append(self.t[k].text)
            k += 1
        self.s.finalize[name] = (mmap_size, "PROT_WRITE" not in prot)
        return k

    def _struct(self, i: int) -> int | None:
        j = self._seq(i, "struct")
        if j is None or not self._kind(j, "id"):
            return None
        name = self.t[j].text
        k = self._seq(j + 1, "{", "struct", "bpf_loader_ctx", "ctx", ";")
        if k is None:
            return None
        self.s.struct_name = name
        depth = 1
        group: list[str] = []
        sec_start: int | None = None
        while k < len(self.t) and depth > 0:
            tok = self.t[k]
            if tok.text == "{":
                if (
                    depth == 1
                    and k >= 2
                    and self.t[k - 2].text == "struct"
                    and self.t[k - 1].text.startswith(name + "__")
                ):
                    sec_start = k + 1
                depth += 1
                group = []
            elif tok.text == "}":
                depth -= 1
                if (
                    depth == 1
                    and sec_start is not None
                    and self._seq(k + 1, "*") is not None
                    and self._kind(k + 2, "id")
                ):
                    self.s.section_structs[self.t[k + 2].text] = (sec_start, k)
                    sec_start = None
                elif depth == 1 and self._kind(k + 1, "id"):
                    which = self.t[k + 1].text
                    if which == "maps":
                        self.s.maps = group
                    elif which == "progs":
                        self.s.progs = group
                    elif which == "links":
                        self.s.links = group
                        semi = self.t[k + 2] if k + 2 < len(self.t) else self.t[k + 1]
                        self.s.links_line_end = self.src.line_end(semi.end)
                        ls = self.src.line_start(tok.start)
                        self.s.struct_indent = self.src.text[ls : tok.start]
                    group = []
            elif depth == 2 and tok.text == ";" and k >= 1 and self._kind(k - 1, "id"):
                group.append(self.t[k - 1].text)
            elif depth == 1 and self._seq(k, "__s32", "keyring_id", ";") is not None:
                self.s.keyring_field = True
            k += 1
        if depth > 0:
            raise self.src.error(
                f"struct {name} is not closed (is the file truncated?)", self.t[i].start
            )
        return k

    def _attach(self, i: int) -> int | None:
        assert self.s.struct_name is not None
        m = re.fullmatch(re.escape(self.s.struct_name) + r"__(\w+?)__attach", self.t[i].text)
        if m is None or self._seq(i + 1, "(", "struct") is None:
            return None
        prog = m.group(1)
        k = i + 1
        while k < len(self.t) and self.t[k].text != "{":
            k += 1
        if self.t[k - 1].text == ";":  # a declaration, not a definition
            return None
        depth = 0
        attach: str | None = None
        while k < len(self.t):
            text = self.t[k].text
            if text == "{":
                depth += 1
            elif text == "}":
                depth -= 1
                if depth == 0:
                    break
            elif text == "skel_raw_tracepoint_open" and self._seq(k + 1, "(") is not None:
                if self._kind(k + 2, "str"):
                    arg = self.t[k + 2]
                    tp = _decode_literal(self.src, arg, "tracepoint name", True).decode(
                        errors="replace"
                    )
                    attach = f"raw_tp:{tp}"
                else:
                    attach = "tracing"
            elif text == "skel_link_create":
                attach = "iter"
            k += 1
        self.s.attach[prog] = attach
        return k


def _resolve(
    src: _Source, scan: _Scan, fld: str, array_name: str, what: str
) -> tuple[_Blob | None, bool]:
    """The blob for opts.<fld>; True if it came from a named array (new style)."""
    a = scan.assigns.get(fld)
    if a is not None and a[0] == "blob":
        return scan.inline[fld], False
    if a is not None and a[0] == "ref":
        ref = str(a[1])
        if ref not in scan.arrays:
            raise src.error(f"opts.{fld} refers to {ref}, which is not defined ({what})", a[2])
        return scan.arrays[ref], True
    if array_name in scan.arrays:
        return scan.arrays[array_name], True
    return None, False


def _check_size(src: _Source, scan: _Scan, fld: str, blob: _Blob, name: str) -> None:
    size = scan.assigns.get(fld + "_sz")
    if size is None:
        return
    kind, val, off = size
    if kind == "num":
        number, span = scan.numeric[fld + "_sz"]
        if number != len(blob.value):
            raise src.error(
                f"opts.{fld}_sz = {number} disagrees with the {name} literal ({len(blob.value)} bytes)",
                span.start,
            )
    elif kind == "sizeof" and val not in scan.arrays:
        raise src.error(f"opts.{fld}_sz uses sizeof({val}), which is not defined", off)


_QUALIFIERS = frozenset(
    (
        "const",
        "volatile",
        "static",
        "extern",
        "register",
        "restrict",
        "__restrict",
        "__restrict__",
        "_Atomic",
    )
)


def _section_fields(src: _Source, scan: _Scan, ident: str) -> tuple[GlobalVar, ...]:
    """The member declarations of ``struct <skel>__<ident> { ... } *<ident>;``."""
    span = scan.section_structs.get(ident)
    if span is None:
        return ()
    out = []
    decl: list[_Tok] = []
    depth = 0
    for tok in src.toks[span[0] : span[1]]:
        if tok.text in ("{", "("):
            depth += 1
        elif tok.text in ("}", ")"):
            depth -= 1
        if tok.text == ";" and depth == 0:
            if decl:
                out.append(_declaration(src, decl))
            decl = []
        else:
            decl.append(tok)
    return tuple(out)


def _declaration(src: _Source, toks: list[_Tok]) -> GlobalVar:
    """One ``type [*]name[N]...`` member, as btf_dump writes it."""
    line = src.line(toks[0].start)
    aligned = None
    rest: list[_Tok] = []
    i = 0
    while i < len(toks):  # drop __attribute__((...)), keeping aligned(N)
        if toks[i].text == "__attribute__":
            depth, j = 0, i + 1
            while j < len(toks):
                depth += {"(": 1, ")": -1}.get(toks[j].text, 0)
                if (
                    toks[j].text in ("aligned", "__aligned__")
                    and toks[j + 1 : j + 2]
                    and toks[j + 1].text == "("
                    and j + 2 < len(toks)
                    and toks[j + 2].kind == "num"
                ):
                    aligned = _c_int(src, toks[j + 2], "aligned()")
                if depth == 0:
                    break
                j += 1
            i = j + 1
            continue
        rest.append(toks[i])
        i += 1
    if any(t.text in ("{", "(") for t in rest):  # inline struct/union or function pointer
        bracket = next((n for n, t in enumerate(rest) if t.text == "["), len(rest))
        names = [t.text for t in rest[:bracket] if t.kind == "id"]
        if "{" not in [t.text for t in rest] and "(" in [t.text for t in rest]:
            names = [
                rest[n + 1].text
                for n, t in enumerate(rest[:-1])
                if t.text == "*" and rest[n + 1].kind == "id"
            ] or names
        return GlobalVar(names[-1] if names else "?", "?", False, (), aligned, line)
    bracket = next((n for n, t in enumerate(rest) if t.text == "["), len(rest))
    dims = []
    for n in range(bracket, len(rest)):
        if rest[n].text == "[":
            if n + 2 >= len(rest) or rest[n + 1].kind != "num" or rest[n + 2].text != "]":
                raise src.error(
                    f"unsupported array size in {' '.join(t.text for t in toks)!r}", rest[n].start
                )
            dims.append(_c_int(src, rest[n + 1], "array size"))
    head = rest[:bracket]
    if not head or head[-1].kind != "id":
        raise src.error(
            f"cannot read the member declaration {' '.join(t.text for t in toks)!r}", toks[0].start
        )
    name = head[-1].text
    words = [t.text for t in head[:-1] if t.text not in _QUALIFIERS]
    pointer = "*" in words
    words = [w for w in words if w != "*"]
    if not words:
        raise src.error(f"member {name!r} has no type", head[-1].start)
    return GlobalVar(name, " ".join(words), pointer, tuple(dims), aligned, line)


def parse(text: str, *, path: str | None = None, lenient: bool = False) -> Skeleton:
    """Parse a light-skeleton header. ``lenient`` accepts general C escapes."""
    _refuse_other_headers(text, path)
    src = _Source(text, path)
    scan = _Parser(src, lenient).run()
    name = _skeleton_struct(src, scan)
    insns, data, named = _loader_blobs(src, scan)
    sig, excl = _signature_blobs(src, scan)
    maps = tuple(_map_spec(src, scan, idx, m) for idx, m in enumerate(scan.maps))
    progs = tuple(ProgSpec(p, i, scan.attach.get(p)) for i, p in enumerate(scan.progs))
    return Skeleton(
        name=name,
        path=path,
        style="new" if named else _old_style(src),
        endian=_insn.detect_endian(insns.value),
        insns=insns.value,
        data=data.value,
        signature=sig.value if sig else None,
        excl_hash=excl.value if excl else None,
        has_keyring_field=scan.keyring_field,
        maps=maps,
        progs=progs,
        links=tuple(scan.links),
        ctx_size=ctx_size(len(maps), len(progs)),
        source=text,
        layout=_layout(
            text, scan, {"insns": insns, "data": data, "signature": sig, "excl_hash": excl}
        ),
    )


def _refuse_other_headers(text: str, path: str | None) -> None:
    """A regular skeleton, binary data or C without a loader ctx: say which, before tokenizing."""
    kind = sniff(text)
    if kind == "skel":
        raise RegularSkeletonError(
            "a regular BPF skeleton (it embeds an ELF object for bpf_object__open_skeleton), "
            "not a light skeleton from bpftool gen skeleton -L: it has no loader program to sign",
            path=path,
        )
    if kind == "not-a-header":
        if "\x00" in text:
            why = f"NUL character at offset {text.index(chr(0))}: binary data, not C text"
        else:
            why = (
                "no 'struct bpf_loader_ctx' anywhere; is this a light skeleton from "
                "bpftool gen skeleton -L?"
            )
        raise NotAHeaderError(f"not a light-skeleton header: {why}", path=path)


def _skeleton_struct(src: _Source, scan: _Scan) -> str:
    """The skeleton struct's name, once the whole file is known to be there (braces close)."""
    end = max(len(src.text) - 1, 0)
    if scan.struct_name is None:
        raise src.error(
            "no skeleton struct (a struct starting with 'struct bpf_loader_ctx ctx;'); "
            "is this a light skeleton from bpftool gen skeleton -L?",
            end,
        )
    if src.braces != 0:
        raise src.error(
            f"unbalanced braces at end of file ({src.braces} unclosed): the header is truncated",
            end,
        )
    return scan.struct_name


def _loader_blobs(src: _Source, scan: _Scan) -> tuple[_Blob, _Blob, bool]:
    """opts.insns and opts.data, checked against their sizes; True if they are named
    arrays (bpftool 7.x's ``opts_insn``/``opts_data``)."""
    where_load = scan.load_call if scan.load_call is not None else max(len(src.text) - 1, 0)
    insns, insns_named = _resolve(src, scan, "insns", "opts_insn", "loader instructions")
    data, data_named = _resolve(src, scan, "data", "opts_data", "loader data")
    if insns is None:
        raise src.error(
            "missing blob: no opts.insns (the loader program) in the header", where_load
        )
    if data is None:
        raise src.error("missing blob: no opts.data (the loader data) in the header", where_load)
    _check_size(src, scan, "insns", insns, "opts_insn" if insns_named else "opts.insns")
    _check_size(src, scan, "data", data, "opts_data" if data_named else "opts.data")
    if len(insns.value) % 8 or not insns.value:
        raise src.error(
            f"opts.insns is {len(insns.value)} bytes, not a non-empty multiple of 8",
            insns.span.start,
        )
    if len(data.value) % 8:
        raise src.error(
            f"opts.data is {len(data.value)} bytes, not a multiple of 8 (gen_loader pads every "
            "record to 8)",
            data.span.start,
        )
    return insns, data, insns_named


def _signature_blobs(src: _Source, scan: _Scan) -> tuple[_Blob | None, _Blob | None]:
    """opts_sig and opts_excl_hash when the header is signed, checked against their sizes."""
    sig, _ = _resolve(src, scan, "signature", "opts_sig", "signature")
    excl, _ = _resolve(src, scan, "excl_prog_hash", "opts_excl_hash", "exclusive-map hash")
    if sig is not None:
        _check_size(src, scan, "signature", sig, "opts_sig")
    if excl is not None:
        _check_size(src, scan, "excl_prog_hash", excl, "opts_excl_hash")
        if len(excl.value) != 32:
            raise src.error(
                f"opts_excl_hash is {len(excl.value)} bytes; the kernel accepts only a 32-byte SHA-256",
                excl.span.start,
            )
    return sig, excl


def _old_style(src: _Source) -> str:
    """An old-style header (inline blobs) as bpftool wrote it, or clang-formatted (spaces)."""
    toks = src.toks
    ctx_at = next((k for k in range(len(toks)) if toks.text(k) == "bpf_loader_ctx"), None)
    ls = src.line_start(toks[ctx_at].start) if ctx_at is not None else 0
    return "old-clang-format" if src.text[ls : ls + 1] == " " else "old"


_SECTION_MAPS = ("rodata", "data", "bss")


def _section_name(name: str) -> str:
    """The ELF section of an internal map: ``rodata`` -> .rodata, ``data_custom`` -> .data.custom."""
    base, sep, rest = name.partition("_")
    if not sep or base not in _SECTION_MAPS:
        return "." + name
    return "." + base + "." + rest


def _map_spec(src: _Source, scan: _Scan, idx: int, name: str) -> MapSpec:
    """Map ``idx`` of the skeleton struct, with its section image and mmap as the header sets them."""
    prep = scan.preps.get(name)
    fin = scan.finalize.get(name)
    internal = prep is not None or fin is not None or name in (*_SECTION_MAPS, "kconfig")
    # without a finalize call an image the header prepared stays read-only (7.3's
    # skel_protect_map_data for per-CPU sections)
    base = name.split("_", 1)[0]
    readonly = fin[1] if fin is not None else (prep is not None or base in ("rodata", "kconfig"))
    return MapSpec(
        name=name,
        index=idx,
        section=_section_name(name) if internal else None,
        initial_value=prep[0] if prep else None,
        mmap_size=prep[1] if prep else (fin[0] if fin else None),
        readonly=readonly if internal else False,
        fields=_section_fields(src, scan, name) if internal else (),
        mmapable=fin is not None,
    )


def _layout(text: str, scan: _Scan, found: dict[str, _Blob | None]) -> Layout:
    """Where each blob and size sits in the text, and which blobs bpftool would spell
    differently (those the writer must not assume it can reproduce)."""
    present = {k: b for k, b in found.items() if b is not None}
    blobs = {k: b.span for k, b in present.items()}
    values = {k: b.value for k, b in present.items()}
    noncanonical = tuple(
        k
        for k, b in present.items()
        if not b.strict
        or not escapes.is_canonical(text, b.span.start, b.span.end, b.value, strict=True)
    )
    numeric = {
        k.removesuffix("_sz"): span
        for k, (_, span) in scan.numeric.items()
        if k in ("insns_sz", "data_sz")
    }
    return Layout(
        values=values,
        noncanonical=noncanonical,
        blobs=blobs,
        numeric_sizes=numeric,
        links_line_end=scan.links_line_end,
        keyring_field=scan.keyring_field,
        ctx_assign_line=scan.ctx_assign_line,
        indent=scan.indent,
        struct_indent=scan.struct_indent,
    )
