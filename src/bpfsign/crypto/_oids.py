"""OID content octets (what the kernel's look_up_OID compares) and their names.

Kept as raw content bytes: the kernel matches OIDs byte for byte, and so do we.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

DATA = bytes.fromhex("2a864886f70d010701")
SIGNED_DATA = bytes.fromhex("2a864886f70d010702")
MS_INDIRECT_DATA = bytes.fromhex("2b060104018237020104")  # 1.3.6.1.4.1.311.2.1.4

SHA1 = bytes.fromhex("2b0e03021a")
SHA256 = bytes.fromhex("608648016503040201")
SHA384 = bytes.fromhex("608648016503040202")
SHA512 = bytes.fromhex("608648016503040203")
SHA224 = bytes.fromhex("608648016503040204")
SHA3_256 = bytes.fromhex("608648016503040208")
SHA3_384 = bytes.fromhex("608648016503040209")
SHA3_512 = bytes.fromhex("60864801650304020a")

RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")
RSASSA_PSS = bytes.fromhex("2a864886f70d01010a")
SHA1_WITH_RSA = bytes.fromhex("2a864886f70d010105")
SHA256_WITH_RSA = bytes.fromhex("2a864886f70d01010b")
SHA384_WITH_RSA = bytes.fromhex("2a864886f70d01010c")
SHA512_WITH_RSA = bytes.fromhex("2a864886f70d01010d")
SHA224_WITH_RSA = bytes.fromhex("2a864886f70d01010e")
ECDSA_SHA1 = bytes.fromhex("2a8648ce3d0401")
ECDSA_SHA224 = bytes.fromhex("2a8648ce3d040301")
ECDSA_SHA256 = bytes.fromhex("2a8648ce3d040302")
ECDSA_SHA384 = bytes.fromhex("2a8648ce3d040303")
ECDSA_SHA512 = bytes.fromhex("2a8648ce3d040304")

EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")
P256 = bytes.fromhex("2a8648ce3d030107")
P384 = bytes.fromhex("2b81040022")
P521 = bytes.fromhex("2b81040023")

CONTENT_TYPE = bytes.fromhex("2a864886f70d010903")
MESSAGE_DIGEST = bytes.fromhex("2a864886f70d010904")
SIGNING_TIME = bytes.fromhex("2a864886f70d010905")
SMIME_CAPABILITIES = bytes.fromhex("2a864886f70d01090f")
MS_SP_OPUS_INFO = bytes.fromhex("2b06010401823702010c")  # 1.3.6.1.4.1.311.2.1.12
MS_STATEMENT_TYPE = bytes.fromhex("2b06010401823702010b")  # 1.3.6.1.4.1.311.2.1.11

SUBJECT_KEY_IDENTIFIER = bytes.fromhex("551d0e")
AUTHORITY_KEY_IDENTIFIER = bytes.fromhex("551d23")

#: digest OID -> hashlib name, for the digests the kernel (and we) can compute.
DIGESTS: dict[bytes, str] = {
    SHA1: "sha1",
    SHA224: "sha224",
    SHA256: "sha256",
    SHA384: "sha384",
    SHA512: "sha512",
}
DIGEST_OIDS: dict[str, bytes] = {name: oid for oid, name in DIGESTS.items()}
#: digests the kernel parses but that need a module the measured kernel could not load.
MODULE_DIGESTS: dict[bytes, str] = {
    SHA3_256: "sha3-256",
    SHA3_384: "sha3-384",
    SHA3_512: "sha3-512",
}

ECDSA_WITH: dict[str, bytes] = {
    "sha1": ECDSA_SHA1,
    "sha224": ECDSA_SHA224,
    "sha256": ECDSA_SHA256,
    "sha384": ECDSA_SHA384,
    "sha512": ECDSA_SHA512,
}

#: Cert signature algorithms -> (key family, hashlib name).
CERT_SIGNATURES: dict[bytes, tuple[str, str]] = {
    SHA1_WITH_RSA: ("rsa", "sha1"),
    SHA224_WITH_RSA: ("rsa", "sha224"),
    SHA256_WITH_RSA: ("rsa", "sha256"),
    SHA384_WITH_RSA: ("rsa", "sha384"),
    SHA512_WITH_RSA: ("rsa", "sha512"),
    **{oid: ("ec", name) for name, oid in ECDSA_WITH.items()},
}

CURVES: dict[bytes, tuple[str, int]] = {
    P256: ("P-256", 256),
    P384: ("P-384", 384),
    P521: ("P-521", 521),
}

NAMES: dict[bytes, str] = {
    DATA: "data",
    SIGNED_DATA: "signedData",
    MS_INDIRECT_DATA: "msIndirectData",
    SHA1: "sha1",
    SHA224: "sha224",
    SHA256: "sha256",
    SHA384: "sha384",
    SHA512: "sha512",
    SHA3_256: "sha3-256",
    SHA3_384: "sha3-384",
    SHA3_512: "sha3-512",
    RSA_ENCRYPTION: "rsaEncryption",
    RSASSA_PSS: "RSASSA-PSS",
    SHA1_WITH_RSA: "sha1WithRSAEncryption",
    SHA224_WITH_RSA: "sha224WithRSAEncryption",
    SHA256_WITH_RSA: "sha256WithRSAEncryption",
    SHA384_WITH_RSA: "sha384WithRSAEncryption",
    SHA512_WITH_RSA: "sha512WithRSAEncryption",
    ECDSA_SHA1: "ecdsa-with-SHA1",
    ECDSA_SHA224: "ecdsa-with-SHA224",
    ECDSA_SHA256: "ecdsa-with-SHA256",
    ECDSA_SHA384: "ecdsa-with-SHA384",
    ECDSA_SHA512: "ecdsa-with-SHA512",
    EC_PUBLIC_KEY: "id-ecPublicKey",
    CONTENT_TYPE: "contentType",
    MESSAGE_DIGEST: "messageDigest",
    SIGNING_TIME: "signingTime",
    SMIME_CAPABILITIES: "sMIMECapabilities",
}


def name(content: bytes) -> str:
    """A readable name for OID content octets (dotted form when unknown)."""
    known = NAMES.get(content)
    if known is not None:
        return known
    from .der import oid_to_str

    return oid_to_str(content)


_HASHERS: dict[str, Any] = {}  # hash name -> pyca algorithm


def digest(hash_name: str, data: bytes) -> bytes:
    """``hash_name`` digest of ``data``, by the library the signatures are checked with.

    Whichever avoids an extra import: libcrypto's ``EVP_Digest`` with the
    libcrypto backend (``hashlib`` would add ~2 ms); pyca's hashes with pyca
    (loaded anyway for the signature).
    """
    from . import _libcrypto

    if _libcrypto.backend() == "libcrypto":
        return _libcrypto.digest(hash_name, data)
    algorithm = _HASHERS.get(hash_name)
    if algorithm is None:
        from cryptography.hazmat.primitives import hashes

        algorithm = _HASHERS[hash_name] = getattr(hashes, hash_name.upper())()
    from cryptography.hazmat.primitives.hashes import Hash

    h = Hash(algorithm)
    h.update(data)
    return h.finalize()
