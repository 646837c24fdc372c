"""The signing seam: anything that can sign a digest can sign a skeleton.

The CMS builder never needs a private key object; it asks a ``Signer`` to sign
a precomputed digest, so keys in files, HSMs (PKCS#11) or a KMS all fit.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

HashName = Literal["sha1", "sha224", "sha256", "sha384", "sha512"]
KeyType = Literal["rsa", "ec"]


@runtime_checkable
class Signer(Protocol):
    """Signs digests on behalf of one certificate."""

    @property
    def certificate(self) -> bytes:
        """The signer's X.509 certificate, DER."""
        ...

    @property
    def key_type(self) -> KeyType:
        """``"rsa"`` (PKCS#1 v1.5) or ``"ec"`` (ECDSA)."""
        ...

    def sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        """Return the raw signature over ``digest``.

        RSA: PKCS#1 v1.5 over DigestInfo(hash_name, digest).
        EC: a DER Ecdsa-Sig-Value over the digest.
        """
        ...
