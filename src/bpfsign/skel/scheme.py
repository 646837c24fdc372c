"""The two signing schemes, the loader audit, and conversion between them.

``loadtime`` (Linux 7.x, the default): the signature covers insns ‖ data and
the kernel checks it at BPF_PROG_LOAD. ``inloader`` (Linux 6.18, bpftool ≤ 7.8
``-S``): only the insns are signed, and the loader compares SHA-256(data),
baked into four ``ld_imm64 r3``, with the frozen map's hash at run time
(docs/lskel.md §9). Both set ``excl_prog_hash`` = SHA-256(insns).

The audit reads the loader program itself, because what it does with the ctx
decides what a signature really covers (docs/lskel.md §6 item 5). Whether a
kernel accepts a signed header is the kernel's rules, not the scheme's: see
kernel/offline.py and kernel/rules.py.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..crypto.signer import HashName, Signer
from ..errors import InputError
from . import insn as _insn
from . import skeleton as _skel

if TYPE_CHECKING:
    from ..crypto.cms import SidKind

Scheme = Literal["loadtime", "inloader"]
SCHEMES: tuple[Scheme, ...] = ("loadtime", "inloader")

HASH_DWORDS = 4
PREFIX_INSNS = 5  # ld_imm64 r1=map; r2 = map->excl (offset 32); r7 = -22; if r2 != 1 goto cleanup
COMPARE_INSNS = 7  # ld_imm64 r1=map; r2 = map->sha[i]; ld_imm64 r3 = digest[i]; r7 = -22; jne
CLEANUP_LABEL = 7  # the insn every error check jumps to (docs/lskel.md §8)
EXCL_FIELD_OFF = 32  # 6.18's struct bpf_map.excl, read by the prefix

# Helper ids (docs/kernel.md §2).
COPY_FROM_USER = 148
PROBE_READ_KERNEL = 113


@dataclass(frozen=True)
class HashBlock:
    """The 6.18 in-loader check (``emit_signature_match``)."""

    start: int
    length: int  # 33 with the exclusivity prefix, 28 without
    has_prefix: bool
    hash_insns: tuple[int, ...]  # pcs of the four ld_imm64 r3
    baked_hash: bytes  # SHA-256(data) as the generator saw it
    cleanup_targets: tuple[
        int, ...
    ]  # where its goto-cleanups land: 7 (bpftool 7.8) or 8 (libbpf 1.7.0)


@dataclass(frozen=True)
class CtxOverride:
    """A ctx field the loader reads for a map: the caller, not the signature, decides it."""

    map: str
    field: str  # "max_entries" | "initial_value"
    insn: int


@dataclass(frozen=True)
class Audit:
    endian: str
    insn_count: int
    hash_check: HashBlock | None
    exclusivity_check: bool
    #: "signed": ignores ctx overrides (bpftool -S); "unsigned": honours them (-L);
    #: "unknown": no maps, nothing to override.
    mode: str
    overrides: tuple[CtxOverride, ...]
    uses_copy_from_user: bool
    data_hash: bytes
    baked_hash_matches: bool | None
    excl_hash_matches: bool | None  # skel.excl_hash == SHA-256(insns), None if absent
    scheme: Scheme

    @property
    def override_maps(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for o in self.overrides:
            seen.setdefault(o.map)
        return tuple(seen)

    @property
    def cleanup_target(self) -> int | None:
        if self.hash_check is None or not self.hash_check.cleanup_targets:
            return None
        return self.hash_check.cleanup_targets[0]


@dataclass(frozen=True)
class Removed:
    """What conversion took out of the loader."""

    start: int
    count: int
    has_prefix: bool
    jumps_fixed: tuple[int, ...]  # old pcs whose displacement changed
    insns_before: int
    insns_after: int

    def describe(self) -> str:
        return (
            f"removed the in-loader check: insns {self.start}..{self.start + self.count - 1} "
            f"({self.count} insns{', with the exclusivity prefix' if self.has_prefix else ''}); "
            f"{len(self.jumps_fixed)} jumps fixed; {self.insns_before} -> {self.insns_after} insns"
        )


@dataclass(frozen=True)
class SignReport:
    scheme: Scheme
    payload_size: int
    signature_size: int
    excl_hash: bytes
    converted: Removed | None
    warnings: tuple[str, ...]
    override_maps: tuple[str, ...]
    keyring_id: int | None
    notes: tuple[str, ...] = ()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ------------------------------------------------------------------- audit


def _is_map_ld(slots: Sequence[_insn.Insn], pc: int, dst: int) -> bool:
    """``ld_imm64 rDST, src_reg=MAP_IDX, imm=0``: the loader's own map."""
    if not 0 <= pc < len(slots) - 1:  # a jump may point anywhere, even before insn 0
        return False
    a = slots[pc]
    return a.is_ld_imm64 and a.dst == dst and a.src == _insn.PSEUDO_MAP_IDX and a.imm == 0


def find_hash_block(slots: Sequence[_insn.Insn], endian: str) -> HashBlock | None:
    """Locate and shape-check the in-loader block right after the cleanup (docs/lskel.md §9)."""
    if len(slots) < 8 or slots[6].code != (_insn.JMP | _insn.JA):
        return None
    start = CLEANUP_LABEL + slots[6].off
    if not _is_map_ld(slots, start, 1):
        return None
    pos = start
    targets: list[int] = []
    has_prefix = False
    p = slots[start + 2] if start + 4 < len(slots) else None
    if (
        p is not None
        and p.code == (_insn.LDX | 0x00 | _insn.MODE_MEM)  # ldx u32
        and p.dst == 2
        and p.src == 1
        and p.off == EXCL_FIELD_OFF
    ):
        mov, jne = slots[start + 3], slots[start + 4]
        if not (mov.code == 0xB7 and mov.dst == 7 and mov.imm == -errno.EINVAL):
            return None
        if not (jne.code == (_insn.JMP | _insn.JNE) and jne.dst == 2 and jne.imm == 1):
            return None
        has_prefix = True
        targets.append(start + 4 + 1 + jne.off)
        pos = start + PREFIX_INSNS
    digest = bytearray()
    hash_pcs = []
    for i in range(HASH_DWORDS):
        b = pos + COMPARE_INSNS * i
        if b + COMPARE_INSNS > len(slots) or not _is_map_ld(slots, b, 1):
            return None
        ld, h_lo, h_hi, mov, jne = (
            slots[b + 2],
            slots[b + 3],
            slots[b + 4],
            slots[b + 5],
            slots[b + 6],
        )
        if not (ld.code == 0x79 and ld.dst == 2 and ld.src == 1 and ld.off == 8 * i):
            return None
        if not (h_lo.is_ld_imm64 and h_lo.dst == 3 and h_lo.src == 0):
            return None
        if not (mov.code == 0xB7 and mov.dst == 7 and mov.imm == -errno.EINVAL):
            return None
        if not (jne.code == (_insn.JMP | _insn.JNE | 0x08) and jne.dst == 2 and jne.src == 3):
            return None
        value = _insn.ld_imm64_value(h_lo, h_hi)
        digest += value.to_bytes(8, "little" if endian == "little" else "big")
        hash_pcs.append(b + 3)
        targets.append(b + 6 + 1 + jne.off)
    length = (PREFIX_INSNS if has_prefix else 0) + HASH_DWORDS * COMPARE_INSNS
    return HashBlock(
        start=start,
        length=length,
        has_prefix=has_prefix,
        hash_insns=tuple(hash_pcs),
        baked_hash=bytes(digest),
        cleanup_targets=tuple(sorted(set(targets))),
    )


def find_overrides(skel: _skel.Skeleton, slots: Sequence[_insn.Insn]) -> list[CtxOverride]:
    """Loads from the ctx (r6) of a map's max_entries or initial_value."""
    starts = _insn.slot_starts(slots)
    nmaps = len(skel.maps)
    out = []
    for pc, s in enumerate(slots):
        if not starts[pc] or s.cls != _insn.LDX or s.src != 6:
            continue
        rel = s.off - _skel.CTX_HEADER_SIZE
        if rel < 0 or rel >= _skel.MAP_DESC_SIZE * nmaps:
            continue
        idx, fld = divmod(rel, _skel.MAP_DESC_SIZE)
        name = skel.maps[idx].name
        if fld == 4:
            out.append(CtxOverride(name, "max_entries", pc))
        elif fld == 8:
            out.append(CtxOverride(name, "initial_value", pc))
    return out


def audit(skel: _skel.Skeleton) -> Audit:
    endian: _insn.Endian = "big" if skel.endian == "big" else "little"
    slots = _insn.decode(skel.insns, endian)
    block = find_hash_block(slots, endian)
    overrides = find_overrides(skel, slots)
    starts = _insn.slot_starts(slots)
    copy_from_user = any(
        starts[pc] and s.is_call and s.src == 0 and s.imm == COPY_FROM_USER
        for pc, s in enumerate(slots)
    )
    mode = "unknown" if not skel.maps else ("unsigned" if overrides else "signed")
    data_hash = sha256(skel.data)
    return Audit(
        endian=skel.endian,
        insn_count=len(slots),
        hash_check=block,
        exclusivity_check=bool(block and block.has_prefix),
        mode=mode,
        overrides=tuple(overrides),
        uses_copy_from_user=copy_from_user,
        data_hash=data_hash,
        baked_hash_matches=None if block is None else block.baked_hash == data_hash,
        excl_hash_matches=None if skel.excl_hash is None else skel.excl_hash == sha256(skel.insns),
        scheme="inloader" if block is not None else "loadtime",
    )


def detect_scheme(skel: _skel.Skeleton) -> Scheme:
    """``inloader`` when the loader carries the hash-check block, else ``loadtime``."""
    return audit(skel).scheme


def signed_payload(skel: _skel.Skeleton, scheme: Scheme) -> bytes:
    if scheme == "loadtime":
        return skel.insns + skel.data
    if scheme == "inloader":
        return skel.insns
    raise InputError(f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}")


# -------------------------------------------------------------- conversion


def convert_to_loadtime(skel: _skel.Skeleton) -> tuple[_skel.Skeleton, Removed]:
    """Delete the in-loader check (docs/lskel.md §10.7) and recompute the excl hash.

    The result has no signature: the old one covered other bytes.
    """
    endian: _insn.Endian = "big" if skel.endian == "big" else "little"
    slots = _insn.decode(skel.insns, endian)
    block = find_hash_block(slots, endian)
    if block is None:
        raise InputError(
            "no in-loader hash check found after the cleanup block (insn 6's goto target does "
            "not have the shape of docs/lskel.md §9); refusing to convert",
            path=skel.path,
        )
    new_insns, removal = _insn.remove_range_ex(
        skel.insns, block.start, block.length, endian=endian, allow_entry_at_start=True
    )
    removed = Removed(
        start=block.start,
        count=block.length,
        has_prefix=block.has_prefix,
        jumps_fixed=removal.fixed,
        insns_before=len(slots),
        insns_after=len(new_insns) // _insn.INSN_SIZE,
    )
    converted = dataclasses.replace(
        skel, insns=new_insns, signature=None, excl_hash=sha256(new_insns)
    )
    return converted, removed


# ------------------------------------------------------------------ signing


#: said when signing or verifying a 6.18-scheme loader
INLOADER_REFUSED = (
    "inloader (6.18) scheme: Linux 7.x refuses this loader; convert it to the loadtime scheme"
)


def override_warning(a: Audit) -> str:
    fields: dict[str, list[str]] = {}
    for o in a.overrides:
        fields.setdefault(o.map, [])
        if o.field not in fields[o.map]:
            fields[o.map].append(o.field)
    named = ", ".join(f"{m} ({'/'.join(f)})" for m, f in fields.items())
    return (
        f"unsigned-mode loader: it takes map sizes and initial values from the caller's ctx, "
        f"outside the signature, for: {named}. Whoever builds the ctx can change them. "
        "Regenerate with bpftool -S (signed mode) to have the signature cover them."
    )


def sign_skeleton(
    skel: _skel.Skeleton,
    signer: Signer,
    *,
    scheme: Scheme = "loadtime",
    digest: HashName = "sha256",
    sid: SidKind = "skid",
    keyring_id: int | None = None,
    strict: bool = False,
) -> tuple[str, SignReport]:
    """Sign ``skel`` under ``scheme``; return the new header text and what happened."""
    signed, report = sign(
        skel, signer, scheme=scheme, digest=digest, sid=sid, keyring_id=keyring_id, strict=strict
    )
    return signed.render(), report


def sign(
    skel: _skel.Skeleton,
    signer: Signer,
    *,
    scheme: Scheme = "loadtime",
    digest: HashName = "sha256",
    sid: SidKind = "skid",
    keyring_id: int | None = None,
    strict: bool = False,
) -> tuple[_skel.Skeleton, SignReport]:
    """Sign ``skel`` under ``scheme``: the signed model and what happened.

    The model renders into ``skel``'s source text (``.render()``/``.save(path)``),
    so a big header is written without a second copy of it in memory. A loader
    the kernel would refuse to verify (insns + data over
    :data:`~bpfsign.skel.skeleton.MAX_PAYLOAD`, docs/kernel.md §6.2) raises
    :class:`~bpfsign.skel.skeleton.TooLargeError` before anything is signed.
    """
    from ..crypto import cms

    if skel.source is None:
        raise InputError("skeleton has no source text to write the signature into", path=skel.path)
    a = audit(skel)
    warnings: list[str] = []
    removed: Removed | None = None
    target = skel
    if scheme == "loadtime":
        if a.hash_check is not None:
            target, removed = convert_to_loadtime(skel)
            a = audit(target)
        if a.mode == "unsigned":
            message = override_warning(a)
            if strict:
                raise InputError(message + " Refusing in strict mode.", path=skel.path)
            warnings.append(message)
    elif scheme == "inloader":
        if a.hash_check is None:
            raise InputError(
                "the inloader scheme needs a loader with the in-loader hash check "
                "(bpftool -S output); this one has none. Use the loadtime scheme.",
                path=skel.path,
            )
        if not a.baked_hash_matches:
            raise InputError(
                f"the loader's baked data hash {a.hash_check.baked_hash.hex()} is not "
                f"SHA-256(opts_data) {a.data_hash.hex()}: it would fail at run time with -EINVAL",
                path=skel.path,
            )
        warnings.append(INLOADER_REFUSED)
    else:
        raise InputError(f"unknown scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    if scheme == "loadtime" and len(target.insns) + len(target.data) > _skel.MAX_PAYLOAD:
        raise _skel.TooLargeError(len(target.insns), len(target.data), path=skel.path)
    payload = signed_payload(target, scheme)
    payload_size = len(payload)
    excl = sha256(target.insns)
    signature = cms.sign(payload, signer, digest=digest, sid=sid)
    del payload
    signed = dataclasses.replace(
        target, signature=signature, excl_hash=excl, has_keyring_field=True
    )
    notes = []
    if skel.signature is None:
        notes.append(
            "the signed header uses opts.signature/excl_prog_hash/keyring_id: compile it against "
            "libbpf >= 1.7's skel_internal.h"
        )
    if scheme == "loadtime":
        notes.append(
            "load it with a load-time runtime (fd_array_cnt = 1 when signed: bpfsign's loader, or "
            "libbpf after debb5e8); libbpf 1.7's bpf_load_and_run passes fd_array_cnt = 0, which "
            "Linux 7.x refuses with EACCES"
        )
    report = SignReport(
        notes=tuple(notes),
        scheme=scheme,
        payload_size=payload_size,
        signature_size=len(signature),
        excl_hash=excl,
        converted=removed,
        warnings=tuple(warnings),
        override_maps=a.override_maps if a.mode == "unsigned" else (),
        keyring_id=keyring_id,
    )
    return signed, report
