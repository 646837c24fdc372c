"""The light-skeleton model: parse a bpftool ``*.lskel.h`` and write it back.

A header is C source that carries byte blobs as string literals (lskel.md
§3-§4). We read it with a small C tokenizer rather than line regexes, so the
three generator styles (new ``opts_data[]``, old numeric sizes, and
clang-formatted old style) parse with the same code. Every blob keeps the
source span it came from: the writer edits only those spans, so parse → write
without a change returns the same bytes.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field

from ..errors import InputError
from . import insn as _insn

# --------------------------------------------------------------------- model


@dataclass(frozen=True)
class GlobalVar:
    """One member of a section struct as the header declares it (``__u32 hits[4];``).

    Only the declaration: the host layout is computed by :mod:`bpfsign.skel.globaldata`.
    ``type`` is the C type without qualifiers and pointer stars (``"struct multi_config"``,
    ``"long unsigned int"``); ``type`` is ``"?"`` for an inline definition or a
    function pointer that this parser does not model.
    """

    name: str
    type: str
    pointer: bool
    dims: tuple[int, ...]
    aligned: int | None  # __attribute__((aligned(N)))
    line: int


@dataclass(frozen=True)
class MapSpec:
    """One entry of ``skel->maps``, in ctx order."""

    name: str
    index: int
    section: str | None  # ".rodata"/".data"/".bss"/".kconfig" for global-data maps
    initial_value: bytes | None  # the section image from __open (None for user maps)
    mmap_size: int | None  # skel_prep_map_data's mmap size (e.g. 4096)
    readonly: bool  # PROT_READ only after load (rodata, kconfig)
    #: the members of ``struct <skel>__<section>`` (global-data maps only)
    fields: tuple[GlobalVar, ...] = ()
    #: the header maps the map over its section after load (``skel_finalize_map_data``,
    #: emitted by bpftool for BPF_F_MMAPABLE maps only). False for per-CPU sections
    #: (``skel_protect_map_data``) and for sections the header gives no image.
    mmapable: bool = False

    @property
    def ctx_offset(self) -> int:
        """Where this map's ``bpf_map_desc`` sits in the ctx."""
        return CTX_HEADER_SIZE + MAP_DESC_SIZE * self.index


@dataclass(frozen=True)
class ProgSpec:
    name: str
    index: int
    #: "raw_tp:<tp>", "tracing" (tp_btf/fentry/fexit/lsm: the header cannot tell
    #: them apart), "iter", or None when the header says auto-attach is unsupported.
    attach: str | None


@dataclass(frozen=True)
class Span:
    """Where a blob literal sits in the source text: ``text[start:end]``."""

    start: int
    end: int
    line: int


@dataclass(frozen=True)
class Layout:
    """Source positions the writer needs. Offsets index the original text."""

    blobs: dict[str, Span]  # "insns", "data", "signature", "excl_hash" -> literal span
    numeric_sizes: dict[str, Span]  # "insns", "data" -> the number token, old styles
    links_line_end: int | None  # just after the "} links;" line
    keyring_field: bool
    ctx_assign_line: int | None  # start of the "opts.ctx = ..." line
    indent: str  # indentation of that line
    struct_indent: str  # indentation of the "} links;" line
    #: blobs whose literal is not exactly what bpftool's print_hex writes (other wrapping,
    #: escapes or splitting); the writer still keeps them as they are unless they change.
    noncanonical: tuple[str, ...] = ()
    #: the decoded blobs as they are in the source, to tell what a writer changed
    values: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Skeleton:
    name: str
    path: str | None
    style: str  # "new" | "old" | "old-clang-format"
    endian: str  # "little" | "big" (of the loader insns)
    insns: bytes
    data: bytes
    signature: bytes | None
    excl_hash: bytes | None
    has_keyring_field: bool
    maps: tuple[MapSpec, ...]
    progs: tuple[ProgSpec, ...]
    links: tuple[str, ...]
    ctx_size: int  # 24 + 16*nmaps + 4*nprogs
    source: str | None = field(default=None, repr=False, compare=False)
    layout: Layout | None = field(default=None, repr=False, compare=False)

    @property
    def insn_count(self) -> int:
        return len(self.insns) // _insn.INSN_SIZE

    @property
    def signed(self) -> bool:
        return self.signature is not None

    def prog_fd_offset(self, index: int) -> int:
        return CTX_HEADER_SIZE + MAP_DESC_SIZE * len(self.maps) + PROG_DESC_SIZE * index

    def __repr__(self) -> str:
        sig = "unsigned" if self.signature is None else f"signature {len(self.signature)} bytes"
        return (
            f"<Skeleton {self.name!r} {self.style}/{self.endian}: {self.insn_count} insns, "
            f"{len(self.data)} data bytes, {sig}, maps {[m.name for m in self.maps]}, "
            f"progs {[p.name for p in self.progs]}>"
        )


CTX_HEADER_SIZE = 24
MAP_DESC_SIZE = 16
PROG_DESC_SIZE = 4


def ctx_size(nmaps: int, nprogs: int) -> int:
    return CTX_HEADER_SIZE + MAP_DESC_SIZE * nmaps + PROG_DESC_SIZE * nprogs


# ----------------------------------------------------------------- tokenizer

_TOKEN = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<comment>/\*.*?\*/|//[^\n]*)
    |(?P<str>"(?:[^"\\\n]|\\.)*")
    |(?P<char>'(?:[^'\\\n]|\\.)*')
    |(?P<id>[A-Za-z_]\w*)
    |(?P<num>\d\w*)
    |(?P<op>->|.)
    """,
    re.S | re.X,
)


# An unclosed literal's body up to where it stops (each alternative starts with a
# different character, so matching is linear; see _TOKEN's str/char groups).
_OPEN_LITERAL = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*', re.S),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*", re.S),
}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "str" | "id" | "num" | "op"
    text: str
    start: int
    end: int


class _Source:
    """The text, its tokens, and line numbers by offset."""

    def __init__(self, text: str, path: str | None) -> None:
        self.text = text
        self.path = path
        self._nl = [m.start() for m in re.finditer("\n", text)]
        toks: list[_Tok] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            if kind in ("ws", "comment"):
                continue
            assert kind is not None
            if kind == "op" and m.group() in "\"'":
                raise self._unterminated(m.start())
            if kind == "op" and text.startswith("/*", m.start()):
                raise self.error("unterminated comment (is the file truncated?)", m.start())
            toks.append(_Tok(kind, m.group(), m.start(), m.end()))
        self.toks = toks

    def _unterminated(self, start: int) -> InputError:
        """Say where a literal that never closes stops: a bare newline or the end of file."""
        quote = self.text[start]
        what = "string" if quote == '"' else "character"
        stop = _OPEN_LITERAL[quote].match(self.text, start).end()  # type: ignore[union-attr]
        if self.text.startswith("\n", stop):
            return self.error(
                f"{what} literal opened on line {self.line(start)} is broken by a bare newline "
                "(a line-continuation backslash is missing?)",
                stop,
            )
        return self.error(
            f"unterminated {what} literal opened on line {self.line(start)} "
            "(is the file truncated?)",
            stop,
        )

    def line(self, offset: int) -> int:
        return bisect.bisect_left(self._nl, offset) + 1

    def line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1

    def line_end(self, offset: int) -> int:
        nl = self.text.find("\n", offset)
        return len(self.text) if nl < 0 else nl + 1

    def error(self, message: str, offset: int | None = None) -> InputError:
        line = self.line(offset) if offset is not None else None
        return InputError(message, path=self.path, line=line)

    def last_line(self) -> int:
        return self.line(max(len(self.text) - 1, 0))


# -------------------------------------------------------------- escape codec

_STRICT_STEP = re.compile(r"\\x[0-9a-fA-F]{2}|\\0|\\\n")
_STRICT_BODY = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\0|\\\n)*")
_LENIENT_STEP = re.compile(
    r"""\\\n|\\x([0-9a-fA-F]+)|\\([0-7]{1,3})|\\(['"?\\abfnrtv])|\\(.)|([^\\])""", re.S
)
_SIMPLE = {
    "'": 0x27, '"': 0x22, "?": 0x3F, "\\": 0x5C, "a": 7, "b": 8, "f": 12, "n": 10, "r": 13,
    "t": 9, "v": 11,
}


def _decode_literal(src: _Source, tok: _Tok, what: str, lenient: bool) -> bytes:
    raw = tok.text[1:-1]
    base = tok.start + 1
    if _STRICT_BODY.fullmatch(raw):  # bpftool's own spelling: the fast path
        hexed = raw.replace("\\\n", "").replace("\\0", "\\x00").replace("\\x", "")
        return bytes.fromhex(hexed)
    if not lenient:
        pos = 0
        while (m := _STRICT_STEP.match(raw, pos)) is not None:
            pos = m.end()
        bad = raw[pos : pos + 4] if raw[pos] == "\\" else raw[pos]
        if raw[pos] == "\\" and raw[pos + 1 : pos + 2] != "x":
            bad = raw[pos : pos + 2]
        raise src.error(
            f"odd escape {bad!r} in the {what} literal: bpftool writes only \\0 and \\xNN "
            "(parse with lenient=True to accept general C escapes)",
            base + pos,
        )
    out = bytearray()
    for m in _LENIENT_STEP.finditer(raw):
        hx, octal, simple, other, char = m.groups()
        if hx is not None:
            value = int(hx, 16)
            if value > 0xFF:
                raise src.error(f"hex escape \\x{hx} out of range in the {what} literal", base + m.start())
            out.append(value)
        elif octal is not None:
            out.append(int(octal, 8) & 0xFF)
        elif simple is not None:
            out.append(_SIMPLE[simple])
        elif other is not None:
            raise src.error(f"odd escape '\\{other}' in the {what} literal", base + m.start())
        elif char is not None:
            out += char.encode("utf-8", "surrogateescape")
    return bytes(out)


_ESCAPE = ["\\0"] + [f"\\x{b:02x}" for b in range(1, 256)]


def render_literal(data: bytes) -> str:
    """A blob as bpftool's ``print_hex`` writes it, quotes included (lskel.md §3).

    Each byte adds its width (4 for ``\\xNN``, 2 for ``\\0``) first; when the line would
    pass 78 columns a backslash-newline starts a new one.
    """
    parts = ['"\\\n']
    escape = _ESCAPE
    width = 0
    for b in data:
        w = 4 if b else 2
        width += w
        if width > 78:
            parts.append("\\\n")
            width = w
        parts.append(escape[b])
    parts.append('"')
    return "".join(parts)


# -------------------------------------------------------------------- parser


@dataclass
class _Blob:
    value: bytes
    span: Span


@dataclass
class _Scan:
    arrays: dict[str, _Blob] = field(default_factory=dict)
    # opts.<field> = ... : kind "blob" (inline literal), "ref" (array name),
    # "sizeof" (array name), "num" (int), "keyring", "ctx"
    assigns: dict[str, tuple[str, object, int]] = field(default_factory=dict)
    inline: dict[str, _Blob] = field(default_factory=dict)
    numeric: dict[str, tuple[int, Span]] = field(default_factory=dict)
    preps: dict[str, tuple[bytes, int, int]] = field(default_factory=dict)  # name -> image, mmap, line
    finalize: dict[str, tuple[int, bool]] = field(default_factory=dict)  # name -> mmap, readonly
    struct_name: str | None = None
    maps: list[str] = field(default_factory=list)
    progs: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    links_line_end: int | None = None
    struct_indent: str = "\t"
    keyring_field: bool = False
    attach: dict[str, str | None] = field(default_factory=dict)
    ctx_assign_line: int | None = None
    indent: str = "\t"
    load_call: int | None = None
    struct_line_indent: str = ""
    # section ident ("bss", "data_custom") -> token range of its struct members
    section_structs: dict[str, tuple[int, int]] = field(default_factory=dict)


class _Parser:
    def __init__(self, src: _Source, lenient: bool) -> None:
        self.src = src
        self.t = src.toks
        self.lenient = lenient
        self.s = _Scan()
        self.last_data_array: _Blob | None = None

    # token helpers
    def _texts(self, i: int, n: int) -> list[str]:
        return [tok.text for tok in self.t[i : i + n]]

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
        value = b"".join(_decode_literal(self.src, p, what, self.lenient) for p in parts)
        span = Span(parts[0].start, parts[-1].end, self.src.line(parts[0].start))
        return _Blob(value, span), j

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
            elif text.endswith("__attach") and self.s.struct_name and text.startswith(
                self.s.struct_name + "__"
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
                try:
                    number = int(tok.text, 0)
                except ValueError:
                    raise self.src.error(f"bad number {tok.text!r} for opts.{fld}", tok.start) from None
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
        mmap_size = int(self.t[k2].text, 0)
        k3 = self._seq(k2 + 1, ",")
        size = self._size_expr(k3) if k3 is not None else None
        if size is None:
            return None
        kind, tok, k4 = size
        if kind == "num" and int(tok.text, 0) != len(blob.value):
            raise self.src.error(
                f"skel->{name} image size {int(tok.text, 0)} disagrees with its literal "
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
        mmap_size = int(self.t[j].text, 0)
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
                if depth == 1 and k >= 2 and self.t[k - 2].text == "struct" and \
                        self.t[k - 1].text.startswith(name + "__"):
                    sec_start = k + 1
                depth += 1
                group = []
            elif tok.text == "}":
                depth -= 1
                if depth == 1 and sec_start is not None and self._seq(k + 1, "*") is not None \
                        and self._kind(k + 2, "id"):
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
                arg = self.t[k + 2]
                if arg.kind == "str":
                    tp = _decode_literal(self.src, arg, "tracepoint name", True).decode(errors="replace")
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


_QUALIFIERS = frozenset(("const", "volatile", "static", "extern", "register", "restrict",
                         "__restrict", "__restrict__", "_Atomic"))


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
                if toks[j].text in ("aligned", "__aligned__") and toks[j + 1 : j + 2] and \
                        toks[j + 1].text == "(" and j + 2 < len(toks) and toks[j + 2].kind == "num":
                    aligned = int(toks[j + 2].text, 0)
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
            names = [rest[n + 1].text for n, t in enumerate(rest[:-1]) if t.text == "*"
                     and rest[n + 1].kind == "id"] or names
        return GlobalVar(names[-1] if names else "?", "?", False, (), aligned, line)
    bracket = next((n for n, t in enumerate(rest) if t.text == "["), len(rest))
    dims = []
    for n in range(bracket, len(rest)):
        if rest[n].text == "[":
            if n + 2 >= len(rest) or rest[n + 1].kind != "num" or rest[n + 2].text != "]":
                raise src.error(f"unsupported array size in {' '.join(t.text for t in toks)!r}",
                                rest[n].start)
            dims.append(int(rest[n + 1].text.rstrip("uUlL"), 0))
    head = rest[:bracket]
    if not head or head[-1].kind != "id":
        raise src.error(f"cannot read the member declaration {' '.join(t.text for t in toks)!r}",
                        toks[0].start)
    name = head[-1].text
    words = [t.text for t in head[:-1] if t.text not in _QUALIFIERS]
    pointer = "*" in words
    words = [w for w in words if w != "*"]
    if not words:
        raise src.error(f"member {name!r} has no type", head[-1].start)
    return GlobalVar(name, " ".join(words), pointer, tuple(dims), aligned, line)


def parse(text: str, *, path: str | None = None, lenient: bool = False) -> Skeleton:
    """Parse a light-skeleton header. ``lenient`` accepts general C escapes."""
    src = _Source(text, path)
    scan = _Parser(src, lenient).run()
    where_load = scan.load_call if scan.load_call is not None else max(len(text) - 1, 0)

    if scan.struct_name is None:
        raise src.error(
            "no skeleton struct (a struct starting with 'struct bpf_loader_ctx ctx;'); "
            "is this a light skeleton from bpftool gen skeleton -L?",
            max(len(text) - 1, 0),
        )
    depth = sum(1 for t in src.toks if t.text == "{") - sum(1 for t in src.toks if t.text == "}")
    if depth != 0:
        raise src.error(
            f"unbalanced braces at end of file ({depth} unclosed): the header is truncated",
            max(len(text) - 1, 0),
        )

    insns, insns_named = _resolve(src, scan, "insns", "opts_insn", "loader instructions")
    data, data_named = _resolve(src, scan, "data", "opts_data", "loader data")
    if insns is None:
        raise src.error("missing blob: no opts.insns (the loader program) in the header", where_load)
    if data is None:
        raise src.error("missing blob: no opts.data (the loader data) in the header", where_load)
    _check_size(src, scan, "insns", insns, "opts_insn" if insns_named else "opts.insns")
    _check_size(src, scan, "data", data, "opts_data" if data_named else "opts.data")
    if len(insns.value) % 8 or not insns.value:
        raise src.error(
            f"opts.insns is {len(insns.value)} bytes, not a non-empty multiple of 8", insns.span.start
        )
    if len(data.value) % 8:
        raise src.error(
            f"opts.data is {len(data.value)} bytes, not a multiple of 8 (gen_loader pads every "
            "record to 8)",
            data.span.start,
        )
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

    if insns_named:
        style = "new"
    else:
        ctx_line = next((t for t in src.toks if t.text == "bpf_loader_ctx"), None)
        ls = src.line_start(ctx_line.start) if ctx_line else 0
        style = "old-clang-format" if text[ls : ls + 1] == " " else "old"

    maps = []
    for idx, name in enumerate(scan.maps):
        prep = scan.preps.get(name)
        fin = scan.finalize.get(name)
        base = name.split("_", 1)[0]
        internal = prep is not None or fin is not None or name in ("rodata", "data", "bss", "kconfig")
        section = None
        if internal:
            section = "." + name if "_" not in name or base not in ("rodata", "data", "bss") else (
                "." + base + "." + name.split("_", 1)[1]
            )
        # without a finalize call an image the header prepared stays read-only (7.3's
        # skel_protect_map_data for per-CPU sections)
        readonly = fin[1] if fin is not None else (prep is not None or base in ("rodata", "kconfig"))
        maps.append(
            MapSpec(
                name=name,
                index=idx,
                section=section,
                initial_value=prep[0] if prep else None,
                mmap_size=prep[1] if prep else (fin[0] if fin else None),
                readonly=readonly if internal else False,
                fields=_section_fields(src, scan, name) if internal else (),
                mmapable=fin is not None,
            )
        )
    progs = tuple(ProgSpec(p, i, scan.attach.get(p)) for i, p in enumerate(scan.progs))

    blobs = {"insns": insns.span, "data": data.span}
    if sig is not None:
        blobs["signature"] = sig.span
    if excl is not None:
        blobs["excl_hash"] = excl.span
    numeric = {
        k.removesuffix("_sz"): span
        for k, (_, span) in scan.numeric.items()
        if k in ("insns_sz", "data_sz")
    }
    values = {"insns": insns.value, "data": data.value}
    if sig is not None:
        values["signature"] = sig.value
    if excl is not None:
        values["excl_hash"] = excl.value
    noncanonical = tuple(
        k for k, span in blobs.items() if text[span.start : span.end] != render_literal(values[k])
    )
    layout = Layout(
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
    return Skeleton(
        name=scan.struct_name,
        path=path,
        style=style,
        endian=_insn.detect_endian(insns.value),
        insns=insns.value,
        data=data.value,
        signature=sig.value if sig else None,
        excl_hash=excl.value if excl else None,
        has_keyring_field=scan.keyring_field,
        maps=tuple(maps),
        progs=progs,
        links=tuple(scan.links),
        ctx_size=ctx_size(len(maps), len(progs)),
        source=text,
        layout=layout,
    )


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a header byte-exactly (no newline translation)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError("file not found", path=os.fspath(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=os.fspath(path)) from None


def load(path: str | os.PathLike[str], *, lenient: bool = False) -> Skeleton:
    return parse(read_text(path), path=str(path), lenient=lenient)


# -------------------------------------------------------------------- writer


def _sig_block(indent: str, signature: bytes, excl_hash: bytes) -> str:
    """bpftool 7.8's signed additions to __load (gen.c), with its indentation."""
    return (
        f"{indent}static const char opts_sig[] __attribute__((__aligned__(8))) = "
        f"{render_literal(signature)};\n"
        f"{indent}static const char opts_excl_hash[] __attribute__((__aligned__(8))) = "
        f"{render_literal(excl_hash)};\n"
        f"{indent}opts.signature = (void *)opts_sig;\n"
        f"{indent}opts.signature_sz = sizeof(opts_sig) - 1;\n"
        f"{indent}opts.excl_prog_hash = (void *)opts_excl_hash;\n"
        f"{indent}opts.excl_prog_hash_sz = sizeof(opts_excl_hash) - 1;\n"
        f"{indent}opts.keyring_id = skel->keyring_id;\n"
    )


def with_signature(
    text: str,
    signature: bytes,
    excl_hash: bytes,
    *,
    insns: bytes | None = None,
    path: str | None = None,
    lenient: bool = False,
) -> str:
    """The header ``text`` carrying ``signature`` and ``excl_hash`` (and ``insns``).

    An unsigned header gains bpftool 7.8's signed form: the ``keyring_id``
    field, ``opts_sig``/``opts_excl_hash`` and their five assignments, just
    before ``opts.ctx``. A signed header has only its blob literals replaced.
    Nothing else changes.
    """
    skel = parse(text, path=path, lenient=lenient)
    return _edit(skel, signature=signature, excl_hash=excl_hash, insns=insns)


def render(skel: Skeleton) -> str:
    """Write the model back into its own source: changed blobs only."""
    if skel.source is None or skel.layout is None:
        raise InputError("this skeleton has no source text to render into", path=skel.path)
    if skel.signature is None:
        if skel.layout.blobs.get("signature") is not None:
            raise InputError("removing a signature is not supported", path=skel.path)
        return _edit(skel, signature=None, excl_hash=None, insns=skel.insns)
    if skel.excl_hash is None:
        raise InputError("a signed skeleton needs an excl_hash", path=skel.path)
    return _edit(skel, signature=skel.signature, excl_hash=skel.excl_hash, insns=skel.insns)


def _edit(
    skel: Skeleton, *, signature: bytes | None, excl_hash: bytes | None, insns: bytes | None
) -> str:
    assert skel.source is not None and skel.layout is not None
    text, lay = skel.source, skel.layout
    original = lay.values
    edits: list[tuple[int, int, str]] = []

    def replace_blob(key: str, old: bytes | None, new: bytes) -> None:
        span = lay.blobs[key]
        if old != new:
            edits.append((span.start, span.end, render_literal(new)))

    if insns is not None and insns != original["insns"]:
        if len(insns) % 8 or not insns:
            raise InputError(f"new insns are {len(insns)} bytes, not a multiple of 8", path=skel.path)
        replace_blob("insns", original["insns"], insns)
        num = lay.numeric_sizes.get("insns")
        if num is not None:
            edits.append((num.start, num.end, str(len(insns))))
    if signature is not None:
        if excl_hash is None or len(excl_hash) != 32:
            raise InputError("excl_hash must be 32 bytes (SHA-256 of the insns)", path=skel.path)
        if "signature" in lay.blobs:
            if "excl_hash" not in lay.blobs:
                raise InputError(
                    "header has opts_sig but no opts_excl_hash; cannot re-sign it", path=skel.path
                )
            replace_blob("signature", original.get("signature"), signature)
            replace_blob("excl_hash", original.get("excl_hash"), excl_hash)
        else:
            if lay.ctx_assign_line is None:
                raise InputError(
                    "no 'opts.ctx = ...' line in __load to insert the signature before",
                    path=skel.path,
                )
            edits.append((lay.ctx_assign_line, lay.ctx_assign_line, _sig_block(lay.indent, signature, excl_hash)))
            if not lay.keyring_field:
                if lay.links_line_end is None:
                    raise InputError("no 'links' struct to put keyring_id after", path=skel.path)
                edits.append(
                    (lay.links_line_end, lay.links_line_end, f"{lay.struct_indent}__s32 keyring_id;\n")
                )
    edits.sort(key=lambda e: e[0])
    out = []
    pos = 0
    for start, end, new in edits:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)
