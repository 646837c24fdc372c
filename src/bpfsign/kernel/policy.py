"""The admission policy on ``security_bpf_prog_load``: the rule, its layout, its program.

The kernel records each load's signature verdict in ``prog->aux->sig``
(docs/kernel.md §10) and the BPF LSM sees it, final, at ``bpf_prog_load``
(docs/kernel.md §11). The rule that works there: admit ``kernel == 1`` (how a
verified loader's children arrive); for user-space loads require VERIFIED
*and* a trusted keyring, because VERIFIED alone is bypassable with a keyring
the caller made. :func:`decide` is that rule as a pure function: the model
and the tests evaluate it, and :func:`build_lsm_program` compiles the same
rule to BPF, reading every field through offsets from the running kernel's
BTF, the trusted keyring types from a frozen config map and the pinned
serials from a frozen hash map (docs/policy.md §1-§4).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError, UnsupportedFeature
from ..skel.builder import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, FieldAccess, ProgramBuilder
from .btf import KIND_FUNC, Btf

HOOK = "bpf_lsm_bpf_prog_load"  # the BPF-LSM attach point of security_bpf_prog_load
FEATURE = "reading the BPF signature verdict"
NO_VERDICT = (
    "this kernel records no verdict (its BTF has no bpf_prog_aux.sig); "
    "it needs a kernel with load-time BPF signature verification (Linux 7.x)"
)

EPERM = 1
#: The hook returns 0 or -EPERM.
DENY_RETURN = -EPERM


class Verdict(enum.IntEnum):
    """``enum bpf_sig_verdict`` (docs/kernel.md §10)."""

    UNSIGNED = 0
    VERIFIED = 1


class KeyringType(enum.IntEnum):
    """``enum bpf_sig_keyring`` (docs/kernel.md §10)."""

    NONE = 0
    BUILTIN = 1
    SECONDARY = 2
    PLATFORM = 3
    USER = 4


#: keyring_id 0/1/2 as a loader passes them -> the keyring type the kernel records.
KEYRING_ID_TYPES = {0: KeyringType.BUILTIN, 1: KeyringType.SECONDARY, 2: KeyringType.PLATFORM}
SYSTEM_KEYRINGS = frozenset(KEYRING_ID_TYPES.values())


class Decision(enum.IntEnum):
    ALLOW = 1
    DENY = 2
    WOULD_DENY = 3  # audit mode: admitted, recorded as a denial


class Reason(enum.IntEnum):
    KERNEL = 1  # loaded from inside the kernel (a verified loader's child)
    KEYRING = 2  # verified against an allowed system keyring
    SERIAL = 3  # verified against a pinned keyring serial
    UNSIGNED = 4
    UNTRUSTED_KEYRING = 5  # verified, but against a keyring the policy does not trust


REASON_TEXT = {
    Reason.KERNEL: "kernel-initiated load",
    Reason.KEYRING: "verified against a trusted system keyring",
    Reason.SERIAL: "verified against a pinned keyring",
    Reason.UNSIGNED: "not signed",
    Reason.UNTRUSTED_KEYRING: "verified against an untrusted keyring",
}

#: Pinned keyring serials live in a hash map the program looks up (one lookup,
#: whatever their number); the cap keeps the frozen config record (which lists
#: them for ``enforce --status``) at 4 KiB.
MAX_SERIALS = 1024

#: ``bpf_ringbuf_output``/``bpf_ringbuf_query`` flags (UAPI, stable)
RB_NO_WAKEUP, RB_FORCE_WAKEUP, RB_AVAIL_DATA = 1, 2, 0


@dataclass(frozen=True)
class Policy:
    """What to admit. ``keyring_types`` are system keyrings; ``serials`` pinned USER keyrings."""

    keyring_types: frozenset[KeyringType] = frozenset({KeyringType.BUILTIN})
    serials: tuple[int, ...] = ()
    audit: bool = False

    def __post_init__(self) -> None:
        bad = [t for t in self.keyring_types if t not in SYSTEM_KEYRINGS]
        if bad:
            raise InputError(
                f"keyring type {bad[0].name} cannot be trusted as a type: any caller can make a "
                "keyring of it; pin that keyring's serial instead"
            )
        if len(self.serials) > MAX_SERIALS:
            raise InputError(
                f"at most {MAX_SERIALS} pinned keyring serials, got {len(self.serials)}: "
                "put the certificates in fewer keyrings"
            )
        for s in self.serials:
            if not 0 < s < 1 << 31:
                raise InputError(f"keyring serial {s} is not a positive 32-bit serial")

    @classmethod
    def from_options(
        cls, keyring_ids: Iterable[int] | None, serials: Iterable[int] = (), *, audit: bool = False
    ) -> Policy:
        """From keyring ids as loaders pass them (0 builtin, 1 secondary, 2 platform)."""
        types = set()
        for kid in (0,) if keyring_ids is None else keyring_ids:
            if kid not in KEYRING_ID_TYPES:
                raise InputError(
                    f"keyring id {kid}: only 0 (builtin), 1 (secondary) and "
                    "2 (platform) are system keyrings; pin other keyrings by serial"
                )
            types.add(KEYRING_ID_TYPES[kid])
        return cls(frozenset(types), tuple(sorted(set(serials))), audit)

    # frozen config map value: flags, type mask, serial count, pad, serials[MAX_SERIALS];
    # the program reads flags and mask, and looks serials up in the frozen serials hash map
    CONFIG = struct.Struct(f"<IIII{MAX_SERIALS}i")
    #: the serials hash map: key the s32 serial, value one byte (present = pinned)
    SERIAL_KEY = struct.Struct("<i")
    FLAG_AUDIT = 1

    def pack(self) -> bytes:
        mask = sum(1 << t for t in self.keyring_types)
        serials = list(self.serials) + [0] * (MAX_SERIALS - len(self.serials))
        return self.CONFIG.pack(
            self.FLAG_AUDIT if self.audit else 0, mask, len(self.serials), 0, *serials
        )

    @classmethod
    def unpack(cls, raw: bytes) -> Policy:
        flags, mask, n, _pad, *serials = cls.CONFIG.unpack_from(raw)
        types = frozenset(t for t in KeyringType if mask >> t & 1)
        return cls(types, tuple(serials[: min(n, MAX_SERIALS)]), bool(flags & cls.FLAG_AUDIT))

    def describe(self) -> str:
        kinds = ", ".join(t.name.lower() for t in sorted(self.keyring_types)) or "none"
        pins = ", ".join(str(s) for s in self.serials[:8]) or "none"
        if len(self.serials) > 8:
            pins += f" and {len(self.serials) - 8} more"
        return (
            f"{'audit' if self.audit else 'enforce'}: keyring types {kinds}; pinned serials {pins}"
        )


@dataclass(frozen=True)
class Inputs:
    """What the hook reads: the ``kernel`` argument and ``prog->aux->sig``."""

    kernel: bool
    verdict: int
    keyring_type: int
    keyring_serial: int


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    reason: Reason

    @property
    def admitted(self) -> bool:
        return self.decision != Decision.DENY


def decide(policy: Policy, inp: Inputs) -> Outcome:
    """The rule (docs/kernel.md §11): the same function the model and the tests evaluate."""
    if inp.kernel:
        return Outcome(Decision.ALLOW, Reason.KERNEL)
    if inp.verdict == Verdict.VERIFIED:
        if inp.keyring_type in policy.keyring_types:
            return Outcome(Decision.ALLOW, Reason.KEYRING)
        if inp.keyring_type == KeyringType.USER and inp.keyring_serial in policy.serials:
            return Outcome(Decision.ALLOW, Reason.SERIAL)
        reason = Reason.UNTRUSTED_KEYRING
    else:
        reason = Reason.UNSIGNED
    return Outcome(Decision.WOULD_DENY if policy.audit else Decision.DENY, reason)


def inputs_for_load(
    keyring_id: int | None, keyring_serial: int = 0, *, kernel: bool = False
) -> Inputs:
    """What the kernel records for a successful load (docs/kernel.md §10's table).

    ``keyring_id`` None is an unsigned load; ``keyring_serial`` is the serial a
    user keyring id resolved to.
    """
    if keyring_id is None:
        return Inputs(kernel, Verdict.UNSIGNED, KeyringType.NONE, 0)
    ktype = KEYRING_ID_TYPES.get(keyring_id, KeyringType.USER)
    return Inputs(
        kernel, Verdict.VERIFIED, ktype, keyring_serial if ktype == KeyringType.USER else 0
    )


# ----------------------------------------------------------------- the events

#: One decision in the ring buffer (and the audit stream).
EVENT = struct.Struct("<QII16s16sIiBBBBBxxx")
EVENT_SIZE = EVENT.size  # 64
assert EVENT_SIZE == 64
# offsets inside EVENT, for the program
EV_TIME, EV_PID, EV_UID, EV_COMM, EV_NAME, EV_TYPE, EV_SERIAL = 0, 8, 12, 16, 32, 48, 52
EV_VERDICT, EV_KTYPE, EV_KERNEL, EV_DECISION, EV_REASON = 56, 57, 58, 59, 60

COUNTERS = ("total", "allowed", "denied", "would_deny", "kernel", "dropped")
COUNTER = {name: i for i, name in enumerate(COUNTERS)}
COUNTERS_SIZE = 8 * len(COUNTERS)


@dataclass(frozen=True)
class Layout:
    """Every offset the policy and status programs read, taken from the kernel's BTF."""

    hook_args: dict[str, int]  # hook parameter name -> ctx slot
    prog_type: list[FieldAccess]
    prog_aux: list[FieldAccess]
    aux_id: FieldAccess
    aux_name: FieldAccess
    aux_load_time: FieldAccess
    prog_tag: list[FieldAccess]
    verdict: FieldAccess
    keyring_type: FieldAccess
    keyring_serial: FieldAccess
    verdicts: dict[str, int]
    keyrings: dict[str, int]
    hook_btf_id: int
    iter_btf_id: int
    iter_meta_seq: list[FieldAccess]
    iter_prog: FieldAccess
    helpers: dict[str, int]

    @classmethod
    def from_btf(cls, btf: Btf) -> Layout:
        """Read the layout, or :class:`UnsupportedFeature` naming what this kernel lacks."""
        verdicts = btf.enum_values("bpf_sig_verdict")
        if verdicts is None:
            raise UnsupportedFeature(FEATURE, NO_VERDICT)
        keyrings = btf.enum_values("bpf_sig_keyring") or {}

        def path(p: str) -> list[FieldAccess]:
            return btf.access("bpf_prog", p, feature=FEATURE)

        sig = {f: path(f"aux->sig.{f}")[-1] for f in ("verdict", "keyring_type", "keyring_serial")}
        for f, acc in sig.items():
            if acc.bit_size:
                raise UnsupportedFeature(FEATURE, f"aux->sig.{f} is a bitfield in this kernel")
        params = [n for n, _ in btf.func_params(HOOK)]
        for need in ("prog", "kernel"):
            if need not in params:
                raise UnsupportedFeature(FEATURE, f"{HOOK} has no argument {need!r} in BTF")
        hook = btf.find(HOOK, KIND_FUNC)
        it = btf.find("bpf_iter_bpf_prog", KIND_FUNC)
        if hook is None or it is None:
            raise UnsupportedFeature(FEATURE, f"BTF lacks {HOOK} or bpf_iter_bpf_prog")
        helpers = {
            k.removeprefix("BPF_FUNC_"): v
            for k, v in (btf.enum_values("bpf_func_id") or {}).items()
        }
        return cls(
            hook_args={n: i for i, n in enumerate(params)},
            prog_type=path("type"),
            prog_aux=path("aux")[:1],
            aux_id=path("aux->id")[-1],
            aux_name=path("aux->name")[-1],
            aux_load_time=path("aux->load_time")[-1],
            prog_tag=path("tag"),
            verdict=sig["verdict"],
            keyring_type=sig["keyring_type"],
            keyring_serial=sig["keyring_serial"],
            verdicts=verdicts,
            keyrings=keyrings,
            hook_btf_id=hook,
            iter_btf_id=it,
            iter_meta_seq=btf.access("bpf_iter__bpf_prog", "meta->seq", feature=FEATURE),
            iter_prog=btf.access("bpf_iter__bpf_prog", "prog", feature=FEATURE)[0],
            helpers=helpers,
        )

    def check_enums(self) -> None:
        """The rule compares with the enum values this kernel's BTF declares."""
        want = {"BPF_SIG_UNSIGNED": Verdict.UNSIGNED, "BPF_SIG_VERIFIED": Verdict.VERIFIED}
        for name, value in want.items():
            if self.verdicts.get(name) != value:
                raise UnsupportedFeature(
                    FEATURE, f"{name} is {self.verdicts.get(name)} in BTF, expected {int(value)}"
                )
        for t in KeyringType:
            name = f"BPF_SIG_KEYRING_{t.name}"
            if self.keyrings and self.keyrings.get(name) != t:
                raise UnsupportedFeature(
                    FEATURE, f"{name} is {self.keyrings.get(name)} in BTF, expected {int(t)}"
                )


def _scalar(acc: FieldAccess) -> list[FieldAccess]:
    return [acc]


def build_lsm_program(
    layout: Layout,
    config_fd: int,
    counters_fd: int,
    events_fd: int,
    serials_fd: int,
    *,
    ring_size: int,
) -> ProgramBuilder:
    """The policy as BPF: read, decide (:func:`decide`), count, record, return 0 or -EPERM.

    It runs on every BPF_PROG_LOAD of the host, so it does only what the
    record needs (docs/policy.md §7 has the measurements):

    * the time is the load's own ``aux->load_time``, which ``bpf_prog_load``
      stamps with CLOCK_BOOTTIME just before it calls the hook (no clock read);
    * a pinned serial is one lookup in the frozen ``serials`` hash map;
    * the event is built on the stack and copied with ``bpf_ringbuf_output``
      without waking the reader (the audit stream polls), unless the ring is
      half full; a failed copy (ring full) counts as ``dropped``, so the
      stream can say how many it lost.
    """
    ev = -EVENT_SIZE  # event at fp-64
    b = ProgramBuilder(layout.helpers)
    b.comment("ctx: u64 args of " + HOOK).mov(R6, R1)
    # every field below is written; only the last word (verdict..reason and padding) and
    # the name (a shorter copy would leave bytes) need zeroing first
    b.st(8, R10, ev + EV_VERDICT, 0)
    if layout.aux_name.size < 16:
        b.st(8, R10, ev + EV_NAME, 0).st(8, R10, ev + EV_NAME + 8, 0)
    b.ldx(8, R8, R6, 8 * layout.hook_args["prog"], note="prog")
    b.ldx(8, R7, R6, 8 * layout.hook_args["kernel"], note="kernel (bool)")
    b.alu("&=", R7, 0xFF).stx(1, R10, ev + EV_KERNEL, R7)
    b.load_field(R1, R8, layout.prog_type).stx(4, R10, ev + EV_TYPE, R1)
    b.load_field(R9, R8, layout.prog_aux)
    b.load_field(R8, R9, _scalar(layout.verdict)).stx(1, R10, ev + EV_VERDICT, R8)
    b.load_field(R6, R9, _scalar(layout.keyring_type)).stx(1, R10, ev + EV_KTYPE, R6)
    b.load_field(R1, R9, _scalar(layout.keyring_serial)).stx(4, R10, ev + EV_SERIAL, R1)
    b.load_field(R1, R9, [layout.aux_load_time]).stx(8, R10, ev + EV_TIME, R1)
    b.copy_field(R10, ev + EV_NAME, R9, [layout.aux_name], R1, max_size=16)
    b.call("get_current_pid_tgid").alu(">>=", R0, 32).stx(4, R10, ev + EV_PID, R0)
    b.call("get_current_uid_gid").stx(4, R10, ev + EV_UID, R0)
    b.mov(R1, R10).alu("+=", R1, ev + EV_COMM).mov(R2, 16).call("get_current_comm")
    # -- decide: r7 kernel, r8 verdict, r6 keyring type
    b.jmp("!=", R7, 0, "allow_kernel")
    b.jmp("!=", R8, int(Verdict.VERIFIED), "deny_unsigned")
    b.ld_map_value(R7, config_fd, 0, "config")
    b.ldx(4, R2, R7, 4, note="config.keyring_type_mask")
    b.mov(R3, 1).alu("<<=", R3, R6).alu("&=", R3, R2).jmp("!=", R3, 0, "allow_keyring")
    b.jmp("!=", R6, int(KeyringType.USER), "deny_untrusted")
    b.ldx(4, R2, R7, 8, note="config.nserials").jmp("==", R2, 0, "deny_untrusted")
    b.ld_map_fd(R1, serials_fd, "serials").mov(R2, R10).alu("+=", R2, ev + EV_SERIAL)
    b.call("map_lookup_elem").jmp("!=", R0, 0, "allow_serial")
    b.ja("deny_untrusted")
    for label, reason, counter in (
        ("allow_kernel", Reason.KERNEL, "kernel"),
        ("allow_keyring", Reason.KEYRING, "allowed"),
        ("allow_serial", Reason.SERIAL, "allowed"),
    ):
        b.label(label).st(1, R10, ev + EV_REASON, int(reason))
        b.mov(R2, COUNTER[counter] * 8).ja("count_allow")
    b.label("count_allow").st(1, R10, ev + EV_DECISION, int(Decision.ALLOW)).mov(R9, 0)
    b.ja("count")
    b.label("deny_unsigned").st(1, R10, ev + EV_REASON, int(Reason.UNSIGNED)).ja("deny")
    b.label("deny_untrusted").st(1, R10, ev + EV_REASON, int(Reason.UNTRUSTED_KEYRING))
    b.label("deny").ld_map_value(R7, config_fd, 0, "config")
    b.ldx(4, R1, R7, 0, note="config.flags").alu("&=", R1, Policy.FLAG_AUDIT)
    b.jmp("!=", R1, 0, "would_deny")
    b.st(1, R10, ev + EV_DECISION, int(Decision.DENY)).mov(R9, DENY_RETURN)
    b.mov(R2, COUNTER["denied"] * 8).ja("count")
    b.label("would_deny").st(1, R10, ev + EV_DECISION, int(Decision.WOULD_DENY)).mov(R9, 0)
    b.mov(R2, COUNTER["would_deny"] * 8)
    # -- count (r2 = offset of this decision's counter), record, return r9
    b.label("count").ld_map_value(R8, counters_fd, 0, "counters")
    b.mov(R3, R8).alu("+=", R3, R2).mov(R1, 1).atomic_add(8, R3, 0, R1)
    b.atomic_add(8, R8, COUNTER["total"] * 8, R1)
    # wake the reader only when the ring is half full; it polls otherwise
    b.ld_map_fd(R1, events_fd, "events").mov(R2, RB_AVAIL_DATA).call("ringbuf_query")
    b.mov(R4, RB_NO_WAKEUP).jmp("<", R0, ring_size // 2, "output")
    b.mov(R4, RB_FORCE_WAKEUP)
    b.label("output").ld_map_fd(R1, events_fd, "events").mov(R2, R10).alu("+=", R2, ev)
    b.mov(R3, EVENT_SIZE).call("ringbuf_output")
    b.jmp("s>=", R0, 0, "out")
    b.mov(R1, 1).atomic_add(8, R8, COUNTER["dropped"] * 8, R1)
    b.label("out").mov(R0, R9).exit()
    return b


@dataclass(frozen=True)
class Event:
    """One decision from the ring buffer, decoded."""

    time_ns: int  # CLOCK_BOOTTIME, the load's aux->load_time
    pid: int
    uid: int
    comm: str
    name: str
    prog_type: int
    keyring_serial: int
    verdict: int
    keyring_type: int
    kernel: bool
    decision: Decision
    reason: Reason

    @classmethod
    def unpack(cls, raw: bytes) -> Event:
        if len(raw) < EVENT_SIZE:
            raise InputError(f"policy event is {len(raw)} bytes, expected {EVENT_SIZE}")
        (t, pid, uid, comm, name, ptype, serial, verdict, ktype, kernel, decision, reason) = (
            EVENT.unpack_from(raw)
        )
        try:
            dec, why = Decision(decision), Reason(reason)
        except ValueError:
            raise InputError(
                f"policy event with unknown decision {decision}/reason {reason}"
            ) from None
        return cls(
            t,
            pid,
            uid,
            _cstr(comm),
            _cstr(name),
            ptype,
            serial,
            verdict,
            ktype,
            bool(kernel),
            dec,
            why,
        )

    @property
    def inputs(self) -> Inputs:
        return Inputs(self.kernel, self.verdict, self.keyring_type, self.keyring_serial)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")
