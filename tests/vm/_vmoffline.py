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
            return super().prog_load(
                *args, keyring_id=self.serials.get(keyring_id, keyring_id), **kw
            )

        def key_link(self, key: int, keyring: int) -> None:
            super().key_link(self.serials.get(key, key), self.serials.get(keyring, keyring))

    gk._model = GuestModel()
    return gk._model


class EngineBackend:
    """The rules engine (what ``bpfsign verify --kernel 7.3`` and ``explain`` run), driven
    by a case's own calls: maps are only descriptions, and PROG_LOAD is ``rules.evaluate``
    on them with the offline TrustStore. No fd table, no kernel model."""

    def __init__(self, gk: Any) -> None:
        self.store, self.serials = trust_store(gk)
        self.maps: dict[int, dict[str, Any]] = {}
        self.next_fd = 1 << 24

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int, name: str = "",
                   *, flags: int = 0, excl_prog_hash: bytes | None = None) -> int:  # fmt: skip
        self.next_fd += 1
        self.maps[self.next_fd] = dict(map_type=map_type, value=bytes(value_size), max_entries=max_entries,
                                       name=name[:15], excl=excl_prog_hash, frozen=False)  # fmt: skip
        return self.next_fd

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        if key == bytes(4):
            self.maps[fd]["value"] = bytes(value)

    def map_freeze(self, fd: int) -> None:
        self.maps[fd]["frozen"] = True

    def close(self, fd: int) -> None:
        self.maps.pop(fd, None)

    def prog_load(self, prog_type: int, insns: bytes, *, fd_array: Any = (), fd_array_cnt: int = 0,
                  signature: bytes | None = None, keyring_id: int = 0, **_kw: Any) -> int:  # fmt: skip
        from bpfsign.errors import KernelError
        from bpfsign.kernel import profiles, rules

        def ref(fd: int) -> Any:
            m = self.maps.get(fd)
            if m is None:
                return rules.MapRef(fd, "closed")
            return rules.MapRef(fd, key=m, name=m["name"], map_type=m["map_type"], max_entries=m["max_entries"],
                                value=m["value"], frozen=m["frozen"], excl_prog_hash=m["excl"])  # fmt: skip

        array = [ref(fd) for fd in fd_array]
        load = rules.Load(insns, signature=signature, keyring_id=self.serials.get(keyring_id, keyring_id),
                          fd_array=array[:fd_array_cnt], fd_array_cnt=fd_array_cnt, array=array,
                          lookup=ref)  # fmt: skip
        verdict = rules.evaluate(load, profiles.PROFILES["7.3"], self.store)
        if not verdict.loads:
            raise KernelError(verdict.errno or 0, "BPF_PROG_LOAD", log=verdict.log)
        self.next_fd += 1
        return self.next_fd


def engine_skeleton(skel: Any, gk: Any, *, unsigned: bool = False) -> tuple[int | None, str]:
    """The rules engine's verdict on a whole header: ``bpfsign verify --kernel 7.3`` /
    ``bpfsign explain`` (``--unsigned``), keyring -3."""
    from bpfsign.kernel import profiles, rules

    store, _ = trust_store(gk)
    v = rules.evaluate(
        rules.skeleton_load(skel, keyring_id=-3, unsigned=unsigned), profiles.PROFILES["7.3"], store
    )
    return v.errno, v.log
