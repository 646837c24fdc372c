"""The kernel's rules for BPF_PROG_LOAD's signature path, in one ordered list.

Every check a kernel makes on a (signed) program load, from the signature
size to the last map the verifier binds, lives here once: as data (:data:`RULES`:
what is checked, the errno, the verifier-log line, the fix) and as small
functions that run them in the kernel's order for a :class:`~.profiles.Profile`.
The kernel model (:mod:`.model`), offline ``bpfsign verify``, ``bpfsign
explain`` and the hints on real-kernel errors (:func:`hint`) all ask this
module, so a new rule is written once.

The order is the kernel's (docs/kernel.md §6.1 for the 6.18 scheme, §6.2 for
the load-time scheme): entry checks (insn count, signature size, keyring);
then, inside the verifier for a load-time kernel, ``fd_array[0..fd_array_cnt)``
map by map (a BPF object at all, no BTF, frozen, exclusive, ARRAY, one entry,
exclusive hash), the folded payload and its 16 MiB limit, the PKCS#7 verdict
(:mod:`bpfsign.crypto.verify` does the PKCS#7 part), then the ``ld_imm64``
bindings (no new map after the signature) and the 6.18 ``struct bpf_map``
read. A light skeleton's loader adds the run-time checks of a 6.18-style
loader (§6.5, §13 rows 23 and 56).

``bpfsign verify`` imports this module on its start-up path, so it stays
plain: no dataclasses, no typing, nothing from pyca.
"""

from __future__ import annotations

import errno as _e
import struct

from ..errors import ENOTSUPP, VerificationError, errno_name
from .profiles import KEY_SPEC_BPF_KEYRING, Profile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ..crypto.trust import TrustStore

__all__ = [
    "KEY_SPEC_BPF_KEYRING",
    "RULES",
    "Load",
    "MapRef",
    "Rule",
    "Runtime",
    "Step",
    "Verdict",
    "bpf_keyring",
    "evaluate",
    "evaluate_blob",
    "hint",
    "program_digest",
    "skeleton_load",
]  # fmt: skip

#: signature_size cap: KMALLOC_MAX_CACHE_SIZE on x86-64 (docs/kernel.md §12.8)
MAX_SIGNATURE_SIZE = 8192
#: insns ‖ folded map values, at most 2^24 - 1 bytes (docs/kernel.md §6.2 step 2.3)
MAX_SIGNED_PAYLOAD = (1 << 24) - 1
#: distinct maps one program may use (docs/kernel.md §12.8; duplicates count once)
MAX_USED_MAPS = 64
MAX_INSNS = 1_000_000
MAP_TYPE_HASH, MAP_TYPE_ARRAY, MAP_TYPE_PERCPU_ARRAY = 1, 2, 6
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 1, 2, 5, 6
LD_IMM64 = 0x18
LDX_MEM_W = 0x61
#: struct bpf_map offset 32: u32 ``excl`` on 6.18.44, the ``ops`` pointer on 7.3.4 (§8.1)
BPF_MAP_EXCL_OFFSET = 32

LOG_KEYRING = "cannot resolve signing keyring with keyring_id {keyring_id}"
LOG_NOT_BPF = "fd {fd} is not pointing to valid bpf_map or btf"
LOG_NOT_MAP = "fd {fd} is not pointing to valid bpf_map"
LOG_BY_FD = "signed program cannot reference a map by fd, only via fd_array index"
LOG_BTF = "signed program cannot bind any BTF"
LOG_USED_MAPS = "The total number of maps per program has reached the limit of 64"
LOG_FROZEN = "signed program metadata map '{name}' must be frozen"
LOG_EXCLUSIVE = "signed program metadata map '{name}' must be exclusive"
LOG_ARRAY = "signed program metadata map '{name}' must be an array"
LOG_ONE_ENTRY = "failed to read signed metadata map '{name}': -524"
LOG_EXCL = "program's hash doesn't match map's excl_prog_hash"
LOG_PAYLOAD = "signed payload too large: {size} bytes"
LOG_SIG_FAILED = "signature verification failed: -{errno}"
LOG_CNT0 = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
LOG_OFF32 = "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"
LOADER_FAILED = "error returned by loader prog"

_CONVERT = "convert it to the loadtime scheme, which signs the loader and its data together"
_PKCS7_HINTS = {
    _e.ENOKEY: "the signer's certificate is not in that keyring (a key's own serial is not a "
    "keyring: pass the keyring's serial or -3); add it with `bpfsign keyring add CERT`",
    _e.EKEYREJECTED: "the signature does not match the loader and its data (tampered or wrong "
    "scheme): re-sign it with `bpfsign sign`",
    _e.EBADMSG: "the signature is not a detached PKCS#7/CMS SignedData the kernel can parse: "
    "re-sign it with `bpfsign sign`",
    _e.ENOPKG: "the kernel cannot verify this algorithm (RSA-PSS, SHA-3 without its module): "
    "re-sign with SHA-256 and an RSA PKCS#1 v1.5 or ECDSA key",
    _e.EINVAL: "the signature's structure is not one the kernel accepts: re-sign it with "
    "`bpfsign sign`",
}


class Rule:
    """One check: what it looks at, the errno and log line when it fails, the fix."""

    __slots__ = ("errno", "hint", "id", "log", "provenance", "title")

    def __init__(self, id: str, title: str, errno: int, log: str, hint: str,
                 provenance: str) -> None:  # fmt: skip
        self.id = id
        self.title = title
        self.errno = errno
        self.log = log  # a template: {name}, {fd}, {size}, {errno}, {keyring_id}
        self.hint = hint
        self.provenance = provenance

    def __repr__(self) -> str:
        return f"<Rule {self.id}: {errno_name(self.errno)}>"


#: The checks, in the kernel's order (docs/kernel.md §6.1, §6.2, §13 rows cited).
RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule("insn_cnt", "instruction count", _e.E2BIG, "",
             "a program has 1 to 1,000,000 instructions", "from source (§6.1 step 2)"),
        Rule("signature_size", "signature size", _e.EINVAL, "",
             "the kernel caps signatures at 8192 bytes (KMALLOC_MAX_CACHE_SIZE): sign with "
             "fewer or smaller embedded certificates (e.g. without the chain)",
             "measured on 7.3.4 and 6.18.44 (§13 row 29)"),
        Rule("signature_empty", "signature present", _e.EINVAL, "",
             "the signature is empty (signature_size 0): sign the loader with `bpfsign sign`",
             "measured on 7.3.4 (§13 row 53)"),
        Rule("keyring", "keyring", _e.EINVAL, LOG_KEYRING,
             "check keyring_id: it must be 0, 1, 2, -3 or the serial of an existing KEYRING",
             "measured on 7.3.4; 6.18.44 gives the same EINVAL with an empty log (§5, §13 row 2)"),
        Rule("verification_support", "signature support", _e.EOPNOTSUPP, "",
             "this kernel lacks signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is not "
             "set): load it on a kernel built with it (e.g. Debian's Linux 7.x), or without its "
             "signature", "measured on 6.18.44 (§13 row 1)"),
        Rule("fd_array_entry", "fd_array entry is a BPF object", _e.EBADF, LOG_NOT_BPF,
             "fd_array must hold open map fds: an fd that is not open gives EBADF, an open fd "
             "that is not a map or BTF EINVAL; fd_array_cnt must not exceed the array (entries "
             "past it are whatever memory follows)", "measured on 7.3.4"),
        Rule("btf", "no BTF in a signed fd_array", _e.EACCES, LOG_BTF,
             "a signed program cannot bind BTF objects: drop BTF fds from fd_array (or from "
             "its first fd_array_cnt entries)", "measured on 7.3.4"),
        Rule("frozen", "metadata map is frozen", _e.EPERM, LOG_FROZEN,
             "freeze the metadata map (BPF_MAP_FREEZE) after writing it and before the load; a "
             "writable mmap of it makes the freeze fail (EBUSY)",
             "measured on 7.3.4 (§13 row 16)"),
        Rule("exclusive", "metadata map is exclusive", _e.EPERM, LOG_EXCLUSIVE,
             "create the metadata map with excl_prog_hash = SHA-256(loader insns) (the header's "
             "opts_excl_hash, which `bpfsign sign` writes)", "measured on 7.3.4 (§13 row 17)"),
        Rule("array", "metadata map is an ARRAY", _e.EINVAL, LOG_ARRAY,
             "a metadata map must be a plain BPF_MAP_TYPE_ARRAY", "measured on 7.3.4 (§13 row 25)"),
        Rule("one_entry", "metadata map has one entry", ENOTSUPP, LOG_ONE_ENTRY,
             "a metadata map must have max_entries 1", "measured on 7.3.4 (§13 row 51)"),
        Rule("excl_hash", "exclusive hash equals the program digest", _e.EACCES, LOG_EXCL,
             "the loader map is exclusive to another program hash; an unsigned load must keep "
             "fd_array_cnt = 0, and excl_prog_hash must equal SHA-256(loader insns)",
             "measured on 7.3.4 and 6.18.44 (§13 rows 11, 18, 20)"),
        Rule("used_maps", "at most 64 distinct maps", _e.E2BIG, LOG_USED_MAPS,
             "a program may use at most 64 distinct maps (the same fd listed twice counts once)",
             "measured on 7.3.4"),
        Rule("payload_size", "signed payload size", _e.E2BIG, LOG_PAYLOAD,
             "insns and metadata map values together must stay below 16 MiB: shrink the "
             "loader's data", "measured on 7.3.4 (§13 row 28)"),
        Rule("signature", "PKCS#7 signature", _e.EKEYREJECTED, LOG_SIG_FAILED,
             _PKCS7_HINTS[_e.EKEYREJECTED], "measured on 7.3.4 (§12, §13 rows 3-10, 34-45)"),
        Rule("bind_after_signature", "no map bound after the signature", _e.EACCES, LOG_CNT0,
             "a 6.18-style (in-loader) signed loader on a load-time kernel: its signature does "
             "not cover the maps it uses; " + _CONVERT, "measured on 7.3.4 (§13 row 49)"),
        Rule("bind_by_fd", "no map named by fd in a signed program", _e.EINVAL, LOG_BY_FD,
             "a signed program names its maps by fd_array index (BPF_PSEUDO_MAP_IDX), never by fd "
             "(BPF_PSEUDO_MAP_FD), as bpftool's light-skeleton loaders do",
             "measured on 7.3.4"),
        Rule("bind", "map referenced by an instruction", _e.EBADF, LOG_NOT_MAP,
             "an ld_imm64 names an fd or an fd_array index that is not an open map",
             "measured on 7.3.4 (an fd that is not open)"),
        Rule("bpf_map_layout", "struct bpf_map read matches this kernel", _e.EACCES, LOG_OFF32,
             "the loader reads struct bpf_map at a 6.18-only offset (bpftool <= 7.8 -S "
             "exclusivity check); " + _CONVERT, "measured on 7.3.4 (§13 row 50)"),
        Rule("loader_exclusive", "loader's own exclusivity check", _e.EINVAL, "",
             "the loader map is not exclusive (no opts_excl_hash), so the 6.18 loader's "
             "exclusivity check returns -EINVAL at run time: re-sign it with `bpfsign sign`",
             "measured on 6.18.44 (§13 row 23)"),
        Rule("loader_hash", "loader's own metadata hash check", _e.EINVAL, "",
             "the 6.18 loader compares SHA-256(data) with the hash baked into it, after user "
             "space asked for the map hash: re-sign it with `bpfsign sign`",
             "measured on 6.18.44 and 7.3.4 (§13 rows 23, 56)"),
    )
}  # fmt: skip


def _decode(insns: bytes, pc: int, big: bool) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of insn ``pc``; a big-endian insn swaps the register nibbles."""
    op, regs, off, imm = struct.unpack_from(">BBhi" if big else "<BBhi", insns, pc * 8)
    return (op, regs >> 4, regs & 0xF, off, imm) if big else (op, regs & 0xF, regs >> 4, off, imm)


def program_digest(insns: bytes, big: bool = False) -> bytes:
    """``prog->digest``: SHA-256 of the insns with MAP_FD/MAP_VALUE immediates zeroed (§7).

    The IDX forms (src_reg 5/6), which gen_loader loaders use, are not masked.
    """
    buf = bytearray(insns)
    n = len(buf) // 8
    pc = 0
    while pc < n:
        off = pc * 8
        if buf[off] == LD_IMM64 and pc + 1 < n:
            src = buf[off + 1] & 0xF if big else buf[off + 1] >> 4
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                buf[off + 4 : off + 8] = bytes(4)
                buf[off + 12 : off + 16] = bytes(4)
            pc += 2
            continue
        pc += 1
    import hashlib  # not at the top: verify of a plain file never needs it (start-up cost)

    return hashlib.sha256(bytes(buf)).digest()


def map_loads(insns: bytes, big: bool = False) -> list[tuple[int, int, int]]:
    """(pc, src_reg, imm) of every ``ld_imm64`` that names a map (src_reg 1, 2, 5 or 6)."""
    out = []
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, _dst, src, _off, imm = _decode(insns, pc, big)
        if op == LD_IMM64:
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE):
                out.append((pc, src, imm))
            pc += 2
            continue
        pc += 1
    return out


def reads_map_offset_32(insns: bytes, big: bool = False) -> int | None:
    """The pc of a u32 load at offset 32 from a register holding a map (ld_imm64 src 1/5).

    The bpftool <= 7.8 -S loader's exclusivity check (``61 12 20 00 …``): a
    straight-line register track is enough for that prefix.
    """
    map_regs: set[int] = set()
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, dst, src, off, _imm = _decode(insns, pc, big)
        if op == LD_IMM64:
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX):
                map_regs.add(dst)
            else:
                map_regs.discard(dst)
            pc += 2
            continue
        if op == LDX_MEM_W and src in map_regs and off == BPF_MAP_EXCL_OFFSET:
            return pc
        cls = op & 0x07
        if cls in (0x04, 0x07, 0x01) or cls == 0x00:  # ALU, ALU64, LDX, LD
            map_regs.discard(dst)
        elif cls in (0x05, 0x06) and (op & 0xF0) in (0x80, 0x90):  # call / exit
            map_regs.difference_update(range(6))
        pc += 1
    return None


# ---------------------------------------------------------------- the load


class MapRef:
    """What one fd (an ``fd_array`` entry, or an ``ld_imm64`` imm) refers to, as the kernel sees it.

    ``kind``: "map", "btf", "not-bpf" (an open fd of another kind) or "closed"
    (no such fd). ``key`` identifies the object (two fds of one map share it).
    """

    __slots__ = ("excl_prog_hash", "fd", "frozen", "key", "kind", "map_type", "max_entries",
                 "name", "value", "value_size")  # fmt: skip

    def __init__(
        self,
        fd: int,
        kind: str = "map",
        *,
        key: object = None,
        name: str = "",
        map_type: int = MAP_TYPE_ARRAY,
        max_entries: int = 1,
        value: bytes = b"",
        value_size: int | None = None,
        frozen: bool = True,
        excl_prog_hash: bytes | None = None,
    ) -> None:
        self.fd = fd
        self.kind = kind
        self.key = key if key is not None else object()
        self.name = name
        self.map_type = map_type
        self.max_entries = max_entries
        self.value = value  # entry 0, value_size bytes
        self.value_size = len(value) if value_size is None else value_size
        self.frozen = frozen
        self.excl_prog_hash = excl_prog_hash

    def describe(self) -> str:
        if self.kind != "map":
            return f"fd {self.fd} ({self.kind})"
        return f"'{self.name}'"


class Runtime:
    """What a light skeleton's loader program does once loaded (6.18-style checks only)."""

    __slots__ = ("baked_hash", "data_hash", "exclusivity_check", "hash_check", "hash_request")

    def __init__(self, *, hash_check: bool, exclusivity_check: bool, hash_request: bool,
                 baked_hash: bytes | None, data_hash: bytes) -> None:  # fmt: skip
        self.hash_check = hash_check
        self.exclusivity_check = exclusivity_check
        self.hash_request = hash_request
        self.baked_hash = baked_hash
        self.data_hash = data_hash


class Load:
    """One BPF_PROG_LOAD: the attr fields the signature path reads, with fds already looked up.

    ``fd_array`` holds the first ``fd_array_cnt`` entries (entries past the
    caller's array are whatever memory follows it: the caller decides).
    ``lookup(fd)`` resolves an fd named by an ``ld_imm64`` (MAP_FD forms) and
    ``reread(i)`` re-reads ``fd_array[i]`` when the verifier resolves an IDX
    form; both default to the snapshot in ``fd_array`` / ``array``.
    """

    __slots__ = ("array", "big", "fd_array", "fd_array_cnt", "insns", "keyring_id", "lookup",
                 "prog_name", "reread", "runtime", "signature")  # fmt: skip

    def __init__(
        self,
        insns: bytes,
        *,
        signature: bytes | None = None,
        keyring_id: int = 0,
        fd_array: Sequence[MapRef] = (),
        fd_array_cnt: int = 0,
        array: Sequence[MapRef] = (),
        lookup: Callable[[int], MapRef] | None = None,
        reread: Callable[[int], MapRef | None] | None = None,
        runtime: Runtime | None = None,
        prog_name: str = "",
        big: bool = False,
    ) -> None:
        self.insns = insns
        self.big = big  # a big-endian loader, judged as a big-endian kernel would
        self.signature = signature
        self.keyring_id = keyring_id
        self.fd_array = list(fd_array)
        self.fd_array_cnt = fd_array_cnt
        self.array = list(array) if array else list(fd_array)
        self.lookup = lookup
        self.reread = reread
        self.runtime = runtime
        self.prog_name = prog_name


# ------------------------------------------------------------- the verdict


class Step:
    """One check as it ran: what it compared, and whether it passed."""

    __slots__ = ("compared", "errno", "hint", "log", "ok", "rule", "subject")

    def __init__(self, rule: Rule, ok: bool, compared: str, *, subject: str = "", log: str = "",
                 errno: int | None = None, hint: str = "") -> None:  # fmt: skip
        self.rule = rule
        self.ok = ok
        self.compared = compared
        self.subject = subject
        self.errno = None if ok else (rule.errno if errno is None else errno)
        self.log = log
        self.hint = "" if ok else (hint or rule.hint)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.rule.id, "title": self.rule.title, "ok": self.ok,
            "compared": self.compared, "provenance": self.rule.provenance,
        }  # fmt: skip
        if self.subject:
            out["subject"] = self.subject
        if not self.ok:
            out.update(errno=self.errno, errno_name=errno_name(self.errno or 0), log=self.log,
                       hint=self.hint)  # fmt: skip
        return out


class Verdict:
    """The checks that ran, in order, and the one that decided (None: the kernel loads it)."""

    __slots__ = ("at_run_time", "bound", "failed", "profile", "signer", "steps")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.steps: list[Step] = []
        self.failed: Step | None = None
        self.signer: Any = None  # bpfsign.crypto.verify.VerifiedSignature when checked
        self.at_run_time = False  # the deciding check is the loader program's own
        self.bound: list[MapRef] = []  # the maps the program uses, in binding order

    @property
    def loads(self) -> bool:
        return self.failed is None

    @property
    def errno(self) -> int | None:
        return None if self.failed is None else self.failed.errno

    @property
    def log(self) -> str:
        return "" if self.failed is None else self.failed.log

    @property
    def hint(self) -> str:
        return "" if self.failed is None else self.failed.hint

    def as_dict(self) -> dict[str, Any]:
        err = self.errno
        return {
            "loads": self.loads, "errno": err, "errno_name": None if err is None else errno_name(err),
            "log": self.log, "hint": self.hint,
            "check": None if self.failed is None else self.failed.rule.id,
            "at_run_time": self.at_run_time,
        }  # fmt: skip

    def error(self) -> VerificationError:
        """The refusal as the VerificationError offline verification raises."""
        assert self.failed is not None
        step = self.failed
        # the kernel's own line first, then what was compared (the line alone rarely says why)
        what = LOADER_FAILED if self.at_run_time else (step.log or step.rule.title)
        if step.compared and step.compared not in what:
            what = f"{what}: {step.compared}"
        err = VerificationError(step.errno or 0, what, log=step.log)
        err.hint = step.hint  # type: ignore[attr-defined]
        err.check = step.rule.id  # type: ignore[attr-defined]
        return err


class _Refused(Exception):
    """Internal: a check failed; the step is already recorded."""


class _Run:
    """One evaluation: appends steps, stops at the first failure."""

    def __init__(self, load: Load, profile: Profile, trust: TrustStore | None) -> None:
        self.load = load
        self.p = profile
        self.trust = trust
        self.v = Verdict(profile)
        self.signed = load.signature is not None
        self._digest: bytes | None = None

    @property
    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = program_digest(self.load.insns, self.load.big)
        return self._digest

    def ok(self, rule: str, compared: str, subject: str = "") -> None:
        self.v.steps.append(Step(RULES[rule], True, compared, subject=subject))

    def fail(self, rule: str, compared: str, *, subject: str = "", errno: int | None = None,
             hint: str = "", log: str | None = None, **fmt: object) -> _Refused:  # fmt: skip
        r = RULES[rule]
        if log is None:
            log = r.log.format(**fmt) if r.log else ""
        step = Step(r, False, compared, subject=subject, log=log, errno=errno, hint=hint)
        self.v.steps.append(step)
        self.v.failed = step
        return _Refused()


def evaluate(load: Load, profile: Profile, trust: TrustStore | None = None) -> Verdict:
    """Run the checks of ``profile``'s BPF_PROG_LOAD on ``load``; the verdict with every step.

    ``trust`` stands for the kernel's keyrings (signed loads only). The order
    (measured on 7.3.4, tests/vm): the insn count; ``fd_array[0..cnt)`` resolved
    entry by entry (open, a map or BTF, no BTF when signed, the exclusive hash,
    64 maps); only then the signature's entry checks (size, keyring); the
    metadata maps one by one; the payload; PKCS#7; the insns' map references.
    A 6.18 kernel checks the signature at entry, before anything else.
    """
    run = _Run(load, profile, trust)
    loadtime = profile.scheme == "loadtime"
    try:
        _insn_cnt(run)
        if run.signed and not loadtime:
            _signature_entry(run)
            _signature(run, load.insns, 0)  # §6.1 step 5.4: at entry, over the insns as copied
        bound = run.v.bound = _fd_array(run)
        if run.signed and loadtime:
            _signature_entry(run)
            for i, ref in enumerate(bound):
                _metadata_map(run, ref, f"fd_array[{i}]")
            _signature(run, load.insns + b"".join(m.value for m in bound), len(bound))
        _bindings(run, bound)
        _layout(run)
        if load.runtime is not None:
            _loader_run(run, bound)
    except _Refused:
        pass
    return run.v


def evaluate_blob(payload: bytes, signature: bytes, profile: Profile, trust: TrustStore,
                  keyring_id: int) -> Verdict:  # fmt: skip
    """A detached signature over ``payload``, as the signature path would judge it.

    The entry checks (size, keyring, support), the payload limit and PKCS#7:
    what BPF_PROG_LOAD would say if ``payload`` were the signed message.
    """
    run = _Run(Load(b"", signature=signature, keyring_id=keyring_id), profile, trust)
    try:
        _signature_entry(run)
        _signature(run, payload, 0, what="the file")
    except _Refused:
        pass
    return run.v


def skeleton_load(skel: Any, *, keyring_id: int = -3, unsigned: bool = False) -> Load:
    """The loader's BPF_PROG_LOAD as ``skel_internal.h`` issues it (docs/lskel.md §10.2).

    An exclusive, frozen one-entry ``__loader.map`` holding the data in
    ``fd_array[0]``; ``fd_array_cnt`` 1 for a signed load-time loader, else 0;
    a 6.18-style loader asks for the map hash and runs its own checks.
    """
    from ..skel import scheme

    audit = scheme.audit(skel)
    signed = skel.signature is not None and not unsigned
    block = audit.hash_check
    meta = MapRef(-1, name="__loader.map", value=skel.data, excl_prog_hash=skel.excl_hash)
    return Load(
        skel.insns, signature=skel.signature if signed else None,
        keyring_id=keyring_id if signed else 0, fd_array=[meta],
        fd_array_cnt=1 if signed and block is None else 0, prog_name="__loader.prog",
        runtime=Runtime(
            hash_check=block is not None, exclusivity_check=audit.exclusivity_check,
            hash_request=block is not None, baked_hash=block.baked_hash if block else None,
            data_hash=audit.data_hash,
        ),
        big=skel.endian == "big",
    )  # fmt: skip


def _insn_cnt(run: _Run) -> None:
    """docs/kernel.md §6.1 step 2: before anything else (measured: E2BIG before a bad keyring)."""
    n = len(run.load.insns) // 8
    if n == 0 or n > MAX_INSNS:
        raise run.fail("insn_cnt", f"{n} insns; allowed 1..{MAX_INSNS}")
    run.ok("insn_cnt", f"{n} insns")


def _signature_entry(run: _Run) -> None:
    """docs/kernel.md §6.1 step 5.1-5.5: size, keyring, and the no-verification stub."""
    load, p = run.load, run.p
    assert load.signature is not None
    size = len(load.signature)
    if size > MAX_SIGNATURE_SIZE:
        raise run.fail(
            "signature_size",
            f"{size} bytes > {MAX_SIGNATURE_SIZE}",
            hint=f"the signature is {size} bytes; " + RULES["signature_size"].hint,
        )
    if size == 0 and p.empty_signature_einval:
        raise run.fail("signature_empty", "signature_size 0 with a non-NULL signature")
    run.ok("signature_size", f"{size} bytes <= {MAX_SIGNATURE_SIZE}")
    ring = _resolve_keyring(run)
    run.ok("keyring", f"keyring_id {load.keyring_id} -> {ring}")
    if not p.verifies:
        raise run.fail(
            "verification_support",
            "a signed load on a kernel without CONFIG_SYSTEM_DATA_VERIFICATION",
        )


def _resolve_keyring(run: _Run) -> str:
    kid = run.load.keyring_id
    trust = run.trust
    # 6.18.44 gives the same EINVAL with an empty log (docs/kernel.md §5)
    log = None if run.p.keyring_log else ""
    if trust is None or (kid == KEY_SPEC_BPF_KEYRING and not run.p.bpf_keyring):
        raise run.fail(
            "keyring", f"keyring_id {kid} names no keyring on this kernel", keyring_id=kid, log=log
        )
    try:
        resolved = trust.resolve(_keyring_serial(kid, run.p, trust))
    except VerificationError:
        raise run.fail(
            "keyring",
            f"keyring_id {kid} names no keyring (lookup_user_key fails)",
            keyring_id=kid,
            log=log,
        ) from None
    return f"the {resolved.description} keyring" if resolved.keyrings else resolved.description


def _keyring_serial(kid: int, p: Profile, trust: TrustStore) -> int:
    """The TrustStore id for ``kid``: the ``.bpf`` keyring is a named ring there."""
    if kid == KEY_SPEC_BPF_KEYRING and p.bpf_keyring:
        return bpf_keyring(trust)
    return kid


def bpf_keyring(trust: TrustStore) -> int:
    """The serial of ``trust``'s ``.bpf`` keyring (created empty on first use)."""
    ring = getattr(trust, "_bpf_keyring_serial", None)
    if ring is None:
        ring = trust.create_keyring(".bpf", link_into=None)
        trust._bpf_keyring_serial = ring  # type: ignore[attr-defined]
    return int(ring)


def _fd_array(run: _Run) -> list[MapRef]:
    """docs/kernel.md §6.2 step 2.2: fd_array[0..cnt) bound before any insn is looked at.

    Entry by entry (measured on 7.3.4): an fd that is not open (EBADF) or not
    a map/BTF (EINVAL); a BTF in a signed load (EACCES); an exclusive map whose
    hash is not the program's digest -- and for an unsigned load, which has no
    digest yet, any exclusive map (EACCES); more than 64 distinct maps (E2BIG).
    """
    load, p = run.load, run.p
    cnt = load.fd_array_cnt
    if not cnt:
        run.ok("fd_array_entry", "fd_array_cnt 0: no map bound before the instructions")
        return []
    bound: list[MapRef] = []
    early_digest = run.signed and p.scheme == "loadtime"
    for i, ref in enumerate(load.fd_array[:cnt]):
        where = f"fd_array[{i}]" + (f" = {ref.fd}" if ref.fd >= 0 else "")
        if ref.kind in ("closed", "not-bpf"):
            closed = ref.kind == "closed"
            raise run.fail("fd_array_entry", f"{where}: {'not open' if closed else 'not a map or BTF'}",
                           errno=_e.EBADF if closed else _e.EINVAL, fd=ref.fd)  # fmt: skip
        if ref.kind == "btf":
            if early_digest:
                raise run.fail("btf", f"{where} is a BTF object")
            continue
        if ref.excl_prog_hash is not None and not early_digest:
            # §6.3 row 1, §13 row 11: no digest yet when an unsigned load binds fd_array
            raise run.fail(
                "excl_hash",
                f"{where} {ref.describe()} is exclusive, and this load "
                "binds fd_array before the program digest exists",
                subject=ref.name,
            )
        if ref.excl_prog_hash is not None and ref.excl_prog_hash != run.digest:
            raise run.fail(
                "excl_hash",
                f"{where} {ref.describe()}: excl_prog_hash "
                f"{ref.excl_prog_hash.hex()[:16]}… != program digest "
                f"{run.digest.hex()[:16]}…",
                subject=ref.name,
            )
        if all(ref.key is not b.key for b in bound):
            bound.append(ref)
            if len(bound) > MAX_USED_MAPS:
                raise run.fail("used_maps", f"{where} would be distinct map number {len(bound)}")
    names = ", ".join(m.describe() for m in bound) or "no maps"
    run.ok("fd_array_entry", f"fd_array[0..{cnt}) resolves to {names}")
    if early_digest and bound:
        run.ok(
            "excl_hash",
            f"each exclusive map's excl_prog_hash == program digest {run.digest.hex()[:16]}…",
        )
    return bound


def _metadata_map(run: _Run, m: MapRef, where: str) -> None:
    """docs/kernel.md §6.4: one map of a signed fd_array, checks in the measured order."""
    subject = m.name
    if not m.frozen:
        raise run.fail(
            "frozen", f"{where} {m.describe()} is not frozen", subject=subject, name=m.name
        )
    run.ok("frozen", f"{where} {m.describe()} is frozen", subject)
    if m.excl_prog_hash is None:
        raise run.fail(
            "exclusive",
            f"{where} {m.describe()} has no excl_prog_hash",
            subject=subject,
            name=m.name,
        )
    run.ok("exclusive", f"{where} {m.describe()} has an excl_prog_hash", subject)
    if m.map_type != MAP_TYPE_ARRAY:
        raise run.fail(
            "array",
            f"{where} {m.describe()} has map type {m.map_type}, not ARRAY (2)",
            subject=subject,
            name=m.name,
        )
    run.ok("array", f"{where} {m.describe()} is an ARRAY", subject)
    if m.max_entries != 1:
        raise run.fail(
            "one_entry",
            f"{where} {m.describe()} has max_entries {m.max_entries}",
            subject=subject,
            name=m.name,
        )
    run.ok("one_entry", f"{where} {m.describe()} has one entry", subject)


def _signature(run: _Run, payload: bytes, nmaps: int, what: str = "") -> None:
    """The payload limit and the PKCS#7 verdict (crypto/verify.py), §6.2 steps 2.3-2.5."""
    what = what or "insns" + (
        f" ‖ {nmaps} map value{'s' if nmaps > 1 else ''}" if nmaps else " only"
    )
    if run.p.scheme == "loadtime":
        if len(payload) > MAX_SIGNED_PAYLOAD:
            raise run.fail(
                "payload_size",
                f"{len(payload)} bytes ({what}) > {MAX_SIGNED_PAYLOAD}",
                size=len(payload),
            )
        run.ok("payload_size", f"{len(payload)} bytes ({what}) <= {MAX_SIGNED_PAYLOAD}")
    from ..crypto import verify

    assert run.trust is not None and run.load.signature is not None
    kid = _keyring_serial(run.load.keyring_id, run.p, run.trust)
    try:
        signer = verify.verify(payload, run.load.signature, run.trust, keyring_id=kid)
    except VerificationError as exc:
        # at entry (6.18 scheme) the verifier log does not exist yet
        log = LOG_SIG_FAILED.format(errno=exc.errno) if run.p.scheme == "loadtime" else ""
        raise run.fail(
            "signature",
            f"PKCS#7 over {what} ({len(payload)} bytes): {exc.reason}",
            errno=exc.errno,
            hint=_PKCS7_HINTS.get(exc.errno, ""),
            log=log,
        ) from None
    run.v.signer = signer
    run.ok(
        "signature",
        f"PKCS#7 over {what} ({len(payload)} bytes) verifies: "
        f"{signer.signer_subject!r} ({signer.digest_algorithm}, {signer.key_description}) "
        f"in the {signer.keyring} keyring",
    )


def _bindings(run: _Run, bound: list[MapRef]) -> None:
    """docs/kernel.md §6.2 step 4 / §6.1 step 8: the verifier resolves each map ld_imm64."""
    load, p = run.load, run.p
    loads = map_loads(load.insns, load.big)
    strict = run.signed and p.scheme == "loadtime"
    if not loads:
        run.ok("bind", "no instruction references a map")
        return
    for pc, src, imm in loads:
        if src in (PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE):
            where = f"insn {pc} loads fd_array[{imm}]"
            if strict and imm >= load.fd_array_cnt:
                raise run.fail(
                    "bind_after_signature",
                    f"{where}, past fd_array_cnt "
                    f"{load.fd_array_cnt}: a map the signature did not cover",
                )
            ref = (
                load.reread(imm)
                if load.reread is not None
                else (load.array[imm] if 0 <= imm < len(load.array) else None)
            )
            if ref is None:
                raise run.fail("bind", f"{where}, past the array", errno=_e.EFAULT)
        else:
            where = f"insn {pc} names map fd {imm}"
            if strict:
                raise run.fail("bind_by_fd", f"{where} directly (BPF_PSEUDO_MAP_FD)")
            ref = load.lookup(imm) if load.lookup is not None else MapRef(imm, "closed")
        if ref.kind != "map":
            raise run.fail(
                "bind",
                f"{where}: fd {ref.fd} is not a map",
                errno=_e.EBADF if ref.kind == "closed" else _e.EINVAL,
                fd=ref.fd,
            )
        if any(ref.key is b.key for b in bound):
            continue
        if strict:  # a different map behind a folded slot (e.g. dup2 during the load)
            raise run.fail(
                "bind_after_signature",
                f"{where}: {ref.describe()} was not folded into the signature",
            )
        if ref.excl_prog_hash is not None and ref.excl_prog_hash != run.digest:
            raise run.fail(
                "excl_hash",
                f"{where}: {ref.describe()} is exclusive to "
                f"{ref.excl_prog_hash.hex()[:16]}…, the program digest is "
                f"{run.digest.hex()[:16]}…",
                subject=ref.name,
            )
        bound.append(ref)
    run.ok(
        "bind",
        f"{len(loads)} map reference{'s' if len(loads) > 1 else ''} resolve to "
        f"{', '.join(b.describe() for b in bound)}",
    )


def _layout(run: _Run) -> None:
    """docs/kernel.md §8.1: the 6.18 loader's u32 read at struct bpf_map offset 32."""
    pc = reads_map_offset_32(run.load.insns, run.load.big)
    if pc is None:
        run.ok("bpf_map_layout", "no read of struct bpf_map at offset 32")
    elif run.p.layout == "7.3":
        raise run.fail(
            "bpf_map_layout",
            f"insn {pc} reads a u32 at struct bpf_map offset 32, the ops pointer on this kernel",
        )
    else:
        run.ok("bpf_map_layout", f"insn {pc} reads u32 struct bpf_map.excl at offset 32")


def _loader_run(run: _Run, bound: list[MapRef]) -> None:
    """docs/kernel.md §6.5, §13 rows 23/56: the 6.18 loader's own checks, when it runs."""
    rt = run.load.runtime
    assert rt is not None
    meta = run.load.array[0] if run.load.array else None
    if rt.exclusivity_check:
        if meta is None or meta.excl_prog_hash is None:
            run.v.at_run_time = True
            raise run.fail("loader_exclusive", "the loader map is not exclusive: map->excl == 0")
        run.ok("loader_exclusive", "map->excl == 1")
    if rt.hash_check:
        if not rt.hash_request:
            run.v.at_run_time = True
            raise run.fail("loader_hash", "map->sha was never computed (no hash request)")
        if rt.baked_hash != rt.data_hash:
            run.v.at_run_time = True
            raise run.fail(
                "loader_hash",
                f"SHA-256(data) {rt.data_hash.hex()} != the hash baked "
                f"into the loader {(rt.baked_hash or b'').hex()}",
            )
        run.ok("loader_hash", f"SHA-256(data) == baked hash {rt.data_hash.hex()[:16]}…")


# ------------------------------------------------------------------ hints


def hint(err: int, log: str, *, signature_size: int = 0) -> str:
    """The fix for a real kernel's PROG_LOAD refusal: the rule whose log line it printed.

    The attr is checked before the log: an empty-log EINVAL has several causes.
    """
    if err == _e.EINVAL and signature_size > MAX_SIGNATURE_SIZE:
        return f"the signature is {signature_size} bytes; " + RULES["signature_size"].hint
    for rule in RULES.values():
        if rule.log and _matches(rule.log, log):
            return _PKCS7_HINTS.get(err, rule.hint) if rule.id == "signature" else rule.hint
    if err == _e.EINVAL and not log:
        return RULES["keyring"].hint
    if err == _e.EOPNOTSUPP:
        return RULES["verification_support"].hint
    return _PKCS7_HINTS.get(err, "") if err != _e.EINVAL else ""


def _matches(template: str, log: str) -> bool:
    """Does ``log`` contain a line produced by ``template``?"""
    head, _, rest = template.partition("{")
    tail = rest.partition("}")[2] if rest else ""
    return any(line.strip().startswith(head) and line.rstrip().endswith(tail)
               for line in log.splitlines()) if head else False  # fmt: skip
