"""The admission rule, its config and event formats, the ring-buffer reader, and the
refusals on a kernel that records no verdict (this 6.18 host).

The policy itself runs in the 7.3 guest: tests/vm/test_vm_enforce.py.
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
from collections.abc import Iterator

import pytest

from bpfsign.errors import InputError, UnsupportedFeature
from bpfsign.kernel import _sys as S
from bpfsign.kernel import btf as B
from bpfsign.kernel import enforce as E
from bpfsign.kernel import status as ST
from bpfsign.kernel.audit import RingBuffer
from bpfsign.kernel.policy import (
    EVENT,
    EVENT_SIZE,
    Decision,
    Event,
    Inputs,
    KeyringType,
    Layout,
    Policy,
    Reason,
    Verdict,
    decide,
    inputs_for_load,
)
from bpfsign.kernel.syscall import SyscallBackend
from bpfsign.skel.builder import R0, R1, R2, R3, R4, R6, R7, R10, ProgramBuilder

USER, BUILTIN = KeyringType.USER, KeyringType.BUILTIN


def test_rule_table() -> None:
    """docs/kernel.md §11: kernel loads pass; user-space loads need VERIFIED from a trusted keyring."""
    p = Policy.from_options([0, 1], [777])
    cases = [
        (Inputs(True, Verdict.UNSIGNED, KeyringType.NONE, 0), Decision.ALLOW, Reason.KERNEL),
        (Inputs(False, Verdict.UNSIGNED, KeyringType.NONE, 0), Decision.DENY, Reason.UNSIGNED),
        (Inputs(False, Verdict.VERIFIED, BUILTIN, 0), Decision.ALLOW, Reason.KEYRING),
        (Inputs(False, Verdict.VERIFIED, KeyringType.SECONDARY, 0), Decision.ALLOW, Reason.KEYRING),
        (
            Inputs(False, Verdict.VERIFIED, KeyringType.PLATFORM, 0),
            Decision.DENY,
            Reason.UNTRUSTED_KEYRING,
        ),
        (Inputs(False, Verdict.VERIFIED, USER, 777), Decision.ALLOW, Reason.SERIAL),
        (Inputs(False, Verdict.VERIFIED, USER, 778), Decision.DENY, Reason.UNTRUSTED_KEYRING),
        # a serial only counts for a USER keyring, and never without VERIFIED
        (Inputs(False, Verdict.UNSIGNED, USER, 777), Decision.DENY, Reason.UNSIGNED),
    ]
    for inp, decision, reason in cases:
        out = decide(p, inp)
        assert (out.decision, out.reason) == (decision, reason), inp
    audit = Policy.from_options([0], audit=True)
    out = decide(audit, Inputs(False, Verdict.UNSIGNED, KeyringType.NONE, 0))
    assert (out.decision, out.admitted) == (Decision.WOULD_DENY, True)


def test_status_names_are_the_policy_enums() -> None:
    assert tuple(v.name for v in Verdict) == ST.VERDICT_NAMES
    assert tuple(k.name for k in KeyringType) == ST.KEYRING_NAMES


def test_inputs_for_load_follow_the_keyring_id_table() -> None:
    """docs/kernel.md §10: 0/1/2 are system keyring types (serial 0); others USER with the serial."""
    assert inputs_for_load(None) == Inputs(False, Verdict.UNSIGNED, KeyringType.NONE, 0)
    assert inputs_for_load(1, 55) == Inputs(False, Verdict.VERIFIED, KeyringType.SECONDARY, 0)
    assert inputs_for_load(-3, 55) == Inputs(False, Verdict.VERIFIED, USER, 55)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: Policy.from_options([4]),
            "keyring id 4: only 0 (builtin), 1 (secondary) and 2 "
            "(platform) are system keyrings; pin other keyrings by serial",
        ),
        (
            lambda: Policy(frozenset({USER})),
            "keyring type USER cannot be trusted as a type: any "
            "caller can make a keyring of it; pin that keyring's serial instead",
        ),
        (lambda: Policy.from_options([0], [0]), "keyring serial 0 is not a positive 32-bit serial"),
        (
            lambda: Policy.from_options([0], range(1, 1026)),
            "at most 1024 pinned keyring serials, got 1025: put the certificates in fewer keyrings",
        ),
    ],
)
def test_bad_policies_are_input_errors(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as e:
        build()
    assert str(e.value) == message


def test_config_round_trips() -> None:
    for types, serials, audit in itertools.product(
        ([0], [0, 1, 2], []), ((), (5,), tuple(range(100, 1124))), (False, True)
    ):
        p = Policy.from_options(types, serials, audit=audit)
        assert Policy.unpack(p.pack()) == p
        assert len(p.pack()) == Policy.CONFIG.size == 16 + 4 * 1024


def test_event_decodes() -> None:
    raw = EVENT.pack(123, 45, 1000, b"loader\0", b"prog\0", 31, 9, 1, 4, 0, 2, 5)
    ev = Event.unpack(raw)
    assert (ev.comm, ev.name, ev.decision, ev.reason, ev.inputs) == (
        "loader",
        "prog",
        Decision.DENY,
        Reason.UNTRUSTED_KEYRING,
        Inputs(False, 1, USER, 9),
    )
    with pytest.raises(InputError, match="policy event is 10 bytes, expected 64"):
        Event.unpack(raw[:10])
    with pytest.raises(InputError, match="unknown decision 9/reason 5"):
        Event.unpack(raw[:59] + b"\x09" + raw[60:])


# ------------------------------------------------------------- this host's kernel


@pytest.fixture
def be() -> SyscallBackend:
    return SyscallBackend()


@pytest.fixture
def fds(be: SyscallBackend) -> Iterator[list[int]]:
    opened: list[int] = []
    yield opened
    for fd in opened:
        be.close(fd)


def _writer(be: SyscallBackend, ring: int, counter: int) -> int:
    """A socket filter that writes one 64-byte record (a running number) or counts a drop."""
    b = ProgramBuilder()
    b.ld_map_value(R6, counter, 0, "n").mov(R1, 1).atomic_add(8, R6, 0, R1)
    b.ldx(8, R7, R6, 0)
    for off in range(0, EVENT_SIZE, 8):
        b.stx(8, R10, -EVENT_SIZE + off, R7)
    b.ld_map_fd(R1, ring, "ring").mov(R2, R10).alu("+=", R2, -EVENT_SIZE)
    b.mov(R3, EVENT_SIZE).mov(R4, 0).call("ringbuf_output")
    b.jmp("s>=", R0, 0, "out").mov(R1, 1).atomic_add(8, R6, 8, R1)
    b.label("out").ret(0)
    return be.prog_load(S.PROG_TYPE_SOCKET_FILTER, b.assemble(), name="ring_writer")


@pytest.mark.kernel
def test_ring_buffer_reader_sees_every_record_in_order(be: SyscallBackend, fds: list[int]) -> None:
    ring = be.map_create(S.MAP_TYPE_RINGBUF, 0, 0, 1 << 16, "test_ring")
    fds.append(ring)
    counter = be.map_create(S.MAP_TYPE_ARRAY, 4, 16, 1, "test_n")
    fds.append(counter)
    prog = _writer(be, ring, counter)
    fds.append(prog)
    got: list[int] = []
    with RingBuffer(be, ring) as rb:
        for _ in range(3):  # the consumer position carries over between drains (and wraps)
            for _ in range(700):
                be.test_run_packet(prog, bytes(64))
            got += [struct.unpack_from("<Q", r)[0] for r in rb.drain()]
        assert rb.pending() == 0
    assert got == list(range(1, 2101))
    assert struct.unpack("<QQ", be.map_lookup(counter, bytes(4), 16)) == (2100, 0)


@pytest.mark.kernel
def test_a_full_ring_counts_drops_and_nothing_is_lost_silently(
    be: SyscallBackend, fds: list[int]
) -> None:
    ring = be.map_create(S.MAP_TYPE_RINGBUF, 0, 0, 4096, "test_ring")
    fds.append(ring)
    counter = be.map_create(S.MAP_TYPE_ARRAY, 4, 16, 1, "test_n")
    fds.append(counter)
    prog = _writer(be, ring, counter)
    fds.append(prog)
    for _ in range(100):
        be.test_run_packet(prog, bytes(64))
    with RingBuffer(be, ring) as rb:
        got = [struct.unpack_from("<Q", r)[0] for r in rb.drain()]
    written, dropped = struct.unpack("<QQ", be.map_lookup(counter, bytes(4), 16))
    assert written == 100 and dropped > 0
    assert len(got) + dropped == 100 and got == list(range(1, len(got) + 1))


def test_ring_buffer_refuses_a_non_ring_map() -> None:
    class FakeInfo:
        max_entries, name, type = 3, "arr", 2

    class Be:
        def map_info(self, fd: int) -> FakeInfo:
            return FakeInfo()

    with pytest.raises(InputError, match="map 'arr' \\(type 2\\) is not a ring buffer"):
        RingBuffer(Be(), 0)  # type: ignore[arg-type]


no_verdict = pytest.mark.skipif(
    B.vmlinux() is None or B.vmlinux().enum_values("bpf_sig_verdict") is not None,  # type: ignore[union-attr]
    reason="this kernel records the verdict (the refusal is for kernels that do not)",
)


@no_verdict
def test_layout_refuses_a_kernel_without_the_verdict() -> None:
    btf = B.vmlinux()
    assert btf is not None
    with pytest.raises(UnsupportedFeature) as e:
        Layout.from_btf(btf)
    assert str(e.value) == (
        "reading the BPF signature verdict is not supported here: this kernel records no "
        "verdict (its BTF has no bpf_prog_aux.sig); it needs a kernel with load-time BPF "
        "signature verification (Linux 7.x)"
    )


@no_verdict
@pytest.mark.kernel
def test_install_and_status_refuse_here_and_leave_nothing(tmp_path: os.PathLike[str]) -> None:
    pin = "/sys/fs/bpf/bpfsign-test-refuse"
    before = set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()
    with pytest.raises(UnsupportedFeature, match="this kernel records no verdict"):
        E.install(Policy(), pin)
    with pytest.raises(UnsupportedFeature, match="this kernel records no verdict"):
        ST.list_programs(pin)
    assert not os.path.exists(pin)
    after = set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()
    assert after == before


def test_pin_dir_must_be_on_bpffs(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(InputError) as e:
        E.check_pin_dir(os.path.join(tmp_path, "pol"))
    assert "not on a bpf filesystem" in str(e.value) and str(e.value).startswith(
        os.path.join(tmp_path, "pol")
    )


def test_remove_without_a_policy_is_an_input_error(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(InputError) as e:
        E.remove(str(tmp_path))
    assert str(e.value) == f"{tmp_path}: no bpfsign policy is pinned here"


# ------------------------------------------------------------ the kernel model


def test_kernel_model_applies_the_same_rule() -> None:
    """KernelModel.policy runs ``decide`` where the LSM hook runs: after the signature."""
    import hashlib

    from bpfsign.crypto import cms, keys, trust
    from bpfsign.errors import KernelError
    from bpfsign.kernel.model import KernelModel

    pair = keys.generate("ec", curve="P-256", subject="bpfsign policy model")
    signer = keys.FileSigner(pair.key, pair.cert_der)
    store = trust.TrustStore()
    store.add(signer.certificate, "session")
    session = store.session.serial
    ret0 = bytes.fromhex("b7000000000000009500000000000000")
    value = bytes(16)

    def load(model: KernelModel, signed: bool) -> int | None:
        m = model.map_create(
            2, 4, 16, 1, "__loader.map", excl_prog_hash=hashlib.sha256(ret0).digest()
        )
        model.map_update(m, bytes(4), value)
        model.map_freeze(m)
        try:
            fd = model.prog_load(
                31,
                ret0,
                flags=0x10,
                fd_array=(m,),
                fd_array_cnt=1 if signed else 0,
                signature=cms.sign(ret0 + value, signer) if signed else None,
                keyring_id=-3,
            )
        except KernelError as exc:
            assert exc.log == ""  # the hook refuses with an empty verifier log
            return exc.errno
        finally:
            model.close(m)
        model.close(fd)
        return None

    cases = {
        (Policy.from_options([0]), False): 1,  # EPERM: unsigned
        (Policy.from_options([0]), True): 1,  # EPERM: VERIFIED, but the caller's keyring
        (Policy.from_options([0], [session]), True): None,  # that keyring's serial pinned
        (Policy.from_options([0], audit=True), False): None,  # audit admits
        (None, False): None,  # no policy
    }
    for (policy, signed), want in cases.items():
        model = KernelModel("7.3", store)
        model.policy = policy
        assert load(model, signed) == want, (policy, signed)
        inputs = inputs_for_load(-3 if signed else None, session)
        if policy is not None:
            assert decide(policy, inputs).admitted == (want is None)


def test_kernel_model_judges_between_the_signature_and_the_verifier() -> None:
    """docs/kernel.md §11: a check after the hook (map references) loses to the policy's
    EPERM; one before it (fd_array, the signature) keeps its errno. The guest measures the
    same cases (tests/vm/test_vm_enforce.py)."""
    from bpfsign.crypto import cms, keys, trust
    from bpfsign.errors import KernelError
    from bpfsign.kernel.model import KernelModel

    ret0 = bytes.fromhex("b7000000000000009500000000000000")
    bad_map_fd = bytes.fromhex("1811000000e703000000000000000000") + ret0
    store = trust.TrustStore()
    pair = keys.generate("ec", curve="P-256", subject="bpfsign policy order")
    signer = keys.FileSigner(pair.key, pair.cert_der)  # never added: ENOKEY

    def load(policy: Policy | None, insns: bytes, fd_array: tuple[int, ...] = (), *,
             signed: bool = False) -> tuple[int | None, str]:  # fmt: skip
        model = KernelModel("7.3", store)
        model.policy = policy
        try:
            model.close(
                model.prog_load(
                    1,
                    insns,
                    fd_array=fd_array,
                    fd_array_cnt=len(fd_array),
                    signature=cms.sign(insns, signer) if signed else None,
                    keyring_id=-3,
                )
            )
        except KernelError as exc:
            return exc.errno, exc.log
        return None, ""

    enforce, audit = Policy.from_options([0]), Policy.from_options([0], audit=True)
    assert load(None, bad_map_fd)[0] == errno.EBADF
    assert load(audit, bad_map_fd)[0] == errno.EBADF  # admitted, then the binding fails
    assert load(enforce, bad_map_fd) == (errno.EPERM, "")  # the hook comes first
    assert load(enforce, ret0, (999,))[0] == errno.EBADF  # fd_array is read before it
    assert load(enforce, ret0, signed=True)[0] == errno.ENOKEY  # so is the signature


def test_the_hook_place_names_real_rules() -> None:
    """The model's split of the rules around the hook names rules the engine has."""
    from bpfsign.kernel import rules
    from bpfsign.kernel.model import AFTER_HOOK, BEFORE_HOOK_INLOADER

    known = set(rules.RULES)
    assert AFTER_HOOK.issubset(known) and BEFORE_HOOK_INLOADER.issubset(known)
    assert "signature" not in AFTER_HOOK and "bind" in AFTER_HOOK
