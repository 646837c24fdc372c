"""The admission policy, the status iterator and the decision stream on the real 7.3 kernel.

Every case runs the BPF-LSM policy bpfsign builds (docs/kernel.md §11) and checks
exact errnos; each kernel outcome is compared with the kernel model running
the same ``policy.decide``, and each recorded decision with ``decide`` on the
inputs the kernel recorded (the agreement table at the end of the run).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _vmcase import GuestKeys, model_backend, outcome

from bpfsign.errors import KernelError
from bpfsign.kernel import _sys as S
from bpfsign.kernel import btf as B
from bpfsign.kernel import enforce as E
from bpfsign.kernel import status as ST
from bpfsign.kernel.audit import Dropped, stream
from bpfsign.kernel.backend import LOADER_PROG_NAME, PrimitiveSteps
from bpfsign.kernel.policy import (
    Decision,
    Event,
    KeyringType,
    Layout,
    Policy,
    Reason,
    Verdict,
    decide,
)
from bpfsign.kernel.syscall import SyscallBackend

pytestmark = pytest.mark.vm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SOCKFILTER = FIXTURES / "skel" / "sockfilter.lskel.h"
RET0 = bytes.fromhex("b7000000000000009500000000000000")
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"
PIN = "/sys/fs/bpf/bpfsign-test"


def raw_load(
    name: str,
    prog_type: int = S.PROG_TYPE_SOCKET_FILTER,
    insns: bytes = RET0,
    fd_array: tuple[int, ...] = (),
) -> tuple[int, int]:
    """One BPF_PROG_LOAD (no log retry): (fd, 0) or (-1, errno)."""
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    fds = (ctypes.c_int32 * max(1, len(fd_array)))(*fd_array)
    attr = S.ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=S.addr(ibuf),
        license=S.addr(lic),
        prog_name=name.encode()[:15],
        log_level=1,
        log_size=4096,
        log_buf=S.addr(log),
    )
    if fd_array:
        attr.fd_array, attr.fd_array_cnt = S.addr(fds), len(fd_array)
    if prog_type == S.PROG_TYPE_SYSCALL:
        attr.prog_flags = S.BPF_F_SLEEPABLE
    fd, err = S.bpf_errno(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD)
    raw_load.last_log = log.value.decode()  # type: ignore[attr-defined]
    return fd, err


def events(inst: Any) -> list[Event | Dropped]:
    """Everything in the policy's ring buffer now (the stream stops when it is empty)."""
    return list(stream(inst.be, inst.events, inst.counters, stop=lambda: True))


def mine(evs: list[Event | Dropped], prefix: str) -> list[Event]:
    return [e for e in evs if isinstance(e, Event) and e.name.startswith(prefix)]


class HoldLoader(SyscallBackend):
    """Runs a skeleton's loader through the primitives and keeps the loader program open,
    so ``status`` can see it next to the programs it created."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[int] = []

    def loader_steps(self, request: Any) -> Any:
        return PrimitiveSteps(self, request)  # the loader's PROG_LOAD comes through prog_load

    def prog_load(self, *a: Any, **kw: Any) -> int:
        fd = super().prog_load(*a, **kw)
        if kw.get("name") == LOADER_PROG_NAME:
            self.held.append(fd)
        return fd

    def close(self, fd: int) -> None:
        if fd not in self.held:
            super().close(fd)

    def release(self) -> None:
        for fd in self.held:
            os.close(fd)
        self.held.clear()


def signed_sockfilter(gk: GuestKeys) -> Any:
    from bpfsign.skel import scheme, skeleton

    text, _ = scheme.sign_skeleton(
        skeleton.load(SOCKFILTER), gk.signers["fixture"], scheme="loadtime"
    )
    return skeleton.parse(text, path=str(SOCKFILTER))


def model_outcome(gk: GuestKeys, policy: Policy, signed: Any | None) -> int | None:
    """The kernel model with the same policy (pinned serials mapped to the model's keyrings).

    The guest's model is shared by the other guest tests: the policy is set for this
    one question and removed again.
    """
    from bpfsign.kernel import loader

    model = model_backend(gk)
    model.policy = Policy(
        policy.keyring_types, tuple(model.serials.get(s, s) for s in policy.serials), policy.audit
    )
    try:
        if signed is None:
            model.close(model.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, name="model"))
        else:
            model.loader_verdict(loader.Loader(signed, backend=model, keyring_id=-3).request)
    except KernelError as exc:
        return exc.errno
    finally:
        model.policy = None
    return None


def record(
    agreement: list[Any], case: str, kernel: int | None, model: int | None, evs: list[Event]
) -> None:
    recorded = all(
        decide(POLICIES[case.split(":")[0]], e.inputs).decision == e.decision for e in evs
    )
    agreement.append(
        (
            case,
            outcome(kernel),
            outcome(model),
            f"n/a (policy: decide() agrees on {len(evs)} recorded)"
            if recorded
            else "n/a (policy: decide() DISAGREES)",
        )
    )
    assert model == kernel, f"{case}: model {outcome(model)} != kernel {outcome(kernel)}"
    assert recorded, [(e, decide(POLICIES[case.split(":")[0]], e.inputs)) for e in evs]


POLICIES: dict[str, Policy] = {}


@pytest.fixture(scope="module", autouse=True)
def bpffs() -> None:
    """The guest boots without /sys/fs/bpf mounted: pins need it."""
    if E._mount_fstype("/sys/fs/bpf") != "bpf":
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)


@pytest.fixture
def clean_pins() -> Iterator[None]:
    yield
    for d in (PIN, PIN + "-2"):
        if os.path.isdir(d):
            E.remove(d)


# ----------------------------------------------------------------------- BTF


def test_guest_btf_has_the_verdict_layout() -> None:
    """docs/kernel.md §10/§11 (measured on 7.3.4): sig at +164 of bpf_prog_aux; type +8, aux +80."""
    btf = B.vmlinux()
    assert btf is not None
    lay = Layout.from_btf(btf)
    lay.check_enums()
    assert (lay.keyring_serial.offset, lay.keyring_type.offset, lay.verdict.offset) == (
        164,
        168,
        169,
    )
    assert (lay.prog_type[0].offset, lay.prog_aux[0].offset) == (8, 80)
    assert lay.hook_args == {"prog": 0, "attr": 1, "token": 2, "kernel": 3}
    assert btf.enum_values("bpf_sig_keyring") == {
        "BPF_SIG_KEYRING_NONE": 0,
        "BPF_SIG_KEYRING_BUILTIN": 1,
        "BPF_SIG_KEYRING_SECONDARY": 2,
        "BPF_SIG_KEYRING_PLATFORM": 3,
        "BPF_SIG_KEYRING_USER": 4,
    }
    # (the host's test_btf.py checks every member against bpftool's dump; in the guest
    # that dump alone takes a minute under TCG)


# -------------------------------------------------------------------- enforce


def test_unsigned_loads_are_eperm_and_removal_restores(
    guest_keys: GuestKeys, agreement: list[Any]
) -> None:
    policy = POLICIES["enforce"] = Policy.from_options([0])
    with E.install(policy) as inst:
        c0 = E.read_counters(inst.be, inst.counters)
        assert c0["total"] == 0  # the policy never judged its own load or attach
        fd, err = raw_load("enf_unsigned")
        assert (fd, err, raw_load.last_log) == (-1, errno.EPERM, "")  # type: ignore[attr-defined]
        fd, err2 = raw_load("enf_unsig_sys", S.PROG_TYPE_SYSCALL)
        assert (fd, err2) == (-1, errno.EPERM)
        evs = mine(events(inst), "enf_")
        assert [
            (e.name, e.decision, e.reason, e.verdict, e.keyring_type, e.kernel) for e in evs
        ] == [
            (
                "enf_unsigned",
                Decision.DENY,
                Reason.UNSIGNED,
                Verdict.UNSIGNED,
                KeyringType.NONE,
                False,
            ),
            (
                "enf_unsig_sys",
                Decision.DENY,
                Reason.UNSIGNED,
                Verdict.UNSIGNED,
                KeyringType.NONE,
                False,
            ),
        ]
        assert evs[0].pid == os.getpid() and evs[0].uid == 0 and evs[0].prog_type == 1
        assert evs[0].comm == Path("/proc/self/comm").read_text().strip()[:15]
        c = E.read_counters(inst.be, inst.counters)
        assert (c["denied"], c["total"], c["dropped"]) == (2, 2, 0)
        # status cannot load its own iterator under the policy, and says where to look
        for listing in (ST.list_programs, ST.json_listing):  # records and JSON iterators
            with pytest.raises(KernelError) as st:
                listing("/sys/fs/bpf/none")
            assert st.value.errno == errno.EPERM and st.value.command == "BPF_PROG_LOAD"
            assert st.value.hint == (
                "the status iterator's own (unsigned) load was refused: a BPF LSM policy is "
                "enforcing here; read the iterator that policy pinned, from its pin directory "
                "(no progs under /sys/fs/bpf/none)"
            )
        record(
            agreement,
            "enforce: unsigned socket filter",
            err,
            model_outcome(guest_keys, policy, None),
            evs[:1],
        )
    fd, err = raw_load("enf_after")
    assert err == 0 and fd > 0
    os.close(fd)


def test_caller_keyring_is_denied_unless_pinned(
    guest_keys: GuestKeys, agreement: list[Any], clean_pins: None
) -> None:
    """docs/kernel.md §11: VERIFIED against a caller-made keyring is USER; only a pinned serial passes."""
    from bpfsign.kernel import loader

    signed = signed_sockfilter(guest_keys)
    policy = POLICIES["enforce"] = Policy.from_options([0])
    with E.install(policy) as inst:
        with pytest.raises(KernelError) as e:
            loader.load(signed, keyring_id=-3)
        assert e.value.errno == errno.EPERM and e.value.command == "BPF_PROG_LOAD"
        evs = mine(events(inst), "__loader")
        assert evs and all(
            (ev.decision, ev.reason, ev.verdict, ev.keyring_type, ev.keyring_serial)
            == (
                Decision.DENY,
                Reason.UNTRUSTED_KEYRING,
                Verdict.VERIFIED,
                KeyringType.USER,
                guest_keys.session_serial,
            )
            for ev in evs
        )
        record(
            agreement,
            "enforce: signed, caller's keyring",
            e.value.errno,
            model_outcome(guest_keys, policy, signed),
            evs,
        )

    pinned = POLICIES["pinned"] = Policy.from_options([0], [guest_keys.session_serial])
    hold = HoldLoader()
    with E.install(pinned, PIN) as inst:
        try:
            loaded = loader.load(signed, keyring_id=-3, backend=hold)
            try:
                progs, maps = dict(loaded.progs), dict(loaded.maps)
                assert set(progs) == {p.name for p in signed.progs} and set(maps) == {
                    m.name for m in signed.maps
                }
                # the programs run: the sockfilter counts a UDP frame
                from test_vm_skeletons import UDP_FRAME

                assert hold.test_run_packet(progs["count_proto"], UDP_FRAME) == 0xFFFF
                rows = {r.id: r for r in ST.list_programs(PIN)}  # the pinned iterator
                ids = {name: hold.prog_info(fd).id for name, fd in progs.items()}
                loader_id = hold.prog_info(hold.held[0]).id
                ld = rows[loader_id]
                assert (ld.name, ld.verdict, ld.keyring_type, ld.keyring_serial) == (
                    "__loader.prog",
                    "VERIFIED",
                    "USER",
                    guest_keys.session_serial,
                )
                for name, pid in ids.items():
                    assert (rows[pid].verdict, rows[pid].keyring_type, rows[pid].name) == (
                        "UNSIGNED",
                        "NONE",
                        name[:15],
                    )
                # and it matches bpftool on every program's id, type and name
                tool = json.loads(
                    subprocess.run(
                        [BPFTOOL, "prog", "show", "--json"], capture_output=True, text=True
                    ).stdout
                )
                now = {r.id: r for r in ST.list_programs(PIN)}
                assert {p["id"]: (p["type"], p.get("name", "")) for p in tool} == {
                    i: (r.type_name, r.name) for i, r in now.items()
                }
            finally:
                loaded.close()
        finally:
            hold.release()
        evs = mine(events(inst), "")
        ours = [e for e in evs if e.pid == os.getpid()]
        loader_ev = [e for e in ours if e.name == "__loader.prog"]
        kids = [e for e in ours if e.kernel]
        assert [(e.decision, e.reason) for e in loader_ev] == [(Decision.ALLOW, Reason.SERIAL)]
        assert kids and all(
            (e.decision, e.reason, e.verdict) == (Decision.ALLOW, Reason.KERNEL, Verdict.UNSIGNED)
            for e in kids
        )
        record(
            agreement,
            "pinned: signed, pinned serial",
            None,
            model_outcome(guest_keys, pinned, signed),
            ours,
        )


def test_audit_mode_admits_and_records_would_deny(
    guest_keys: GuestKeys, agreement: list[Any]
) -> None:
    from bpfsign.kernel import loader

    signed = signed_sockfilter(guest_keys)
    policy = POLICIES["audit"] = Policy.from_options([0], audit=True)
    with E.install(policy) as inst:
        fd, err = raw_load("aud_unsigned")
        assert err == 0
        info = S.ProgInfo()
        S.bpf(
            S.OBJ_GET_INFO_BY_FD,
            S.InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=S.addr(info)),
            S.SIZE_INFO,
        )
        os.close(fd)
        loader.load(signed, keyring_id=-3).close()
        evs = [e for e in mine(events(inst), "") if e.pid == os.getpid()]
        by = {(e.name, e.decision, e.reason) for e in evs if not e.kernel}
        assert by == {
            ("aud_unsigned", Decision.WOULD_DENY, Reason.UNSIGNED),
            ("__loader.prog", Decision.WOULD_DENY, Reason.UNTRUSTED_KEYRING),
        }
        # the event's time is the load's own CLOCK_BOOTTIME stamp (bpf_prog_info.load_time)
        assert [e.time_ns for e in evs if e.name == "aud_unsigned"] == [info.load_time]
        c = E.read_counters(inst.be, inst.counters)
        assert (c["would_deny"], c["denied"]) == (2, 0)
        record(
            agreement,
            "audit: unsigned socket filter",
            None,
            model_outcome(guest_keys, policy, None),
            [e for e in evs if e.name == "aud_unsigned"],
        )
        record(
            agreement,
            "audit: signed, caller's keyring",
            None,
            model_outcome(guest_keys, policy, signed),
            evs,
        )


#: an exit with r0 never set: the verifier refuses it (EACCES, "R0 !read_ok")
EXIT_ONLY = bytes.fromhex("9500000000000000")
#: r1 = map by fd 999 (BPF_PSEUDO_MAP_FD; no such fd), r0 = 0, exit: refused while binding maps
BAD_MAP_FD = bytes.fromhex("1811000000e703000000000000000000") + RET0


def test_policy_judges_after_the_signature_and_before_the_verifier(
    guest_keys: GuestKeys, agreement: list[Any]
) -> None:
    """docs/kernel.md §11: the hook sees every load whose signature checks passed, before
    the verifier and the map references; what fails earlier keeps its own errno and
    never reaches the policy (no decision recorded). Kernel and model agree on each."""
    from bpfsign.kernel import loader

    policy = POLICIES["order"] = Policy.from_options([0])
    model = model_backend(guest_keys)

    def on_model(insns: bytes, fd_array: tuple[int, ...], enforcing: bool) -> int | None:
        model.policy = policy if enforcing else None
        try:
            model.close(
                model.prog_load(
                    S.PROG_TYPE_SOCKET_FILTER,
                    insns,
                    name="order",
                    fd_array=fd_array,
                    fd_array_cnt=len(fd_array),
                )
            )
        except KernelError as exc:
            return exc.errno
        finally:
            model.policy = None
        return None

    # name, insns, fd_array, errno without a policy, errno under the enforcing policy
    cases = [
        ("ord_verifier", EXIT_ONLY, (), errno.EACCES, errno.EPERM),
        ("ord_bad_map", BAD_MAP_FD, (), errno.EBADF, errno.EPERM),
        ("ord_fd_array", RET0, (999,), errno.EBADF, errno.EBADF),
    ]
    seen = []
    for name, insns, fd_array, bare, enforced in cases:
        fd, err = raw_load(name, insns=insns, fd_array=fd_array)
        assert (fd, err) == (-1, bare), name
        with E.install(policy) as inst:
            fd, err = raw_load(name, insns=insns, fd_array=fd_array)
            evs = mine(events(inst), name)
            total = E.read_counters(inst.be, inst.counters)["total"]
        seen.append((name, outcome(bare), outcome(err), len(evs)))
        assert (fd, err) == (-1, enforced), seen
        # the hook ran (one DENY recorded) exactly when the policy's EPERM came back
        assert total == len(evs) == (1 if enforced == errno.EPERM else 0), seen
        if evs:
            assert (evs[0].decision, evs[0].reason) == (Decision.DENY, Reason.UNSIGNED)
        if name != "ord_verifier":  # the model checks map references, not the verifier
            m_bare = on_model(insns, fd_array, False)
            assert m_bare == bare, (name, outcome(m_bare))
        m_enf = on_model(insns, fd_array, True)
        record(agreement, f"order: {name} ({outcome(bare)} unjudged)", err, m_enf, evs)
    print("policy order (case, no policy, enforcing, decisions):", seen)

    # a bad signature fails before the hook: its own errno, not EPERM, nothing recorded
    from bpfsign.skel import scheme, skeleton

    text, _ = scheme.sign_skeleton(
        skeleton.load(SOCKFILTER), guest_keys.signers["wrong"], scheme="loadtime"
    )
    wrong = skeleton.parse(text, path=str(SOCKFILTER))
    with E.install(policy) as inst:
        with pytest.raises(KernelError) as e:
            loader.load(wrong, keyring_id=-3)
        assert (e.value.errno, e.value.command) == (errno.ENOKEY, "BPF_PROG_LOAD")
        assert mine(events(inst), "__loader") == []
        assert E.read_counters(inst.be, inst.counters)["total"] == 0
        record(
            agreement,
            "order: signed by a key not in the keyring",
            e.value.errno,
            model_outcome(guest_keys, policy, wrong),
            [],
        )


def test_a_thousand_pinned_serials(guest_keys: GuestKeys, agreement: list[Any]) -> None:
    """Pinned serials are a hash map: the 1,024th is found like the first; 1,025 are refused."""
    from bpfsign.errors import InputError
    from bpfsign.kernel import loader

    signed = signed_sockfilter(guest_keys)
    others = [s for s in range(1_000_000, 1_001_100) if s != guest_keys.session_serial]
    for label, serials in (
        ("serials: ours is the 1,024th", [*others[:1023], guest_keys.session_serial]),
        ("serials: 1,024 others", others[:1024]),
    ):
        policy = POLICIES[label.split(":")[0]] = Policy.from_options([0], serials)
        with E.install(policy) as inst:
            assert E.read_policy(inst.be, inst.config) == policy
            try:
                loader.load(signed, keyring_id=-3).close()
                err = None
            except KernelError as exc:
                err = exc.errno
            evs = [e for e in mine(events(inst), "__loader") if e.pid == os.getpid()]
        want = None if guest_keys.session_serial in serials else errno.EPERM
        # a refused load is tried once more for the verifier log: two decisions
        assert err == want and len(evs) == (1 if want is None else 2), (label, err, evs)
        reason = Reason.SERIAL if want is None else Reason.UNTRUSTED_KEYRING
        assert {(e.reason, e.keyring_serial) for e in evs} == {(reason, guest_keys.session_serial)}
        record(agreement, label, err, model_outcome(guest_keys, policy, signed), evs)
    with pytest.raises(InputError) as too_many:
        Policy.from_options([0], others[:1025])
    assert str(too_many.value) == (
        "at most 1024 pinned keyring serials, got 1025: put the certificates in fewer keyrings"
    )


def test_thousand_loads_thousand_decisions() -> None:
    with E.install(Policy.from_options([0])) as inst:
        for _ in range(1000):
            _, err = raw_load("storm")
            assert err == errno.EPERM
        evs = events(inst)
        dropped = sum(d.count for d in evs if isinstance(d, Dropped))
        assert len(mine(evs, "storm")) + dropped == 1000 and dropped == 0
    # a ring too small for the burst: the loss is counted and reported, never silent
    with E.install(Policy.from_options([0]), ring_size=4096) as inst:
        for _ in range(200):
            raw_load("burst")
        evs = events(inst)
        drops = [d for d in evs if isinstance(d, Dropped)]
        got = len(mine(evs, "burst"))
        assert drops and got + drops[-1].total == 200 and got > 0


def test_pinned_policy_outlives_its_process_and_off_removes_it(clean_pins: None) -> None:
    code = (
        "from bpfsign.kernel import enforce as E, policy as P;"
        f"E.install(P.Policy.from_options([0]), {PIN!r}).close()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sorted(os.listdir(PIN)) == sorted(E.PINS)
    assert raw_load("pin_unsigned")[1] == errno.EPERM
    with E.open_pinned(PIN) as p:
        assert E.read_counters(p.be, p.counters)["denied"] >= 1
        assert E.read_policy(p.be, p.config) == Policy.from_options([0])
    # a second policy cannot load under the first (its own loads are unsigned): it fails
    # cleanly, leaving no pins and no fds behind
    with pytest.raises(KernelError) as e:
        E.install(Policy(), PIN + "-2")
    assert e.value.errno == errno.EPERM
    assert not os.path.exists(PIN + "-2")
    assert E.remove(PIN) == ["policy", "progs", "events", "counters", "config"]
    assert not os.path.exists(PIN)
    fd, err = raw_load("pin_after")
    assert err == 0
    os.close(fd)


class FailLastPin(SyscallBackend):
    """The real kernel, except that pinning the policy's link fails (as a full or
    read-only bpffs would): everything made until then must be undone."""

    def obj_pin(self, fd: int, path: str) -> None:
        if path.endswith("/" + E.PIN_LINK):
            raise KernelError(errno.ENOSPC, "BPF_OBJ_PIN", message="injected")
        super().obj_pin(fd, path)


def test_a_failure_after_attach_leaves_nothing(clean_pins: None) -> None:
    with pytest.raises(KernelError) as e:
        E.install(Policy.from_options([0]), PIN, be=FailLastPin())
    assert (e.value.errno, e.value.hint) == (errno.ENOSPC, "injected")
    assert not os.path.exists(PIN)  # the maps and the iterator were pinned, then removed
    fd, err = raw_load("rollback_after")  # and the attached link went with its fd
    assert err == 0
    os.close(fd)


def test_status_without_a_policy_matches_bpftool() -> None:
    fds = [raw_load(f"st_{i}")[0] for i in range(3)]
    try:
        rows = ST.list_programs()
        tool = json.loads(
            subprocess.run(
                [BPFTOOL, "prog", "show", "--json"], capture_output=True, text=True
            ).stdout
        )
        ours = {r.id: (r.type_name, r.name) for r in rows if r.name != ST.ITER_NAME}
        theirs = {
            p["id"]: (p["type"], p.get("name", ""))
            for p in tool
            if p.get("name") not in ("iter", ST.ITER_NAME)
        }  # bpftool's own pid iterator
        assert ours == theirs
        mine_ = [r for r in rows if r.name.startswith("st_")]
        assert len(mine_) == 3 and all(
            r.verdict == "UNSIGNED" and r.keyring_type == "NONE" for r in mine_
        )
    finally:
        for fd in fds:
            os.close(fd)


# ------------------------------------------------------------------------ CLI


def bpfsign(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bpfsign", *args], capture_output=True, text=True, timeout=300, **kw
    )


def test_cli_pinned_policy_status_audit_off(guest_keys: GuestKeys, clean_pins: None) -> None:
    run = bpfsign(
        "enforce", "--pin", PIN, "--allow-serial", str(guest_keys.session_serial), "--json"
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (
        doc["ok"]
        and doc["pin_dir"] == PIN
        and doc["policy"]
        == (f"enforce: keyring types builtin; pinned serials {guest_keys.session_serial}")
    )
    assert raw_load("cli_unsigned")[1] == errno.EPERM
    st = json.loads(bpfsign("enforce", "--status", PIN, "--json").stdout)
    assert st["counters"]["denied"] == 1 and st["serials"] == [guest_keys.session_serial]
    audit = bpfsign("audit", "--pin", PIN, "--json", "--count", "1")
    ev = json.loads(audit.stdout.splitlines()[0])
    assert (
        ev["decision"],
        ev["reason"],
        ev["prog_name"],
        ev["prog_type"],
        ev["verdict"],
        ev["keyring_type"],
        ev["pid"],
    ) == ("deny", "unsigned", "cli_unsigned", "socket_filter", "UNSIGNED", "NONE", os.getpid())
    rows = json.loads(bpfsign("status", "--pin", PIN, "--json").stdout)
    names = {r["name"]: r for r in rows}
    assert names["bpfsign_policy"]["type_name"] == "lsm"
    assert names["bpfsign_status"]["verdict"] == "UNSIGNED"
    table = bpfsign("status", "--pin", PIN).stdout.splitlines()
    assert (
        table[0].split() == ["ID", "TYPE", "NAME", "TAG", "LOADED", "VERDICT", "KEYRING", "SERIAL"]
        and len(table) == len(rows) + 1
    )
    off = bpfsign("enforce", "--off", PIN)
    assert (off.returncode, off.stdout) == (
        0,
        f"removed the policy pinned under {PIN} (policy, progs, events, counters, config)\n",
    )
    fd, err = raw_load("cli_after")
    assert err == 0
    os.close(fd)


def test_cli_foreground_policy_streams_and_ends_with_the_process() -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "bpfsign", "enforce", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        summary = json.loads(proc.stdout.readline())
        assert summary["ok"] and summary["pin_dir"] is None
        assert raw_load("fg_unsigned")[1] == errno.EPERM
        while True:
            ev = json.loads(proc.stdout.readline())
            if ev.get("prog_name") == "fg_unsigned":
                break
        assert ev["decision"] == "deny"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fd, err = raw_load("fg_after")
    assert err == 0
    os.close(fd)
