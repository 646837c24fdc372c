"""Strict DER/BER reader and canonical DER writer, for the subset CMS and X.509 need.

The reader applies the kernel's ASN.1 decoder limits (lib/asn1_decoder.c,
docs/kernel.md §12.1) so that what we accept is what the kernel can decode:

* tag numbers must fit the low 5 bits (long-form tags: rejected);
* 1 or 2 length octets (3 or more: rejected); non-minimal lengths accepted;
* indefinite length only on constructed elements, closed by ``00 00``
  (whether the *grammar* allows it at a given place is decided by the CMS
  layer, not here: see ``cms.py``);
* at most 10 nested constructed levels, at most 65535 bytes per message.

Elements keep offsets into the original buffer, so raw encodings (signed
attributes, issuer Names) are available exactly as received.  The writer
always emits canonical DER.  No crypto here.
"""

from __future__ import annotations

from collections.abc import Iterator
from errno import EBADMSG

from ..errors import VerificationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ._record import NamedTuple

#: The kernel decoder refuses larger messages with EMSGSIZE (docs/kernel.md §12.1, §13 row 33).
MAX_MESSAGE_SIZE = 65535
#: Constructed nesting the kernel's cons stack holds (NR_CONS_STACK).
MAX_DEPTH = 10

# Universal tags (identifier octets) used by CMS and X.509.
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31
CONSTRUCTED = 0x20


class DERError(VerificationError, ValueError):
    """The bytes are not a well-formed encoding the kernel's decoder would accept.

    A :class:`~bpfsign.VerificationError` with the errno the kernel's ASN.1 decoder
    gives (EBADMSG, docs/kernel.md §12.1); still a ``ValueError`` for callers that parse
    untrusted bytes generically. ``reason`` is the bare description, ``detail``
    adds where.
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(EBADMSG, f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset

    @property
    def detail(self) -> str:
        return f"{self.reason} (at byte {self.offset})"


class Element(NamedTuple):
    """One TLV inside ``data``; cheap to make, and points back into the buffer."""

    data: bytes
    offset: int  #: position of the identifier octet
    tag: int  #: the identifier octet (class, constructed bit, number)
    header_len: int
    length: int  #: content length, the end-of-contents octets excluded
    indefinite: bool
    depth: int  #: nesting level, 0 for the outermost element
    end: int  #: offset just past the element, end-of-contents included

    @property
    def constructed(self) -> bool:
        return bool(self.tag & CONSTRUCTED)

    @property
    def content_offset(self) -> int:
        return self.offset + self.header_len

    @property
    def content(self) -> bytes:
        start = self.offset + self.header_len
        return self.data[start : start + self.length]

    @property
    def raw(self) -> bytes:
        """The element exactly as encoded (header, content and any end-of-contents)."""
        return self.data[self.offset : self.end]

    def children(self) -> list[Element]:
        """The elements inside a constructed element, in encoded order."""
        return list(self.iter_children())

    def iter_children(self) -> Iterator[Element]:
        """Like ``children`` but lazy: a bad later sibling is found only when reached,
        which is the order in which the kernel's single-pass decoder reports errors."""
        if not self.tag & CONSTRUCTED:
            raise DERError(
                f"expected a constructed element, found tag 0x{self.tag:02x}", self.offset
            )
        pos = self.offset + self.header_len
        stop = pos + self.length
        depth = self.depth + 1
        data = self.data
        while pos < stop:
            child = read(data, pos, stop, depth)
            yield child
            pos = child[7]


_new = tuple.__new__


def read(data: bytes, offset: int = 0, end: int | None = None, depth: int = 0) -> Element:
    """Read the element at ``offset``; ``end`` bounds it (default: end of ``data``)."""
    if end is None:
        end = len(data)
    if end - offset < 2:
        raise DERError("truncated: an element header runs past the end of the data", offset)
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("long-form tag number, which the kernel's decoder rejects", offset)
    if tag & CONSTRUCTED and depth >= MAX_DEPTH:
        raise DERError(f"more than {MAX_DEPTH} nested constructed elements", offset)
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        if not tag & CONSTRUCTED:
            raise DERError("indefinite length on a primitive element", offset)
        # BER indefinite length: the children run up to the end-of-contents octets.
        while True:
            if end - pos < 2:
                raise DERError("indefinite-length element without end-of-contents", offset)
            if data[pos] == 0:
                if data[pos + 1] != 0:
                    raise DERError("invalid end-of-contents (non-zero length)", pos)
                return _new(Element, (data, offset, tag, 2, pos - offset - 2, True, depth, pos + 2))
            pos = read(data, pos, end, depth + 1)[7]
    else:
        n = first & 0x7F
        if n > 2:
            raise DERError(f"{n} length octets; the kernel's decoder accepts at most 2", offset)
        if end - pos < n:
            raise DERError("truncated: length octets run past the end", offset)
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if length > end - pos:
        left = end - pos
        raise DERError(
            f"length {length} runs past the end of the enclosing element "
            f"({left} byte{'' if left == 1 else 's'} left)",
            offset,
        )
    return _new(Element, (data, offset, tag, pos - offset, length, False, depth, pos + length))


def expect(element: Element, tag: int, what: str) -> Element:
    """Return ``element`` if its identifier octet is ``tag``, else raise naming ``what``."""
    if element.tag != tag:
        raise DERError(
            f"expected {what} (tag 0x{tag:02x}), found tag 0x{element.tag:02x}", element.offset
        )
    return element


def decode_integer(element: Element) -> int:
    """Signed big-endian INTEGER content (empty content is rejected)."""
    content = element.content
    if not content:
        raise DERError("empty INTEGER", element.offset)
    return int.from_bytes(content, "big", signed=True)


def oid_to_str(content: bytes) -> str:
    """Dotted form of OID content octets; never fails (malformed input is shown as hex)."""
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(content):
        if value == 0 and byte == 0x80 and (i == 0 or content[i - 1] < 0x80):
            return "invalid-oid:" + content.hex()
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or content[-1] & 0x80:
        return "invalid-oid:" + content.hex()
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def oid_to_bytes(dotted: str) -> bytes:
    """OID content octets for a dotted OID string."""
    parts = [int(p) for p in dotted.split(".")]
    if len(parts) < 2 or parts[0] > 2 or (parts[0] < 2 and parts[1] >= 40):
        raise ValueError(f"not an OID: {dotted!r}")
    arcs = [parts[0] * 40 + parts[1], *parts[2:]]
    out = bytearray()
    for arc in arcs:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


# --- canonical DER writer -------------------------------------------------


def encode_length(length: int) -> bytes:
    """Minimal definite length octets."""
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def encode(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return encode(SEQUENCE, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    """DER SET OF: elements sorted by their encodings (X.690 §11.6)."""
    return encode(SET, b"".join(sorted(parts)))


def integer(value: int) -> bytes:
    length = (value if value >= 0 else ~value).bit_length() // 8 + 1  # room for the sign bit
    return encode(INTEGER, value.to_bytes(length, "big", signed=True))


def oid(dotted_or_content: str | bytes) -> bytes:
    """An OBJECT IDENTIFIER from a dotted string or from content octets."""
    content = (
        oid_to_bytes(dotted_or_content) if isinstance(dotted_or_content, str) else dotted_or_content
    )
    return encode(OID, content)


def octet_string(content: bytes) -> bytes:
    return encode(OCTET_STRING, content)


def null() -> bytes:
    return b"\x05\x00"


def context(number: int, content: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific ``[number]`` element (EXPLICIT when constructed wraps a TLV)."""
    return encode(0x80 | (CONSTRUCTED if constructed else 0) | number, content)
