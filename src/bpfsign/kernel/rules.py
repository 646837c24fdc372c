"""The kernel's rules for BPF_PROG_LOAD's signature path, in one ordered list.

Every check a kernel makes on a (signed) program load, from the signature
size to the last map the verifier binds, is written once: as data in
kernel/rulebook.py (:data:`RULES`: what is checked, the errno, the
verifier-log line, the fix) and here as small functions that run them in the
kernel's order for a :class:`~.profiles.Profile` on a :class:`~.sigload.Load`.
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

from ..errors import VerificationError, errno_name
from .profiles import KEY_SPEC_BPF_KEYRING, Profile
from .progscan import (
    PSEUDO_MAP_IDX,
    PSEUDO_MAP_IDX_VALUE,
    map_loads,
    program_digest,
    reads_map_offset_32,
)
from .rulebook import (
    LOADER_FAILED,
    LOG_SIG_FAILED,
    MAX_INSNS,
    MAX_SIGNATURE_SIZE,
    MAX_SIGNED_PAYLOAD,
    MAX_USED_MAPS,
    PKCS7_HINTS,
    RULES,
    Rule,
    hint,
)  # fmt: skip
from .sigload import MAP_TYPE_ARRAY, Load, MapRef, Runtime, skeleton_load

TYPE_CHECKING = False
if TYPE_CHECKING:
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
            hint=PKCS7_HINTS.get(exc.errno, ""),
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
