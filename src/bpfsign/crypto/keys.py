"""Signing keys held in files: load, generate, write, and sign digests with them.

Keys and certificates load from PEM or DER, sniffed the way bpftool (and the
kernel's sign-file) do it. Generated certificates carry exactly what the kernel
needs for the bpftool signature shape: a subjectKeyIdentifier, keyUsage
digitalSignature and basicConstraints CA:FALSE. Signing reads the certificate
with our own parser (bpfsign.crypto.x509): importing cryptography.x509 costs
more than the rest of signing a header, so only keygen and error messages
import it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .._fileio import MAX_SMALL_FILE, atomic_write, read_input
from ..errors import InputError
from . import der as der_codec
from . import x509 as _x509
from .signer import HashName, KeyType

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Curve = Literal["P-256", "P-384"]

#: Curves the kernel's ECDSA verifier accepts for BPF signatures (spec docs/cms.md §5).
_CURVES: dict[str, type[ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}
_CURVE_BY_OID_NAME = {"secp256r1": "P-256", "secp384r1": "P-384"}
_SELF_SIG_HASH: dict[str, type[hashes.SHA256 | hashes.SHA384]] = {
    "P-256": hashes.SHA256,
    "P-384": hashes.SHA384,
}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

#: DER of OID 1.2.840.113549.1.1.10 (id-RSASSA-PSS): pyca loads such keys as
#: plain RSA, but the kernel refuses them (ENOPKG), so spot them ourselves.
_RSA_PSS_OID = bytes.fromhex("06092a864886f70d01010a")

MIN_RSA_BITS = 2048


def is_der(data: bytes) -> bool:
    """bpftool's sniff: DER when a SEQUENCE with a 1..4-octet long-form length starts the file."""
    return len(data) >= 2 and data[0] == 0x30 and 0x81 <= data[1] <= 0x84


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    return read_input(path, limit=MAX_SMALL_FILE, what=what)


def _pem_to_der(data: bytes) -> bytes | None:
    """The first PEM block's DER bytes, or None when there is no PEM block."""
    import base64
    import binascii

    start = data.find(b"-----BEGIN ")
    if start < 0:
        return None
    body_start = data.find(b"\n", start)
    end = data.find(b"-----END ", body_start)
    if body_start < 0 or end < 0:
        return None
    body = b"".join(line.strip() for line in data[body_start:end].splitlines() if b":" not in line)
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_key(key: object, path: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise InputError(
                f"RSA key of {key.key_size} bits is too small; use at least {MIN_RSA_BITS} "
                "(bpfsign keygen makes RSA-3072)",
                path=path,
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve = _CURVE_BY_OID_NAME.get(key.curve.name)
        if curve is None:
            raise InputError(
                f"unsupported EC curve {key.curve.name}: the kernel verifies BPF signatures "
                "with P-256 or P-384 only; make a P-256 or P-384 key",
                path=path,
            )
        return key
    kind = type(key).__name__.removesuffix("PrivateKey") or "unknown"
    raise InputError(
        f"unsupported key type {kind}: the kernel verifies BPF signatures with RSA "
        "(PKCS#1 v1.5) or ECDSA P-256/P-384 keys only; make one with `bpfsign keygen`",
        path=path,
    )


#: Permission bits that make a private key file readable by someone other than its owner.
_OTHERS_READ = 0o044

#: What a caller may pass as a passphrase: the bytes, or a function asked only when the
#: key turns out to be encrypted (e.g. a terminal prompt), or None.
Passphrase = bytes | Callable[[], bytes | None] | None

_ENCRYPTED_HINT = "private key is encrypted; give its passphrase"


def _pem_block(data: bytes, label_suffix: bytes) -> tuple[bytes, list[bytes], bytes] | None:
    """The first PEM block whose label ends with ``label_suffix``: (label, header lines, body)."""
    pos = 0
    while True:
        start = data.find(b"-----BEGIN ", pos)
        if start < 0:
            return None
        label_end = data.find(b"-----", start + 11)
        if label_end < 0:
            return None
        label = data[start + 11 : label_end]
        end = data.find(b"-----END " + label + b"-----", label_end)
        if end < 0:
            return None
        if label.endswith(label_suffix):
            lines = [line.strip() for line in data[label_end + 5 : end].splitlines()]
            headers = [line for line in lines if b":" in line]
            body = b"".join(line for line in lines if line and b":" not in line)
            return label, headers, body
        pos = end


def is_encrypted_key(data: bytes) -> bool:
    """Whether a key file's *structure* says it is encrypted (no decryption attempted).

    PEM: a PKCS#8 ``ENCRYPTED PRIVATE KEY`` block, or a traditional block with a
    ``Proc-Type: 4,ENCRYPTED`` header. DER: an EncryptedPrivateKeyInfo, i.e. a
    SEQUENCE of exactly an AlgorithmIdentifier (SEQUENCE starting with an OID) and
    an OCTET STRING; every unencrypted form (PKCS#8, PKCS#1, SEC1) starts with an
    INTEGER version instead.
    """
    if b"-----BEGIN " in data:
        block = _pem_block(data, b"PRIVATE KEY")
        if block is None:
            return False
        label, headers, _ = block
        if label == b"ENCRYPTED PRIVATE KEY":
            return True
        return any(h.replace(b" ", b"").upper() == b"PROC-TYPE:4,ENCRYPTED" for h in headers)
    from . import der

    try:
        top = der.read(data)
        if top.tag != der.SEQUENCE or top.end != len(data):
            return False
        children = top.children()
        if len(children) != 2:
            return False
        algorithm, encrypted = children
        if algorithm.tag != der.SEQUENCE or encrypted.tag != der.OCTET_STRING:
            return False
        first = next(algorithm.iter_children(), None)
        return first is not None and first.tag == der.OID
    except ValueError:  # der.DERError: not even DER, so not an EncryptedPrivateKeyInfo
        return False


def check_key_permissions(path: str | os.PathLike[str], mode: int) -> None:
    """Refuse a private key file that its group or others can read (``mode``: st_mode)."""
    if mode & _OTHERS_READ:
        where = os.fspath(path)
        raise InputError(
            f"private key file is readable by its group or others (mode "
            f"{stat.S_IMODE(mode):04o}); run `chmod 600 {where}`, or allow insecure key "
            "permissions to use it anyway",
            path=where,
        )


def _read_key(path: str | os.PathLike[str], check_permissions: bool) -> bytes:
    """Read a key file; with ``check_permissions``, the mode of the very file read (fstat)."""

    def check(st: os.stat_result) -> None:
        if check_permissions:
            check_key_permissions(path, st.st_mode)

    return read_input(path, limit=MAX_SMALL_FILE, what="private key", check=check)


def _wrong_passphrase(where: str) -> InputError:
    error = InputError(f"wrong passphrase for {where}")
    error.path = where  # the message names the file itself; the CLI still sees which file
    return error


def load_private_key(
    path: str | os.PathLike[str],
    *,
    password: Passphrase = None,
    check_permissions: bool = False,
    check_rsa_key: bool = True,
) -> PrivateKey:
    """Load an RSA or EC private key from a PEM or DER file (PKCS#8, PKCS#1 or SEC1).

    A key is PEM when it has a PEM header and DER otherwise, whatever its length
    form: a SEC1 P-256 key is 121 bytes (``30 77``, short form), which bpftool's
    certificate sniff (:func:`is_der`) would miss. bpftool itself reads keys as
    PEM only, so DER keys are a bpfsign extension.

    Encrypted keys (PKCS#8 EncryptedPrivateKeyInfo, PEM or DER, and traditional
    PEM with ``Proc-Type: 4,ENCRYPTED``) are recognised by their structure, so a
    wrong passphrase is always reported as one: CBC decryption with a wrong key
    passes the padding check about once in 256 tries, and the garbage it yields
    must not be called "not a private key". ``password`` may be a function; it
    is called only for an encrypted key. ``check_permissions`` refuses a file
    that its group or others can read (the CLI's default). ``check_rsa_key=False``
    skips OpenSSL's consistency check of an RSA key (primality tests of p and q:
    about 0.1-0.2 s for RSA-3072, more than the rest of signing a header); only for
    a caller that verifies what the key signs, as :class:`FileSigner` does.
    """
    where = os.fspath(path)
    data = _read_key(path, check_permissions)
    pem = b"-----BEGIN " in data
    der = _pem_to_der(data) if pem else data
    if der is not None and _RSA_PSS_OID in der[:40]:
        raise InputError(
            "unsupported key type RSA-PSS: the kernel rejects RSA-PSS keys and signatures "
            "(ENOPKG); use a plain RSA key, e.g. from `bpfsign keygen`",
            path=where,
        )
    load = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    skip = not check_rsa_key

    def loader(data: bytes, password: bytes | None) -> object:
        return load(data, password, unsafe_skip_rsa_key_validation=skip)

    if is_encrypted_key(data):
        secret = password() if callable(password) else password
        if secret is None:
            raise InputError(_ENCRYPTED_HINT, path=where)
        try:
            key = loader(data, password=secret)
        except UnsupportedAlgorithm as exc:
            raise InputError(f"unsupported key encryption: {exc}", path=where) from None
        except (ValueError, TypeError):
            # The structure says encrypted: whatever fails now is the passphrase, even when
            # the wrong key happened to give valid CBC padding and garbage plaintext.
            raise _wrong_passphrase(where) from None
        return _check_key(key, where)
    if isinstance(password, bytes):
        raise InputError(
            "a passphrase was given but the private key is not encrypted; drop the passphrase",
            path=where,
        )
    try:
        key = loader(data, password=None)
    except (ValueError, TypeError):
        raise InputError(
            "not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)",
            path=where,
        ) from None
    except UnsupportedAlgorithm as exc:
        raise InputError(f"unsupported key algorithm: {exc}", path=where) from None
    return _check_key(key, where)


def load_certificate(path: str | os.PathLike[str]) -> bytes:
    """Load one X.509 certificate from a PEM or DER file and return its DER bytes.

    Read with our own parser (bpfsign.crypto.x509: the kernel's view, the same one
    the SignedData builder and ``verify`` use), which refuses what the kernel's
    parser refuses, plus an X.509 version pyca does not know. It is laxer than pyca
    about parts the kernel does not read (an AlgorithmIdentifier's parameters, the
    OIDs inside a Name, a UTCTime's form); only when it refuses a file is pyca asked,
    so that the message is the one this function always gave.
    """
    where = os.fspath(path)
    data = _read(path, "certificate")
    ours = _parse_certificate(data)
    if ours is not None:
        return ours.der
    # Ours refused it: pyca says why, in the words this function always used.
    from cryptography import x509

    try:
        cert = (
            x509.load_der_x509_certificate(data)
            if is_der(data)
            else x509.load_pem_x509_certificate(data)
        )
    except x509.InvalidVersion as exc:  # not a ValueError: pyca's own type
        raise InputError(f"not a valid X.509 certificate: {exc}", path=where) from None
    except ValueError:
        raise InputError("not an X.509 certificate (expected PEM or DER)", path=where) from None
    return cert.public_bytes(serialization.Encoding.DER)


def _parse_certificate(data: bytes) -> _x509.Certificate | None:
    """The (first) certificate in ``data`` as our own parser reads it, or None when it
    does not (the caller then asks pyca why)."""
    try:
        cert = _x509.certificates_from_bytes(data)[0]
        version = der_codec.read(cert.tbs).children()[0]
        if version.tag == 0xA0 and version.children()[0].content not in (b"\0", b"\1", b"\2"):
            return None  # the kernel ignores the version; pyca refuses one it does not know
    except (_x509.CertificateError, der_codec.DERError, IndexError):
        return None
    return cert


@dataclass(frozen=True)
class KeyPair:
    """A private key, its self-signed certificate (DER) and the certificate's SKID."""

    key: PrivateKey
    cert_der: bytes
    skid: bytes


def generate(
    kind: KeyType = "rsa",
    *,
    bits: int = 3072,
    curve: Curve = "P-256",
    subject: str = "bpfsign",
    days: int = 3650,
) -> KeyPair:
    """Make a key and a self-signed certificate that the kernel's keyring accepts."""
    key: PrivateKey
    if kind == "rsa":
        if bits < MIN_RSA_BITS or bits > 16384:
            raise InputError(f"RSA key size {bits} is out of range; use {MIN_RSA_BITS}..16384")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        sig_hash: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
    elif kind == "ec":
        if curve not in _CURVES:
            raise InputError(f"unsupported curve {curve!r}; use P-256 or P-384")
        key = ec.generate_private_key(_CURVES[curve]())
        sig_hash = _SELF_SIG_HASH[curve]()
    else:
        raise InputError(f"unsupported key type {kind!r}; use rsa or ec")
    if days < 1:
        raise InputError(f"validity of {days} days is too short; use at least 1")
    if not subject:
        raise InputError("the subject common name must not be empty")

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    public = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    skid = x509.SubjectKeyIdentifier.from_public_key(public)
    import datetime

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(skid, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(skid), critical=False
        )
        .sign(key, sig_hash)
    )
    return KeyPair(key, cert.public_bytes(serialization.Encoding.DER), skid.digest)


def write_key(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM key (what bpftool reads), mode 0600 from the first byte."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(path, data, mode=0o600)


def write_cert(path: str | os.PathLike[str], cert_der: bytes) -> None:
    """Write a certificate: DER when the name ends in .der or .cer, else PEM."""
    from pathlib import Path

    if Path(path).suffix.lower() in (".der", ".cer"):
        atomic_write(path, cert_der)
        return
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(cert_der).decode("ascii"), 64))
    pem = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    atomic_write(path, pem.encode("ascii"))


def _spki(public: object) -> bytes:
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, InputError) else str(exc)


class FileSigner:
    """A ``Signer`` backed by an in-process private key (loaded from a file or generated)."""

    def __init__(self, key: PrivateKey, cert_der: bytes, *, key_path: str | None = None) -> None:
        try:
            cert = _x509.Certificate.from_der(cert_der)
        except _x509.CertificateError as exc:
            from cryptography import x509

            try:  # pyca takes it: our reason is the one signing would give next
                x509.load_der_x509_certificate(cert_der)
            except ValueError:
                raise InputError("not an X.509 certificate (expected DER)") from None
            raise InputError(exc.reason) from None
        if cert.key_type == "rsa-pss":
            raise InputError(
                "the certificate holds an RSA-PSS key, which the kernel refuses (ENOPKG); "
                "use a plain RSA certificate, e.g. from `bpfsign keygen`"
            )
        try:
            cert_public = cert.public_key()
        except (ValueError, UnsupportedAlgorithm, _x509.CertificateError) as exc:
            raise InputError(f"unsupported certificate key: {_reason(exc)}") from None
        if _spki(key.public_key()) != _spki(cert_public):
            from cryptography import x509  # only to name the subject as RFC 4514 does

            subject = x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()
            raise InputError(
                "the private key does not match the certificate's public key "
                f"(certificate subject {subject}); pass the key and "
                "the certificate that were made together",
                path=key_path,
            )
        self._key = key
        self._cert_der = cert_der
        self._cert_public = cert_public
        self._key_path = key_path
        self._key_type: KeyType = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"

    @classmethod
    def from_files(
        cls,
        key_path: str | os.PathLike[str],
        cert_path: str | os.PathLike[str],
        *,
        password: Passphrase = None,
        check_permissions: bool = False,
    ) -> FileSigner:
        """Load a key and its certificate, checking that they belong together.

        An RSA key's own consistency check is skipped (see :func:`load_private_key`):
        :meth:`sign_digest` verifies every signature against the certificate instead.
        """
        key = load_private_key(
            key_path, password=password, check_permissions=check_permissions, check_rsa_key=False
        )
        cert_der = load_certificate(cert_path)
        try:
            return cls(key, cert_der, key_path=os.fspath(key_path))
        except InputError as exc:
            if exc.path is None:
                raise InputError(exc.reason, path=os.fspath(cert_path)) from None
            raise

    @property
    def certificate(self) -> bytes:
        return self._cert_der

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    def sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        """Sign a precomputed digest: RSA PKCS#1 v1.5 over DigestInfo, or DER ECDSA."""
        algorithm_class = _HASHES.get(hash_name)
        if algorithm_class is None:
            raise InputError(f"unsupported digest {hash_name!r}; use sha256, sha384 or sha512")
        algorithm = algorithm_class()
        if len(digest) != algorithm.digest_size:
            raise InputError(
                f"{hash_name} digest must be {algorithm.digest_size} bytes, got {len(digest)}"
            )
        prehashed = Prehashed(algorithm)
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature = self._key.sign(digest, padding.PKCS1v15(), prehashed)
            # The key may not have been checked on load (from_files): a signature that the
            # certificate's key does not verify is never returned, whatever the key holds.
            assert isinstance(self._cert_public, rsa.RSAPublicKey)
            try:
                self._cert_public.verify(signature, digest, padding.PKCS1v15(), prehashed)
            except InvalidSignature:
                raise InputError(
                    "the RSA private key is inconsistent (its signature does not verify against "
                    "its own public key): the key file is damaged",
                    path=self._key_path,
                ) from None
            return signature
        return self._key.sign(digest, ec.ECDSA(prehashed))

    def __repr__(self) -> str:  # never show key material
        fingerprint = hashlib.sha256(self._cert_der).hexdigest()[:16]
        return f"FileSigner(key_type={self._key_type!r}, cert_sha256={fingerprint}...)"
