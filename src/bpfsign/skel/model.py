"""The light-skeleton data model: what a ``*.lskel.h`` header declares.

Plain frozen values. Parsing lives in :mod:`._parse`, writing in :mod:`._write`;
:mod:`.skeleton` is the façade that ties them together (docs/lskel.md §3-§4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import InputError
from . import insn as _insn


class NotAHeaderError(InputError):
    """The file is not C text at all (NUL bytes, invalid UTF-8) or has no light-skeleton markers."""


class RegularSkeletonError(InputError):
    """A regular ``bpftool gen skeleton`` header (an embedded ELF object), not a light skeleton."""


class TooLargeError(InputError):
    """The loader would not fit the kernel: insns + data over ``MAX_PAYLOAD`` bytes (E2BIG).

    ``insns_size`` and ``data_size`` say why; the errno is the one BPF_PROG_LOAD returns.
    """

    errno = 7  # E2BIG

    def __init__(self, insns_size: int, data_size: int, *, path: str | None = None) -> None:
        self.insns_size = insns_size
        self.data_size = data_size
        super().__init__(
            f"E2BIG: loader insns ({insns_size} bytes) + data ({data_size} bytes) = "
            f"{insns_size + data_size} bytes, over the kernel's {MAX_PAYLOAD}-byte limit for "
            "one signed load",
            path=path,
        )


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

    def render(self) -> str:
        """This model written back into its own source text: only changed blobs differ."""
        from . import _write

        return _write.render(self)

    def save(self, path: str | os.PathLike[str], *, break_hardlinks: bool = False) -> None:
        """Write :meth:`render`'s text to ``path`` atomically and byte-exactly.

        The text is streamed in slices of the source, so saving a big header
        costs no second copy of it. A target with other hard links is refused
        unless ``break_hardlinks`` (the rename would detach it from them).
        """
        from . import _write

        _write.save(self, path, break_hardlinks=break_hardlinks)

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
#: The largest insns + data a loader may carry: the kernel caps the loader's data
#: (and the signed payload) below 16 MiB (docs/kernel.md §4).
MAX_PAYLOAD = 16_777_215


def ctx_size(nmaps: int, nprogs: int) -> int:
    return CTX_HEADER_SIZE + MAP_DESC_SIZE * nmaps + PROG_DESC_SIZE * nprogs
