"""Raw signed-load cases on the 7.x guest, with the 2-insn SYSCALL program.

Each case asserts the exact errno and verifier-log line of docs/kernel.md §6.3,
§6.4, §12.8 and §13; runs the same calls against bpfsign's KernelModel("7.3")
and asserts it gives the same errno and log line; and, for every case about the
signature, that bpfsign's offline verifier gives the same verdict (it sees
bytes, not maps: n/a for the map-state and fd_array cases).
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from _vmcase import INSNS_RET0 as INSNS
from _vmcase import (
    INSNS_USES_MAP0,
    CaseKmsg,
    GuestKeys,
    attempt,
    both,
    check,
    load,
    metadata_map,
    model_backend,
    offline_errno,
    opened,
    outcome,
)
from _vmsign import bpfsign_sign, openssl_sign

from bpfsign.kernel import _sys as S
from bpfsign.kernel.backend import default_backend

pytestmark = pytest.mark.vm

VALUE = bytes(range(64))
#: r1 = fd_array[0]; r2 = *(u32 *)(r1 + 32); r0 = 0; exit -- the bpftool <= 7.8 -S exclusivity read
INSNS_READS_OFF32 = INSNS_USES_MAP0[:16] + bytes.fromhex("6112200000000000") + INSNS
VALUE1 = bytes(range(100, 200))  # the second metadata map (100 bytes)
SIG_FAILED = "signature verification failed: {}"


def signed(payload: bytes, gk: GuestKeys, who: str = "rsa", **kw: str) -> bytes:
    return bpfsign_sign(payload, gk.signers[who], **kw)


def _one_map(be: Any, sig: bytes | None, *, value: bytes = VALUE, excl_for: bytes | None = INSNS,
             insns: bytes = INSNS, cnt: int = 1, keyring_id: int = -3, **map_kw: Any) -> tuple[int | None, str]:  # fmt: skip
    """The usual case on ``be``: one metadata map in fd_array[0], the 2-insn program."""
    with opened(metadata_map(value, excl_for, be=be, **map_kw), be=be) as (m,):
        return attempt(
            insns, be=be, fd_array=[m], fd_array_cnt=cnt, signature=sig, keyring_id=keyring_id
        )


# --- baseline ------------------------------------------------------------------


def test_feature_probes_load_time_kernel(guest_keys: GuestKeys) -> None:
    """docs/vm.md §7, run first: this guest verifies signatures under the load-time scheme."""
    from bpfsign.kernel import btf

    err, _ = attempt(INSNS, signature=bytes(16))  # garbage, keyring -3
    assert err == errno.EBADMSG, (
        f"{outcome(err)}: EOPNOTSUPP would mean no CONFIG_SYSTEM_DATA_VERIFICATION"
    )
    vmlinux = btf.vmlinux()
    assert vmlinux is not None
    assert vmlinux.enum_values("bpf_sig_verdict") is not None  # the verdict / load-time work
    bpf_map = vmlinux.struct_members("bpf_map")
    assert bpf_map is not None
    # 7.3.4 layout (docs/kernel.md §8.1): no u32 excl at 32, so bpftool -S loaders must be converted
    assert "excl" not in bpf_map and bpf_map["ops"].offset == 32 and bpf_map["sha"].offset == 0
    sig = signed(INSNS, guest_keys)  # insns only with fd_array_cnt 1: EKEYREJECTED here
    with opened(metadata_map(VALUE, INSNS)) as (m,):
        err, _ = attempt(INSNS, fd_array=[m], fd_array_cnt=1, signature=sig)
    assert err == errno.EKEYREJECTED


def test_signed_over_insns_and_map_loads(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]], kmsg: CaseKmsg
) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    with opened(metadata_map(VALUE, INSNS)) as (m,):
        fd = load(INSNS, fd_array=[m], fd_array_cnt=1, signature=sig)
        be = default_backend()
        try:
            info = be.prog_info(fd)
            assert (info.type, info.name, info.nr_map_ids) == (
                S.PROG_TYPE_SYSCALL,
                "__loader.prog",
                1,
            )
            assert be.test_run(fd, bytearray(8)) == 0  # the model does not run programs
        finally:
            be.close(fd)
    model = _one_map(model_backend(guest_keys), sig)
    check(agreement, "rsa, insns||map, cnt 1, keyring -3", (None, ""), None, None, model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


def test_session_keyring_serial_loads(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    kid = guest_keys.session_serial
    got, model = both(guest_keys, lambda be: _one_map(be, sig, keyring_id=kid))
    check(agreement, "keyring_id = session keyring serial", got, None, None, model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, kid))  # fmt: skip


# --- the signed bytes ------------------------------------------------------------


def test_tampered_insns(guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    evil = bytes.fromhex("b700000001000000") + INSNS[8:]  # r0 = 1; exit
    # the attacker binds the map to his insns
    got, model = both(guest_keys, lambda be: _one_map(be, sig, insns=evil, excl_for=evil))
    check(agreement, "tampered insns", got, errno.EKEYREJECTED, SIG_FAILED.format(-129), model=model,
          offline=offline_errno(evil + VALUE, sig, guest_keys, -3))  # fmt: skip


def test_tampered_data(guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    evil = bytearray(VALUE)
    evil[17] ^= 0x01
    got, model = both(guest_keys, lambda be: _one_map(be, sig, value=bytes(evil)))
    check(agreement, "tampered data (1 bit)", got, errno.EKEYREJECTED, SIG_FAILED.format(-129), model=model,
          offline=offline_errno(INSNS + bytes(evil), sig, guest_keys, -3))  # fmt: skip


def test_signature_over_insns_only_with_cnt1(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS, guest_keys)
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, "signature over insns only, cnt 1", got, errno.EKEYREJECTED, SIG_FAILED.format(-129),
          model=model, offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


# --- what a metadata map must be (the offline verifier sees bytes, not maps) -------------

MAP_CASES: dict[str, tuple[dict[str, Any], bytes | None, int, str]] = {
    # name: (metadata_map kwargs, excl_for, errno, log)
    "unfrozen map": (dict(frozen=False), INSNS, errno.EPERM,
                     "signed program metadata map '__loader.map' must be frozen"),
    "non-exclusive map": ({}, None, errno.EPERM,
                          "signed program metadata map '__loader.map' must be exclusive"),
    "map bound to another program's hash": ({}, INSNS + INSNS, errno.EACCES,
                                            "program's hash doesn't match map's excl_prog_hash"),
    "metadata map is a HASH": (dict(map_type=S.MAP_TYPE_HASH, name="meta"), INSNS, errno.EINVAL,
                               "signed program metadata map 'meta' must be an array"),
    "metadata ARRAY with max_entries 2": (dict(max_entries=2, name="meta"), INSNS, 524,
                                          "failed to read signed metadata map 'meta': -524"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MAP_CASES))
def test_metadata_map_state(
    case: str, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    kwargs, excl_for, want, log = MAP_CASES[case]
    sig = signed(INSNS + VALUE, guest_keys)
    got, model = both(guest_keys, lambda be: _one_map(be, sig, excl_for=excl_for, **kwargs))
    check(agreement, case, got, want, log, model=model, offline="n/a (map state)")


def _two_maps(be: Any, sig: bytes, order: str) -> tuple[int | None, str]:
    m0 = metadata_map(VALUE, INSNS, name="meta0", be=be)
    m1 = metadata_map(VALUE1, INSNS, name="meta1", be=be)
    with opened(m0, m1, be=be):
        fds = {"0": m0, "1": m1}
        return attempt(
            INSNS, be=be, fd_array=[fds[c] for c in order], fd_array_cnt=len(order), signature=sig
        )


def test_two_maps_fold_in_fd_array_order(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    good = signed(INSNS + VALUE + VALUE1, guest_keys)
    swapped = signed(INSNS + VALUE1 + VALUE, guest_keys)
    ok, ok_model = both(guest_keys, lambda be: _two_maps(be, good, "01"))
    bad, bad_model = both(guest_keys, lambda be: _two_maps(be, swapped, "01"))
    payload = INSNS + VALUE + VALUE1
    check(agreement, "two maps, signed in fd_array order", ok, None, None, model=ok_model,
          offline=offline_errno(payload, good, guest_keys, -3))  # fmt: skip
    check(agreement, "two maps, signed in the wrong order", bad, errno.EKEYREJECTED,
          SIG_FAILED.format(-129), model=bad_model,
          offline=offline_errno(payload, swapped, guest_keys, -3))  # fmt: skip


#: docs/kernel.md §6.4 rows: (m0 kwargs, m1 kwargs, m1 excl_for, fd_array order, cnt, signed over, errno, log)
TWO_MAP_CASES = {
    "two maps, cnt 1 folds only fd_array[0]": ({}, {}, INSNS, "01", 1, "0", None, None),
    "two maps, second not exclusive": ({}, {}, None, "01", 2, "01", errno.EPERM,
                                       "signed program metadata map 'meta1' must be exclusive"),
    "two maps, second not frozen": ({}, dict(frozen=False), INSNS, "01", 2, "01", errno.EPERM,
                                    "signed program metadata map 'meta1' must be frozen"),
    "two maps, first unfrozen, second not exclusive": (dict(frozen=False), {}, None, "01", 2, "01", errno.EPERM,
                                                       "signed program metadata map 'meta0' must be frozen"),
    "two maps, second exclusive to another hash": ({}, {}, INSNS + INSNS, "01", 2, "01", errno.EACCES,
                                                   "program's hash doesn't match map's excl_prog_hash"),
    "two maps, swapped fd_array, signed to match": ({}, {}, INSNS, "10", 2, "10", None, None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TWO_MAP_CASES))
def test_two_map_states(
    case: str, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    kw0, kw1, excl1, order, cnt, over, want, log = TWO_MAP_CASES[case]
    values = {"0": VALUE, "1": VALUE1}
    sig = signed(INSNS + b"".join(values[c] for c in over), guest_keys)

    def run(be: Any) -> tuple[int | None, str]:
        fds = {"0": metadata_map(VALUE, INSNS, name="meta0", be=be, **kw0),
               "1": metadata_map(VALUE1, excl1, name="meta1", be=be, **kw1)}  # fmt: skip
        with opened(*fds.values(), be=be):
            return attempt(
                INSNS, be=be, fd_array=[fds[c] for c in order], fd_array_cnt=cnt, signature=sig
            )

    got, model = both(guest_keys, run)
    check(agreement, case, got, want, log, model=model, offline="n/a (map state)")


@pytest.mark.parametrize(("case", "kw", "want", "log"), [
    ("unsigned, cnt 1, non-exclusive map", dict(excl_for=None), None, None),
    ("unsigned, cnt 0, exclusive map used by the insns", dict(insns=INSNS_USES_MAP0, excl_for=INSNS_USES_MAP0, cnt=0),
     None, None),
    ("unsigned, cnt 0, map exclusive to another program", dict(insns=INSNS_USES_MAP0, cnt=0), errno.EACCES,
     "program's hash doesn't match map's excl_prog_hash"),
    ("unsigned, reads struct bpf_map at offset 32", dict(insns=INSNS_READS_OFF32, excl_for=INSNS_READS_OFF32, cnt=0),
     errno.EACCES, "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"),
])  # fmt: skip
def test_unsigned_map_rules(case: str, kw: dict[str, Any], want: int | None, log: str | None,
                            guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]) -> None:  # fmt: skip
    got, model = both(guest_keys, lambda be: _one_map(be, None, **kw))
    check(agreement, case, got, want, log, model=model, offline="n/a (unsigned)")


def test_metadata_map_percpu_array(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    got, model = both(
        guest_keys, lambda be: _one_map(be, sig, map_type=6, name="meta")
    )  # PERCPU_ARRAY
    check(agreement, "metadata map is a PERCPU_ARRAY", got, errno.EINVAL,
          "signed program metadata map 'meta' must be an array", model=model, offline="n/a (map state)")  # fmt: skip


def test_empty_signature(guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]) -> None:
    """A non-NULL signature pointer with signature_size 0 (docs/kernel.md §13 row 53)."""
    got, model = both(guest_keys, lambda be: _one_map(be, b""))
    check(agreement, "signature_size 0 (non-NULL pointer)", got, errno.EINVAL, None, model=model,
          offline=offline_errno(INSNS + VALUE, b"", guest_keys, -3))  # fmt: skip


def test_same_map_twice_is_folded_once(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    once = signed(INSNS + VALUE, guest_keys)
    twice = signed(INSNS + VALUE + VALUE, guest_keys)

    def twice_in_fd_array(be: Any, sig: bytes) -> tuple[int | None, str]:
        with opened(metadata_map(VALUE, INSNS, be=be), be=be) as (m,):
            return attempt(INSNS, be=be, fd_array=[m, m], fd_array_cnt=2, signature=sig)

    ok, ok_model = both(guest_keys, lambda be: twice_in_fd_array(be, once))
    bad, bad_model = both(guest_keys, lambda be: twice_in_fd_array(be, twice))
    check(agreement, "same map twice, signed once", ok, None, None, model=ok_model,
          offline=offline_errno(INSNS + VALUE, once, guest_keys, -3))  # fmt: skip
    check(agreement, "same map twice, signed twice", bad, errno.EKEYREJECTED, SIG_FAILED.format(-129),
          model=bad_model, offline=offline_errno(INSNS + VALUE, twice, guest_keys, -3))  # fmt: skip


# --- keys and keyrings ----------------------------------------------------------------


def test_wrong_key(guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]) -> None:
    sig = signed(INSNS + VALUE, guest_keys, "wrong")
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, "wrong key (cert not in keyring)", got, errno.ENOKEY, SIG_FAILED.format(-126),
          model=model, offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


@pytest.mark.parametrize("which", ["0", "1", "2", "key serial"])
def test_keyring_without_the_key(
    which: str, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    kid = guest_keys.key_serials["rsa"] if which == "key serial" else int(which)
    sig = signed(INSNS + VALUE, guest_keys)
    got, model = both(guest_keys, lambda be: _one_map(be, sig, keyring_id=kid))
    check(agreement, f"keyring_id {which}", got, errno.ENOKEY, SIG_FAILED.format(-126), model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, kid))  # fmt: skip


def test_user_keyring_needs_the_key_linked(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    """-4 resolves but is empty (ENOKEY); after KEYCTL_LINK of the key it loads (docs/kernel.md §5)."""
    from _vmoffline import offline_errno_with

    from bpfsign.kernel import keyring

    sig = signed(INSNS + VALUE, guest_keys)
    model_be = model_backend(guest_keys)
    before, before_model = both(guest_keys, lambda be: _one_map(be, sig, keyring_id=-4))
    user = keyring.link_key(guest_keys.key_serials["rsa"], keyring=-4)
    model_be.key_link(guest_keys.key_serials["rsa"], -4)  # the same KEYCTL_LINK, in the model
    after, after_model = both(guest_keys, lambda be: _one_map(be, sig, keyring_id=-4))
    assert user == keyring.resolve_keyring("user") != guest_keys.session_serial
    check(agreement, "keyring_id -4, key not linked there", before, errno.ENOKEY, SIG_FAILED.format(-126),
          model=before_model, offline=offline_errno(INSNS + VALUE, sig, guest_keys, -4))  # fmt: skip
    check(agreement, "keyring_id -4 after KEYCTL_LINK of the key", after, None, None, model=after_model,
          offline=offline_errno_with(INSNS + VALUE, sig, guest_keys, -4, user=("rsa",)))  # fmt: skip


@pytest.mark.parametrize("kid", [3, -1, 0x3FFFFFF0])
def test_unresolvable_keyring(
    kid: int, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    got, model = both(guest_keys, lambda be: _one_map(be, sig, keyring_id=kid))
    check(agreement, f"keyring_id {kid} (unresolvable)", got, errno.EINVAL,
          f"cannot resolve signing keyring with keyring_id {kid}", model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, kid))  # fmt: skip


# --- malformed and oversized signatures -----------------------------------------------


def _malformed(gk: GuestKeys) -> dict[str, bytes]:
    good = signed(INSNS + VALUE, gk)
    return {
        "garbage signature (16 bytes)": bytes(range(16)),
        "garbage signature (30 03 02 01 00)": bytes.fromhex("3003020100"),
        "truncated signature (10 bytes cut)": good[:-10],
    }


@pytest.mark.parametrize("case", ["garbage signature (16 bytes)", "garbage signature (30 03 02 01 00)",
                                  "truncated signature (10 bytes cut)"])  # fmt: skip
def test_malformed_signature(
    case: str, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = _malformed(guest_keys)[case]
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, case, got, errno.EBADMSG, SIG_FAILED.format(-74), model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


@pytest.mark.parametrize("size", [8192, 8193])
def test_signature_size_limit(
    size: int, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS + VALUE, guest_keys)
    padded = sig + bytes(size - len(sig))  # trailing zeros after the DER are accepted
    got, model = both(guest_keys, lambda be: _one_map(be, padded))
    want = None if size <= 8192 else errno.EINVAL
    check(agreement, f"signature of {size} bytes (zero-padded)", got, want, "" if want else None,
          model=model, offline=offline_errno(INSNS + VALUE, padded, guest_keys, -3))  # fmt: skip


def test_signed_payload_of_16_mib(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    value = bytes(16 * 1024 * 1024 - len(INSNS))  # insns || value = 16,777,216 bytes
    sig = signed(INSNS + value, guest_keys)
    got, model = both(guest_keys, lambda be: _one_map(be, sig, value=value))
    check(agreement, "signed payload of 16 MiB", got, errno.E2BIG,
          "signed payload too large: 16777216 bytes", model=model,
          offline=offline_errno(INSNS + value, sig, guest_keys, -3))  # fmt: skip


def test_smime_capabilities_attribute(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]], kmsg: CaseKmsg
) -> None:
    # openssl's default signed attributes include sMIMECapabilities
    sig = openssl_sign(
        INSNS + VALUE, guest_keys.pairs["rsa"], guest_keys.workdir, "rsa", "-keyid", "-nocerts"
    )
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, "sMIMECapabilities attribute (openssl defaults)", got, errno.EKEYREJECTED,
          SIG_FAILED.format(-129), model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip
    lines = kmsg.read()
    assert any("S/MIME Caps only allowed with Authenticode" in ln for ln in lines), lines


# --- fd_array_cnt and the scheme (the offline verifier sees bytes, not fd_array) ----------


def test_signed_with_cnt0_while_the_program_uses_its_map(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    insns = INSNS_USES_MAP0
    sig = signed(insns, guest_keys)  # the 6.18 scheme: insns only, fd_array_cnt 0
    got, model = both(guest_keys, lambda be: _one_map(be, sig, insns=insns, excl_for=insns, cnt=0))
    check(agreement, "signed, cnt 0, program uses fd_array[0]", got, errno.EACCES,
          "signed program must bind maps via a continuous fd_array (fd_array_cnt)", model=model,
          offline="n/a (scheme)")  # fmt: skip


def test_unsigned_with_cnt1(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    got, model = both(guest_keys, lambda be: _one_map(be, None))
    check(agreement, "unsigned, cnt 1, exclusive map", got, errno.EACCES,
          "program's hash doesn't match map's excl_prog_hash", model=model,
          offline="n/a (unsigned)")  # fmt: skip


# --- algorithms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "digest"), [("p256", "sha256"), ("p384", "sha384"), ("rsa", "sha512")]
)
def test_algorithm_loads(
    who: str, digest: str, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = signed(INSNS + VALUE, guest_keys, who, digest=digest)
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, f"{who} with {digest}", got, None, None, model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


def test_rsa_pss_is_not_supported(
    guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    sig = openssl_sign(INSNS + VALUE, guest_keys.pairs["rsa"], guest_keys.workdir, "rsa",
                       "-noattr", "-nocerts", "-keyid", "-keyopt", "rsa_padding_mode:pss")  # fmt: skip
    got, model = both(guest_keys, lambda be: _one_map(be, sig))
    check(agreement, "RSA-PSS padding", got, errno.ENOPKG, SIG_FAILED.format(-65), model=model,
          offline=offline_errno(INSNS + VALUE, sig, guest_keys, -3))  # fmt: skip


# --- the backend's log retry ---------------------------------------------------------------


@pytest.mark.parametrize("case", ["signature of 8193 bytes", "tampered data", "unfrozen map",
                                  "keyring_id 3", "unsigned, cnt 1"])  # fmt: skip
def test_log_retry_reports_what_a_logged_load_reports(case: str, guest_keys: GuestKeys) -> None:
    """bpfsign loads without a log and asks again with one only on failure: the errno
    and log it reports equal those of a load that asked for the log up front."""
    sig = signed(INSNS + VALUE, guest_keys)
    value = VALUE
    kw: dict[str, Any] = dict(signature=sig, keyring_id=-3)
    frozen = case != "unfrozen map"
    if case == "signature of 8193 bytes":
        kw["signature"] = sig + bytes(8193 - len(sig))
    elif case == "tampered data":
        value = bytes(64)
    elif case == "keyring_id 3":
        kw["keyring_id"] = 3
    elif case == "unsigned, cnt 1":
        kw = {}
    with opened(metadata_map(value, INSNS, frozen=frozen)) as (m,):
        retried = attempt(INSNS, fd_array=[m], fd_array_cnt=1, **kw)
        up_front = attempt(INSNS, fd_array=[m], fd_array_cnt=1, log_level=1, **kw)
    assert retried[0] is not None
    assert retried == up_front
    if case == "signature of 8193 bytes":
        assert retried == (errno.EINVAL, "")
