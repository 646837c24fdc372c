"""The kernel's BPF_PROG_LOAD signature path, replayed in Python, for any kernel profile.

:class:`KernelModel` implements the :class:`~bpfsign.kernel.backend.Backend` commands a
light-skeleton load and the signed-load cases use: maps (create, update,
lookup, freeze, info with hash), BTF objects, program load and keyrings, over
an fd table of its own. Its verdict on a load is the rules engine's
(:mod:`bpfsign.kernel.rules`, for a profile of :mod:`bpfsign.kernel.profiles`);
it raises exactly what :class:`~bpfsign.kernel.syscall.SyscallBackend` raises --
``KernelError(errno, command, log)``, and ``UnsupportedFeature`` for EOPNOTSUPP
on a signed load -- with the errno and verifier-log line measured on the real
kernels (docs/kernel.md §5-§8, §12.8, §13). The VM suite checks that the
answer equals the real kernel's for every case of its catalogue.

Like the kernel, a load reads ``fd_array[0..fd_array_cnt)`` once, binds and
checks those maps, and resolves the instructions' ``fd_array`` indices to the
maps bound then; another thread may :meth:`KernelModel.dup2` a different map
onto a slot meanwhile. The property the model states (and asserts on every
load): a program that loads uses exactly the maps whose values were checked
against the signature.

It does not run programs: PROG_TEST_RUN is refused with
:class:`~bpfsign.errors.UnsupportedFeature`. The loader runs over it unchanged
(:func:`~bpfsign.kernel.backend.run_loader`): a refusal comes out as the kernel's
KernelError, a loader the kernel would load stops at its run (UnsupportedFeature);
:meth:`KernelModel.loader_verdict` is that sequence up to the PROG_LOAD. What
only a run can show (the 6.18 in-loader hash check, docs/kernel.md §13 rows 23
and 56) the rules engine states for a whole header (``rules.skeleton_load``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ..errors import KernelError, UnsupportedFeature
from . import profiles as _profiles
from . import rules as _rules
from .backend import (
    FEATURES,
    LoaderRequest,
    LoaderSteps,
    MapInfo,
    PrimitiveSteps,
    ProgInfo,
    run_loader,
)
from .rules import program_digest

if TYPE_CHECKING:
    from ..crypto.trust import TrustStore
    from .backend import Backend
    from .policy import Policy

__all__ = ["KernelModel", "Profile", "ProgramsNotRun", "program_digest"]

#: a kernel profile name (bpfsign.kernel.profiles.PROFILES)
Profile = str

MAP_TYPE_ARRAY = 2
PROG_TYPE_SYSCALL = 31
EXCL_HASH_SIZE = 32
BPF_F_MMAPABLE = 1 << 10

_FIRST_FD = 1 << 20  # far above real fds, so a model fd is never mistaken for one


@dataclass
class _Map:
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str
    excl_prog_hash: bytes | None
    id: int
    values: dict[bytes, bytes] = field(default_factory=dict)
    frozen: bool = False
    writable_mmaps: int = 0

    def array_value(self, index: int) -> bytes:
        return self.values.get(struct.pack("<I", index), bytes(self.value_size))


@dataclass
class _Btf:
    id: int


@dataclass
class _Prog:
    prog_type: int
    id: int
    digest: bytes
    name: str
    license: str
    insn_cnt: int
    map_ids: tuple[int, ...]
    #: the values of the maps the signature covered, as checked (signed load-time loads)
    signed_values: tuple[bytes, ...] = ()


class ProgramsNotRun(UnsupportedFeature):
    """The model got to a BPF_PROG_TEST_RUN: everything before it passed; it runs nothing."""


#: The checks the kernel makes after ``security_bpf_prog_load`` (docs/kernel.md §11,
#: measured on 7.3.4 by tests/vm/test_vm_enforce.py): the map references, the
#: verifier's reads and a loader's own run. Everything else (the insn count,
#: ``fd_array``, the signature) comes first, so its errno wins over the policy's EPERM.
AFTER_HOOK: Final = frozenset(
    {"bind_after_signature", "bind_by_fd", "bind", "bpf_map_layout", "loader_exclusive",
     "loader_hash"}
)  # fmt: skip
#: A 6.18 kernel checks the signature at entry and calls the hook before bpf_check(),
#: where fd_array is read (docs/kernel.md §11), so only the entry checks precede it.
BEFORE_HOOK_INLOADER: Final = frozenset(
    {"insn_cnt", "signature_size", "signature_empty", "keyring", "verification_support",
     "signature"}
)  # fmt: skip


def _reaches_hook(verdict: _rules.Verdict, scheme: str) -> bool:
    """Whether the load gets as far as the LSM hook: it passes, or fails only after it."""
    if verdict.failed is None:
        return True
    rule = verdict.failed.rule.id
    if scheme == "loadtime":
        return rule in AFTER_HOOK
    return rule not in BEFORE_HOOK_INLOADER


def _fail(verdict: _rules.Verdict) -> KernelError:
    step = verdict.failed
    assert step is not None and step.errno is not None
    return KernelError(step.errno, "BPF_PROG_LOAD", log=step.log, message=step.hint)


class KernelModel:
    """A :class:`~bpfsign.kernel.backend.Backend` that answers as kernel ``profile`` would.

    ``trust`` stands for the kernel's keyrings: ``keyring_id`` resolves through
    it and signatures verify against it (:func:`bpfsign.crypto.verify.verify`).
    """

    def __init__(self, profile: Profile = "7.3", trust: TrustStore | None = None) -> None:
        if profile not in _profiles.PROFILES:
            raise ValueError(
                f"unknown kernel profile {profile!r}: use one of {', '.join(_profiles.PROFILES)}"
            )
        if trust is None:
            from ..crypto.trust import TrustStore

            trust = TrustStore()
        self.profile: Profile = profile
        self.rules_profile = _profiles.PROFILES[profile]
        self.trust = trust
        self._maps: dict[int, _Map] = {}
        self._progs: dict[int, _Prog] = {}
        self._btfs: dict[int, _Btf] = {}
        self._next_fd = _FIRST_FD
        self._next_id = 1
        self._key_certs: dict[int, bytes] = {}
        # one syscall at a time, as the kernel's fd table lookups are atomic; a load
        # releases it between reading fd_array and resolving the insns (see prog_load)
        self._lock = threading.RLock()
        #: an admission policy judged at security_bpf_prog_load (docs/kernel.md §11), as the
        #: BPF-LSM program of ``bpfsign enforce`` does: the same ``policy.decide``
        self.policy: Policy | None = None

    def __repr__(self) -> str:
        return f"KernelModel({self.profile!r})"

    # ------------------------------------------------------------- fd table
    def _new_fd(self) -> tuple[int, int]:
        with self._lock:
            fd, ident = self._next_fd, self._next_id
            self._next_fd += 1
            self._next_id += 1
            return fd, ident

    def dup2(self, old: int, new: int) -> int:
        """``dup2(old, new)`` on the model's fd table: ``new`` now names ``old``'s object."""
        with self._lock:
            obj = self._maps.get(old) or self._btfs.get(old) or self._progs.get(old)
            if obj is None:
                raise OSError(errno.EBADF, f"fd {old} is not open in this kernel model")
            for table in (self._maps, self._btfs, self._progs):
                table.pop(new, None)
            if isinstance(obj, _Map):
                self._maps[new] = obj
            elif isinstance(obj, _Btf):
                self._btfs[new] = obj
            else:
                self._progs[new] = obj
            self._next_fd = max(self._next_fd, new + 1)
            return new

    def _ref(self, fd: int) -> _rules.MapRef:
        """What the kernel finds behind ``fd`` (docs/kernel.md §6.2 step 2.2)."""
        m = self._maps.get(fd)
        if m is not None:
            return _rules.MapRef(
                fd, key=m, name=m.name, map_type=m.map_type, max_entries=m.max_entries,
                value=m.array_value(0), value_size=m.value_size, frozen=m.frozen,
                excl_prog_hash=m.excl_prog_hash,
            )  # fmt: skip
        b = self._btfs.get(fd)
        if b is not None:
            return _rules.MapRef(fd, "btf", key=b)
        if fd in self._progs:
            return _rules.MapRef(fd, "not-bpf")
        # an fd of this process that the model does not own: open (EINVAL) or not (EBADF)
        try:
            os.fstat(fd)
        except (OSError, OverflowError, ValueError):
            return _rules.MapRef(fd, "closed")
        return _rules.MapRef(fd, "not-bpf")

    def _map(self, fd: int, command: str) -> _Map:
        m = self._maps.get(fd)
        if m is None:
            raise KernelError(errno.EBADF, command, message=f"fd {fd} is not a map of this model")
        return m

    def close(self, fd: int) -> None:
        with self._lock:
            if (self._maps.pop(fd, None) is None and self._progs.pop(fd, None) is None
                    and self._btfs.pop(fd, None) is None):  # fmt: skip
                raise OSError(errno.EBADF, f"fd {fd} is not open in this kernel model")

    @property
    def open_fds(self) -> int:
        """Maps, BTF objects and programs still open (a leak check for tests)."""
        return len(self._maps) + len(self._progs) + len(self._btfs)

    def btf_load(self, data: bytes) -> int:
        """``BPF_BTF_LOAD`` of a (well-formed) BTF blob: only its fd matters to the model."""
        if data[:2] != b"\x9f\xeb":
            raise KernelError(errno.EINVAL, "BPF_BTF_LOAD")
        fd, ident = self._new_fd()
        with self._lock:
            self._btfs[fd] = _Btf(ident)
        return fd

    def map_mmap_writable(self, fd: int) -> None:
        """A writable ``mmap`` of an ``BPF_F_MMAPABLE`` map (EPERM once frozen, §8.2)."""
        m = self._map(fd, "mmap")
        if not m.flags & BPF_F_MMAPABLE:
            raise KernelError(errno.EINVAL, "mmap")
        if m.frozen:
            raise KernelError(errno.EPERM, "mmap")
        m.writable_mmaps += 1

    def map_munmap_writable(self, fd: int, writes: dict[int, int] | None = None) -> None:
        """Unmap one writable mapping, after ``writes`` ({offset: byte}) through it to entry 0."""
        m = self._map(fd, "munmap")
        if writes:
            value = bytearray(m.array_value(0))
            for off, byte in writes.items():
                value[off] = byte
            m.values[bytes(4)] = bytes(value)
        m.writable_mmaps -= 1

    # ------------------------------------------------------------------ maps
    def map_create(
        self,
        map_type: int,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str = "",
        *,
        flags: int = 0,
        excl_prog_hash: bytes | None = None,
    ) -> int:
        cmd = "BPF_MAP_CREATE"
        if excl_prog_hash is not None and len(excl_prog_hash) != EXCL_HASH_SIZE:
            raise KernelError(errno.EINVAL, cmd)  # §7, §13 row 21 (measured, size 20)
        if value_size == 0 or max_entries == 0 or key_size == 0:
            raise KernelError(errno.EINVAL, cmd)
        if map_type in (MAP_TYPE_ARRAY, 6) and key_size != 4:  # ARRAY / PERCPU_ARRAY
            raise KernelError(errno.EINVAL, cmd)
        fd, ident = self._new_fd()
        self._maps[fd] = _Map(
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
            name.encode()[:15].decode(errors="replace"),
            excl_prog_hash,
            ident,
        )
        return fd

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        m = self._map(fd, "BPF_MAP_UPDATE_ELEM")
        if m.frozen:  # §8.2: syscall-side writes fail once frozen
            raise KernelError(errno.EPERM, "BPF_MAP_UPDATE_ELEM")
        if len(key) != m.key_size or len(value) != m.value_size:
            raise KernelError(errno.EINVAL, "BPF_MAP_UPDATE_ELEM")
        if m.map_type in (MAP_TYPE_ARRAY, 6):
            if struct.unpack("<I", key)[0] >= m.max_entries:
                raise KernelError(errno.E2BIG, "BPF_MAP_UPDATE_ELEM")
        elif key not in m.values and len(m.values) >= m.max_entries:
            raise KernelError(errno.E2BIG, "BPF_MAP_UPDATE_ELEM")
        m.values[bytes(key)] = bytes(value)

    def map_lookup(self, fd: int, key: bytes, value_size: int) -> bytes:
        m = self._map(fd, "BPF_MAP_LOOKUP_ELEM")
        if m.map_type in (MAP_TYPE_ARRAY, 6):
            if len(key) != 4 or struct.unpack("<I", key)[0] >= m.max_entries:
                raise KernelError(errno.ENOENT, "BPF_MAP_LOOKUP_ELEM")
            return m.array_value(struct.unpack("<I", key)[0])
        value = m.values.get(bytes(key))
        if value is None:
            raise KernelError(errno.ENOENT, "BPF_MAP_LOOKUP_ELEM")
        return value

    def map_freeze(self, fd: int) -> None:
        m = self._map(fd, "BPF_MAP_FREEZE")
        if m.frozen:
            # docs/kernel.md row 47 says EBUSY (from source); measured on 6.18.44 (tests/test_maps.py):
            # EPERM, since a frozen map's syscall side loses write and freeze needs write
            raise KernelError(errno.EPERM, "BPF_MAP_FREEZE")
        if m.writable_mmaps:  # §8.2 (measured on 7.3.4: EBUSY)
            raise KernelError(errno.EBUSY, "BPF_MAP_FREEZE")
        m.frozen = True

    def map_info(self, fd: int, *, want_hash: bool = False) -> MapInfo:
        m = self._map(fd, "BPF_OBJ_GET_INFO_BY_FD")
        digest = None
        if want_hash:
            if not m.frozen:  # §8.1, §13 row 22 (measured on both)
                raise KernelError(errno.EPERM, "BPF_OBJ_GET_INFO_BY_FD")
            if m.map_type != MAP_TYPE_ARRAY:  # §8.1: only ARRAY has map_get_hash
                raise KernelError(errno.EINVAL, "BPF_OBJ_GET_INFO_BY_FD")
            stride = (m.value_size + 7) // 8 * 8  # §8.1: each value zero-padded to 8
            digest = hashlib.sha256(
                b"".join(m.array_value(i).ljust(stride, b"\0") for i in range(m.max_entries))
            ).digest()
        return MapInfo(
            type=m.map_type,
            id=m.id,
            key_size=m.key_size,
            value_size=m.value_size,
            max_entries=m.max_entries,
            map_flags=m.flags,
            name=m.name,
            hash=digest,
        )

    # -------------------------------------------------------------- programs
    def prog_load(
        self,
        prog_type: int,
        insns: bytes,
        *,
        license: str = "GPL",
        name: str = "",
        flags: int = 0,
        fd_array: Sequence[int] = (),
        fd_array_cnt: int = 0,
        signature: bytes | None = None,
        keyring_id: int = 0,
        expected_attach_type: int = 0,
        log_level: int = 0,
    ) -> int:
        """BPF_PROG_LOAD: the rules engine's verdict for this profile (docs/kernel.md §6).

        ``fd_array`` entries past the caller's array (``fd_array_cnt`` larger than
        it) read as fd 0, which is what the syscall backend's zero-filled buffer
        holds there.
        """
        fds = list(fd_array) + [0] * max(0, fd_array_cnt - len(fd_array))
        with self._lock:
            first = [self._ref(fd) for fd in fds[:fd_array_cnt]]

        def reread(i: int) -> _rules.MapRef | None:
            if 0 <= i < fd_array_cnt:
                # bound once: the IDX forms use the maps bound up front, not whatever the
                # slot names now (measured on 7.3.4: racing dup2()s never changed them,
                # tests/vm/test_vm_race.py)
                return first[i]
            if not 0 <= i < len(fds):
                return None
            with self._lock:  # past fd_array_cnt the verifier reads fd_array[i] now
                return self._ref(fds[i])

        def lookup(fd: int) -> _rules.MapRef:
            with self._lock:
                return self._ref(fd)

        load = _rules.Load(
            insns, signature=signature, keyring_id=keyring_id, fd_array=first,
            fd_array_cnt=fd_array_cnt, lookup=lookup, reread=reread, prog_name=name,
        )  # fmt: skip
        verdict = _rules.evaluate(load, self.rules_profile, self.trust)
        if self.policy is not None and _reaches_hook(verdict, self.rules_profile.scheme):
            # the hook runs after the signature and before the verifier (docs/kernel.md
            # §11): a load the policy denies gets EPERM even if a later check would fail
            self._admit(signature is not None, keyring_id)
        if not verdict.loads:
            assert verdict.failed is not None
            if verdict.failed.rule.id == "verification_support":
                # raised as SyscallBackend raises EOPNOTSUPP on a signed load
                raise UnsupportedFeature("signed BPF_PROG_LOAD", verdict.hint,
                                         errno=errno.EOPNOTSUPP)  # fmt: skip
            raise _fail(verdict)
        used = [r.key for r in verdict.bound if isinstance(r.key, _Map)]
        signed_values: tuple[bytes, ...] = ()
        if signature is not None and self.rules_profile.scheme == "loadtime":
            # the property: a loaded signed program uses only maps whose values were
            # checked against the signature, and those are the values it will read
            checked = [r.key for r in first if r.kind == "map"]
            assert all(any(m is k for k in checked) for m in used), "unverified map bound"
            signed_values = tuple(r.value for r in verdict.bound)
        fd, ident = self._new_fd()
        with self._lock:
            self._progs[fd] = _Prog(
                prog_type, ident, program_digest(insns),
                name.encode()[:15].decode(errors="replace"), license, len(insns) // 8,
                tuple(m.id for m in used), signed_values,
            )  # fmt: skip
        return fd

    def _admit(self, signed: bool, keyring_id: int) -> None:
        """``policy.decide`` on what the kernel records (docs/kernel.md §10); EPERM, no log."""
        from .policy import decide, inputs_for_load

        assert self.policy is not None
        serial = 0
        if signed and keyring_id not in (0, 1, 2):
            rings = self.trust.resolve(keyring_id).keyrings
            serial = rings[0].serial if rings else 0
        inputs = inputs_for_load(keyring_id if signed else None, serial)
        if not decide(self.policy, inputs).admitted:
            raise KernelError(errno.EPERM, "BPF_PROG_LOAD")

    def prog_map_ids(self, fd: int) -> tuple[int, ...]:
        """``bpf_prog_info.map_ids``: the ids of the maps the program uses."""
        p = self._progs.get(fd)
        if p is None:
            raise KernelError(errno.EBADF, "BPF_OBJ_GET_INFO_BY_FD")
        return p.map_ids

    def prog_signed_values(self, fd: int) -> tuple[bytes, ...]:
        """The values of the program's maps as the signature check saw them."""
        p = self._progs.get(fd)
        if p is None:
            raise KernelError(errno.EBADF, "BPF_OBJ_GET_INFO_BY_FD")
        return p.signed_values

    def prog_info(self, fd: int) -> ProgInfo:
        p = self._progs.get(fd)
        if p is None:
            raise KernelError(errno.EBADF, "BPF_OBJ_GET_INFO_BY_FD")
        gpl = p.license in ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL")  # fmt: skip
        return ProgInfo(
            type=p.prog_type,
            id=p.id,
            tag=p.digest[:8],
            name=p.name,
            gpl_compatible=gpl,
            verified_insns=p.insn_cnt,
            nr_map_ids=len(p.map_ids),
        )

    def test_run(self, prog_fd: int, ctx: bytearray) -> int:
        raise self._no_run()

    def test_run_packet(self, prog_fd: int, packet: bytes) -> int:
        raise self._no_run()

    def _no_run(self) -> ProgramsNotRun:
        return ProgramsNotRun(
            "BPF_PROG_TEST_RUN in the kernel model",
            f"everything before it passes, so the {self.profile} kernel would load it; the "
            "model gives the kernel's verdict on loading and does not run programs (load on a "
            "real kernel to run the loader)",
        )

    def loader_steps(self, request: LoaderRequest) -> LoaderSteps:
        """The generic steps over this model's commands; their run raises (no programs run)."""
        return PrimitiveSteps(self, request)

    def probe(self, feature: str) -> bool | None:
        """Answered from the profile (docs/kernel.md §6.1, §6.2, §8.1)."""
        if feature == "inloader_loaders":
            return self.rules_profile.layout == "6.18"
        if feature == "loadtime_verification":
            return self.rules_profile.scheme == "loadtime" and self.rules_profile.verifies
        if feature == "run_programs":
            return False
        raise ValueError(f"unknown feature {feature!r} (known: {', '.join(FEATURES)})")

    def loader_verdict(self, request: LoaderRequest) -> None:
        """The loader sequence (:func:`~bpfsign.kernel.backend.run_loader`) up to its PROG_LOAD.

        Returns when the kernel would load the loader program; raises what the
        kernel raises otherwise (KernelError, or UnsupportedFeature on 6.18).
        """
        run_loader(self, request, bytearray(), run=False)

    # ------------------------------------------------------ attach, pin
    def raw_tracepoint_open(self, prog_fd: int, name: str | None) -> int:
        raise self._not_modelled("BPF_RAW_TRACEPOINT_OPEN")

    def link_create(self, prog_fd: int, target_fd: int, attach_type: int) -> int:
        raise self._not_modelled("BPF_LINK_CREATE")

    def iter_create(self, link_fd: int) -> int:
        raise self._not_modelled("BPF_ITER_CREATE")

    def obj_pin(self, fd: int, path: str) -> None:
        raise self._not_modelled("BPF_OBJ_PIN")

    @staticmethod
    def _not_modelled(command: str) -> UnsupportedFeature:
        return UnsupportedFeature(
            f"{command} in the kernel model", "the model covers loading, not attaching or pinning"
        )

    # -------------------------------------------------------------- keyrings
    def add_key(
        self, key_type: str, description: str | None, payload: bytes | None, keyring: int
    ) -> int:
        """``add_key("asymmetric", …, cert DER, keyring)`` into the TrustStore."""
        if key_type != "asymmetric" or payload is None:
            raise KernelError(errno.EINVAL, "add_key", message="the model holds asymmetric keys")
        if keyring == _profiles.KEY_SPEC_BPF_KEYRING and self.rules_profile.bpf_keyring:
            keyring = _rules.bpf_keyring(self.trust)
        serial = self.trust.add(payload, keyring)
        self._key_certs[serial] = payload
        return serial

    def key_search(self, keyring: int, key_type: str, description: str) -> int | None:
        raise self._not_modelled("KEYCTL_SEARCH")

    def keyring_id(self, special: int, *, create: bool = False) -> int:
        if special in (-3, -4, -5):
            return self.trust._ring(special).serial
        if special == _profiles.KEY_SPEC_BPF_KEYRING and self.rules_profile.bpf_keyring:
            return _rules.bpf_keyring(self.trust)
        raise KernelError(errno.ENOKEY, "keyctl(KEYCTL_GET_KEYRING_ID)")

    def join_session_keyring(self, name: str | None = None) -> int:
        return self.trust.session.serial

    def key_link(self, key: int, keyring: int) -> None:
        """KEYCTL_LINK of a key this model added (add_key) into another keyring."""
        cert = self._key_certs.get(key)
        if cert is None:
            raise KernelError(errno.ENOKEY, "keyctl(KEYCTL_LINK)", message=f"no key {key}")
        self.trust.add(cert, keyring)

    def key_unlink(self, key: int, keyring: int) -> None:
        raise self._not_modelled("KEYCTL_UNLINK")

    def key_describe(self, key: int) -> str:
        raise self._not_modelled("KEYCTL_DESCRIBE")

    def key_read(self, key: int) -> bytes:
        cert = self._key_certs.get(key)
        if cert is None:
            raise KernelError(errno.ENOKEY, "keyctl(KEYCTL_READ)")
        return cert


if TYPE_CHECKING:  # KernelModel implements the whole protocol
    _conforms: Backend = KernelModel()
