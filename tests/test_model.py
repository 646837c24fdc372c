"""bpfsign.kernel.model: every BPF_PROG_LOAD rule of docs/kernel.md §5-§8, §12.8, §13 with its exact
errno and log line, and (kernel-marked) agreement with this host's 6.18 kernel."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bpfsign.crypto import cms, keys, trust
from bpfsign.errors import KernelError, UnsupportedFeature
from bpfsign.kernel.backend import LOADER_LICENSE, LOADER_MAP_NAME, LOADER_PROG_NAME, Backend
from bpfsign.kernel.model import KernelModel, program_digest
from bpfsign.skel import scheme, skeleton

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INSNS = bytes.fromhex("b7000000000000009500000000000000")  # r0 = 0; exit
USES_MAP0 = bytes.fromhex("18510000000000000000000000000000") + INSNS  # r1 = fd_array[0]
#: r1 = fd_array[0]; r2 = *(u32 *)(r1 + 32); r0 = 0; exit -- the bpftool <= 7.8 -S prefix read
READS_OFF32 = USES_MAP0[:16] + bytes.fromhex("6112200000000000") + INSNS
VALUE = bytes(range(64))
VALUE1 = bytes(range(100, 200))
SIG_FAILED = "signature verification failed: -{}"
CNT0 = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
EXCL = "program's hash doesn't match map's excl_prog_hash"
OFF32 = "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"
ARRAY, HASH, PERCPU_ARRAY, SYSCALL = 2, 1, 6, 31


@pytest.fixture(scope="module")
def signers() -> dict[str, keys.FileSigner]:
    out = {}
    for name in ("good", "wrong"):
        pair = keys.generate("ec", curve="P-256", subject=f"bpfsign model {name}")
        out[name] = keys.FileSigner(pair.key, pair.cert_der)
    out["fixture"] = keys.FileSigner.from_files(
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem",
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem",
    )
    return out


def _store(signers: dict[str, keys.FileSigner]) -> tuple[trust.TrustStore, int]:
    store = trust.TrustStore()
    serial = store.add(signers["good"].certificate, "session")
    store.add(signers["fixture"].certificate, "session")
    return store, serial


@pytest.fixture
def model(signers: dict[str, keys.FileSigner]) -> Iterator[KernelModel]:
    m = KernelModel("7.3", _store(signers)[0])
    yield m
    assert m.open_fds == 0, "a case leaked a model fd"


def sign(payload: bytes, signers: dict[str, keys.FileSigner], who: str = "good") -> bytes:
    return cms.sign(payload, signers[who])


# --- the call sequence, shared by the model and the real kernel -----------------------------


def meta(be: Backend, value: bytes, excl_for: bytes | None, *, frozen: bool = True,
         name: str = LOADER_MAP_NAME, map_type: int = ARRAY, max_entries: int = 1) -> int:  # fmt: skip
    excl = hashlib.sha256(excl_for).digest() if excl_for is not None else None
    fd = be.map_create(map_type, 4, len(value), max_entries, name, excl_prog_hash=excl)
    be.map_update(fd, bytes(4), value)
    if frozen:
        be.map_freeze(fd)
    return fd


def attempt(be: Backend, insns: bytes, *, maps: tuple[int, ...] = (), cnt: int = 0,
            signature: bytes | None = None, keyring_id: int = -3) -> tuple[Any, str]:  # fmt: skip
    """(None, "") when it loads; (errno, log) on KernelError; ("unsupported", errno) otherwise."""
    try:
        fd = be.prog_load(
            SYSCALL,
            insns,
            license=LOADER_LICENSE,
            name=LOADER_PROG_NAME,
            flags=0x10,
            fd_array=maps,
            fd_array_cnt=cnt,
            signature=signature,
            keyring_id=keyring_id if signature is not None else 0,
        )
    except KernelError as exc:
        return exc.errno, exc.log.strip()
    except UnsupportedFeature as exc:
        return "unsupported", str(exc.errno)
    finally:
        for m in dict.fromkeys(maps):  # a map listed twice is closed once
            be.close(m)
    be.close(fd)
    return None, ""


def one_map(be: Backend, signers: Any, payload: bytes, *, value: bytes = VALUE,
            excl_for: bytes | None = INSNS, insns: bytes = INSNS, cnt: int = 1,
            keyring_id: int = -3, who: str = "good", **kw: Any) -> tuple[Any, str]:  # fmt: skip
    sig = sign(payload, signers, who)
    m = meta(be, value, excl_for, **kw)
    return attempt(be, insns, maps=(m,), cnt=cnt, signature=sig, keyring_id=keyring_id)


# --- §6.3: one metadata map -------------------------------------------------------------------


def test_signed_over_insns_and_map_loads(model: KernelModel, signers: Any) -> None:
    assert one_map(model, signers, INSNS + VALUE) == (None, "")


def test_loaded_program_info(model: KernelModel, signers: Any) -> None:
    m = meta(model, VALUE, INSNS)
    fd = model.prog_load(SYSCALL, INSNS, name=LOADER_PROG_NAME, fd_array=(m,), fd_array_cnt=1,
                         signature=sign(INSNS + VALUE, signers), keyring_id=-3)  # fmt: skip
    info = model.prog_info(fd)
    assert (info.type, info.name, info.nr_map_ids, info.tag) == (
        SYSCALL,
        LOADER_PROG_NAME,
        1,
        hashlib.sha256(INSNS).digest()[:8],
    )
    with pytest.raises(UnsupportedFeature, match="does not run programs"):
        model.test_run(fd, bytearray(8))
    model.close(fd)
    model.close(m)


@pytest.mark.parametrize(("case", "payload", "insns", "cnt", "want"), [
    ("insns only, cnt 1", INSNS, INSNS, 1, (errno.EKEYREJECTED, SIG_FAILED.format(129))),
    ("insns||map, cnt 0", INSNS + VALUE, INSNS, 0, (errno.EKEYREJECTED, SIG_FAILED.format(129))),
    ("insns only, cnt 0, map unused", INSNS, INSNS, 0, (None, "")),
    ("insns only, cnt 0, map used", USES_MAP0, USES_MAP0, 0, (errno.EACCES, CNT0)),
    ("insns||map, cnt 1, map used", USES_MAP0 + VALUE, USES_MAP0, 1, (None, "")),
])  # fmt: skip
def test_what_is_signed(case: str, payload: bytes, insns: bytes, cnt: int, want: Any,
                        model: KernelModel, signers: Any) -> None:  # fmt: skip
    """§6.3 rows 4-8, §13 rows 12-15, 49."""
    assert one_map(model, signers, payload, insns=insns, excl_for=insns, cnt=cnt) == want, case


def test_cnt0_refusal_comes_after_the_signature(model: KernelModel, signers: Any) -> None:
    """§6.2 step 4: the same program signed over the wrong bytes gives EKEYREJECTED."""
    got = one_map(model, signers, USES_MAP0 + b"x", insns=USES_MAP0, excl_for=USES_MAP0, cnt=0)
    assert got == (errno.EKEYREJECTED, SIG_FAILED.format(129))


def test_tampered_data(model: KernelModel, signers: Any) -> None:
    evil = bytearray(VALUE)
    evil[17] ^= 1
    assert one_map(model, signers, INSNS + VALUE, value=bytes(evil)) == (
        errno.EKEYREJECTED,
        SIG_FAILED.format(129),
    )


MAP_STATE: dict[str, tuple[dict[str, Any], bytes | None, int, str]] = {
    "unfrozen": (dict(frozen=False), INSNS, errno.EPERM,
                 "signed program metadata map '__loader.map' must be frozen"),
    "non-exclusive": ({}, None, errno.EPERM,
                      "signed program metadata map '__loader.map' must be exclusive"),
    "neither frozen nor exclusive": (dict(frozen=False), None, errno.EPERM,
                                     "signed program metadata map '__loader.map' must be frozen"),
    "another program's hash": ({}, INSNS + INSNS, errno.EACCES, EXCL),
    "HASH map": (dict(map_type=HASH, name="meta"), INSNS, errno.EINVAL,
                 "signed program metadata map 'meta' must be an array"),
    "PERCPU_ARRAY map": (dict(map_type=PERCPU_ARRAY, name="meta"), INSNS, errno.EINVAL,
                         "signed program metadata map 'meta' must be an array"),
    "ARRAY with max_entries 2": (dict(max_entries=2, name="meta"), INSNS, 524,
                                 "failed to read signed metadata map 'meta': -524"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MAP_STATE))
def test_metadata_map_state(case: str, model: KernelModel, signers: Any) -> None:
    """§6.3, §6.4, §13 rows 16-18, 25, 51; the map checks come before the signature."""
    kw, excl_for, want, log = MAP_STATE[case]
    assert one_map(model, signers, INSNS + VALUE, excl_for=excl_for, **kw) == (want, log)
    assert one_map(model, signers, b"wrong bytes", excl_for=excl_for, **kw) == (want, log)


# --- §6.4: several metadata maps ---------------------------------------------------------------


def _two(model: KernelModel, signers: Any, payload: bytes, *, order: str = "01", cnt: int = 2,
         m1: dict[str, Any] | None = None, m0: dict[str, Any] | None = None,
         excl1: bytes | None = INSNS, excl0: bytes | None = INSNS) -> tuple[Any, str]:  # fmt: skip
    sig = sign(payload, signers)
    fds = {
        "0": meta(model, VALUE, excl0, name="meta0", **(m0 or {})),
        "1": meta(model, VALUE1, excl1, name="meta1", **(m1 or {})),
    }
    maps = tuple(fds[c] for c in order)
    got = attempt(model, INSNS, maps=maps[:2], cnt=cnt, signature=sig)
    for c in set("01") - set(order):
        model.close(fds[c])
    return got


REJECTED = (errno.EKEYREJECTED, SIG_FAILED.format(129))


def test_two_maps_fold_in_fd_array_order(model: KernelModel, signers: Any) -> None:
    assert _two(model, signers, INSNS + VALUE + VALUE1) == (None, "")
    assert _two(model, signers, INSNS + VALUE1 + VALUE) == REJECTED
    assert _two(model, signers, INSNS + VALUE1 + VALUE, order="10") == (None, "")
    assert _two(model, signers, INSNS + VALUE + VALUE1, order="10") == REJECTED
    assert _two(model, signers, INSNS + VALUE) == REJECTED
    assert _two(model, signers, INSNS + VALUE, cnt=1) == (None, "")  # fd_array[1] not folded


def test_two_maps_first_failing_map_is_reported(model: KernelModel, signers: Any) -> None:
    payload = INSNS + VALUE + VALUE1
    assert _two(model, signers, payload, excl1=None) == (
        errno.EPERM,
        "signed program metadata map 'meta1' must be exclusive",
    )
    assert _two(model, signers, b"any", excl0=None) == (
        errno.EPERM,
        "signed program metadata map 'meta0' must be exclusive",
    )
    assert _two(model, signers, payload, m1=dict(frozen=False)) == (
        errno.EPERM,
        "signed program metadata map 'meta1' must be frozen",
    )
    assert _two(model, signers, payload, m0=dict(frozen=False), excl1=None) == (
        errno.EPERM,
        "signed program metadata map 'meta0' must be frozen",
    )
    assert _two(model, signers, payload, excl1=b"other") == (errno.EACCES, EXCL)


def test_same_map_twice_is_folded_once(model: KernelModel, signers: Any) -> None:
    for payload, want in ((INSNS + VALUE, (None, "")), (INSNS + VALUE + VALUE, REJECTED)):
        sig = sign(payload, signers)
        m = meta(model, VALUE, INSNS)
        assert attempt(model, INSNS, maps=(m, m), cnt=2, signature=sig) == want


# --- §5: keyrings and keys ---------------------------------------------------------------------


@pytest.mark.parametrize("kid", [3, -1, -2, -7, -8, 0x3FFFFFF0])
def test_unresolvable_keyring(kid: int, model: KernelModel, signers: Any) -> None:
    """§5, §13 row 2: EINVAL with the keyring log line on 7.3."""
    assert one_map(model, signers, INSNS + VALUE, keyring_id=kid) == (
        errno.EINVAL,
        f"cannot resolve signing keyring with keyring_id {kid}",
    )


def test_unresolvable_keyring_comes_before_the_map_checks(model: KernelModel, signers: Any) -> None:
    assert one_map(model, signers, INSNS + VALUE, keyring_id=3, frozen=False)[0] == errno.EINVAL


@pytest.mark.parametrize("kid", [0, 1, 2, -4, -5, "key serial"])
def test_keyring_without_the_key(kid: Any, signers: Any) -> None:
    """§5, §13 rows 3, 4, 45: ENOKEY, also for a key's own serial."""
    store, key_serial = _store(signers)
    model = KernelModel("7.3", store)
    kid = key_serial if kid == "key serial" else kid
    assert one_map(model, signers, INSNS + VALUE, keyring_id=kid) == (
        errno.ENOKEY,
        SIG_FAILED.format(126),
    )


def test_keyring_serials_and_key_link(signers: Any) -> None:
    """§5: the session keyring's serial works; -4 works after KEYCTL_LINK of the key."""
    model = KernelModel("7.3", trust.TrustStore())
    key = model.add_key("asymmetric", None, signers["good"].certificate, -3)
    session = model.keyring_id(-3)
    assert one_map(model, signers, INSNS + VALUE, keyring_id=session) == (None, "")
    assert one_map(model, signers, INSNS + VALUE, keyring_id=-4)[0] == errno.ENOKEY
    model.key_link(key, -4)
    assert one_map(model, signers, INSNS + VALUE, keyring_id=-4) == (None, "")


def test_wrong_key(model: KernelModel, signers: Any) -> None:
    assert one_map(model, signers, INSNS + VALUE, who="wrong") == (
        errno.ENOKEY,
        SIG_FAILED.format(126),
    )


# --- §12.8: sizes, malformed signatures ------------------------------------------------------------


def _raw(model: KernelModel, signature: bytes, keyring_id: int = -3) -> tuple[Any, str]:
    m = meta(model, VALUE, INSNS)
    return attempt(model, INSNS, maps=(m,), cnt=1, signature=signature, keyring_id=keyring_id)


def test_signature_size_limits(model: KernelModel, signers: Any) -> None:
    """§12.8, §13 rows 29, 53: 8192 loads, 8193 EINVAL with an empty log, size 0 EINVAL."""
    sig = sign(INSNS + VALUE, signers)
    assert _raw(model, sig + bytes(8192 - len(sig))) == (None, "")
    assert _raw(model, sig + bytes(8193 - len(sig))) == (errno.EINVAL, "")
    assert _raw(model, sig + bytes(8193 - len(sig)), keyring_id=3) == (errno.EINVAL, "")
    assert _raw(model, b"") == (errno.EINVAL, "")


@pytest.mark.parametrize("sig", [bytes(range(16)), bytes.fromhex("3003020100")])
def test_garbage_signature(sig: bytes, model: KernelModel) -> None:
    assert _raw(model, sig) == (errno.EBADMSG, SIG_FAILED.format(74))


def test_truncated_signature(model: KernelModel, signers: Any) -> None:
    assert _raw(model, sign(INSNS + VALUE, signers)[:-10]) == (errno.EBADMSG, SIG_FAILED.format(74))


def test_signed_payload_of_16_mib(model: KernelModel, signers: Any) -> None:
    """§12.8, §13 row 28: 16,777,215 bytes load; 16,777,216 give E2BIG."""
    for total, want in ((1 << 24) - 1, (None, "")), (1 << 24, (errno.E2BIG,
                        "signed payload too large: 16777216 bytes")):  # fmt: skip
        value = bytes(total - len(INSNS))
        assert one_map(model, signers, INSNS + value, value=value) == want


def test_used_maps_limit_counts_distinct_maps(model: KernelModel, signers: Any) -> None:
    """Measured on 7.3.4 (tests/vm/test_vm_catalogue.py): one map 65 times in fd_array loads;
    65 distinct maps give E2BIG, even before a bad keyring or an unfrozen map is looked at."""
    sig = sign(INSNS + VALUE, signers)
    m = meta(model, VALUE, INSNS)
    assert attempt(model, INSNS, maps=(m,) * 65, cnt=65, signature=sig) == (None, "")
    many = tuple(meta(model, VALUE, None) for _ in range(65))
    limit = (errno.E2BIG, "The total number of maps per program has reached the limit of 64")
    assert attempt(model, INSNS, maps=many, cnt=65, signature=sig, keyring_id=3) == limit
    many = tuple(meta(model, VALUE, None) for _ in range(64))
    assert attempt(model, INSNS, maps=many, cnt=64) == (None, "")


# --- unsigned loads, §7 digest ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["7.3", "6.18"])
def test_unsigned_rules(profile: str, signers: Any) -> None:
    """§6.3 rows 1-3, §13 rows 11, 20 (measured on both kernels)."""
    model = KernelModel(profile, _store(signers)[0])
    assert attempt(model, INSNS, maps=(meta(model, VALUE, INSNS),), cnt=1) == (errno.EACCES, EXCL)
    assert attempt(model, INSNS, maps=(meta(model, VALUE, None),), cnt=1) == (None, "")
    m = meta(model, VALUE, USES_MAP0)
    assert attempt(model, USES_MAP0, maps=(m,)) == (None, "")
    m = meta(model, VALUE, INSNS)
    assert attempt(model, USES_MAP0, maps=(m,)) == (errno.EACCES, EXCL)


def test_digest_masks_map_fd_immediates() -> None:
    """§7: src_reg 1/2 immediates are zeroed, 5/6 are not."""
    fd_form = bytes.fromhex("18110000070000000000000000000000") + INSNS
    assert (
        program_digest(fd_form)
        == hashlib.sha256(bytes.fromhex("18110000000000000000000000000000") + INSNS).digest()
    )
    assert program_digest(USES_MAP0) == hashlib.sha256(USES_MAP0).digest()
    idx1 = bytes.fromhex("18510000010000000000000000000000") + INSNS
    assert program_digest(idx1) == hashlib.sha256(idx1).digest()


def test_direct_map_fd_uses_the_masked_digest(model: KernelModel) -> None:
    m = meta(model, VALUE, None)
    insns = bytes.fromhex("18110000000000000000000000000000") + INSNS
    excl = meta(model, VALUE, insns)
    prog = insns[:4] + excl.to_bytes(4, "little") + insns[8:]
    assert attempt(model, prog, maps=(m, excl)) == (None, "")


@pytest.mark.parametrize(
    ("profile", "want"), [("7.3", (errno.EACCES, OFF32)), ("6.18", (None, ""))]
)
def test_offset_32_read_of_struct_bpf_map(profile: str, want: Any, signers: Any) -> None:
    """§8.1, §13 row 50: the -S loader's u32 read at bpf_map+32, refused on 7.3 signed or not."""
    model = KernelModel(profile, _store(signers)[0])
    assert attempt(model, READS_OFF32, maps=(meta(model, VALUE, READS_OFF32),)) == want
    if profile == "7.3":
        got = one_map(model, signers, READS_OFF32 + VALUE, insns=READS_OFF32,
                      excl_for=READS_OFF32)  # fmt: skip
        assert got == want


# --- maps: §7, §8 -----------------------------------------------------------------------------------


def test_map_rules(model: KernelModel) -> None:
    with pytest.raises(KernelError) as info:
        model.map_create(ARRAY, 4, 16, 1, "m", excl_prog_hash=bytes(20))
    assert (info.value.errno, info.value.command) == (errno.EINVAL, "BPF_MAP_CREATE")
    fd = model.map_create(ARRAY, 4, 12, 2, "m")
    model.map_update(fd, bytes(4), b"x" * 12)
    with pytest.raises(KernelError) as info:
        model.map_info(fd, want_hash=True)
    assert info.value.errno == errno.EPERM  # §8.1: hash before freeze
    model.map_freeze(fd)
    calls: tuple[Callable[[], object], ...] = (
        lambda: model.map_freeze(fd),
        lambda: model.map_update(fd, bytes(4), bytes(12)),
    )
    for call in calls:
        with pytest.raises(KernelError) as info:
            call()
        assert info.value.errno == errno.EPERM  # §8.2 (second freeze: EPERM, measured)
    info_ = model.map_info(fd, want_hash=True)
    assert info_.hash == hashlib.sha256(b"x" * 12 + bytes(4) + bytes(16)).digest()  # round_up 8
    assert (info_.type, info_.max_entries, info_.name) == (ARRAY, 2, "m")
    assert model.map_lookup(fd, bytes(4), 12) == b"x" * 12
    model.close(fd)


# --- 6.18 profile ----------------------------------------------------------------------------------


def test_6_18_signed_loads_are_unsupported_after_the_keyring(signers: Any) -> None:
    """§6.1 step 5, §13 rows 1, 2, 29, 53 as measured on 6.18.44 (no signature verification)."""
    model = KernelModel("6.18-nosig", _store(signers)[0])
    assert one_map(model, signers, INSNS + VALUE) == ("unsupported", str(errno.EOPNOTSUPP))
    assert _raw(model, b"garbage") == ("unsupported", str(errno.EOPNOTSUPP))
    assert _raw(model, b"") == ("unsupported", str(errno.EOPNOTSUPP))
    assert _raw(model, b"", keyring_id=3) == (errno.EINVAL, "")
    assert _raw(model, bytes(8193)) == (errno.EINVAL, "")


# --- the loader over the model (skeletons) ------------------------------------------------------


def _verdict(skel: Any, model: KernelModel, *, unsigned: bool = False) -> tuple[Any, str]:
    from bpfsign.kernel import loader

    ld = loader.Loader(skel, keyring_id=-3, unsigned=unsigned, backend=model)
    try:
        model.loader_verdict(ld.request)
    except KernelError as exc:
        return exc.errno, exc.log
    except UnsupportedFeature as exc:
        return "unsupported", str(exc.errno)
    return None, ""


@pytest.mark.parametrize(
    "name", ["sockfilter.lskel.h", "counter.signed.lskel.h", "multi.v71.lskel.h"]
)
def test_loader_skeletons(name: str, model: KernelModel, signers: Any) -> None:
    """§6.5 on the fixtures, through bpfsign.kernel.loader with backend=KernelModel."""
    skel = skeleton.load(FIXTURES / "skel" / name)
    text, _ = scheme.sign_skeleton(skel, signers["fixture"], scheme="loadtime")
    signed = skeleton.parse(text)
    assert _verdict(signed, model) == (None, "")
    import dataclasses

    evil = bytearray(signed.data)
    evil[len(evil) // 2] ^= 0x40
    assert _verdict(dataclasses.replace(signed, data=bytes(evil)), model) == REJECTED
    assert _verdict(signed, KernelModel("7.3")) == (errno.ENOKEY, SIG_FAILED.format(126))
    assert _verdict(signed, KernelModel("6.18-nosig", model.trust)) == ("unsupported", "95")
    if skel.signature is not None:  # bpftool -S as generated
        assert _verdict(skel, model) == (errno.EACCES, CNT0)
        assert _verdict(skel, model, unsigned=True) == (errno.EACCES, OFF32)
        assert _verdict(skel, KernelModel("6.18"), unsigned=True) == (None, "")


def test_cli_load_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bpfsign.cli import main

    cert = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
    skel = FIXTURES / "skel" / "counter.signed.lskel.h"
    assert main(["load", "--model", "7.3", "--trust", str(cert), str(skel)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"the 7.3 kernel would refuse this: EACCES (13): {CNT0}"), out
    assert "bpfsign sign --scheme loadtime" in out
    assert main(["load", "--model", "6.18", "--unsigned", str(skel)]) == 0
    assert capsys.readouterr().out.startswith("the 6.18 kernel would load this")


# --- agreement with this host's kernel (6.18) -------------------------------------------------------

HOST_CASES = {
    "exclusive map, wrong hash": lambda be, s: attempt(be, USES_MAP0, maps=(meta(be, VALUE, INSNS),)),
    "exclusive map, right hash": lambda be, s: attempt(be, USES_MAP0, maps=(meta(be, VALUE, USES_MAP0),)),
    "unsigned, cnt 1, exclusive map": lambda be, s: attempt(be, INSNS, maps=(meta(be, VALUE, INSNS),), cnt=1),
    "unsigned, cnt 1, plain map": lambda be, s: attempt(be, INSNS, maps=(meta(be, VALUE, None),), cnt=1),
    "signed, cnt 1": lambda be, s: one_map(be, s, INSNS + VALUE),
    "signed, garbage signature": lambda be, s: attempt(be, INSNS, signature=bytes(16)),
    "signed, empty signature": lambda be, s: attempt(be, INSNS, signature=b""),
    "signed, keyring_id 3": lambda be, s: one_map(be, s, INSNS + VALUE, keyring_id=3),
    "signed, keyring_id -8": lambda be, s: one_map(be, s, INSNS + VALUE, keyring_id=-8),
    "signed, 8193-byte signature": lambda be, s: attempt(be, INSNS, signature=bytes(8193)),
    "-S loader read of bpf_map+32": lambda be, s: attempt(be, READS_OFF32, maps=(meta(be, VALUE, READS_OFF32),)),
}  # fmt: skip


def verdict_line(got: tuple[Any, str]) -> tuple[Any, str]:
    """(errno, the log line that says why): the verifier's closing statistics are dropped."""
    err, log = got
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith("processed ")]
    return err, lines[-1] if lines else ""


def _map_ops(be: Backend) -> list[Any]:
    """The map commands' errnos, in one sequence."""
    out: list[Any] = []

    def call(f: Any) -> None:
        try:
            f()
        except KernelError as exc:
            out.append(exc.errno)
        else:
            out.append(None)

    call(lambda: be.close(be.map_create(ARRAY, 4, 16, 1, "m", excl_prog_hash=bytes(20))))
    fd = be.map_create(ARRAY, 4, 12, 1, "m", excl_prog_hash=bytes(32))
    try:
        call(lambda: be.map_update(fd, bytes(4), b"y" * 12))
        call(lambda: be.map_info(fd, want_hash=True))
        call(lambda: be.map_freeze(fd))
        call(lambda: be.map_freeze(fd))
        call(lambda: be.map_update(fd, bytes(4), bytes(12)))
        out.append(be.map_info(fd, want_hash=True).hash)
    finally:
        be.close(fd)
    return out


@pytest.mark.kernel
@pytest.mark.parametrize("case", list(HOST_CASES))
def test_model_6_18_agrees_with_this_kernel(case: str, signers: Any) -> None:
    import platform

    from bpfsign.kernel.syscall import SyscallBackend

    if not platform.release().startswith("6.18"):
        pytest.skip(f"the 6.18 profile is compared with a 6.18 kernel, not {platform.release()}")
    model = KernelModel("6.18-nosig", _store(signers)[0])
    kernel = HOST_CASES[case](SyscallBackend(), signers)
    modelled = HOST_CASES[case](model, signers)
    assert verdict_line(modelled) == verdict_line(kernel), (
        f"{case}: model {modelled} != kernel {kernel}"
    )
    assert model.open_fds == 0


@pytest.mark.kernel
def test_model_6_18_map_commands_agree_with_this_kernel() -> None:
    from bpfsign.kernel.syscall import SyscallBackend

    kernel = _map_ops(SyscallBackend())
    assert kernel == _map_ops(KernelModel("6.18-nosig"))
    assert kernel[:5] == [errno.EINVAL, None, errno.EPERM, None, errno.EPERM]


def test_loader_load_over_the_model(model: KernelModel, signers: Any) -> None:
    """bpfsign.kernel.loader.load(backend=model): the kernel's refusal, or a clear 'would load'."""
    from bpfsign.kernel import loader

    skel = skeleton.load(FIXTURES / "skel" / "sockfilter.signed.lskel.h")
    with pytest.raises(KernelError) as refused:
        loader.load(skel, backend=model)
    assert (refused.value.errno, refused.value.log) == (errno.EACCES, CNT0)
    assert "convert it to the loadtime scheme" in str(refused.value)
    text, _ = scheme.sign_skeleton(skel, signers["fixture"], scheme="loadtime")
    with pytest.raises(UnsupportedFeature, match=r"the 7\.3 kernel would load it"):
        loader.load(skeleton.parse(text), backend=model)


# --- the exclusive-map race (tests/vm/test_vm_race.py runs it on the kernel too) -------------------


@pytest.mark.parametrize("variant", ["dup2 unfrozen map", "dup2 frozen map, other contents",
                                     "close and recreate", "writable mmap before freeze"])  # fmt: skip
def test_model_race_loads_only_signed_contents(variant: str, signers: Any) -> None:
    """Threads swap the fd_array slot (KernelModel.dup2) or write through a writable mmap
    while loads run: every load uses the signed map and value (the model asserts it too)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))
    from _catalogue import READS_VALUE
    from _race import SIGNED, _value, race

    model = KernelModel("7.3", _store(signers)[0])
    counts = race(model, variant, 200, sign(READS_VALUE + _value(SIGNED), signers))
    assert sum(counts[k] for k in counts if not k.startswith("freeze")) == 200
    assert counts["loaded, uses the signed map and value"] > 0
    assert model.open_fds == 0
