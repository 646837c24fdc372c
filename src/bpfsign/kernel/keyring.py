"""Kernel keyrings: put a signer's certificate where BPF_PROG_LOAD will look for it.

A signed load names a KEYRING in ``keyring_id`` (docs/kernel.md §5): 0/1/2 for the
system keyrings, -3 for the caller's session keyring, or a keyring's serial.
The serial ``add_key`` returns is the key's own and gives ENOKEY there.

"session" is resolved to a real serial before adding. A process without a
session keyring would otherwise get a fresh anonymous one from add_key, which
dies with the process and takes the certificate with it.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

from ..errors import InputError
from . import consts as S
from . import keyspec
from .backend import Backend, default_backend

__all__ = [
    "KEYRING_ID_REMINDER",
    "AddedKey",
    "KeyInfo",
    "add_certificate",
    "describe",
    "join_session_keyring",
    "link_key",
    "list_keys",
    "remove_key",
    "resolve_keyring",
]

KEYRING_ID_REMINDER = (
    "keyring_id must be a KEYRING: 0/1/2 (system), -3 (session) or a keyring serial; "
    "never the key's own serial (that gives ENOKEY)"
)

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class KeyInfo:
    serial: int
    type: str
    uid: int
    gid: int
    perm: int
    description: str


@dataclass(frozen=True)
class AddedKey:
    serial: int  # the key (NOT a keyring_id)
    keyring: int  # the keyring it was linked into: pass this (or -3) as keyring_id
    description: str


def _backend(backend: Backend | None) -> Backend:
    return backend if backend is not None else default_backend()


def certificate_der(data: bytes, path: str | None = None) -> bytes:
    """A certificate as DER, from DER or PEM input."""
    m = _PEM.search(data)
    if m is not None:
        try:
            return base64.b64decode(b"".join(m.group(1).split()), validate=True)
        except binascii.Error as exc:
            raise InputError(f"bad base64 in the PEM certificate: {exc}", path=path) from None
    if data[:1] == b"\x30":
        return data
    raise InputError("not a certificate: expected DER or a PEM CERTIFICATE block", path=path)


def resolve_keyring(
    spec: str | int, *, create: bool = False, backend: Backend | None = None
) -> int:
    """A keyring serial from a keyring spec (:mod:`.keyspec`): a name, a number, or a NAME.

    A NAME is looked up below the session keyring and, with ``create``, made there
    (``add_key("keyring", NAME)``).
    """
    be = _backend(backend)
    parsed = keyspec.parse(spec)
    if isinstance(parsed, int):
        if parsed >= 0:
            return parsed
        # never create=1 for the session keyring: that joins a new anonymous one
        # that dies with this process (the kernel installs the user-session keyring
        # as the session keyring when asked without create)
        return be.keyring_id(parsed, create=create and parsed != S.KEY_SPEC_SESSION_KEYRING)
    text = parsed
    session = be.keyring_id(S.KEY_SPEC_SESSION_KEYRING)
    found = be.key_search(session, "keyring", text)
    if found is not None:
        return found
    if not create:
        raise InputError(
            f"no keyring named {text!r} below the session keyring {session}; "
            "adding a certificate to a keyring of that name creates it"
        )
    return be.add_key("keyring", text, None, session)


def add_certificate(
    cert: bytes,
    *,
    keyring: str | int = "session",
    description: str | None = None,
    backend: Backend | None = None,
    path: str | None = None,
) -> AddedKey:
    """Add a certificate as an ``asymmetric`` key and link it into ``keyring``."""
    be = _backend(backend)
    der = certificate_der(cert, path)
    ring = resolve_keyring(keyring, create=True, backend=be)
    serial = be.add_key("asymmetric", description, der, ring)
    return AddedKey(serial, ring, describe(serial, backend=be).description)


def describe(serial: int, *, backend: Backend | None = None) -> KeyInfo:
    text = _backend(backend).key_describe(serial)
    kind, uid, gid, perm, desc = text.split(";", 4)
    return KeyInfo(serial, kind, int(uid), int(gid), int(perm, 16), desc)


def list_keys(keyring: str | int = "session", *, backend: Backend | None = None) -> list[KeyInfo]:
    """The keys and keyrings linked directly into ``keyring``."""
    be = _backend(backend)
    ring = resolve_keyring(keyring, backend=be)
    raw = be.key_read(ring)
    serials = struct.unpack(f"<{len(raw) // 4}i", raw[: len(raw) // 4 * 4])
    return [describe(s, backend=be) for s in serials]


def remove_key(
    serial: int, *, keyring: str | int = "session", backend: Backend | None = None
) -> int:
    """Unlink ``serial`` from ``keyring``; returns the keyring serial it was unlinked from."""
    be = _backend(backend)
    ring = resolve_keyring(keyring, backend=be)
    be.key_unlink(serial, ring)
    return ring


def join_session_keyring(name: str | None = None, *, backend: Backend | None = None) -> int:
    """Give this process a new session keyring (anonymous unless ``name``); its serial.

    For a private trust setup (tests, the VM guest): keys added to "session"
    afterwards are visible to this process and its children only, and go
    away with them.
    """
    return _backend(backend).join_session_keyring(name)


def link_key(serial: int, *, keyring: str | int = "session", backend: Backend | None = None) -> int:
    """Link an existing key into ``keyring`` too; returns that keyring's serial.

    A signed load searches only the keyring named by ``keyring_id`` (and what is
    linked below it), so one certificate can serve several keyrings this way.
    """
    be = _backend(backend)
    ring = resolve_keyring(keyring, create=True, backend=be)
    be.key_link(serial, ring)
    return ring
