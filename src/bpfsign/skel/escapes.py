"""The escape codec of blob literals: C string escapes ⇄ bytes (docs/lskel.md §3).

bpftool's ``print_hex`` spells every byte ``\\xNN`` (``\\0`` for zero) and
wraps lines with backslash-newline; that spelling is decoded on a fast path,
a slice at a time, so a 16 MiB blob never exists as more than the text and
its bytes. General C escapes are accepted only when asked (``lenient``).
"""

from __future__ import annotations

import binascii
import operator
import re
from collections.abc import Iterator

from ..errors import InputError

_STRICT_BODY = re.compile(r"(?:\\x[0-9a-fA-F]{2}|\\0|\\\n)*+")
_LENIENT_STEP = re.compile(
    r"""\\\n|\\x([0-9a-fA-F]++)|\\([0-7]{1,3})|\\(['"?\\abfnrtv])|\\(.)|([^\\]++)""", re.S
)
_SIMPLE = {
    "'": 0x27,
    '"': 0x22,
    "?": 0x3F,
    "\\": 0x5C,
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
}
_CHUNK = 1 << 20


class LiteralError(InputError):
    """A literal with an escape this codec refuses; ``offset`` is where, in the text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def decode(text: str, start: int, end: int, what: str, *, lenient: bool) -> bytes:
    """The bytes of the literal body ``text[start:end]`` (without its quotes).

    Raises :class:`LiteralError` with the text offset of a refused escape.
    """
    return decode_spelled(text, start, end, what, lenient=lenient)[0]


def _decode_print_hex(text: str, start: int, end: int) -> bytes | None:
    """The bytes of a body spelled only with ``\\xNN``, ``\\0`` and backslash-newlines,
    or None when it is spelled any other way.

    Linear and vectorised, a slice (about a megabyte) at a time: each two-character
    escape is widened to four (``\\0`` to ``\\x00``, backslash-newline to ``\\xZZ``), so
    the slice must be ``\\x`` + two characters every four; the hex digits are picked out
    with strided slices and checked by ``binascii``. Without a double backslash (or a
    ``Z``) in the body every backslash starts an escape, so this is exactly
    ``_STRICT_BODY``, without a regex step per escape.
    """
    if text.find("\\\\", start, end) >= 0 or text.find("Z", start, end) >= 0:
        return None
    out = bytearray()
    pos = start
    while pos < end:
        stop = end
        if end - pos > _CHUNK:
            stop = text.rfind("\\", pos, pos + _CHUNK)  # every backslash starts an escape
            if stop <= pos:
                stop = end
        piece = text[pos:stop].replace("\\0", "\\x00").replace("\\\n", "\\xZZ")
        try:
            raw = piece.encode("ascii")
        except UnicodeEncodeError:
            return None
        count, odd = divmod(len(raw), 4)
        if odd or raw[0::4] != b"\\" * count or raw[1::4] != b"x" * count:
            return None
        digits = bytearray(2 * count)
        digits[0::2] = raw[2::4]
        digits[1::2] = raw[3::4]
        del raw
        try:
            out += binascii.a2b_hex(digits.replace(b"ZZ", b""))
        except binascii.Error:  # a non-hex digit (or a lone Z pair half)
            return None
        pos = stop
    return bytes(out)


def decode_spelled(
    text: str, start: int, end: int, what: str, *, lenient: bool
) -> tuple[bytes, bool]:
    """:func:`decode`, and whether the body uses only print_hex's escapes."""
    fast = _decode_print_hex(text, start, end)
    if fast is not None:  # bpftool's own spelling
        return fast, True
    m = _STRICT_BODY.match(text, start, end)
    assert m is not None  # the pattern matches the empty string
    assert m.end() != end  # _decode_print_hex takes every print_hex body
    if not lenient:
        pos = m.end()
        bad = text[pos]
        if bad == "\\":
            bad = (
                text[pos : min(pos + 4, end)]
                if text[pos + 1 : pos + 2] == "x"
                else text[pos : pos + 2]
            )
        raise LiteralError(
            f"odd escape {bad!r} in the {what} literal: bpftool writes only \\0 and \\xNN "
            "(parse with lenient=True to accept general C escapes)",
            pos,
        )
    out = bytearray()
    for step in _LENIENT_STEP.finditer(text, start, end):
        hx, octal, simple, other, chars = step.groups()
        if hx is not None:
            if len(hx.lstrip("0")) > 2:
                raise LiteralError(
                    f"hex escape \\x{hx[:8]}{'...' if len(hx) > 8 else ''} out of range in the "
                    f"{what} literal",
                    step.start(),
                )
            out.append(int(hx, 16))
        elif octal is not None:
            out.append(int(octal, 8) & 0xFF)
        elif simple is not None:
            out.append(_SIMPLE[simple])
        elif other is not None:
            raise LiteralError(f"odd escape '\\{other}' in the {what} literal", step.start())
        elif chars is not None:
            out += chars.encode("utf-8", "surrogateescape")
    return bytes(out), False


_ESCAPE = ["\\0"] + [f"\\x{b:02x}" for b in range(1, 256)]
_WIDTH = 78
_WRAPPED_WIDTHS = frozenset(range(_WIDTH - 3, _WIDTH + 1))
_NARROW = bytes(int(n <= _WIDTH - 2) for n in range(256))  # a \\0 would still have fitted
_IS_ZERO = bytes(int(n == ord("0")) for n in range(256))
_SECOND_CHAR = operator.itemgetter(1)  # "0" of a line that starts with \\0


def iter_literal(data: bytes) -> Iterator[str]:
    """:func:`render_literal`'s text in pieces, for writing without building it whole."""
    yield '"\\\n'
    escape = _ESCAPE
    line = 0  # characters on the current output line
    for base in range(0, len(data), _CHUNK // 4):
        s = "".join([escape[b] for b in data[base : base + _CHUNK // 4]])
        parts = []
        pos = 0
        n = len(s)
        while pos < n:
            room = _WIDTH - line
            stop = pos + room
            if stop >= n:
                parts.append(s[pos:])
                line += n - pos
                break
            if s[stop] != "\\":  # an escape straddles the margin: it starts the next line
                stop = s.rfind("\\", pos, stop)
            if stop > pos:
                parts.append(s[pos:stop])
            parts.append("\\\n")
            line = 0
            pos = stop
        yield "".join(parts)
    yield '"'


def render_literal(data: bytes) -> str:
    """A blob as bpftool's ``print_hex`` writes it, quotes included (docs/lskel.md §3).

    Each byte adds its width (4 for ``\\xNN``, 2 for ``\\0``) first; when the line would
    pass 78 columns a backslash-newline starts a new one.
    """
    return "".join(iter_literal(data))


def is_canonical(text: str, start: int, end: int, data: bytes, *, strict: bool = False) -> bool:
    """Whether the literal ``text[start:end]`` (quotes included), which decodes to
    ``data``, is spelled exactly as :func:`render_literal` (data) would spell it.

    Checked on the text in place (escapes, then each line's wrap), without
    rendering ``data``: a 16 MiB blob costs no second copy. ``strict`` says the
    body is already known to hold only ``\\xNN``, ``\\0`` and line breaks.
    """
    body, stop = start + 1, end - 1
    if stop < body + 2 or text[start] != '"' or text[stop] != '"':
        return False
    if not text.startswith("\\\n", body):
        return False
    if not strict and _STRICT_BODY.fullmatch(text, body, stop) is None:
        return False
    if text.find("\\x00", body, stop) >= 0:  # print_hex writes a zero byte as \\0
        return False
    if any(text.find(upper, body, stop) >= 0 for upper in "ABCDEF"):  # and lower-case hex
        return False
    pos = body + 2
    while True:  # a slice of whole lines (about a megabyte) at a time
        cut = text.find("\\\n", pos + _CHUNK, stop) if stop - pos > _CHUNK else -1
        if cut < 0:
            lines = text[pos:stop].split("\\\n")
            last = lines.pop()
            if len(last) > _WIDTH or (not last and data):
                return False
            return _wrapped(lines, last[:2])
        if not _wrapped(text[pos:cut].split("\\\n"), text[cut + 2 : min(cut + 4, stop)]):
            return False
        pos = cut + 2


def _wrapped(lines: list[str], after: str) -> bool:
    """Whether each line was broken because the next escape would not fit: it is at most
    _WIDTH wide, and wider than _WIDTH - 4 before a \\xNN (- 2 before a \\0). ``after``
    is how the line after the last one starts."""
    if not set(map(len, lines)) <= _WRAPPED_WIDTHS:
        return False
    # A line narrow enough for a \\0 must not be followed by one: compared as big
    # integers, one byte per line (1 = narrow, 1 = the next line starts with \\0).
    narrow = int.from_bytes(bytes(map(len, lines)).translate(_NARROW), "big")
    if not narrow:
        return True
    seconds = "".join(map(_SECOND_CHAR, lines[1:])) + (after[1:2] or "x")
    zero_next = int.from_bytes(seconds.encode("ascii", "replace").translate(_IS_ZERO), "big")
    return not narrow & zero_next
