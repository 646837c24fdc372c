"""X.509 parsing with our codec, checked against pyca's x509 module as the oracle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from _pki import pki
from bpfsign.crypto import der
from bpfsign.crypto.x509 import Certificate, CertificateError, load_certificates, looks_like_der
from bpfsign.errors import InputError


@pytest.mark.parametrize("kind", ["rsa2048", "rsa3072", "p256", "p384"])
def test_fields_match_pyca(kind: str) -> None:
    p = pki(kind)
    cert = Certificate.from_der(p.cert_der)
    ref = pyca_x509.load_der_x509_certificate(p.cert_der)
    assert cert.serial_number == ref.serial_number
    assert cert.subject == ref.subject.public_bytes()
    assert cert.issuer == ref.issuer.public_bytes()
    assert cert.subject_str == f"CN=bpf-signing-test ({kind})"
    skid = ref.extensions.get_extension_for_class(pyca_x509.SubjectKeyIdentifier).value.digest
    assert cert.skid == skid
    try:
        akid = ref.extensions.get_extension_for_class(pyca_x509.AuthorityKeyIdentifier).value
        assert cert.akid == akid.key_identifier
    except pyca_x509.ExtensionNotFound:  # OpenSSL 3 omits keyid AKIDs on self-signed certs
        assert cert.akid is None
    assert cert.self_signed
    assert cert.tbs == ref.tbs_certificate_bytes
    assert cert.signature_value == ref.signature
    assert cert.not_before == int(ref.not_valid_before_utc.timestamp())
    assert cert.not_after == int(ref.not_valid_after_utc.timestamp())
    key = cert.public_key()
    if kind.startswith("rsa"):
        assert isinstance(key, rsa.RSAPublicKey)
        assert key.public_numbers() == ref.public_key().public_numbers()  # type: ignore[union-attr]
        assert cert.key_description == f"RSA-{kind[3:]}"
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.public_numbers() == ref.public_key().public_numbers()  # type: ignore[union-attr]
        assert cert.key_description == {"p256": "EC P-256", "p384": "EC P-384"}[kind]


def test_kernel_key_ids() -> None:
    cert = Certificate.from_der(pki("rsa2048").cert_der)
    issuer_content = der.read(cert.issuer).content
    assert cert.issuer_serial_id == cert.serial + issuer_content
    assert cert.key_ids == (cert.issuer_serial_id, cert.skid)


def test_cert_without_skid_and_rsa_pss_key() -> None:
    noskid = Certificate.from_der(pki("noskid").cert_der)
    assert noskid.skid is None and noskid.akid is None
    assert noskid.key_ids == (noskid.issuer_serial_id,)
    pss = Certificate.from_der(pki("rsa-pss").cert_der)
    assert pss.key_type == "rsa-pss" and pss.key_description == "RSA-PSS-2048"
    with pytest.raises(CertificateError, match="RSA-PSS-2048 key"):
        pss.public_key()


def test_load_pem_der_bundle_and_directory(tmp_path: Path) -> None:
    a, b = pki("rsa2048"), pki("p256")
    (tmp_path / "a.der").write_bytes(a.cert_der)
    (tmp_path / "b.pem").write_bytes(b.cert.read_bytes())
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(a.cert.read_bytes() + b"\n" + b.cert.read_bytes())
    assert looks_like_der(a.cert_der)
    assert [c.der for c in load_certificates(tmp_path / "a.der")] == [a.cert_der]
    assert [c.der for c in load_certificates(bundle)] == [a.cert_der, b.cert_der]
    got = load_certificates(tmp_path)
    assert [c.der for c in got] == [a.cert_der, b.cert_der, a.cert_der, b.cert_der]


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello")
    with pytest.raises(InputError) as info:
        load_certificates(junk)
    assert (
        str(info.value)
        == f"{junk}: no certificate found (expected DER, or PEM with BEGIN CERTIFICATE)"
    )
    trunc = tmp_path / "trunc.der"
    trunc.write_bytes(pki("rsa2048").cert_der[:-10])
    with pytest.raises(InputError) as info:
        load_certificates(trunc)
    assert str(info.value).startswith(f"{trunc}: not a valid X.509 certificate: length ")
    with pytest.raises(InputError) as info:
        load_certificates(tmp_path / "missing.pem")
    assert str(info.value) == f"{tmp_path / 'missing.pem'}: file not found"


def test_directory_skips_files_that_are_not_certificates(tmp_path: Path) -> None:
    a = pki("p256")
    (tmp_path / "signer.crt").write_bytes(a.cert.read_bytes())
    (tmp_path / "signer.key").write_bytes(a.key.read_bytes())  # PEM, but no CERTIFICATE block
    der_key = subprocess.run(
        ["openssl", "pkey", "-in", str(pki("rsa2048").key), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert looks_like_der(der_key)
    (tmp_path / "signer.key.der").write_bytes(der_key)  # DER, but not X.509
    skipped: list[str] = []
    got = load_certificates(tmp_path, skipped=skipped)
    assert [c.der for c in got] == [a.cert_der]
    assert skipped[0] == (
        f"{tmp_path / 'signer.key'}: skipped, not a certificate "
        "(no certificate found (expected DER, or PEM with BEGIN CERTIFICATE))"
    )
    assert skipped[1].startswith(
        f"{tmp_path / 'signer.key.der'}: skipped, not a certificate (not a valid X.509 certificate"
    )
    assert len(skipped) == 2
    # a file named explicitly that is not a certificate stays an error
    with pytest.raises(CertificateError) as info:
        load_certificates(tmp_path / "signer.key")
    assert str(info.value) == (
        f"{tmp_path / 'signer.key'}: no certificate found (expected DER, or PEM with BEGIN "
        "CERTIFICATE)"
    )
    # and so does a directory without any certificate
    (tmp_path / "signer.crt").unlink()
    with pytest.raises(CertificateError) as info:
        load_certificates(tmp_path)
    assert str(info.value) == f"{tmp_path}: directory holds no certificates (2 other files)"


def _modules_after_verify(kind: str, backend: str) -> list[str]:
    """The modules a fresh ``verify`` process has imported, with the backend forced."""
    from _pki import PemSigner
    from bpfsign.crypto import cms

    p = pki(kind)
    sig = cms.sign(b"payload", PemSigner(p))
    code = (
        "import sys\n"
        "from bpfsign.crypto.trust import TrustStore\n"
        "from bpfsign.crypto.verify import verify\n"
        f"t = TrustStore(); t.add(bytes.fromhex('{p.cert_der.hex()}'))\n"
        f"verify(b'payload', bytes.fromhex('{sig.hex()}'), t)\n"
        "print(' '.join(sys.modules))"
    )
    env = {**os.environ, "BPFSIGN_CRYPTO_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.split()


@pytest.mark.parametrize("kind", ["rsa2048", "p256"])
def test_verify_imports_no_x509_or_serialization(kind: str) -> None:
    """Start-up budget (issue 2): with libcrypto (the default where it loads) a verify
    imports nothing of pyca; with pyca, keys are built from numbers, so pyca's x509
    and serialization modules (20-50 ms of imports) stay unloaded."""
    banned = ("dataclasses", "inspect")
    libcrypto = _modules_after_verify(kind, "libcrypto")
    assert [m for m in libcrypto if m.startswith(("cryptography", "hashlib", *banned))] == []
    assert "ctypes" in libcrypto
    pyca = _modules_after_verify(kind, "pyca")
    x509_or_ser = ("cryptography.x509", "cryptography.hazmat.primitives.serialization")
    assert [m for m in pyca if m.startswith((*x509_or_ser, *banned))] == []
    family = "rsa" if kind.startswith("rsa") else "ec"
    assert f"cryptography.hazmat.primitives.asymmetric.{family}" in pyca
    assert "ctypes" not in pyca


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_certificates_raise_only_certificate_error(data: st.DataObject) -> None:
    cert = bytearray(pki("rsa2048").cert_der)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(cert) - 1))
        cert[pos] = data.draw(st.integers(0, 255))
    try:
        parsed = Certificate.from_der(bytes(cert))
    except CertificateError:
        return
    assert parsed.key_ids and isinstance(parsed.subject_str, str)


def _fixture_cert_der() -> bytes:
    import subprocess

    pem = Path(__file__).parent / "fixtures" / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
    return subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-outform", "DER"], capture_output=True, check=True
    ).stdout


@pytest.mark.parametrize(
    ("version", "why"),
    [
        (5, "not a valid X.509 certificate: 5 is not a valid X509 version"),
        (-1, "not an X.509 certificate (expected PEM or DER)"),
    ],
)
def test_sign_cert_loading_refuses_an_out_of_range_version(
    tmp_path: Path, version: int, why: str
) -> None:
    """The signing path reads --cert with keys.load_certificate: an InputError, no traceback."""
    from bpfsign.crypto import keys

    good = _fixture_cert_der()
    at = good.index(bytes.fromhex("a003020102"))
    bad = (
        good[:at]
        + bytes.fromhex("a0030201")
        + version.to_bytes(1, "big", signed=True)
        + good[at + 5 :]
    )
    path = tmp_path / "bad.der"
    path.write_bytes(bad)
    with pytest.raises(InputError) as exc:
        keys.load_certificate(path)
    assert str(exc.value) == f"{path}: {why}"
    # our own reader (the SignedData builder's) still parses it: the kernel ignores the version
    assert Certificate.from_der(bad).serial == Certificate.from_der(good).serial


def test_malformed_subject_is_a_certificate_error() -> None:
    good = _fixture_cert_der()
    cert = Certificate.from_der(good)
    at = good.rindex(cert.subject)  # self-signed: the issuer has the same bytes first
    assert good[at + 2] == 0x31  # the subject's first RDN, a SET
    bad = bytearray(good)
    bad[at + 3] = 0x7F  # claims more bytes than the Name holds
    with pytest.raises(CertificateError) as exc:
        Certificate.from_der(bytes(bad))
    assert exc.value.reason.startswith("not a valid X.509 certificate: length 127 runs past")
    bad = bytearray(good)
    bad[at + 2] = 0x30  # a SEQUENCE where the SET goes
    with pytest.raises(CertificateError) as exc:
        Certificate.from_der(bytes(bad))
    assert exc.value.reason == "malformed subject Name: a RelativeDistinguishedName is not a SET"
