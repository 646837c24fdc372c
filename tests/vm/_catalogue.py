"""The catalogue: raw BPF_PROG_LOAD cases, each declared once and run three ways.

A case names its maps (value, exclusive or not, frozen or not, ARRAY or not,
mmapped before the freeze…), its fd_array (maps, a BTF object, fds that are
not open or not BPF objects), its signature (over which bytes, which key, or
garbage), its keyring_id and fd_array_cnt, and the errno and verifier-log
line measured on Debian's 7.3.4 in the guest. :func:`run` plays it against a
:class:`~bpfsign.kernel.backend.Backend` -- the real kernel or the
:class:`~bpfsign.kernel.model.KernelModel` -- and :func:`offline` hands the
same load, described, to the rules engine that ``bpfsign verify --kernel``
and ``bpfsign explain`` use. tests/vm/test_vm_catalogue.py asserts that all
three equal the measurement in the guest; tests/test_catalogue.py asserts it
for the model and the engine on the host.
"""

from __future__ import annotations

import errno as E
import hashlib
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: r0 = 0; exit
INSNS = bytes.fromhex("b7000000000000009500000000000000")
#: ld_imm64 r1 = fd_array[0] (BPF_PSEUDO_MAP_IDX); r0 = 0; exit
USES_MAP0 = bytes.fromhex("18510000000000000000000000000000") + INSNS
#: ld_imm64 r1 = &fd_array[0].value[0] (BPF_PSEUDO_MAP_IDX_VALUE); r0 = *(u32 *)r1; exit
READS_VALUE = bytes.fromhex("1861000000000000000000000000000061100000000000009500000000000000")
#: r1 = fd_array[0]; r2 = *(u32 *)(r1 + 32); r0 = 0; exit -- the bpftool <= 7.8 -S exclusivity read
READS_OFF32 = USES_MAP0[:16] + bytes.fromhex("6112200000000000") + INSNS
#: ld_imm64 r1 = map fd 999 (BPF_PSEUDO_MAP_FD); r0 = 0; exit
MAP_FD_999 = bytes.fromhex("18110000e70300000000000000000000") + INSNS
VALUE = bytes(range(1, 65))
VALUE1 = bytes(range(100, 200))
BIG = 16 * 1024 * 1024 - len(INSNS)  # insns ‖ value = 16 MiB: one byte over the limit
BPF_F_MMAPABLE = 1 << 10
MAP_TYPE_HASH, MAP_TYPE_ARRAY = 1, 2

LOG_BTF = "signed program cannot bind any BTF"
LOG_FROZEN = "signed program metadata map '{}' must be frozen"
LOG_EXCLUSIVE = "signed program metadata map '{}' must be exclusive"
LOG_EXCL = "program's hash doesn't match map's excl_prog_hash"
LOG_NOT_BPF = "fd {} is not pointing to valid bpf_map or btf"
LOG_LIMIT = "The total number of maps per program has reached the limit of 64"
LOG_KEYRING = "cannot resolve signing keyring with keyring_id {}"
SIG_FAILED = "signature verification failed: -{}"


@dataclass(frozen=True)
class Map:
    """A map the case creates: entry 0 holds ``value``."""

    value: bytes = VALUE
    excl_for: str | None = "insns"  # "insns" (the program's), "other", or None (not exclusive)
    frozen: bool = True
    map_type: int = MAP_TYPE_ARRAY
    max_entries: int = 1
    name: str = "__loader.map"
    mmap_write: tuple[tuple[int, int], ...] = ()  # (offset, byte) written through a writable mmap
    keep_rw_mmap: bool = False  # the writable mmap stays while it freezes (EBUSY) and loads
    keep_ro_mmap: bool = False  # a read-only mmap stays through freeze and load
    copies: int = 1  # distinct maps made from this spec (m, m#1, m#2, ...)


@dataclass(frozen=True)
class Attempt:
    """One PROG_LOAD of the case."""

    fd_array: tuple[str, ...] = ("m",)  # map names, "btf", or "fd:N" (a raw fd number)
    cnt: int = 1
    sig: str | None = (
        "good"  # good | insns-only | tampered | wrong-key | garbage | empty | pad8193 | pad8192
    )
    over: tuple[str, ...] | None = (
        None  # maps folded into the signed payload (default: fd_array maps)
    )
    keyring: int = -3
    want: tuple[int | None, str] = (None, "")
    keep: bool = False  # keep the program loaded until the case ends


@dataclass(frozen=True)
class Case:
    name: str
    attempts: tuple[Attempt, ...]
    maps: dict[str, Map] = field(default_factory=lambda: {"m": Map()})
    insns: bytes = INSNS
    freeze_errno: int | None = None  # the BPF_MAP_FREEZE errno of a map kept mmapped writable
    why: str = ""


def one(name: str, *, maps: dict[str, Map] | None = None, insns: bytes = INSNS,
        freeze_errno: int | None = None, **attempt: Any) -> Case:  # fmt: skip
    return Case(name, (Attempt(**attempt),), maps if maps is not None else {"m": Map()}, insns,
                freeze_errno)  # fmt: skip


U = {"u": Map(frozen=False)}
N = {"n": Map(excl_for=None)}
OTHER = {"o": Map(excl_for="other")}
M2 = {"m2": Map(max_entries=2, name="meta")}
HASH = {"h": Map(map_type=MAP_TYPE_HASH, name="meta")}
MANY = {"x": Map(excl_for=None, copies=65)}
MANY64 = {"x": Map(excl_for=None, copies=64)}

CASES: list[Case] = [
    # --- BTF objects in fd_array (the BTF check runs while fd_array is resolved) ---
    one("BTF: signed, fd_array [btf]", fd_array=("btf",), over=(), want=(E.EACCES, LOG_BTF)),
    one(
        "BTF: signed, fd_array [map, btf], cnt 2",
        fd_array=("m", "btf"),
        cnt=2,
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: signed, fd_array [btf, map], cnt 2",
        fd_array=("btf", "m"),
        cnt=2,
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: before the frozen check ([unfrozen, btf])",
        maps=U,
        fd_array=("u", "btf"),
        cnt=2,
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: before a later bad fd ([btf, 999])",
        fd_array=("btf", "fd:999"),
        cnt=2,
        over=(),
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: after an earlier bad fd ([999, btf])",
        fd_array=("fd:999", "btf"),
        cnt=2,
        over=(),
        want=(E.EBADF, LOG_NOT_BPF.format(999)),
    ),
    one(
        "BTF: before the signature is parsed (garbage)",
        fd_array=("btf",),
        sig="garbage",
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: before the keyring (keyring_id 3)",
        fd_array=("btf",),
        over=(),
        keyring=3,
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: 64 maps then a BTF (no map limit)",
        maps=MANY64,
        fd_array=(*tuple(f"x#{i}" for i in range(64)), "btf"),
        cnt=65,
        want=(E.EACCES, LOG_BTF),
    ),
    one(
        "BTF: signed, past fd_array_cnt (cnt 1 of [map, btf])",
        fd_array=("m", "btf"),
        cnt=1,
        want=(None, ""),
    ),
    one(
        "BTF: signed, fd_array [btf], cnt 0",
        fd_array=("btf",),
        cnt=0,
        sig="insns-only",
        want=(None, ""),
    ),
    one("BTF: unsigned, fd_array [btf], cnt 1", fd_array=("btf",), sig=None, want=(None, "")),
    one(
        "BTF: unsigned, [non-exclusive map, btf], cnt 2",
        maps=N,
        fd_array=("n", "btf"),
        cnt=2,
        sig=None,
        want=(None, ""),
    ),
    one(
        "BTF: unsigned, [exclusive unfrozen map, btf]",
        maps=U,
        fd_array=("u", "btf"),
        cnt=2,
        sig=None,
        want=(E.EACCES, LOG_EXCL),
    ),
    # --- mmap of the metadata map ----------------------------------------------------
    one(
        "mmap: writable mmap kept: freeze EBUSY, load EPERM",
        maps={"m": Map(keep_rw_mmap=True)},
        freeze_errno=E.EBUSY,
        want=(E.EPERM, LOG_FROZEN.format("__loader.map")),
    ),
    one(
        "mmap: written through a writable mmap before freeze",
        maps={"m": Map(mmap_write=((5, 0xEE),))},
        want=(E.EKEYREJECTED, SIG_FAILED.format(129)),
    ),
    one(
        "mmap: the same byte written through a writable mmap, then frozen",
        maps={"m": Map(mmap_write=((5, 6),))},
        want=(None, ""),
    ),
    one(
        "mmap: read-only mmap alive through freeze and load",
        maps={"m": Map(keep_ro_mmap=True)},
        want=(None, ""),
    ),
    one(
        "mmap: signature over the mmap-written value",
        maps={"m": Map(mmap_write=((5, 0xEE),))},
        sig="good-written",
        want=(None, ""),
    ),
    # --- a second signature attempt on the same maps -----------------------------------
    Case("second load of the same signed program on the same map", (Attempt(keep=True), Attempt())),
    Case(
        "a rejected signature, then the right one, on the same map",
        (Attempt(sig="tampered", want=(E.EKEYREJECTED, SIG_FAILED.format(129))), Attempt()),
    ),
    Case(
        "a signature over insns only, then the right one, on the same map",
        (Attempt(sig="insns-only", want=(E.EKEYREJECTED, SIG_FAILED.format(129))), Attempt()),
    ),
    Case(
        "an unsigned attempt, then the signed one, on the same map",
        (Attempt(sig=None, want=(E.EACCES, LOG_EXCL)), Attempt()),
    ),
    Case(
        "a wrong key, then the right one, on the same map",
        (Attempt(sig="wrong-key", want=(E.ENOKEY, SIG_FAILED.format(126))), Attempt()),
    ),
    # --- fd_array_cnt against the array ------------------------------------------------
    one(
        "fd_array_cnt 2, one-entry array (zeros follow: fd 0)",
        fd_array=("m",),
        cnt=2,
        want=(E.EINVAL, LOG_NOT_BPF.format(0)),
    ),
    one(
        "fd_array_cnt 3, one-entry array",
        fd_array=("m",),
        cnt=3,
        want=(E.EINVAL, LOG_NOT_BPF.format(0)),
    ),
    one(
        "fd_array [map, 0] (an open fd that is not BPF)",
        fd_array=("m", "fd:0"),
        cnt=2,
        want=(E.EINVAL, LOG_NOT_BPF.format(0)),
    ),
    one(
        "fd_array [map, 999] (not open)",
        fd_array=("m", "fd:999"),
        cnt=2,
        want=(E.EBADF, LOG_NOT_BPF.format(999)),
    ),
    one("fd_array [-1]", fd_array=("fd:-1",), over=(), want=(E.EBADF, LOG_NOT_BPF.format(-1))),
    one(
        "fd_array [999] before the keyring (keyring_id 3)",
        fd_array=("fd:999",),
        over=(),
        keyring=3,
        want=(E.EBADF, LOG_NOT_BPF.format(999)),
    ),
    one(
        "fd_array [0] before the signature size (8193)",
        fd_array=("fd:0",),
        over=(),
        sig="pad8193",
        want=(E.EINVAL, LOG_NOT_BPF.format(0)),
    ),
    one(
        "one map 65 times, cnt 65 (counted once)",
        fd_array=("m",) * 65,
        cnt=65,
        over=("m",),
        want=(None, ""),
    ),
    one(
        "65 distinct maps, unsigned",
        maps=MANY,
        fd_array=tuple(f"x#{i}" for i in range(65)),
        cnt=65,
        sig=None,
        want=(E.E2BIG, LOG_LIMIT),
    ),
    one(
        "65 distinct maps, signed, keyring_id 3 (limit first)",
        maps=MANY,
        fd_array=tuple(f"x#{i}" for i in range(65)),
        cnt=65,
        over=(),
        keyring=3,
        want=(E.E2BIG, LOG_LIMIT),
    ),
    one(
        "64 distinct maps, unsigned",
        maps=MANY64,
        fd_array=tuple(f"x#{i}" for i in range(64)),
        cnt=64,
        sig=None,
        want=(None, ""),
    ),
    # --- the .bpf keyring (absent on Debian 7.3.4) --------------------------------------
    one(
        "keyring_id -9 (KEY_SPEC_BPF_KEYRING)", keyring=-9, want=(E.EINVAL, LOG_KEYRING.format(-9))
    ),
    one(
        "keyring_id -9, unfrozen map (keyring first)",
        maps=U,
        fd_array=("u",),
        keyring=-9,
        want=(E.EINVAL, LOG_KEYRING.format(-9)),
    ),
    # --- the order of checks ---------------------------------------------------------------
    one(
        "order: unfrozen map, keyring_id 3",
        maps=U,
        fd_array=("u",),
        keyring=3,
        want=(E.EINVAL, LOG_KEYRING.format(3)),
    ),
    one(
        "order: unfrozen map, signature of 8193 bytes",
        maps=U,
        fd_array=("u",),
        sig="pad8193",
        want=(E.EINVAL, ""),
    ),
    one(
        "order: unfrozen map, empty signature",
        maps=U,
        fd_array=("u",),
        sig="empty",
        want=(E.EINVAL, ""),
    ),
    one(
        "order: unfrozen map, garbage signature",
        maps=U,
        fd_array=("u",),
        sig="garbage",
        want=(E.EPERM, LOG_FROZEN.format("__loader.map")),
    ),
    one(
        "order: non-exclusive map, garbage signature",
        maps=N,
        fd_array=("n",),
        sig="garbage",
        want=(E.EPERM, LOG_EXCLUSIVE.format("__loader.map")),
    ),
    one(
        "order: two-entry ARRAY, garbage signature",
        maps=M2,
        fd_array=("m2",),
        sig="garbage",
        want=(524, "failed to read signed metadata map 'meta': -524"),
    ),
    one(
        "order: HASH map, garbage signature",
        maps=HASH,
        fd_array=("h",),
        sig="garbage",
        want=(E.EINVAL, "signed program metadata map 'meta' must be an array"),
    ),
    one(
        "order: two-entry ARRAY, keyring_id 3",
        maps=M2,
        fd_array=("m2",),
        keyring=3,
        want=(E.EINVAL, LOG_KEYRING.format(3)),
    ),
    one(
        "order: map exclusive to another program, keyring_id 3",
        maps=OTHER,
        fd_array=("o",),
        keyring=3,
        want=(E.EACCES, LOG_EXCL),
    ),
    one(
        "order: map exclusive to another program, signature of 8193",
        maps=OTHER,
        fd_array=("o",),
        sig="pad8193",
        want=(E.EACCES, LOG_EXCL),
    ),
    one(
        "order: map exclusive to another program, unfrozen",
        maps={"o": Map(excl_for="other", frozen=False)},
        fd_array=("o",),
        want=(E.EACCES, LOG_EXCL),
    ),
    one("order: no insns, keyring_id 3", insns=b"", keyring=3, want=(E.E2BIG, "")),
    one(
        "order: 16 MiB payload, keyring_id 3",
        maps={"m": Map(value=bytes(BIG))},
        keyring=3,
        want=(E.EINVAL, LOG_KEYRING.format(3)),
    ),
    one(
        "order: 16 MiB payload, garbage signature",
        maps={"m": Map(value=bytes(BIG))},
        sig="garbage",
        want=(E.E2BIG, "signed payload too large: 16777216 bytes"),
    ),
    one("garbage signature, good map", sig="garbage", want=(E.EBADMSG, SIG_FAILED.format(74))),
    one("signature of 8192 bytes (zero-padded), good map", sig="pad8192", want=(None, "")),
    # --- maps named by the instructions ----------------------------------------------------
    one(
        "unsigned, ld_imm64 of map fd 999",
        insns=MAP_FD_999,
        fd_array=(),
        cnt=0,
        sig=None,
        want=(E.EBADF, "fd 999 is not pointing to valid bpf_map"),
    ),
    one(
        "signed, ld_imm64 of map fd 999, cnt 0",
        insns=MAP_FD_999,
        fd_array=(),
        cnt=0,
        sig="insns-only",
        want=(E.EINVAL, "signed program cannot reference a map by fd, only via fd_array index"),
    ),
    one("signed, program reads its metadata value", insns=READS_VALUE, want=(None, "")),
    one(
        "signed over insns only, cnt 0, insns use fd_array[0]",
        insns=USES_MAP0,
        cnt=0,
        sig="insns-only",
        want=(E.EACCES, "signed program must bind maps via a continuous fd_array (fd_array_cnt)"),
    ),
    one(
        "unsigned, insns read struct bpf_map at offset 32",
        insns=READS_OFF32,
        cnt=0,
        sig=None,
        want=(
            E.EACCES,
            "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4",
        ),
    ),
]


def find(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


# ------------------------------------------------------------------ running


_BTF_BLOB = (
    struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 16, 16, 5)
    + struct.pack("<IIII", 1, 1 << 24, 4, 32)  # int: 32 bits
    + b"\0int\0"
)


def btf_load(be: Any) -> int:
    """A one-type BTF object: BPF_BTF_LOAD on the kernel, or through the model."""
    return int(be.btf_load(_BTF_BLOB))


def _excl(spec: Map, insns: bytes) -> bytes | None:
    if spec.excl_for is None:
        return None
    from bpfsign.kernel.rules import program_digest

    return program_digest(insns if spec.excl_for == "insns" else insns + insns)


def _value(spec: Map) -> bytes:
    value = bytearray(spec.value)
    for off, byte in spec.mmap_write:
        value[off] = byte
    return bytes(value)


class _Objects:
    """The maps, BTF and mmaps of one case on one backend; closed at the end."""

    def __init__(self, be: Any, case: Case) -> None:
        self.be = be
        self.fds: dict[str, int] = {}
        self.extra: list[int] = []
        self.maps: list[Any] = []
        self.freeze_errnos: list[int | None] = []
        for name, spec in case.maps.items():
            for i in range(spec.copies):
                key = name if spec.copies == 1 else f"{name}#{i}"
                self.fds[key] = self._make(spec, case.insns)

    def _make(self, spec: Map, insns: bytes) -> int:
        from bpfsign.errors import KernelError

        be = self.be
        mmapable = bool(spec.mmap_write or spec.keep_rw_mmap or spec.keep_ro_mmap)
        fd = be.map_create(spec.map_type, 4, len(spec.value), spec.max_entries, spec.name,
                           flags=BPF_F_MMAPABLE if mmapable else 0, excl_prog_hash=_excl(spec, insns))  # fmt: skip
        be.map_update(fd, bytes(4), spec.value)
        model = hasattr(be, "map_mmap_writable")
        rw = None
        if spec.mmap_write or spec.keep_rw_mmap:
            if model:
                be.map_mmap_writable(fd)
            else:
                rw = mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            writes = dict(spec.mmap_write)
            if not spec.keep_rw_mmap:
                if model:
                    be.map_munmap_writable(fd, writes)
                else:
                    assert rw is not None
                    for off, byte in writes.items():
                        rw[off] = byte
                    rw.close()
                    rw = None
            else:
                self.maps.append(rw)
        if spec.keep_ro_mmap and not model:
            self.maps.append(mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ))
        if spec.frozen:
            try:
                be.map_freeze(fd)
                self.freeze_errnos.append(None)
            except KernelError as exc:
                self.freeze_errnos.append(exc.errno)
        return int(fd)

    def fd(self, token: str) -> int:
        if token == "btf":
            if "btf" not in self.fds:
                self.fds["btf"] = btf_load(self.be)
            return self.fds["btf"]
        if token.startswith("fd:"):
            return int(token[3:])
        return self.fds[token]

    def close(self) -> None:
        for m in self.maps:
            if m is not None:
                m.close()
        for fd in dict.fromkeys([*self.fds.values(), *self.extra]):
            self.be.close(fd)


def _payload(case: Case, att: Attempt) -> bytes:
    names = (
        att.over
        if att.over is not None
        else tuple(
            t
            for t in dict.fromkeys(att.fd_array[: att.cnt])
            if t != "btf" and not t.startswith("fd:")
        )
    )
    values = []
    for n in names:
        spec = case.maps[n.split("#")[0]]
        values.append(_value(spec) if att.sig == "good-written" else spec.value)
    return case.insns + b"".join(values)


def signature(case: Case, att: Attempt, signers: dict[str, Any]) -> bytes | None:
    """The attempt's signature bytes (cached per case and attempt: RSA signing is slow under TCG)."""
    from bpfsign.crypto import cms

    kind = att.sig
    if kind is None:
        return None
    if kind == "garbage":
        return bytes(range(16))
    if kind == "empty":
        return b""
    payload = _payload(case, att)
    if kind == "insns-only":
        payload = case.insns
    elif kind == "tampered":
        payload = payload + b"\0"
    who = "wrong" if kind == "wrong-key" else "rsa"
    sig = _sign_cached(payload, signers[who], cms)
    if kind == "pad8193":
        return sig + bytes(8193 - len(sig))
    if kind == "pad8192":
        return sig + bytes(8192 - len(sig))
    return sig


_SIGS: dict[tuple[bytes, int], bytes] = {}


def _sign_cached(payload: bytes, signer: Any, cms: Any) -> bytes:
    key = (hashlib.sha256(payload).digest(), id(signer))
    if key not in _SIGS:
        _SIGS[key] = cms.sign(payload, signer)
    return _SIGS[key]


Outcome = tuple[int | None, str]


def run(be: Any, case: Case, signers: dict[str, Any],
        keyring_map: Callable[[int], int] = lambda k: k) -> list[Outcome]:  # fmt: skip
    """Play ``case`` on ``be``: each attempt's (errno, last log line), then freeze errnos."""
    from bpfsign.errors import KernelError
    from bpfsign.kernel.backend import LOADER_LICENSE, LOADER_PROG_NAME

    objs = _Objects(be, case)
    out: list[Outcome] = []
    kept: list[int] = []
    try:
        for att in case.attempts:
            sig = signature(case, att, signers)
            fds = [objs.fd(t) for t in att.fd_array]
            try:
                fd = be.prog_load(
                    31, case.insns, license=LOADER_LICENSE, name=LOADER_PROG_NAME, flags=0x10,
                    fd_array=fds, fd_array_cnt=att.cnt, signature=sig,
                    keyring_id=keyring_map(att.keyring) if sig is not None else 0,
                )  # fmt: skip
            except KernelError as exc:
                assert "the retry with a verifier log failed" not in str(exc), exc
                lines = [
                    ln
                    for ln in exc.log.splitlines()
                    if ln.strip() and not ln.startswith("processed ")
                ]
                out.append((exc.errno, lines[-1] if lines else ""))
                continue
            out.append((None, ""))
            if att.keep:
                kept.append(fd)
            else:
                be.close(fd)
        out.append((next((e for e in objs.freeze_errnos if e is not None), None), "freeze"))
    finally:
        for fd in kept:
            be.close(fd)
        objs.close()
    return out


def wanted(case: Case) -> list[Outcome]:
    return [a.want for a in case.attempts] + [(case.freeze_errno, "freeze")]


def offline(case: Case, trust: Any, profile: str = "7.3", keyring_map: Callable[[int], int] = lambda k: k,
            signers: dict[str, Any] | None = None) -> list[Outcome]:  # fmt: skip
    """The rules engine's verdict on each attempt, from the case's description alone.

    This is what ``bpfsign explain`` evaluates: no fds, no kernel -- each map
    described as the kernel would find it (frozen or not; a writable mmap kept
    through the freeze leaves it unfrozen; writes through an mmap change entry 0).
    """
    from bpfsign.kernel import profiles, rules

    refs: dict[str, rules.MapRef] = {}
    for name, spec in case.maps.items():
        for i in range(spec.copies):
            key = name if spec.copies == 1 else f"{name}#{i}"
            refs[key] = rules.MapRef(
                5 + len(refs), name=spec.name, map_type=spec.map_type, max_entries=spec.max_entries,
                value=_value(spec), frozen=spec.frozen and not spec.keep_rw_mmap,
                excl_prog_hash=_excl(spec, case.insns),
            )  # fmt: skip
    btf = rules.MapRef(4, "btf")

    def ref(token: str) -> rules.MapRef:
        if token == "btf":
            return btf
        if token.startswith("fd:"):
            fd = int(token[3:])
            return rules.MapRef(fd, "not-bpf" if fd in (0, 1, 2) else "closed")
        return refs[token]

    out: list[Outcome] = []
    for att in case.attempts:
        array = [ref(t) for t in att.fd_array]
        entries = array + [ref("fd:0")] * max(0, att.cnt - len(array))  # zeros past the array
        load = rules.Load(
            case.insns, signature=signature(case, att, signers or {}), keyring_id=keyring_map(att.keyring),
            fd_array=entries[: att.cnt], fd_array_cnt=att.cnt, array=entries,
            lookup=lambda fd: ref(f"fd:{fd}"),
        )  # fmt: skip
        v = rules.evaluate(load, profiles.PROFILES[profile], trust)
        out.append((v.errno, v.log))
    freeze = E.EBUSY if any(s.keep_rw_mmap for s in case.maps.values()) else None
    out.append((freeze, "freeze"))
    return out


def fds_open() -> int:
    return len(os.listdir("/proc/self/fd"))
