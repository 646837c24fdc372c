"""Kernel keyrings: certificates as asymmetric keys, named keyrings, list, remove."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfsign.cli import main
from bpfsign.errors import InputError, KernelError
from bpfsign.kernel import keyring

CERT_PEM = Path(__file__).parent / "fixtures" / "keys" / "TEST-ONLY-lskel-signing.cert.pem"


@pytest.fixture(scope="module")
def cert_der() -> bytes:
    return subprocess.run(
        ["openssl", "x509", "-in", str(CERT_PEM), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def skid(cert_der: bytes) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(CERT_PEM), "-noout", "-ext", "subjectKeyIdentifier"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()[-1].strip().replace(":", "").lower()


@pytest.fixture
def ring_name() -> Iterator[str]:
    """A fresh keyring name; the keyring is unlinked from the session keyring afterwards."""
    name = f"bpfsign-test-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        serial = keyring.resolve_keyring(name)
    except InputError:
        return
    keyring.remove_key(serial, keyring="session")


def test_pem_and_der_give_the_same_certificate(cert_der: bytes) -> None:
    assert keyring.certificate_der(CERT_PEM.read_bytes()) == cert_der
    assert keyring.certificate_der(cert_der) == cert_der


def test_not_a_certificate_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not a certificate") as info:
        keyring.certificate_der(b"hello", path="x.pem")
    assert info.value.path == "x.pem"


@pytest.mark.kernel
def test_add_list_remove_in_a_named_keyring(cert_der: bytes, skid: str, ring_name: str) -> None:
    added = keyring.add_certificate(CERT_PEM.read_bytes(), keyring=ring_name)
    assert added.keyring == keyring.resolve_keyring(ring_name)
    assert added.keyring != added.serial
    assert added.description.endswith(skid)  # the kernel names it "<CN>: <SKID>"
    keys = keyring.list_keys(ring_name)
    assert [(k.serial, k.type) for k in keys] == [(added.serial, "asymmetric")]
    session = keyring.list_keys("session")
    assert any(
        k.serial == added.keyring and k.type == "keyring" and k.description == ring_name
        for k in session
    )
    assert keyring.remove_key(added.serial, keyring=ring_name) == added.keyring
    assert keyring.list_keys(ring_name) == []


@pytest.mark.kernel
def test_session_resolves_to_a_persistent_keyring_not_a_new_anonymous_one() -> None:
    first = keyring.resolve_keyring("session", create=True)
    assert first > 0
    assert keyring.resolve_keyring(-3) == first
    assert keyring.describe(first).type == "keyring"


@pytest.mark.kernel
def test_unknown_keyring_name_without_create_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no keyring named 'bpfsign-nope-"):
        keyring.resolve_keyring(f"bpfsign-nope-{uuid.uuid4().hex[:8]}")


@pytest.mark.kernel
def test_garbage_der_certificate_is_refused_by_the_kernel(ring_name: str) -> None:
    with pytest.raises(KernelError) as info:
        keyring.add_certificate(b"\x30\x03\x02\x01\x00", keyring=ring_name)
    assert info.value.errno == errno.EBADMSG
    assert info.value.command == "add_key"


@pytest.mark.kernel
def test_removing_a_key_that_is_not_linked_there_is_enoent(cert_der: bytes, ring_name: str) -> None:
    added = keyring.add_certificate(cert_der, keyring=ring_name)
    keyring.remove_key(added.serial, keyring=ring_name)
    with pytest.raises(KernelError) as info:
        keyring.remove_key(added.serial, keyring=ring_name)
    assert info.value.errno in (errno.ENOENT, errno.ENOKEY)
    assert info.value.command == "keyctl(KEYCTL_UNLINK)"


@pytest.mark.kernel
def test_cli_keyring_add_list_remove(capsys: pytest.CaptureFixture[str], ring_name: str) -> None:
    assert main(["keyring", "add", str(CERT_PEM), "--keyring", ring_name, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert "never the key's own serial" in added["note"]
    assert main(["keyring", "list", "--keyring", ring_name, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["keyring"] == added["keyring"]
    assert [k["serial"] for k in listed["keys"]] == [added["key"]]
    assert main(["keyring", "remove", str(added["key"]), "--keyring", ring_name]) == 0
    assert f"key {added['key']} unlinked from keyring {added['keyring']}" in capsys.readouterr().out


@pytest.mark.kernel
def test_cli_keyring_add_text_reminds_about_keyring_id(
    capsys: pytest.CaptureFixture[str], ring_name: str
) -> None:
    assert main(["keyring", "add", str(CERT_PEM), "--keyring", ring_name]) == 0
    out = capsys.readouterr().out
    assert "bpfsign load SKEL --keyring" in out
    assert "never the key's own serial" in out


@pytest.mark.kernel
def test_link_key_makes_it_visible_in_a_second_keyring(cert_der: bytes, ring_name: str) -> None:
    other = f"{ring_name}-b"
    added = keyring.add_certificate(cert_der, keyring=ring_name)
    try:
        ring = keyring.link_key(added.serial, keyring=other)
        assert ring == keyring.resolve_keyring(other) != added.keyring
        assert [k.serial for k in keyring.list_keys(other)] == [added.serial]
        assert [k.serial for k in keyring.list_keys(ring_name)] == [added.serial]
    finally:
        keyring.remove_key(keyring.resolve_keyring(other), keyring="session")


@pytest.mark.kernel
def test_join_session_keyring_gives_a_fresh_empty_session() -> None:
    """In a child process: joining replaces the caller's session keyring for good."""
    code = (
        "from bpfsign.kernel import keyring\n"
        "before = keyring.resolve_keyring('session')\n"
        "new = keyring.join_session_keyring()\n"
        "print(before, new, keyring.resolve_keyring('session'), len(keyring.list_keys(new)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, new, now, count = map(int, out.stdout.split())
    assert new == now != before
    assert count == 0
