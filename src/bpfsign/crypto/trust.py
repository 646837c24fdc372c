"""The kernel's keyring model, in user space, for offline verification.

``keyring_id`` resolution follows docs/kernel.md §5:

* 0 builtin, 1 secondary (= builtin + secondary), 2 platform (ENOKEY when the
  platform keyring is absent, decided at trust time);
* negative ids are ``KEY_SPEC_*`` special keyrings: session (-3), user (-4) and
  user-session (-5) exist; thread (-1), process (-2), requestor (-7) and any
  other id do not, and give EINVAL "cannot resolve signing keyring with
  keyring_id N" (§13 row 2);
* positive ids are serials: a user keyring's serial resolves to it, a key's
  serial resolves but is not a keyring, so the search finds nothing: ENOKEY
  (§13 row 45); an unknown serial is EINVAL.

``--trust`` certificates go to the session keyring, which is what
``keyring_id = -3`` (the default) searches.  Nested keyrings are searched
recursively, like the kernel's keyring search.

The blacklist holds certificate hashes.  The kernel's own form is
``tbs:<hash>``: the TBSCertificate hashed with the certificate's signature
digest (``x509_get_sig_params``); we also accept the SHA-256 of the TBS and the
SHA-256 of the whole DER certificate (``sha256sum cert.der``, the fingerprint
people have at hand).  A trusted or embedded signer whose certificate matches
is rejected with EKEYREJECTED (§12.6, §13 row 43).
"""

from __future__ import annotations

import os
from errno import EINVAL

from ..errors import InputError, VerificationError
from . import _oids
from .x509 import Certificate, load_certificates

BUILTIN = 0
SECONDARY = 1
PLATFORM = 2
KEY_SPEC_THREAD_KEYRING = -1
KEY_SPEC_PROCESS_KEYRING = -2
KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
KEY_SPEC_REQKEY_AUTH_KEY = -7
KEY_SPEC_REQUESTOR_KEYRING = -8

_NAMED: dict[str, int] = {
    "builtin": BUILTIN,
    "secondary": SECONDARY,
    "platform": PLATFORM,
    "session": KEY_SPEC_SESSION_KEYRING,
    "user": KEY_SPEC_USER_KEYRING,
    "user-session": KEY_SPEC_USER_SESSION_KEYRING,
}

_FIRST_SERIAL = 0x1A2B3C00  # serials are arbitrary positive ints, as in the kernel


class Keyring:
    """A named set of certificates (keys), possibly linking other keyrings."""

    __slots__ = ("_by_id", "certificates", "links", "name", "serial")

    def __init__(self, name: str, serial: int) -> None:
        self.name = name
        self.serial = serial
        self.certificates: list[Certificate] = []
        self.links: list[Keyring] = []
        self._by_id: dict[bytes, Certificate] = {}

    def __repr__(self) -> str:
        return f"Keyring({self.name!r}, serial={self.serial}, {len(self.certificates)} certs)"

    def _add(self, cert: Certificate) -> None:
        if cert in self.certificates:
            return
        self.certificates.append(cert)
        for key_id in cert.key_ids:
            self._by_id.setdefault(key_id, cert)

    def find(
        self, key_id: bytes, _seen: frozenset[int] = frozenset()
    ) -> tuple[Certificate, Keyring] | None:
        """Exact-id search (the kernel's ``ex:`` match), recursing into linked keyrings;
        returns the certificate and the keyring that holds it."""
        if not key_id:
            return None
        cert = self._by_id.get(key_id)
        if cert is not None:
            return cert, self
        seen = _seen | {self.serial}
        for linked in self.links:
            if linked.serial not in seen:
                hit = linked.find(key_id, seen)
                if hit is not None:
                    return hit
        return None


class ResolvedKeyring:
    """What a keyring_id resolved to; ``keyrings`` empty means nothing to search."""

    __slots__ = ("description", "keyring_id", "keyrings", "missing_reason")

    def __init__(
        self,
        keyring_id: int,
        description: str,
        keyrings: tuple[Keyring, ...],
        missing_reason: str = "",
    ) -> None:
        self.keyring_id = keyring_id
        self.description = description
        self.keyrings = keyrings
        #: non-empty when the search cannot find anything (platform absent, key serial)
        self.missing_reason = missing_reason

    def find(self, key_id: bytes) -> tuple[Certificate, Keyring] | None:
        for ring in self.keyrings:
            hit = ring.find(key_id)
            if hit is not None:
                return hit
        return None


class TrustStore:
    """Keyrings of trusted certificates, addressed the way ``BPF_PROG_LOAD`` does."""

    def __init__(self, *, secondary: bool = True, platform: bool = False) -> None:
        self._next_serial = _FIRST_SERIAL
        self._by_serial: dict[int, Keyring] = {}
        self._key_serials: dict[int, Certificate] = {}
        self.builtin = self._new_ring("builtin")
        self.secondary: Keyring | None = self._new_ring("secondary") if secondary else None
        self.platform: Keyring | None = self._new_ring("platform") if platform else None
        self.session = self._new_ring("session")
        self.user = self._new_ring("user")
        self.user_session = self._new_ring("user-session")
        self._special: dict[int, Keyring] = {
            KEY_SPEC_SESSION_KEYRING: self.session,
            KEY_SPEC_USER_KEYRING: self.user,
            KEY_SPEC_USER_SESSION_KEYRING: self.user_session,
        }
        self._blacklist: set[bytes] = set()
        #: files ``add_path`` skipped in a directory because they are not certificates
        self.warnings: list[str] = []

    def _new_ring(self, name: str) -> Keyring:
        ring = Keyring(name, self._next_serial)
        self._by_serial[ring.serial] = ring
        self._next_serial += 1
        return ring

    # -- building -------------------------------------------------------------

    def create_keyring(self, name: str, *, link_into: str | int | None = "session") -> int:
        """A new user keyring; returns its serial (usable as keyring_id)."""
        ring = self._new_ring(name)
        if link_into is not None:
            self._ring(link_into).links.append(ring)
        return ring.serial

    def link(self, keyring: str | int, into: str | int) -> None:
        """Link a keyring into another (KEYCTL_LINK): searches of ``into`` see it."""
        self._ring(into).links.append(self._ring(keyring))

    def add(self, cert: Certificate | bytes, keyring: str | int = "session") -> int:
        """Add a certificate, like ``add_key("asymmetric", ...)``; returns the key serial."""
        if not isinstance(cert, Certificate):
            cert = Certificate.from_der(cert)
        if cert.key_type not in ("rsa", "ec") or (cert.key_type == "ec" and cert.curve == "P-521"):
            # add_key refuses it (ENOPKG, docs/kernel.md §13 row 55)
            raise InputError(
                f"certificate {cert.subject_str!r} has a {cert.key_description} key, which the "
                "kernel's add_key refuses (ENOPKG): issue the certificate for an rsaEncryption "
                "or EC P-256/P-384 key"
            )
        self._ring(keyring)._add(cert)
        serial = self._next_serial
        self._next_serial += 1
        self._key_serials[serial] = cert
        return serial

    def add_path(self, path: str | os.PathLike[str], keyring: str | int = "session") -> list[int]:
        """Add every certificate of a PEM/DER file or directory; returns key serials."""
        serials = []
        for cert in load_certificates(path, skipped=self.warnings):
            try:
                serials.append(self.add(cert, keyring))
            except InputError as exc:
                raise InputError(exc.reason, path=os.fspath(path)) from None
        return serials

    def blacklist_add(self, digest: bytes | str) -> None:
        """Blacklist a certificate by hash (raw bytes or hex, optional ``tbs:`` prefix)."""
        if isinstance(digest, str):
            text = digest.strip().lower().removeprefix("tbs:").replace(":", "")
            try:
                digest = bytes.fromhex(text)
            except ValueError:
                raise InputError(f"blacklist entry {digest!r} is not a hex hash") from None
        self._blacklist.add(bytes(digest))

    def is_blacklisted(self, cert: Certificate) -> bool:
        if not self._blacklist:
            return False
        hashes = {_oids.digest("sha256", cert.der), _oids.digest("sha256", cert.tbs)}
        family_hash = _oids.CERT_SIGNATURES.get(cert.signature_algorithm)
        if family_hash is not None:
            hashes.add(_oids.digest(family_hash[1], cert.tbs))
        return not self._blacklist.isdisjoint(hashes)

    # -- resolution -------------------------------------------------------------

    def _ring(self, keyring: str | int) -> Keyring:
        ident = _NAMED.get(keyring) if isinstance(keyring, str) else keyring
        if ident is None:
            raise InputError(f"unknown keyring name {keyring!r}; use one of {', '.join(_NAMED)}")
        if ident == BUILTIN:
            return self.builtin
        if ident in (SECONDARY, PLATFORM):
            ring = self.secondary if ident == SECONDARY else self.platform
            if ring is None:
                raise InputError(
                    f"this trust store has no {'secondary' if ident == 1 else 'platform'} keyring"
                )
            return ring
        ring = self._special.get(ident) or self._by_serial.get(ident)
        if ring is None:
            raise InputError(f"no keyring with id {ident}")
        return ring

    def resolve(self, keyring_id: int) -> ResolvedKeyring:
        """Map ``keyring_id`` to what the kernel would search (docs/kernel.md §5, §12.6)."""
        # the kernel compares the id as an unsigned 64-bit value against 2
        if keyring_id == BUILTIN:
            return ResolvedKeyring(keyring_id, "builtin", (self.builtin,))
        if keyring_id == SECONDARY:
            rings = (self.builtin,) if self.secondary is None else (self.builtin, self.secondary)
            return ResolvedKeyring(keyring_id, "secondary", rings)
        if keyring_id == PLATFORM:
            if self.platform is None:
                return ResolvedKeyring(keyring_id, "platform", (), "the platform keyring is absent")
            return ResolvedKeyring(keyring_id, "platform", (self.platform,))
        ring = self._special.get(keyring_id) if keyring_id < 0 else self._by_serial.get(keyring_id)
        if ring is not None:
            return ResolvedKeyring(keyring_id, ring.name, (ring,))
        if keyring_id in self._key_serials:  # a key, not a keyring: ENOTDIR -> ENOKEY (row 45)
            return ResolvedKeyring(
                keyring_id,
                f"key {keyring_id}",
                (),
                f"keyring_id {keyring_id} is a key's serial, not a keyring: pass the keyring "
                "(-3 for the session keyring), not the serial add_key returned",
            )
        # docs/kernel.md §5, §13 row 2: lookup_user_key failed
        raise VerificationError(
            EINVAL, f"cannot resolve signing keyring with keyring_id {keyring_id}"
        )
