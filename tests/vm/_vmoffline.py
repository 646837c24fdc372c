"""bpfsign's offline verdict for a case, with a TrustStore that mirrors the guest's keyrings.

The guest adds the certs of ``IN_KEYRING`` to a fresh session keyring; the
store gets the same certs in its session keyring, and the guest's real
serials (the session keyring's, each key's) are translated to the store's.
"""

from __future__ import annotations

from typing import Any


def trust_store(gk: Any) -> Any:
    """(store, serial map) mirroring the guest's keyring setup, cached on ``gk``."""
    cached = getattr(gk, "_offline_store", None)
    if cached is not None:
        return cached
    from bpfsign.crypto import trust

    store = trust.TrustStore()
    serials = {gk.session_serial: store.session.serial}
    for name, kernel_serial in gk.key_serials.items():
        serials[kernel_serial] = store.add(gk.signers[name].certificate, "session")
    gk._offline_store = (store, serials)
    return gk._offline_store


def offline_errno(payload: bytes, signature: bytes, gk: Any, keyring_id: int) -> int | None:
    """None when bpfsign.crypto.verify accepts, else the errno of its VerificationError."""
    from bpfsign.crypto import verify
    from bpfsign.errors import VerificationError

    store, serials = trust_store(gk)
    try:
        verify.verify(payload, signature, store, keyring_id=serials.get(keyring_id, keyring_id))
    except VerificationError as exc:
        return exc.errno
    return None


def offline_errno_with(
    payload: bytes, signature: bytes, gk: Any, keyring_id: int, *, user: tuple[str, ...]
) -> int | None:
    """Like offline_errno, with the named certs also in the user keyring (a fresh store)."""
    from bpfsign.crypto import trust, verify
    from bpfsign.errors import VerificationError

    store = trust.TrustStore()
    for name in gk.key_serials:
        store.add(gk.signers[name].certificate, "session")
    for name in user:
        store.add(gk.signers[name].certificate, "user")
    try:
        verify.verify(payload, signature, store, keyring_id=keyring_id)
    except VerificationError as exc:
        return exc.errno
    return None


def model_backend(gk: Any) -> Any:
    """A ``KernelModel("7.3")`` whose keyrings mirror the guest's, cached on ``gk``.

    It takes the guest's serials (keyring_id, KEYCTL_LINK) and answers with its own
    keyrings, so a case can hand it exactly the calls it hands the kernel.
    """
    cached = getattr(gk, "_model", None)
    if cached is not None:
        return cached
    from bpfsign.kernel.model import KernelModel

    class GuestModel(KernelModel):
        def __init__(self) -> None:
            super().__init__("7.3")
            self.serials = {gk.session_serial: self.trust.session.serial}
            for name, kernel_serial in gk.key_serials.items():
                self.serials[kernel_serial] = self.add_key(
                    "asymmetric", None, gk.signers[name].certificate, -3
                )

        def prog_load(self, *args: Any, keyring_id: int = 0, **kw: Any) -> int:
            return super().prog_load(*args, keyring_id=self.serials.get(keyring_id, keyring_id), **kw)

        def key_link(self, key: int, keyring: int) -> None:
            super().key_link(self.serials.get(key, key), self.serials.get(keyring, keyring))

    gk._model = GuestModel()
    return gk._model
