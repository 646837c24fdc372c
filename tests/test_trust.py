"""The user-space keyring model (docs/kernel.md §5, §12.6)."""

from __future__ import annotations

import hashlib
from errno import EINVAL

import pytest

from _pki import pki
from bpfsign.crypto.trust import KEY_SPEC_SESSION_KEYRING, TrustStore
from bpfsign.crypto.x509 import Certificate
from bpfsign.errors import InputError, VerificationError


@pytest.mark.parametrize("keyring_id", [3, -1, -2, -7, -8, 0x3FFFFFF0, 0x7FFF0000])
def test_unresolvable_ids_are_einval_with_the_kernel_message(keyring_id: int) -> None:
    with pytest.raises(VerificationError) as info:
        TrustStore().resolve(keyring_id)
    assert info.value.errno == EINVAL
    assert info.value.reason == f"cannot resolve signing keyring with keyring_id {keyring_id}"


def test_resolvable_ids() -> None:
    store = TrustStore()
    assert [r.description for r in (store.resolve(i) for i in (0, 1, -3, -4, -5))] == [
        "builtin",
        "secondary",
        "session",
        "user",
        "user-session",
    ]
    assert store.resolve(1).keyrings == (store.builtin, store.secondary)
    platform = store.resolve(2)  # absent: resolves, but the search finds nothing (ENOKEY later)
    assert platform.keyrings == () and platform.missing_reason == "the platform keyring is absent"
    assert store.resolve(store.session.serial).keyrings == (store.session,)
    no_secondary = TrustStore(secondary=False)
    assert no_secondary.resolve(1).keyrings == (no_secondary.builtin,)


def test_key_serial_is_not_a_keyring() -> None:
    store = TrustStore()
    serial = store.add(pki("rsa2048").cert_der)
    resolved = store.resolve(serial)
    assert resolved.keyrings == ()
    assert resolved.missing_reason.startswith(
        f"keyring_id {serial} is a key's serial, not a keyring"
    )


def test_search_is_exact_and_per_keyring() -> None:
    store = TrustStore()
    cert = Certificate.from_der(pki("rsa2048").cert_der)
    store.add(cert, "builtin")
    assert cert.skid is not None
    for key_id in cert.key_ids:
        assert store.resolve(0).find(key_id) == (cert, store.builtin)
        assert store.resolve(1).find(key_id) == (cert, store.builtin)
        assert store.resolve(KEY_SPEC_SESSION_KEYRING).find(key_id) is None
    assert store.resolve(0).find(cert.skid[:-1]) is None  # exact, not partial
    assert store.resolve(0).find(b"") is None


def test_nested_user_keyring_is_searched() -> None:
    store = TrustStore()
    cert = Certificate.from_der(pki("p256").cert_der)
    ring = store.create_keyring("bpf")  # linked into the session keyring
    store.add(cert, ring)
    assert store.resolve(ring).find(cert.issuer_serial_id) == (cert, store._by_serial[ring])
    assert store.resolve(-3).find(cert.issuer_serial_id) is not None
    assert store.resolve(-4).find(cert.issuer_serial_id) is None
    store.link(ring, "user")
    assert store.resolve(-4).find(cert.issuer_serial_id) is not None


def test_add_path_and_refusals(tmp_path: object) -> None:
    store = TrustStore()
    serials = store.add_path(pki("rsa2048").cert)
    assert len(serials) == 1
    with pytest.raises(InputError) as info:
        store.add_path(pki("rsa-pss").cert)
    assert "add_key refuses (ENOPKG)" in str(info.value) and str(pki("rsa-pss").cert) in str(
        info.value
    )
    with pytest.raises(InputError, match="unknown keyring name 'nope'"):
        store.add(pki("rsa2048").cert_der, "nope")
    with pytest.raises(InputError, match="no platform keyring"):
        store.add(pki("rsa2048").cert_der, "platform")


def test_blacklist_forms() -> None:
    cert = Certificate.from_der(pki("rsa2048").cert_der)
    for entry in (
        hashlib.sha256(cert.der).digest(),
        "tbs:" + hashlib.sha256(cert.tbs).hexdigest(),
        hashlib.sha256(cert.tbs).hexdigest().upper(),
    ):
        store = TrustStore()
        assert not store.is_blacklisted(cert)
        store.blacklist_add(entry)
        assert store.is_blacklisted(cert)
    with pytest.raises(InputError, match="is not a hex hash"):
        TrustStore().blacklist_add("xyz")


def test_add_path_directory_records_the_skipped_files(tmp_path: object) -> None:
    from pathlib import Path

    d = Path(str(tmp_path))
    a = pki("rsa2048")
    (d / "a.crt").write_bytes(a.cert.read_bytes())
    (d / "a.key").write_bytes(a.key.read_bytes())
    store = TrustStore()
    assert len(store.add_path(d)) == 1
    assert store.warnings == [
        f"{d / 'a.key'}: skipped, not a certificate "
        "(no certificate found (expected DER, or PEM with BEGIN CERTIFICATE))"
    ]
    assert [c.der for c in store.session.certificates] == [a.cert_der]
