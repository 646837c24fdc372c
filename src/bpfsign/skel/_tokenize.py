"""A small C tokenizer for light-skeleton headers, in bounded memory.

Tokens live in three flat arrays (kind, start, end: 9 bytes a token) and are
materialised one at a time on access, and a literal's text is never copied
into its token: a header that is mostly one 30 MB blob costs one copy of the
text, not several. Every repetition in the token pattern is possessive
(``*+``), which makes the regex engine drop its backtracking state per
iteration; a plain ``*`` over a million escapes kept hundreds of megabytes of
it. Line numbers come from per-block newline counts, not a list of every
newline.
"""

from __future__ import annotations

import re
from array import array
from typing import NamedTuple, overload

from ..errors import InputError

#: Tokens outside literals that a header may have. bpftool's largest headers have a few
#: ten thousand; past this it is not a light skeleton, and the arrays stay small.
MAX_TOKENS = 2_000_000
#: Offsets are stored as 32-bit numbers.
MAX_TEXT = 0xFFFF_FFFF

_TOKEN = re.compile(
    r"""
     (?P<ws>\s++)
    |(?P<comment>/\*.*?\*/|//[^\n]*+)
    |(?P<str>"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+")
    |(?P<char>'(?:[^'\\\n]|\\.)*+')
    |(?P<id>[A-Za-z_]\w*+)
    |(?P<num>\d\w*+)
    |(?P<op>->|.)
    """,
    re.S | re.X,
)

# An unclosed literal's body up to where it stops.
_OPEN_LITERAL = {
    '"': re.compile(r'"(?:[^"\\\n]|\\.)*+', re.S),
    "'": re.compile(r"'(?:[^'\\\n]|\\.)*+", re.S),
}

KINDS = ("str", "char", "id", "num", "op")
_KIND_CODE = {k: n for n, k in enumerate(KINDS)}
_STR = _KIND_CODE["str"]

_LINE_BLOCK = 1 << 16


def _plain_literal_end(text: str, start: int) -> int | None:
    """The end of the string literal opening at ``start``, found by whole-text scans, or
    None when it needs the token pattern (an escaped quote or backslash, a bare newline).

    Without a double backslash and with no backslash before the first quote, every
    backslash escapes the character after it, so that quote closes the literal, and it
    has no bare newline when each newline follows a backslash: what ``_TOKEN``'s ``str``
    would match, without a regex step per escape of a megabyte blob.
    """
    close = text.find('"', start + 1)
    if close < 0 or text[close - 1] == "\\" or text.find("\\\\", start + 1, close) >= 0:
        return None
    newlines = text.count("\n", start + 1, close)
    if newlines and newlines != text.count("\\\n", start + 1, close):
        return None
    return close + 1


class Tok(NamedTuple):
    kind: str  # "str" | "char" | "id" | "num" | "op"
    #: the token's text; a string literal's is just '"' (read its body through the span)
    text: str
    start: int
    end: int


class Tokens:
    """The token sequence, stored flat; indexing builds a :class:`Tok`."""

    def __init__(self, text: str) -> None:
        self._text = text
        self.kinds = bytearray()
        self.starts = array("I")
        self.ends = array("I")

    def __len__(self) -> int:
        return len(self.kinds)

    @overload
    def __getitem__(self, i: int) -> Tok: ...
    @overload
    def __getitem__(self, i: slice) -> list[Tok]: ...
    def __getitem__(self, i: int | slice) -> Tok | list[Tok]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self.kinds)))]
        kind = self.kinds[i]
        start, end = self.starts[i], self.ends[i]
        text = '"' if kind == _STR else self._text[start:end]
        return Tok(KINDS[kind], text, start, end)

    def text(self, i: int) -> str:
        """Just the text of token ``i`` (a string literal's is '"')."""
        if self.kinds[i] == _STR:
            return '"'
        return self._text[self.starts[i] : self.ends[i]]


class Source:
    """The text, its tokens, and line numbers by offset."""

    def __init__(self, text: str, path: str | None) -> None:
        self.text = text
        self.path = path
        if len(text) > MAX_TEXT:
            raise InputError(f"{len(text)} characters is too large for a header", path=path)
        blocks = array("I", [0])
        for b in range(0, len(text), _LINE_BLOCK):
            blocks.append(blocks[-1] + text.count("\n", b, b + _LINE_BLOCK))
        self._blocks = blocks
        toks = Tokens(text)
        kinds, starts, ends = toks.kinds, toks.starts, toks.ends
        codes = _KIND_CODE
        self.braces = 0  # '{' minus '}'
        match = _TOKEN.match
        str_code = codes["str"]
        pos, size = 0, len(text)
        while pos < size:
            if text[pos] == '"':
                stop = _plain_literal_end(text, pos)
                if stop is not None:  # a blob: skipped with a few linear scans
                    kinds.append(str_code)
                    starts.append(pos)
                    ends.append(stop)
                    pos = stop
                    continue
            m = match(text, pos)
            assert m is not None  # the last alternative takes any character
            pos = m.end()
            kind = m.lastgroup
            if kind == "ws" or kind == "comment":
                continue
            assert kind is not None
            start = m.start()
            if kind == "op":
                ch = text[start]
                if ch in "\"'":
                    raise self._unterminated(start)
                if ch == "/" and text.startswith("/*", start):
                    raise self.error("unterminated comment (is the file truncated?)", start)
                if ch == "{":
                    self.braces += 1
                elif ch == "}":
                    self.braces -= 1
            kinds.append(codes[kind])
            starts.append(start)
            ends.append(pos)
            if len(kinds) > MAX_TOKENS:
                raise self.error(
                    f"more than {MAX_TOKENS} C tokens outside the blob literals: this is not a "
                    "light skeleton bpftool would write",
                    start,
                )
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
        block = offset // _LINE_BLOCK
        if block >= len(self._blocks):
            block = len(self._blocks) - 1
        base = block * _LINE_BLOCK
        return self._blocks[block] + self.text.count("\n", base, max(offset, base)) + 1

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
