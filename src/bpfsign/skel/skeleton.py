"""Light skeletons as files: read, parse, write back (docs/lskel.md §3-§4).

The façade over the skeleton modules: the data model (:mod:`.model`), the
parser (:mod:`._parse`), the escape codec (:mod:`.escapes`) and the writer
(:mod:`._write`). Headers are read and written byte-exactly: parse → save
without a change gives the same file.
"""

from __future__ import annotations

import os
import re

from ._parse import parse, sniff
from ._write import edits as _edits
from ._write import pieces as _pieces
from ._write import render
from ._write import write_text as _write_text
from .escapes import iter_literal, render_literal
from .model import (
    CTX_HEADER_SIZE,
    MAP_DESC_SIZE,
    MAX_PAYLOAD,
    PROG_DESC_SIZE,
    GlobalVar,
    Layout,
    MapSpec,
    NotAHeaderError,
    ProgSpec,
    RegularSkeletonError,
    Skeleton,
    Span,
    TooLargeError,
    ctx_size,
)

__all__ = [
    "CTX_HEADER_SIZE",
    "MAP_DESC_SIZE",
    "MAX_NON_ASCII",
    "MAX_PAYLOAD",
    "PROG_DESC_SIZE",
    "GlobalVar",
    "Layout",
    "MapSpec",
    "NotAHeaderError",
    "ProgSpec",
    "RegularSkeletonError",
    "Skeleton",
    "Span",
    "TooLargeError",
    "ctx_size",
    "decode_text",
    "iter_literal",
    "load",
    "parse",
    "read_text",
    "render",
    "render_literal",
    "save",
    "sniff",
    "with_signature",
]


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a header byte-exactly (no newline translation).

    A file with NUL bytes or invalid UTF-8 is binary data, not a header:
    :class:`NotAHeaderError` says so before any C parsing is tried.
    """
    from .._fileio import MAX_HEADER, read_input

    shown = os.fspath(path)
    data = read_input(path, limit=MAX_HEADER, what="light skeleton header")
    return decode_text(data, path=shown)


#: The largest header that may hold non-ASCII text. bpftool writes ASCII only; one
#: non-ASCII character makes Python store every character in 2 or 4 bytes, so a big
#: hand-edited header would cost up to 4x its size in memory.
MAX_NON_ASCII = 4 << 20


def decode_text(data: bytes, *, path: str | None = None) -> str:
    """A header file's bytes as text, or :class:`NotAHeaderError` for binary data."""
    shown = path
    nul = data.find(b"\0")
    if nul >= 0:
        raise NotAHeaderError(
            f"not a text header: NUL byte at offset {nul} (binary data?)", path=shown
        )
    if len(data) > MAX_NON_ASCII and not data.isascii():
        first = re.search(rb"[\x80-\xff]", data)
        at = first.start() if first is not None else -1
        raise NotAHeaderError(
            f"non-ASCII byte at offset {at} in a {len(data)}-byte header: bpftool writes "
            f"ASCII only, and only headers up to {MAX_NON_ASCII} bytes may hold other text",
            path=shown,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotAHeaderError(
            f"not a text header: invalid UTF-8 at byte offset {exc.start} (binary data?)",
            path=shown,
        ) from None


def load(path: str | os.PathLike[str], *, lenient: bool = False) -> Skeleton:
    return parse(read_text(path), path=str(path), lenient=lenient)


def save(skel_or_text: Skeleton | str, path: str | os.PathLike[str]) -> None:
    """Write a skeleton (or header text) to ``path`` atomically and byte-exactly.

    Use this, not ``Path.write_text``: that one translates newlines on some
    platforms and encodes differently from :func:`read_text`.
    """
    if isinstance(skel_or_text, Skeleton):
        skel_or_text.save(path)
    else:
        _write_text(path, skel_or_text)


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
    changes = _edits(skel, signature=signature, excl_hash=excl_hash, insns=insns)
    return "".join(_pieces(text, changes))
