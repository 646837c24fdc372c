"""The light-skeleton header writer: a model back into its own source text.

Only the spans of changed blobs (and, when a header is first signed, bpftool
7.8's signed additions) are edited; every other byte is the source's, so
parse → write without a change returns the same bytes (docs/lskel.md §3-§4). The
output is produced as pieces (source slices and new literals), so
:func:`save` streams a big header to disk without building a second copy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .._fileio import atomic_write
from ..errors import InputError
from .escapes import iter_literal, render_literal
from .model import Skeleton

_SLICE = 1 << 20

# (start, end, replacement pieces): text[start:end] becomes "".join(pieces)
_Edit = tuple[int, int, Iterable[str]]


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


def _model_edits(skel: Skeleton) -> list[_Edit]:
    """The edits that turn ``skel.source`` into the text of the model ``skel``."""
    if skel.source is None or skel.layout is None:
        raise InputError("this skeleton has no source text to render into", path=skel.path)
    if skel.signature is None:
        if skel.layout.blobs.get("signature") is not None:
            raise InputError("removing a signature is not supported", path=skel.path)
        return edits(skel, signature=None, excl_hash=None, insns=skel.insns)
    if skel.excl_hash is None:
        raise InputError("a signed skeleton needs an excl_hash", path=skel.path)
    return edits(skel, signature=skel.signature, excl_hash=skel.excl_hash, insns=skel.insns)


def edits(
    skel: Skeleton, *, signature: bytes | None, excl_hash: bytes | None, insns: bytes | None
) -> list[_Edit]:
    """The source edits that give ``skel`` this signature, excl_hash and insns, in order."""
    if skel.source is None or skel.layout is None:
        raise InputError("this skeleton has no source text to render into", path=skel.path)
    lay = skel.layout
    original = lay.values
    out: list[_Edit] = []

    def replace_blob(key: str, old: bytes | None, new: bytes) -> None:
        span = lay.blobs[key]
        if old != new:
            out.append((span.start, span.end, iter_literal(new)))

    if insns is not None and insns != original["insns"]:
        if len(insns) % 8 or not insns:
            raise InputError(
                f"new insns are {len(insns)} bytes, not a multiple of 8", path=skel.path
            )
        replace_blob("insns", original["insns"], insns)
        num = lay.numeric_sizes.get("insns")
        if num is not None:
            out.append((num.start, num.end, (str(len(insns)),)))
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
            at = lay.ctx_assign_line
            out.append((at, at, (_sig_block(lay.indent, signature, excl_hash),)))
            if not lay.keyring_field:
                if lay.links_line_end is None:
                    raise InputError("no 'links' struct to put keyring_id after", path=skel.path)
                end = lay.links_line_end
                out.append((end, end, (f"{lay.struct_indent}__s32 keyring_id;\n",)))
    out.sort(key=lambda e: e[0])
    return out


def pieces(text: str, changes: list[_Edit]) -> Iterator[str]:
    """``text`` with ``changes`` applied, as pieces of at most about a megabyte."""
    pos = 0
    for start, end, new in [*changes, (len(text), len(text), ())]:
        for at in range(pos, start, _SLICE):
            yield text[at : min(at + _SLICE, start)]
        yield from new
        pos = end


def render(skel: Skeleton) -> str:
    """Write the model back into its own source: changed blobs only."""
    changes = _model_edits(skel)
    assert skel.source is not None
    if not changes:
        return skel.source
    return "".join(pieces(skel.source, changes))


def save(skel: Skeleton, path: str | os.PathLike[str], *, break_hardlinks: bool = False) -> None:
    """:func:`render`'s text written to ``path`` atomically, streamed piece by piece."""
    changes = _model_edits(skel)
    assert skel.source is not None
    write_text(path, skel.source, changes, break_hardlinks=break_hardlinks)


def write_text(
    path: str | os.PathLike[str],
    text: str,
    changes: list[_Edit] | None = None,
    *,
    break_hardlinks: bool = False,
) -> None:
    """``text`` (with ``changes``) written to ``path`` atomically, byte-exactly.

    The inverse of :func:`bpfsign.skel.skeleton.read_text`: characters that stood
    for undecodable bytes (surrogate escapes) become those bytes again.
    """
    atomic_write(
        path,
        (p.encode("utf-8", "surrogateescape") for p in pieces(text, changes or [])),
        break_hardlinks=break_hardlinks,
    )
