"""The rules engine (bpfsign.kernel.rules): the order of checks, profiles, hints, keyring specs.

The errnos and log lines themselves are measured on 7.3.4 in the guest
(tests/vm/test_vm_catalogue.py, tests/vm/test_vm_signed_load.py); here the
engine's own contracts are checked on the host.
"""

from __future__ import annotations

import dataclasses
import errno
import sys
from pathlib import Path
from typing import Any

import pytest

from bpfsign.crypto import cms, trust
from bpfsign.errors import InputError, VerificationError
from bpfsign.kernel import keyspec, profiles, rules
from bpfsign.skel import scheme, skeleton

sys.path.insert(0, str(Path(__file__).resolve().parent / "vm"))
import _catalogue as cat

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CNT0 = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
P73, P618, NOSIG, BPFKR = (
    profiles.PROFILES[n] for n in ("7.3", "6.18", "6.18-nosig", "7.x-bpf-keyring")
)


@pytest.fixture(scope="module")
def signer() -> Any:
    from bpfsign.crypto import keys

    return keys.FileSigner.from_files(KEY, CERT)


@pytest.fixture
def store() -> trust.TrustStore:
    s = trust.TrustStore()
    s.add_path(str(CERT), "session")
    return s


def _skel(name: str) -> Any:
    return skeleton.load(FIXTURES / "skel" / name)


def _converted(signer: Any, name: str = "counter.signed.lskel.h") -> Any:
    text, _ = scheme.sign_skeleton(_skel(name), signer, scheme="loadtime")
    return skeleton.parse(text)


# --- the table -----------------------------------------------------------------------------


def test_every_rule_has_an_errno_a_fix_and_a_provenance() -> None:
    for rule in rules.RULES.values():
        assert rule.errno > 0 and rule.title and rule.hint and rule.provenance, rule
        assert rule.provenance.startswith(("measured", "from source")), rule


def test_every_refusal_rule_is_exercised_by_a_measured_case(signer: Any) -> None:
    """Each rule (and so each hint explain prints) decides at least one catalogue case,
    skeleton or blob case below; the host-only and run-time rules are named."""
    store = trust.TrustStore()
    store.add(signer.certificate, "session")
    signers = {"rsa": signer, "wrong": signer}
    deciding = set()
    for case in cat.CASES:
        for att in case.attempts:
            load = _load_of(case, att, signers)
            v = rules.evaluate(load, P73, store)
            if v.failed is not None:
                deciding.add(v.failed.rule.id)
    # decided elsewhere: EOPNOTSUPP on this 6.18 host (tests/test_model.py, kernel-marked),
    # and the 6.18 loader's own run-time checks (above; §13 rows 23 and 56)
    elsewhere = {"verification_support", "loader_exclusive", "loader_hash"}
    assert deciding == set(rules.RULES) - elsewhere


def _load_of(case: cat.Case, att: cat.Attempt, signers: dict[str, Any]) -> rules.Load:
    one = dataclasses.replace(case, attempts=(att,))
    captured: list[rules.Load] = []
    real = rules.evaluate

    def spy(load: rules.Load, profile: Any, t: Any = None) -> rules.Verdict:
        captured.append(load)
        return real(load, profile, t)

    rules.evaluate = spy  # type: ignore[assignment]
    try:
        cat.offline(one, trust.TrustStore(), signers=signers)
    finally:
        rules.evaluate = real
    return captured[0]


# --- profiles -------------------------------------------------------------------------------


def test_profiles() -> None:
    assert profiles.names() == ("7.3", "6.18", "6.18-nosig", "7.x-bpf-keyring", "auto")
    assert P73.measured and NOSIG.measured and not BPFKR.measured
    assert "from upstream documentation, unmeasured" in BPFKR.provenance
    with pytest.raises(InputError, match=r"unknown kernel profile '7\.9'"):
        profiles.get("7.9")
    assert profiles.get("7.3") is P73


@pytest.mark.kernel
def test_auto_is_the_running_kernel() -> None:
    import platform

    if not platform.release().startswith("6.18"):
        pytest.skip(f"this check knows the 6.18 dev host, not {platform.release()}")
    assert profiles.get("auto") is NOSIG  # docs/kernel.md §13 row 1: this host has no verification


# --- keyring specs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "want"), [
    ("session", -3), ("@s", -3), ("-3", -3), ("user", -4), ("@u", -4), ("user-session", -5),
    ("builtin", 0), ("secondary", 1), ("platform", 2), ("bpf", -9), (".bpf", -9), ("0x3ffffff0", 0x3FFFFFF0),
    ("12345", 12345), (-3, -3), ("Session", -3), ("my-ring", "my-ring"),
])  # fmt: skip
def test_keyring_spec(spec: Any, want: Any) -> None:
    assert keyspec.parse(spec) == want


@pytest.mark.parametrize("spec", ["", "a b", "x,y"])
def test_bad_keyring_spec(spec: str) -> None:
    with pytest.raises(InputError, match="keyring"):
        keyspec.parse(spec)


def test_a_keyring_name_needs_a_kernel() -> None:
    with pytest.raises(InputError, match="looked up on the running kernel"):
        keyspec.keyring_id("my-ring")
    assert keyspec.keyring_id("session") == -3


# --- skeletons --------------------------------------------------------------------------------


def test_unconverted_6_18_header_per_profile(store: trust.TrustStore) -> None:
    """The issue's case: bpftool 7.8 -S output is refused by 7.3 (EACCES), loads on 6.18."""
    skel = _skel("counter.signed.lskel.h")
    v = rules.evaluate(rules.skeleton_load(skel), P73, store)
    assert (v.errno, v.log, v.failed.rule.id) == (errno.EACCES, CNT0, "bind_after_signature")  # type: ignore[union-attr]
    assert "convert it to the loadtime scheme" in v.hint
    assert [s.rule.id for s in v.steps] == [
        "insn_cnt",
        "fd_array_entry",
        "signature_size",
        "keyring",
        "payload_size",
        "signature",
        "bind_after_signature",
    ]
    assert rules.evaluate(rules.skeleton_load(skel), P618, store).loads
    nosig = rules.evaluate(rules.skeleton_load(skel), NOSIG, store)
    assert (nosig.errno, nosig.log) == (errno.EOPNOTSUPP, "")
    unsigned = rules.evaluate(rules.skeleton_load(skel, unsigned=True), P73, store)
    assert (unsigned.errno, unsigned.failed.rule.id) == (errno.EACCES, "bpf_map_layout")  # type: ignore[union-attr]


def test_converted_header_per_profile(store: trust.TrustStore, signer: Any) -> None:
    signed = _converted(signer)
    v = rules.evaluate(rules.skeleton_load(signed), P73, store)
    assert v.loads and v.signer is not None and v.steps[-1].rule.id == "bpf_map_layout"
    assert [s.rule.id for s in v.steps][:8] == [
        "insn_cnt",
        "fd_array_entry",
        "excl_hash",
        "signature_size",
        "keyring",
        "frozen",
        "exclusive",
        "array",
    ]
    # a 6.18 kernel checks insns only: the load-time signature over insns ‖ data fails there
    v618 = rules.evaluate(rules.skeleton_load(signed), P618, store)
    assert (v618.errno, v618.log) == (errno.EKEYREJECTED, "")
    evil = bytearray(signed.data)
    evil[3] ^= 1
    tampered = rules.evaluate(
        rules.skeleton_load(dataclasses.replace(signed, data=bytes(evil))), P73, store
    )
    assert (tampered.errno, tampered.log) == (
        errno.EKEYREJECTED,
        "signature verification failed: -129",
    )


def test_6_18_loader_run_time_checks(store: trust.TrustStore) -> None:
    """§13 rows 23/56: on 6.18 a -S loader with other data loads, then returns -EINVAL."""
    skel = _skel("counter.signed.lskel.h")
    evil = bytearray(skel.data)
    evil[0] ^= 1
    v = rules.evaluate(
        rules.skeleton_load(dataclasses.replace(skel, data=bytes(evil))), P618, store
    )
    assert (v.errno, v.failed.rule.id, v.at_run_time) == (errno.EINVAL, "loader_hash", True)  # type: ignore[union-attr]
    no_excl = rules.evaluate(
        rules.skeleton_load(dataclasses.replace(skel, excl_hash=None)), P618, store
    )
    assert no_excl.failed.rule.id == "loader_exclusive"  # type: ignore[union-attr]
    err = v.error()
    assert isinstance(err, VerificationError) and err.errno == errno.EINVAL
    assert "error returned by loader prog" in str(err)


# --- detached blobs, keyrings ------------------------------------------------------------------------


def test_blob_rules(store: trust.TrustStore, signer: Any) -> None:
    payload = b"payload" * 10
    sig = cms.sign(payload, signer)
    assert rules.evaluate_blob(payload, sig, P73, store, -3).loads
    big = rules.evaluate_blob(payload, sig + bytes(8193 - len(sig)), P73, store, -3)
    assert (big.errno, big.log, big.failed.rule.id) == (errno.EINVAL, "", "signature_size")  # type: ignore[union-attr]
    assert big.hint.startswith("the signature is 8193 bytes; the kernel caps signatures at 8192")
    ring = rules.evaluate_blob(payload, sig, P73, store, 3)
    assert (ring.errno, ring.log) == (
        errno.EINVAL,
        "cannot resolve signing keyring with keyring_id 3",
    )
    assert (rules.evaluate_blob(payload, sig, P618, store, 3).log) == ""  # 6.18.44: empty log
    wrong = rules.evaluate_blob(payload + b"!", sig, P73, store, -3)
    assert (wrong.errno, wrong.log) == (errno.EKEYREJECTED, "signature verification failed: -129")
    assert rules.evaluate_blob(payload, sig, NOSIG, store, -3).errno == errno.EOPNOTSUPP


def test_bpf_keyring_profile(store: trust.TrustStore, signer: Any) -> None:
    """Only the unmeasured 7.x-bpf-keyring profile resolves -9; its verdicts say so."""
    payload = b"x" * 64
    sig = cms.sign(payload, signer)
    v73 = rules.evaluate_blob(payload, sig, P73, store, -9)
    assert (v73.errno, v73.log) == (
        errno.EINVAL,
        "cannot resolve signing keyring with keyring_id -9",
    )
    empty = rules.evaluate_blob(payload, sig, BPFKR, store, -9)
    assert (empty.errno, empty.log) == (errno.ENOKEY, "signature verification failed: -126")
    store.add(signer.certificate, rules.bpf_keyring(store))
    assert rules.evaluate_blob(payload, sig, BPFKR, store, -9).loads
    assert rules.evaluate_blob(payload, sig, P73, store, -9).errno == errno.EINVAL


# --- hints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [r for r in rules.RULES.values() if r.log])
def test_hint_of_each_logged_rule(rule: rules.Rule) -> None:
    log = rule.log.format(name="meta", fd=7, size=16777216, errno=rule.errno, keyring_id=3)
    expected = rule.hint
    if rule.id == "signature":  # the PKCS#7 errno decides
        expected = rules.RULES["signature"].hint
    assert rules.hint(rule.errno, "processed 0 insns\n" + log) == expected


def test_hint_by_errno_without_a_log() -> None:
    assert rules.hint(errno.EOPNOTSUPP, "") == rules.RULES["verification_support"].hint
    assert rules.hint(errno.EINVAL, "", signature_size=600) == rules.RULES["keyring"].hint
    assert rules.hint(errno.EINVAL, "") == ""  # unsigned: keyring_id is never read
    assert rules.hint(errno.EINVAL, "", signature_size=9000).startswith(
        "the signature is 9000 bytes"
    )
    assert "not in that keyring" in rules.hint(errno.ENOKEY, "")
    assert rules.hint(errno.ENOKEY, "signature verification failed: -126").startswith(
        "the signer's certificate is not in that keyring"
    )
    assert rules.hint(errno.EPERM, "") == ""  # privileges: kernel/_sys.py adds its own hint


# --- start-up: the engine on verify's path -----------------------------------------------------


@pytest.mark.parametrize("how", ["python -m", "installed command"])
def test_verify_start_up_stays_lean(tmp_path: Path, signer: Any, how: str) -> None:
    """``bpfsign verify`` of a plain file goes through the rules engine, which must not
    bring pyca's x509/serialization, hashlib, dataclasses, typing, argparse or re with it
    (``python -X importtime``), run as ``python -m`` and as the installed command
    (bin/bpfsign, whose launcher imports nothing before bpfsign)."""
    import os
    import subprocess

    payload = tmp_path / "blob.bin"
    payload.write_bytes(b"x" * 100)
    Path(f"{payload}.p7s").write_bytes(cms.sign(payload.read_bytes(), signer))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pyc")
    command = Path(sys.executable).with_name("bpfsign")
    if how == "installed command":
        assert (
            command.read_text().splitlines()[1:]
            == ((Path(__file__).parents[1] / "bin" / "bpfsign").read_text().splitlines()[1:])
        ), f"{command} is not bin/bpfsign: reinstall with scripts/setup.sh"
    start = ["-m", "bpfsign"] if how == "python -m" else [str(command)]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *start, "verify", "--trust", str(CERT), str(payload)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OK {payload}: signer ")
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"bpfsign.kernel.rules", "bpfsign.kernel.profiles", "bpfsign.kernel.keyspec"} <= imported
    heavy = {"cryptography.x509", "cryptography.hazmat.primitives.serialization", "hashlib", "dataclasses",
             "typing", "argparse", "re", "bpfsign.kernel._sys", "bpfsign.kernel.probes"}  # fmt: skip
    assert imported.isdisjoint(heavy), sorted(imported & heavy)


def test_big_endian_loaders_are_read_as_big_endian(store: trust.TrustStore, signer: Any) -> None:
    """A bpfeb loader's register nibbles are swapped: its digest, map references and
    offset-32 read decode as a big-endian kernel decodes them."""
    skel = _skel("sockfilter.bpfeb.signed.lskel.h")
    assert skel.endian == "big"
    v = rules.evaluate(rules.skeleton_load(skel), P73, store)
    assert (v.errno, v.log) == (errno.EACCES, CNT0)
    assert rules.evaluate(rules.skeleton_load(skel), P618, store).loads
    signed = _converted(signer, "sockfilter.bpfeb.signed.lskel.h")
    assert rules.evaluate(rules.skeleton_load(signed), P73, store).loads
