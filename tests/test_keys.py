"""bpfsign.crypto.keys: keygen output that openssl and the kernel accept; loading; FileSigner."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from bpfsign.crypto import keys
from bpfsign.crypto.signer import Signer
from bpfsign.errors import InputError


def openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=False)


@pytest.fixture(scope="module")
def rsa_pair() -> keys.KeyPair:
    return keys.generate("rsa", bits=2048, subject="keys test")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, rsa_pair: keys.KeyPair) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("keys")
    keys.write_key(d / "k.key", rsa_pair.key)
    keys.write_cert(d / "k.crt", rsa_pair.cert_der)
    return d / "k.key", d / "k.crt"


def _subject_public_key_bits(cert_der: bytes) -> bytes:
    pub = x509.load_der_x509_certificate(cert_der).public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# -- generate ---------------------------------------------------------------


def test_default_is_rsa_3072_sha256() -> None:
    pair = keys.generate()
    assert isinstance(pair.key, rsa.RSAPrivateKey)
    assert pair.key.key_size == 3072
    cert = x509.load_der_x509_certificate(pair.cert_der)
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
    assert cert.subject.rfc4514_string() == "CN=bpfsign"


@pytest.mark.parametrize(
    ("kind", "curve", "sigalg", "curve_text"),
    [
        ("rsa", "P-256", "sha256WithRSAEncryption", None),
        ("ec", "P-256", "ecdsa-with-SHA256", "NIST CURVE: P-256"),
        ("ec", "P-384", "ecdsa-with-SHA384", "NIST CURVE: P-384"),
    ],
)
def test_openssl_shows_kernel_extensions(
    tmp_path: Path, kind: str, curve: str, sigalg: str, curve_text: str | None
) -> None:
    pair = keys.generate(kind, bits=2048, curve=curve, subject="ext test")  # type: ignore[arg-type]
    keys.write_cert(tmp_path / "c.crt", pair.cert_der)
    out = openssl("x509", "-in", str(tmp_path / "c.crt"), "-noout", "-text")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    lines = [line.strip() for line in text.splitlines()]
    assert lines[lines.index("X509v3 Basic Constraints: critical") + 1] == "CA:FALSE"
    assert lines[lines.index("X509v3 Key Usage: critical") + 1] == "Digital Signature"
    skid_hex = hashlib.sha1(_subject_public_key_bits(pair.cert_der)).hexdigest()
    colon = ":".join(skid_hex[i : i + 2] for i in range(0, 40, 2)).upper()
    assert lines[lines.index("X509v3 Subject Key Identifier:") + 1] == colon
    assert lines[lines.index("X509v3 Authority Key Identifier:") + 1] in (colon, f"keyid:{colon}")
    assert pair.skid.hex() == skid_hex
    assert f"Signature Algorithm: {sigalg}" in text
    assert "Subject: CN = ext test" in text
    if curve_text:
        assert curve_text in text


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openssl_cms_signs_with_keyid(tmp_path: Path, kind: str) -> None:
    pair = keys.generate(kind, bits=2048)  # type: ignore[arg-type]
    keys.write_key(tmp_path / "k.key", pair.key)
    keys.write_cert(tmp_path / "k.crt", pair.cert_der)
    (tmp_path / "msg").write_bytes(b"payload")
    signed = openssl(
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-nocerts",
        "-keyid",
        "-nosmimecap",
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-in",
        str(tmp_path / "msg"),
        "-inkey",
        str(tmp_path / "k.key"),
        "-signer",
        str(tmp_path / "k.crt"),
        "-out",
        str(tmp_path / "sig"),
    )
    assert signed.returncode == 0, signed.stderr
    verified = openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "sig"),
        "-content",
        str(tmp_path / "msg"),
        "-certfile",
        str(tmp_path / "k.crt"),
        "-nointern",
        "-CAfile",
        str(tmp_path / "k.crt"),
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    )
    assert verified.returncode == 0, verified.stderr
    assert b"CMS Verification successful" in verified.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "dsa"}, "unsupported key type 'dsa'; use rsa or ec"),
        ({"kind": "rsa", "bits": 1024}, "RSA key size 1024 is out of range; use 2048..16384"),
        ({"kind": "ec", "curve": "P-521"}, "unsupported curve 'P-521'; use P-256 or P-384"),
        ({"kind": "ec", "days": 0}, "validity of 0 days is too short; use at least 1"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as info:
        keys.generate(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


# -- write ------------------------------------------------------------------


def test_key_file_is_0600_even_with_permissive_umask(
    tmp_path: Path, rsa_pair: keys.KeyPair
) -> None:
    old = os.umask(0)
    try:
        keys.write_key(tmp_path / "k.key", rsa_pair.key)
        keys.write_cert(tmp_path / "k.crt", rsa_pair.cert_der)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "k.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "k.crt").st_mode) == 0o644
    assert (tmp_path / "k.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert (tmp_path / "k.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----\n")


def test_cert_written_as_der_by_suffix(tmp_path: Path, rsa_pair: keys.KeyPair) -> None:
    keys.write_cert(tmp_path / "c.der", rsa_pair.cert_der)
    assert (tmp_path / "c.der").read_bytes() == rsa_pair.cert_der
    assert keys.is_der(rsa_pair.cert_der)


# -- load -------------------------------------------------------------------


def test_load_pem_and_der_round_trip(
    tmp_path: Path, files: tuple[Path, Path], rsa_pair: keys.KeyPair
) -> None:
    key_path, cert_path = files
    der_key = tmp_path / "k.der"
    der_cert = tmp_path / "c.der"
    assert (
        openssl("pkey", "-in", str(key_path), "-outform", "DER", "-out", str(der_key)).returncode
        == 0
    )
    assert (
        openssl("x509", "-in", str(cert_path), "-outform", "DER", "-out", str(der_cert)).returncode
        == 0
    )
    assert keys.is_der(der_key.read_bytes())
    want = rsa_pair.key.private_numbers()
    for path in (key_path, der_key):
        loaded = keys.load_private_key(path)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        assert loaded.private_numbers() == want
    assert keys.load_certificate(cert_path) == rsa_pair.cert_der
    assert keys.load_certificate(der_cert) == rsa_pair.cert_der


@pytest.mark.parametrize(
    ("genpkey", "size"),
    [
        (("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"), 256),
        (("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"), 384),
        (("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), 2048),
    ],
    ids=["P-256", "P-384", "RSA-2048"],
)
def test_der_keys_in_pkcs8_and_traditional_form_whatever_the_length_form(
    tmp_path: Path, genpkey: tuple[str, ...], size: int
) -> None:
    """bpftool reads keys as PEM only; DER keys are ours, short-form lengths included."""
    pem = tmp_path / "k.pem"
    assert openssl("genpkey", *genpkey, "-out", str(pem)).returncode == 0
    pkcs8, trad = tmp_path / "pkcs8.der", tmp_path / "trad.der"
    assert openssl("pkey", "-in", str(pem), "-outform", "DER", "-out", str(pkcs8)).returncode == 0
    kind = "ec" if genpkey[1] == "EC" else "rsa"
    assert openssl(kind, "-in", str(pem), "-outform", "DER", "-out", str(trad)).returncode == 0
    want = keys.load_private_key(pem).private_numbers()
    for path in (pkcs8, trad):
        loaded = keys.load_private_key(path)
        assert loaded.key_size == size
        assert loaded.private_numbers() == want
    if size == 256:  # SEC1 P-256 is 121 bytes, short-form length: the cert sniff misses it
        data = trad.read_bytes()
        assert (len(data), data[:2]) == (121, b"\x30\x77") and not keys.is_der(data)


def test_garbage_key_without_pem_header_is_not_a_private_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(InputError) as exc:
        keys.load_private_key(bad)
    assert str(exc.value) == (
        f"{bad}: not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)"
    )


def test_load_traditional_pkcs1_and_sec1(tmp_path: Path) -> None:
    assert (
        openssl("genrsa", "-traditional", "-out", str(tmp_path / "r.key"), "2048").returncode == 0
    )
    assert (tmp_path / "r.key").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert isinstance(keys.load_private_key(tmp_path / "r.key"), rsa.RSAPrivateKey)
    ec_out = openssl(
        "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", str(tmp_path / "e.key")
    )
    assert ec_out.returncode == 0
    assert (tmp_path / "e.key").read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    loaded = keys.load_private_key(tmp_path / "e.key")
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.curve.name == "secp384r1"


def test_encrypted_key_needs_the_right_passphrase(tmp_path: Path, rsa_pair: keys.KeyPair) -> None:
    path = tmp_path / "enc.key"
    path.write_bytes(
        rsa_pair.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right"),
        )
    )
    with pytest.raises(InputError) as info:
        keys.load_private_key(path)
    assert str(info.value) == (f"{path}: private key is encrypted; give its passphrase")
    with pytest.raises(InputError) as info:
        keys.load_private_key(path, password=b"wrong")
    assert str(info.value) == f"wrong passphrase for {path}"
    loaded = keys.load_private_key(path, password=b"right")
    assert isinstance(loaded, rsa.RSAPrivateKey)


def _unsupported_keys(tmp_path: Path) -> list[tuple[Path, str]]:
    ed = tmp_path / "ed.key"
    ed.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pss = tmp_path / "pss.key"
    assert (
        openssl(
            "genpkey", "-algorithm", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pss)
        ).returncode
        == 0
    )
    k1 = tmp_path / "k1.key"
    assert (
        openssl("ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", str(k1)).returncode
        == 0
    )
    small = tmp_path / "small.key"
    assert openssl("genrsa", "-out", str(small), "1024").returncode == 0
    return [
        (
            ed,
            "unsupported key type Ed25519: the kernel verifies BPF signatures with RSA "
            "(PKCS#1 v1.5) or ECDSA P-256/P-384 keys only; make one with `bpfsign keygen`",
        ),
        (
            pss,
            "unsupported key type RSA-PSS: the kernel rejects RSA-PSS keys and signatures "
            "(ENOPKG); use a plain RSA key, e.g. from `bpfsign keygen`",
        ),
        (
            k1,
            "unsupported EC curve secp256k1: the kernel verifies BPF signatures with P-256 "
            "or P-384 only; make a P-256 or P-384 key",
        ),
        (
            small,
            "RSA key of 1024 bits is too small; use at least 2048 (bpfsign keygen makes RSA-3072)",
        ),
    ]


def test_unsupported_key_types_say_what_to_do(tmp_path: Path) -> None:
    for path, message in _unsupported_keys(tmp_path):
        with pytest.raises(InputError) as info:
            keys.load_private_key(path)
        assert str(info.value) == f"{path}: {message}"
        assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage\n", "not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)"),
        (
            b"\x30\x82\x01\x00\x00",
            "not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)",
        ),
        (b"", "not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)"),
    ],
)
def test_garbage_key(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        keys.load_private_key(path)
    assert str(info.value) == f"{path}: {message}"


def test_missing_and_garbage_files(tmp_path: Path, files: tuple[Path, Path]) -> None:
    with pytest.raises(InputError) as info:
        keys.load_private_key(tmp_path / "nope.key")
    assert str(info.value) == f"{tmp_path / 'nope.key'}: file not found"
    with pytest.raises(InputError) as info:
        keys.load_certificate(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, expected a file"
    with pytest.raises(InputError) as info:
        keys.load_certificate(files[0])  # a key is not a certificate
    assert str(info.value) == f"{files[0]}: not an X.509 certificate (expected PEM or DER)"


# -- FileSigner ---------------------------------------------------------------


def test_file_signer_rsa_matches_pkcs1v15(files: tuple[Path, Path], rsa_pair: keys.KeyPair) -> None:
    signer = keys.FileSigner.from_files(*files)
    assert isinstance(signer, Signer)
    assert signer.key_type == "rsa"
    assert signer.certificate == rsa_pair.cert_der
    for name, algorithm in (
        ("sha256", hashes.SHA256()),
        ("sha384", hashes.SHA384()),
        ("sha512", hashes.SHA512()),
    ):
        digest = hashlib.new(name, b"msg").digest()
        sig = signer.sign_digest(digest, name)  # type: ignore[arg-type]
        # PKCS#1 v1.5 is deterministic: same bytes as signing the message directly
        assert isinstance(rsa_pair.key, rsa.RSAPrivateKey)
        assert sig == rsa_pair.key.sign(b"msg", padding.PKCS1v15(), algorithm)


def test_file_signer_ec_returns_der(tmp_path: Path) -> None:
    pair = keys.generate("ec", curve="P-384")
    signer = keys.FileSigner(pair.key, pair.cert_der)
    assert signer.key_type == "ec"
    digest = hashlib.sha384(b"msg").digest()
    sig = signer.sign_digest(digest, "sha384")
    assert sig[0] == 0x30  # DER Ecdsa-Sig-Value
    public = pair.key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def test_file_signer_rejects_wrong_digest_length(rsa_pair: keys.KeyPair) -> None:
    signer = keys.FileSigner(rsa_pair.key, rsa_pair.cert_der)
    with pytest.raises(InputError) as info:
        signer.sign_digest(b"\0" * 20, "sha256")
    assert str(info.value) == "sha256 digest must be 32 bytes, got 20"


def test_key_certificate_mismatch(tmp_path: Path, files: tuple[Path, Path]) -> None:
    other = keys.generate("rsa", bits=2048, subject="someone else")
    keys.write_cert(tmp_path / "other.crt", other.cert_der)
    with pytest.raises(InputError) as info:
        keys.FileSigner.from_files(files[0], tmp_path / "other.crt")
    assert str(info.value) == (
        f"{files[0]}: the private key does not match the certificate's public key "
        "(certificate subject CN=someone else); pass the key and the certificate "
        "that were made together"
    )


def test_damaged_rsa_key_never_yields_a_signature(
    tmp_path: Path, files: tuple[Path, Path], rsa_pair: keys.KeyPair
) -> None:
    # from_files skips OpenSSL's slow RSA consistency check, so sign_digest verifies each
    # signature against the certificate: a key whose private part is damaged (same n and
    # e, so it matches the certificate) is refused when it signs, never written out.
    assert isinstance(rsa_pair.key, rsa.RSAPrivateKey)
    good = rsa_pair.key.private_numbers()
    bad = rsa.RSAPrivateNumbers(
        p=good.p,
        q=good.q,
        d=good.d + 2,
        dmp1=good.dmp1 + 2,
        dmq1=good.dmq1,
        iqmp=good.iqmp,
        public_numbers=good.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    path = tmp_path / "damaged.key"
    keys.write_key(path, bad)
    with pytest.raises(InputError) as info:
        keys.load_private_key(path)  # checked by default
    assert str(info.value) == (
        f"{path}: not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)"
    )
    signer = keys.FileSigner.from_files(path, files[1])
    with pytest.raises(InputError) as info:
        signer.sign_digest(hashlib.sha256(b"msg").digest(), "sha256")
    assert str(info.value) == (
        f"{path}: the RSA private key is inconsistent (its signature does not verify "
        "against its own public key): the key file is damaged"
    )


def test_repr_shows_no_key_material(rsa_pair: keys.KeyPair) -> None:
    signer = keys.FileSigner(rsa_pair.key, rsa_pair.cert_der)
    text = repr(signer)
    assert text.startswith("FileSigner(key_type='rsa', cert_sha256=")
    numbers = rsa_pair.key.private_numbers()
    assert isinstance(numbers, rsa.RSAPrivateNumbers)
    assert str(numbers.d)[:20] not in text
    assert "PRIVATE" not in text


def test_rsa_pss_certificate_is_refused(tmp_path: Path, rsa_pair: keys.KeyPair) -> None:
    made = openssl(
        "req", "-new", "-x509", "-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048",
        "-nodes", "-subj", "/CN=pss", "-keyout", str(tmp_path / "pss.key"),
        "-out", str(tmp_path / "pss.crt"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with pytest.raises(InputError) as info:
        keys.FileSigner(rsa_pair.key, keys.load_certificate(tmp_path / "pss.crt"))
    assert str(info.value) == (
        "the certificate holds an RSA-PSS key, which the kernel refuses (ENOPKG); "
        "use a plain RSA certificate, e.g. from `bpfsign keygen`"
    )
