"""Offline verification with the kernel's rules, errnos and order of checks.

``verify`` answers what ``BPF_PROG_LOAD`` would answer for a signature over a
payload with a given ``keyring_id``: it returns the signer, or raises
``VerificationError`` carrying the errno the kernel returns.  The order is the
kernel's: size cap, keyring resolution, PKCS#7 parse (``pkcs7_parse_message``),
detached data, usage, per-signer digest and attributes (``pkcs7_verify``),
revocation, trust keyring, trust search and signature (``pkcs7_validate_trust``).
Rows cited are docs/kernel.md §13.

Signatures are checked by the system's libcrypto through ``_libcrypto`` when
it loads, else by pyca (``_libcrypto.backend()``).  Why: start-up cost.  A
verify process must stay within ~1.3x one ``openssl cms -verify`` (~18 ms);
the interpreter plus pyca's verify modules alone measured 1.41x, while ctypes
plus loading libcrypto costs ~3 ms.  Both backends give the same verdict for every input: keys
pyca refuses to build are refused before libcrypto sees them (``_key_der``).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from errno import E2BIG, EBADMSG, EINVAL, EKEYREJECTED, ENOKEY, ENOPKG

from ..errors import VerificationError
from . import _libcrypto, _oids, cms
from .trust import KEY_SPEC_SESSION_KEYRING, TrustStore
from .x509 import Certificate

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of start-up)
if TYPE_CHECKING:
    from typing import Any, NamedTuple

#: signature_size cap of BPF_PROG_LOAD: KMALLOC_MAX_CACHE_SIZE on x86-64 (docs/kernel.md §12.8)
MAX_SIGNATURE_SIZE = 8192
#: insns ‖ folded map values must stay below 2^24 bytes (docs/kernel.md §12.8, measured on 7.3.4)
MAX_SIGNED_PAYLOAD = (1 << 24) - 1


if TYPE_CHECKING:

    class _VerifiedSignatureFields(NamedTuple):
        signer_subject: str
        skid: str | None  #: hex SKID of the signer certificate
        issuer: str
        serial: str  #: hex serial of the signer certificate
        digest_algorithm: str  #: e.g. "sha256"
        signature_algorithm: str  #: e.g. "rsaEncryption", "ecdsa-with-SHA256"
        key_description: str  #: e.g. "RSA-2048", "EC P-256"
        keyring: str  #: the keyring whose key matched, e.g. "session"
        certificate_sha256: str  #: fingerprint of the trusted certificate that matched
        signer_index: int  #: which SignerInfo (0-based) established trust
        warnings: tuple[str, ...]

else:
    _VerifiedSignatureFields = namedtuple(
        "VerifiedSignature",
        "signer_subject skid issuer serial digest_algorithm signature_algorithm key_description "
        "keyring certificate_sha256 signer_index warnings",
    )


class VerifiedSignature(_VerifiedSignatureFields):
    """Who signed, with what, and anything the kernel accepts but you should know.

    A named tuple rather than a dataclass, built with ``collections`` rather
    than ``typing``: importing ``dataclasses`` or ``typing`` costs 6-8 ms of
    the CLI's start-up budget.  ``_asdict()`` gives the JSON view.
    """

    __slots__ = ()


_crypto: dict[str, Any] = {}
_ECDSA_HASH = {oid: name for name, oid in _oids.ECDSA_WITH.items()}


def _load_crypto() -> dict[str, Any]:
    """pyca's verify objects, built once (the pyca backend only)."""
    if not _crypto:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        _crypto.update(
            InvalidSignature=InvalidSignature,
            pkcs1=padding.PKCS1v15(),
            prehashed={
                name: utils.Prehashed(algo)
                for name, algo in (
                    ("sha1", hashes.SHA1()),
                    ("sha224", hashes.SHA224()),
                    ("sha256", hashes.SHA256()),
                    ("sha384", hashes.SHA384()),
                    ("sha512", hashes.SHA512()),
                )
            },
        )
    return _crypto


_key_ders: dict[bytes, bytes | None] = {}


def _key_der(cert: Certificate) -> bytes | None:
    """The key as SubjectPublicKeyInfo DER for libcrypto, or None where pyca's
    ``public_key()`` raises ValueError (which its path counts as a bad signature):
    OpenSSL itself would take e = 1 or a hybrid EC point.  Memoized (batch verify)."""
    if cert.der in _key_ders:
        return _key_ders[cert.der]
    spki: bytes | None = cert.public_key_der
    if cert.key_type == "rsa":
        n, e = cert.rsa_public_numbers
        if n < 3 or not 3 <= e < n or not e & 1:
            spki = None
    else:
        point = cert._key_numbers
        if not point or point[0] not in (2, 3, 4):
            spki = None
    if len(_key_ders) < 1024:
        _key_ders[cert.der] = spki
    return spki


def _signature_ok(
    cert: Certificate, sig_family: str, signature: bytes, digest: bytes, hash_name: str
) -> bool:
    """Raw verify of ``signature`` over a precomputed ``digest`` with ``cert``'s key."""
    if cert.key_type != sig_family:  # public_key_verify_signature: algorithm mismatch
        return False
    if _libcrypto.backend() == "libcrypto":
        spki = _key_der(cert)
        rsa = sig_family == "rsa"
        return spki is not None and _libcrypto.verify(spki, rsa, signature, digest, hash_name)
    c = _load_crypto()
    prehashed = c["prehashed"][hash_name]
    try:
        key = cert.public_key()
        if sig_family == "rsa":
            key.verify(signature, digest, c["pkcs1"], prehashed)
        else:
            from cryptography.hazmat.primitives.asymmetric import ec

            key.verify(signature, digest, ec.ECDSA(prehashed))
    except (c["InvalidSignature"], ValueError, TypeError):
        return False
    return True


def _family(sig_alg: bytes) -> str:
    return "rsa" if sig_alg == _oids.RSA_ENCRYPTION else "ec"


def _describe_id(info: cms.SignerInfo) -> str:
    sid = info.sid
    if sid.kind == "skid" and info.version == 3:
        return f"SKID {info.key_id.hex()}"
    if sid.kind == "issuer_serial" and info.version == 1 and sid.issuer is not None:
        from .x509 import name_to_str

        return f"issuer {name_to_str(sid.issuer)!r} serial {(sid.serial or b'').hex()}"
    return f"an empty key id (SignerInfo v{info.version} names its signer by {sid.kind})"


class _Signer:
    """Per-SignerInfo state of pkcs7_verify_one / pkcs7_validate_trust_one."""

    __slots__ = ("blacklisted", "digest", "embedded", "hash_name", "index", "info", "unsupported")

    def __init__(self, index: int, info: cms.SignerInfo) -> None:
        self.index = index
        self.info = info
        self.hash_name = ""
        self.digest = b""  # what the signature covers (content hash or attributes hash)
        self.embedded: list[Certificate] = []  # embedded chain from the signer cert upwards
        self.unsupported = False
        self.blacklisted: Certificate | None = None


def verify(
    payload: bytes,
    signature: bytes,
    trust: TrustStore,
    *,
    keyring_id: int = KEY_SPEC_SESSION_KEYRING,
) -> VerifiedSignature:
    """Verify a detached PKCS#7 ``signature`` over ``payload`` as the kernel would."""
    size = len(signature)
    if size > MAX_SIGNATURE_SIZE:  # row 29 (measured on 7.3.4 and 6.18)
        raise VerificationError(
            EINVAL,
            f"signature is {size} bytes; BPF_PROG_LOAD accepts at most {MAX_SIGNATURE_SIZE} "
            "(drop embedded certificates or padding: sign with -nocerts)",
        )
    if size == 0:  # row 53
        raise VerificationError(EINVAL, "signature is empty (signature_size 0)")
    keyring = trust.resolve(keyring_id)  # row 2: resolved before the signature is examined
    if len(payload) > MAX_SIGNED_PAYLOAD:  # row 28 (measured): checked while folding the maps
        raise VerificationError(
            E2BIG,
            f"signed payload too large: {len(payload)} bytes; the kernel signs at most "
            f"{MAX_SIGNED_PAYLOAD} bytes (insns and metadata map values together)",
        )

    sd = cms.parse_signed_data(signature, kernel_rules=True)  # rows 6-9, 33-36, 39-41, 54
    warnings = list(sd.warnings)
    if not sd.detached:  # row 35 (measured): pkcs7_supply_detached_data fails
        raise VerificationError(
            EBADMSG,
            "the signature embeds its content (not detached), which the kernel rejects "
            "(PKCS7: Data already supplied): sign without -nodetach and without -stream",
        )
    if sd.content_type != _oids.DATA:  # pkcs7_verify usage check, row 38
        raise VerificationError(
            EKEYREJECTED,
            f"content type {_oids.name(sd.content_type)} is not id-data, which BPF signatures need",
        )

    certs = [Certificate.from_der(raw) for raw in sd.certificates] if sd.certificates else []
    hashes: dict[str, bytes] = {}  # payload digests, one per algorithm
    signers = [_Signer(i, info) for i, info in enumerate(sd.signer_infos)]
    actual = ENOPKG
    blacklisted: Certificate | None = None
    for signer in signers:  # pkcs7_verify
        err = _verify_one(payload, signer, certs, hashes, trust, warnings)
        if signer.blacklisted is not None:
            blacklisted = signer.blacklisted
            if actual == ENOPKG:
                actual = EKEYREJECTED
            continue
        if err == ENOPKG:
            signer.unsupported = True
            continue
        actual = 0
    if actual == ENOPKG:  # every signer was unsupported (§12.4 step 4)
        raise VerificationError(
            ENOPKG,
            _unsupported_message(signers)
            or "no SignerInfo uses an algorithm the kernel can verify",
        )
    if actual == EKEYREJECTED and blacklisted is not None:  # row 43
        raise VerificationError(
            EKEYREJECTED,
            f"the embedded certificate {blacklisted.subject_str!r} (sha256 "
            f"{blacklisted.fingerprint_sha256}) in the signer's chain is blacklisted",
        )

    if keyring.keyring_id == 2 and keyring.missing_reason:  # §12.6: platform keyring absent
        raise VerificationError(ENOKEY, "keyring_id 2 names the platform keyring, which is absent")

    cached = ENOKEY  # pkcs7_validate_trust
    result: VerifiedSignature | None = None
    for signer in signers:
        if signer.unsupported:
            if cached == ENOKEY:
                cached = ENOPKG
            continue
        outcome = _validate_trust_one(signer, certs, keyring, trust)
        if outcome is None:
            continue  # ENOKEY for this signer
        if result is None:
            result = _result(signer, outcome, warnings)
        cached = 0
    if result is not None:
        return result
    if cached == ENOPKG:
        raise VerificationError(ENOPKG, _unsupported_message(signers) or "unsupported algorithm")
    # rows 3-5, 44, 45
    who = "; ".join(_describe_id(s.info) for s in signers)
    why = keyring.missing_reason or (
        f"no key in the {keyring.description} keyring (keyring_id {keyring.keyring_id}) matches "
        f"the signer ({who}): trust the signer's certificate, or verify against "
        "the keyring that holds it"
    )
    raise VerificationError(ENOKEY, why)


def _unsupported_message(signers: list[_Signer]) -> str:
    for s in signers:
        if s.hash_name.startswith("sha3"):
            return (
                f"digest {s.hash_name} needs the kernel's sha3 module, which the measured kernel "
                "could not load (ENOPKG on 7.3.4): re-sign with -md sha256"
            )
    return ""


def _content_hash(payload: bytes, hash_name: str, cache: dict[str, bytes]) -> bytes:
    digest = cache.get(hash_name)
    if digest is None:
        digest = _oids.digest(hash_name, payload)
        cache[hash_name] = digest
    return digest


def _verify_one(
    payload: bytes,
    signer: _Signer,
    certs: list[Certificate],
    hashes: dict[str, bytes],
    trust: TrustStore,
    warnings: list[str],
) -> int:
    """pkcs7_verify_one: digest, attributes, embedded signer, embedded chain.

    Returns 0 or ENOPKG; hard failures raise."""
    info = signer.info
    hash_name = _oids.DIGESTS.get(info.digest_algorithm.oid)
    if hash_name is None:  # sha3-*: parsed, but the hash needs a module (rows 34)
        signer.hash_name = _oids.MODULE_DIGESTS.get(info.digest_algorithm.oid, "unknown")
        return ENOPKG
    signer.hash_name = hash_name
    if hash_name == "sha1":
        warnings.append(
            "SignerInfo uses SHA-1: the kernel (7.3.4) accepts it, but SHA-1 is broken for "
            "signatures; re-sign with SHA-256"
        )
    ecdsa_hash = _ECDSA_HASH.get(info.signature_algorithm.oid)
    if ecdsa_hash is not None and ecdsa_hash != hash_name:
        warnings.append(
            f"signatureAlgorithm {info.signature_algorithm.name} does not match digest {hash_name}; "
            f"the kernel uses the digest algorithm ({hash_name}) and ignores the mismatch"
        )
    digest = _content_hash(payload, hash_name, hashes)
    if info.signed_attrs_raw is not None:  # docs/kernel.md §12.3
        attr = info.attribute(_oids.MESSAGE_DIGEST)
        value = attr.values[0].content if attr and attr.values else b""
        if len(value) != len(digest):  # row 39
            raise VerificationError(
                EBADMSG,
                f"messageDigest attribute is {len(value)} bytes, but a {hash_name} digest is "
                f"{len(digest)}: the signed attributes are corrupt",
            )
        if value != digest:  # row 40
            raise VerificationError(
                EKEYREJECTED,
                "messageDigest attribute does not match the payload's hash: the payload was "
                "changed after signing, or the signature belongs to other content",
            )
        attrs = info.signed_attrs_for_hashing or b""
        digest = _oids.digest(hash_name, attrs)
    signer.digest = digest

    # pkcs7_find_key: an embedded cert whose issuer+serial id equals the signer's id
    embedded = next((c for c in certs if c.issuer_serial_id == info.key_id), None)
    if embedded is None:
        return 0
    t = info.attribute(_oids.SIGNING_TIME)
    if t is not None and t.values:  # row 42
        from .x509 import decode_time

        when = decode_time(t.values[0].tag, t.values[0].content)
        if not embedded.not_before <= when <= embedded.not_after:
            raise VerificationError(
                EKEYREJECTED,
                f"signingTime lies outside the validity of the embedded signer certificate "
                f"{embedded.subject_str!r}",
            )
    family = _family(info.signature_algorithm.oid)
    if not _signature_ok(embedded, family, info.signature, digest, hash_name):  # row 8
        raise VerificationError(
            EKEYREJECTED,
            f"signature does not verify with the embedded certificate {embedded.subject_str!r}: "
            "the payload or the signature was changed after signing",
        )
    # pkcs7_verify_sig_chain: walk the embedded chain by AKID keyIdentifier
    chain = [embedded]
    x509 = embedded
    while True:
        if trust.is_blacklisted(x509):
            signer.blacklisted = x509
            break
        if x509.self_signed or x509.akid is None:
            break
        issuer = next((p for p in certs if p.skid == x509.akid), None)
        if issuer is None or issuer in chain:
            break
        fam_hash = _oids.CERT_SIGNATURES.get(x509.signature_algorithm)
        if fam_hash is None:
            return ENOPKG
        if not _signature_ok(
            issuer,
            fam_hash[0],
            x509.signature_value,
            _oids.digest(fam_hash[1], x509.tbs),
            fam_hash[1],
        ):
            raise VerificationError(
                EKEYREJECTED,
                f"embedded certificate {x509.subject_str!r} is not validly signed by the "
                f"embedded issuer {issuer.subject_str!r}",
            )
        chain.append(issuer)
        x509 = issuer
    signer.embedded = chain
    return 0


def _validate_trust_one(
    signer: _Signer, certs: list[Certificate], keyring: Any, trust: TrustStore
) -> tuple[Certificate, str, Certificate] | None:
    """pkcs7_validate_trust_one: returns (signer cert, keyring name, trusted cert), or
    None for ENOKEY; raises EKEYREJECTED when the matched key does not verify."""
    info = signer.info
    sig_family = _family(info.signature_algorithm.oid)
    # 1. the embedded chain: is one of its certs itself trusted?
    prev: Certificate | None = None
    for x509 in signer.embedded:
        hit = None
        for key_id in x509.key_ids:
            hit = keyring.find(key_id)
            if hit is not None:
                break
        if hit is not None:
            trusted, ring = hit
            if prev is None:  # the signer cert itself: check the SignerInfo signature
                ok = _signature_ok(
                    trusted, sig_family, info.signature, signer.digest, signer.hash_name
                )
            else:  # prev was issued by x509: check prev's certificate signature
                ok = _cert_signed_by(prev, trusted)
            return _matched(ok, signer, ring.name, trusted, trust)
        if x509.self_signed:  # an unknown self-signed root ends the walk (row 44)
            return None
        prev = x509
    # 2. the root's signer among the trusted keys
    if prev is not None and prev.akid is not None:
        hit = keyring.find(prev.akid)
        if hit is not None:
            trusted, ring = hit
            return _matched(_cert_signed_by(prev, trusted), signer, ring.name, trusted, trust)
    # 3. last resort, the usual path for -nocerts: a trusted key with the signer's own id
    hit = keyring.find(info.key_id)
    if hit is None:
        return None
    trusted, ring = hit
    ok = _signature_ok(trusted, sig_family, info.signature, signer.digest, signer.hash_name)
    return _matched(ok, signer, ring.name, trusted, trust)


def _cert_signed_by(cert: Certificate, issuer: Certificate) -> bool:
    fam_hash = _oids.CERT_SIGNATURES.get(cert.signature_algorithm)
    if fam_hash is None:
        return False
    digest = _oids.digest(fam_hash[1], cert.tbs)
    return _signature_ok(issuer, fam_hash[0], cert.signature_value, digest, fam_hash[1])


def _matched(
    ok: bool, signer: _Signer, ring: str, trusted: Certificate, trust: TrustStore
) -> tuple[Certificate, str, Certificate]:
    if trust.is_blacklisted(trusted):  # row 43
        raise VerificationError(
            EKEYREJECTED,
            f"the trusted certificate {trusted.subject_str!r} (sha256 {trusted.fingerprint_sha256}) "
            "is blacklisted",
        )
    if not ok:  # row 8 (measured): a bad signature with a trusted key
        raise VerificationError(
            EKEYREJECTED,
            f"signature does not verify with the trusted key {trusted.subject_str!r} "
            f"({trusted.key_description}): the payload or the signature was changed after "
            "signing, or it was signed over different bytes",
        )
    signer_cert = signer.embedded[0] if signer.embedded else trusted
    return signer_cert, ring, trusted


def _result(
    signer: _Signer, outcome: tuple[Certificate, str, Certificate], warnings: list[str]
) -> VerifiedSignature:
    cert, ring, trusted = outcome
    return VerifiedSignature(
        *_describe(cert),
        digest_algorithm=signer.hash_name,
        signature_algorithm=_oids.name(signer.info.signature_algorithm.oid),
        key_description=cert.key_description,
        keyring=ring,
        certificate_sha256=trusted.fingerprint_sha256,
        signer_index=signer.index,
        warnings=tuple(dict.fromkeys(warnings)) if warnings else (),
    )


_described: dict[bytes, tuple[str, str | None, str, str]] = {}


def _describe(cert: Certificate) -> tuple[str, str | None, str, str]:
    """(subject, skid hex, issuer, serial hex), memoized per certificate (batch verify)."""
    hit = _described.get(cert.der)
    if hit is None:
        skid = cert.skid.hex() if cert.skid is not None else None
        hit = (cert.subject_str, skid, cert.issuer_str, cert.serial.hex())
        if len(_described) < 1024:
            _described[cert.der] = hit
    return hit


def verify_many(
    items: Iterable[tuple[bytes, bytes]],
    trust: TrustStore,
    *,
    keyring_id: int = KEY_SPEC_SESSION_KEYRING,
) -> list[VerifiedSignature | VerificationError]:
    """Verify many (payload, signature) pairs; each result is a verdict or the error.

    Cheap per item: the crypto library is loaded once (with pyca, public keys
    are cached on the trust store's certificates)."""
    out: list[VerifiedSignature | VerificationError] = []
    for payload, signature in items:
        try:
            out.append(verify(payload, signature, trust, keyring_id=keyring_id))
        except VerificationError as exc:
            out.append(exc)
    return out
