"""The kernel's BPF_PROG_LOAD signature path, replayed in Python (kernel profiles 6.18 and 7.3).

:class:`KernelModel` implements the :class:`~bpfsign.kernel.backend.Backend` commands a
light-skeleton load and the signed-load cases use: maps (create, update,
lookup, freeze, info with hash), program load and keyrings, over an fd table
of its own. It raises exactly what :class:`~bpfsign.kernel.syscall.SyscallBackend`
raises -- ``KernelError(errno, command, log)``, and ``UnsupportedFeature`` for
EOPNOTSUPP on a signed load -- with the errno and the verifier-log line measured
on the real kernels (spec/kernel.md §5-§8, §12.8, §13). So a caller can ask
"what would a 7.3 kernel say to this?" without one, and the VM suite checks
that the answer equals the real kernel's for every case.

It does not run programs: PROG_TEST_RUN is refused with
:class:`~bpfsign.errors.UnsupportedFeature`. The loader runs over it unchanged
(:func:`~bpfsign.kernel.backend.run_loader`): a refusal comes out as the kernel's
KernelError, a loader the kernel would load stops at its run (UnsupportedFeature);
:meth:`KernelModel.loader_verdict` is that sequence up to the PROG_LOAD.
Checks that only a run can show (the 6.18 in-loader hash check, kernel.md §13
rows 23 and 56) are out of its reach.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import KernelError, UnsupportedFeature, VerificationError
from .backend import (
    FEATURES,
    LoaderRequest,
    LoaderSteps,
    MapInfo,
    PrimitiveSteps,
    ProgInfo,
    run_loader,
)

if TYPE_CHECKING:
    from ..crypto.trust import TrustStore
    from .backend import Backend

__all__ = ["KernelModel", "Profile", "ProgramsNotRun", "program_digest"]

Profile = Literal["7.3", "6.18"]

ENOTSUPP = 524
MAP_TYPE_HASH = 1
MAP_TYPE_ARRAY = 2
PROG_TYPE_SYSCALL = 31
MAX_SIGNATURE_SIZE = 8192  # KMALLOC_MAX_CACHE_SIZE on x86-64 (§12.8)
MAX_SIGNED_PAYLOAD = (1 << 24) - 1  # §6.2 step 2.3
MAX_USED_MAPS = 64  # §12.8
MAX_INSNS = 1_000_000  # §6.1 step 2 (privileged)
EXCL_HASH_SIZE = 32
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 1, 2, 5, 6
LD_IMM64 = 0x18
LDX_MEM_W = 0x61
#: struct bpf_map offset 32: u32 ``excl`` on 6.18.44, the ``ops`` pointer on 7.3.4 (§8.1)
BPF_MAP_EXCL_OFFSET = 32

LOG_CNT0 = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
LOG_EXCL = "program's hash doesn't match map's excl_prog_hash"
LOG_OFF32 = "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"

_FIRST_FD = 1 << 20  # far above real fds, so a model fd is never mistaken for one


def program_digest(insns: bytes) -> bytes:
    """``prog->digest``: SHA-256 of the insns with MAP_FD/MAP_VALUE immediates zeroed (§7).

    The IDX forms (src_reg 5/6), which gen_loader loaders use, are not masked.
    """
    buf = bytearray(insns)
    pc = 0
    n = len(buf) // 8
    while pc < n:
        off = pc * 8
        if buf[off] == LD_IMM64 and pc + 1 < n:
            if buf[off + 1] >> 4 in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE):
                buf[off + 4 : off + 8] = bytes(4)
                buf[off + 12 : off + 16] = bytes(4)
            pc += 2
            continue
        pc += 1
    return hashlib.sha256(bytes(buf)).digest()


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

    def array_value(self, index: int) -> bytes:
        return self.values.get(struct.pack("<I", index), bytes(self.value_size))


@dataclass
class _Prog:
    prog_type: int
    id: int
    digest: bytes
    name: str
    license: str
    insn_cnt: int
    used_maps: int


@dataclass(frozen=True)
class _LdMap:
    """One ``ld_imm64`` that names a map: its pc, src_reg (1/2/5/6), imm and dst."""

    pc: int
    src: int
    imm: int
    dst: int


def _map_loads(insns: bytes) -> list[_LdMap]:
    out = []
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, regs, _off, imm = struct.unpack_from("<BBhi", insns, pc * 8)
        if op == LD_IMM64:
            src = regs >> 4
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE):
                out.append(_LdMap(pc, src, imm, regs & 0xF))
            pc += 2
            continue
        pc += 1
    return out


def _reads_map_offset_32(insns: bytes) -> bool:
    """A u32 load at offset 32 from a register holding a map pointer (ld_imm64 src 1/5).

    The bpftool <= 7.8 -S loader's exclusivity check (``61 12 20 00 …``): a
    straight-line register track is enough for that prefix.
    """
    map_regs: set[int] = set()
    n = len(insns) // 8
    pc = 0
    while pc < n:
        op, regs, off, _imm = struct.unpack_from("<BBhi", insns, pc * 8)
        dst, src = regs & 0xF, regs >> 4
        if op == LD_IMM64:
            if src in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX):
                map_regs.add(dst)
            else:
                map_regs.discard(dst)
            pc += 2
            continue
        if op == LDX_MEM_W and src in map_regs and off == BPF_MAP_EXCL_OFFSET:
            return True
        cls = op & 0x07
        if cls in (0x04, 0x07, 0x01) or (cls == 0x00 and op != LD_IMM64):  # ALU, ALU64, LDX, LD
            map_regs.discard(dst)
        elif cls in (0x05, 0x06) and (op & 0xF0) in (0x80, 0x90):  # call / exit
            map_regs.difference_update(range(6))
        pc += 1
    return False


class ProgramsNotRun(UnsupportedFeature):
    """The model got to a BPF_PROG_TEST_RUN: everything before it passed; it runs nothing."""


def _fail(err: int, log: str = "") -> KernelError:
    from . import _sys

    return KernelError(err, "BPF_PROG_LOAD", log=log, message=_sys.explain(err, log))


class KernelModel:
    """A :class:`~bpfsign.kernel.backend.Backend` that answers as kernel ``profile`` would.

    ``trust`` stands for the kernel's keyrings: ``keyring_id`` resolves through
    it and signatures verify against it (:func:`bpfsign.crypto.verify.verify`).
    """

    def __init__(self, profile: Profile = "7.3", trust: TrustStore | None = None) -> None:
        if profile not in ("7.3", "6.18"):
            raise ValueError(f"unknown kernel profile {profile!r}: use '7.3' or '6.18'")
        if trust is None:
            from ..crypto.trust import TrustStore

            trust = TrustStore()
        self.profile: Profile = profile
        self.trust = trust
        self._maps: dict[int, _Map] = {}
        self._progs: dict[int, _Prog] = {}
        self._next_fd = _FIRST_FD
        self._next_id = 1
        self._key_certs: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"KernelModel({self.profile!r})"

    # ------------------------------------------------------------- fd table
    def _new_fd(self) -> tuple[int, int]:
        fd, ident = self._next_fd, self._next_id
        self._next_fd += 1
        self._next_id += 1
        return fd, ident

    def _map(self, fd: int, command: str) -> _Map:
        m = self._maps.get(fd)
        if m is None:
            raise KernelError(errno.EBADF, command, message=f"fd {fd} is not a map of this model")
        return m

    def close(self, fd: int) -> None:
        if self._maps.pop(fd, None) is None and self._progs.pop(fd, None) is None:
            raise OSError(errno.EBADF, f"fd {fd} is not open in this kernel model")

    @property
    def open_fds(self) -> int:
        """Maps and programs still open (a leak check for tests)."""
        return len(self._maps) + len(self._progs)

    # ------------------------------------------------------------------ maps
    def map_create(
        self, map_type: int, key_size: int, value_size: int, max_entries: int,
        name: str = "", *, flags: int = 0, excl_prog_hash: bytes | None = None,
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
            map_type, key_size, value_size, max_entries, flags, name.encode()[:15].decode(
                errors="replace"), excl_prog_hash, ident,
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
            # kernel.md row 47 says EBUSY (from source); measured on 6.18.44 (tests/test_maps.py):
            # EPERM, since a frozen map's syscall side loses write and freeze needs write
            raise KernelError(errno.EPERM, "BPF_MAP_FREEZE")
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
            type=m.map_type, id=m.id, key_size=m.key_size, value_size=m.value_size,
            max_entries=m.max_entries, map_flags=m.flags, name=m.name, hash=digest,
        )

    # -------------------------------------------------------------- programs
    def prog_load(
        self, prog_type: int, insns: bytes, *, license: str = "GPL", name: str = "",
        flags: int = 0, fd_array: Sequence[int] = (), fd_array_cnt: int = 0,
        signature: bytes | None = None, keyring_id: int = 0, expected_attach_type: int = 0,
        log_level: int = 0,
    ) -> int:
        """BPF_PROG_LOAD in the order of kernel.md §6.1 (6.18) / §6.2 (7.3)."""
        n = len(insns) // 8
        if n == 0 or n > MAX_INSNS:  # §6.1 step 2
            raise _fail(errno.E2BIG)
        if signature is not None:
            self._entry_signature_checks(signature, keyring_id)
        if fd_array_cnt > MAX_USED_MAPS:  # §12.8 (from source)
            raise _fail(errno.E2BIG)
        digest = program_digest(insns)
        bound: list[_Map] = []  # used_maps, in binding order
        if fd_array_cnt:
            # §6.2 step 2.2: fd_array[0..cnt) is bound before any insn is looked at
            if len(fd_array) < fd_array_cnt:
                raise _fail(errno.EFAULT)
            for fd in fd_array[:fd_array_cnt]:
                m = self._maps.get(fd)
                if m is None:
                    raise _fail(errno.EBADF)
                if signature is not None:
                    self._check_metadata_map(m, digest)
                elif m.excl_prog_hash is not None:
                    # §6.3 row 1, §13 row 11 (measured on 7.3.4 and 6.18): an unsigned load has no
                    # digest yet when fd_array is bound, so any exclusive map there is refused
                    raise _fail(errno.EACCES, LOG_EXCL)
                if all(m is not b for b in bound):
                    bound.append(m)
        if signature is not None:
            self._verify_signature(insns, bound, signature, keyring_id)
        # §6.2 step 4 / §6.1 step 8: the verifier resolves the pseudo ld_imm64 insns
        for ld in _map_loads(insns):
            if ld.src in (PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE):
                if signature is not None and self.profile == "7.3" and ld.imm >= fd_array_cnt:
                    # §6.2 step 4, §13 row 49 (measured on 7.3.4): no map binds after the signature
                    raise _fail(errno.EACCES, LOG_CNT0)
                if not 0 <= ld.imm < len(fd_array):
                    raise _fail(errno.EFAULT)
                fd = fd_array[ld.imm]
            else:
                if signature is not None and self.profile == "7.3":
                    raise _fail(errno.EACCES, LOG_CNT0)  # §6.2 step 4 (from source, unverified)
                fd = ld.imm
            m = self._maps.get(fd)
            if m is None:
                raise _fail(errno.EBADF)
            if any(m is b for b in bound):
                continue
            if m.excl_prog_hash is not None and m.excl_prog_hash != digest:
                raise _fail(errno.EACCES, LOG_EXCL)  # §7, §13 row 20 (measured on both)
            bound.append(m)
        if self.profile == "7.3" and _reads_map_offset_32(insns):
            raise _fail(errno.EACCES, LOG_OFF32)  # §6.5, §8.1, §13 row 50 (measured on 7.3.4)
        fd, ident = self._new_fd()
        self._progs[fd] = _Prog(prog_type, ident, digest, name.encode()[:15].decode(
            errors="replace"), license, n, len(bound))
        return fd

    def _entry_signature_checks(self, signature: bytes, keyring_id: int) -> None:
        """§6.1 step 5.1-5.5: size, keyring, and (6.18) the EOPNOTSUPP stub."""
        if len(signature) > MAX_SIGNATURE_SIZE:
            raise _fail(errno.EINVAL)  # §12.8, §13 row 29: empty log (measured on both)
        if self.profile == "7.3" and len(signature) == 0:
            raise _fail(errno.EINVAL)  # §12.8, §13 row 53 (measured on 7.3.4)
        try:
            self.trust.resolve(keyring_id)  # §5: resolved before the signature is examined
        except VerificationError as exc:
            # §5, §13 row 2: the log only on 7.3.4; 6.18.44 gives the same EINVAL, empty log
            log = "" if self.profile == "6.18" else (
                f"cannot resolve signing keyring with keyring_id {keyring_id}")
            raise _fail(exc.errno, log) from None
        if self.profile == "6.18":
            # §6.1 step 5.5, §13 row 1 (measured on 6.18): no CONFIG_SYSTEM_DATA_VERIFICATION;
            # raised as SyscallBackend raises it
            raise UnsupportedFeature(
                "signed BPF_PROG_LOAD",
                "the kernel lacks signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is "
                "not set), so every signed load fails with EOPNOTSUPP; load it on a kernel built "
                "with it (e.g. Debian's Linux 7.x), or without its signature",
                errno=errno.EOPNOTSUPP,
            )

    def _check_metadata_map(self, m: _Map, digest: bytes) -> None:
        """§6.2 step 2.2 and §6.4: one fd_array map of a signed load, checks in measured order."""
        if not m.frozen:  # §6.3, §13 row 16: "frozen" before "exclusive" (measured)
            raise _fail(errno.EPERM, f"signed program metadata map '{m.name}' must be frozen")
        if m.excl_prog_hash is None:  # §13 row 17 (measured on 7.3.4: EPERM, not EINVAL)
            raise _fail(errno.EPERM, f"signed program metadata map '{m.name}' must be exclusive")
        if m.map_type != MAP_TYPE_ARRAY:  # §6.4, §13 row 25 (measured; order vs. frozen open)
            raise _fail(errno.EINVAL, f"signed program metadata map '{m.name}' must be an array")
        if m.max_entries != 1:  # §6.4, §13 row 51 (measured on 7.3.4)
            raise _fail(ENOTSUPP, f"failed to read signed metadata map '{m.name}': -{ENOTSUPP}")
        if m.excl_prog_hash != digest:  # §6.3, §13 row 18 (measured on 7.3.4)
            raise _fail(errno.EACCES, LOG_EXCL)

    def _verify_signature(
        self, insns: bytes, bound: list[_Map], signature: bytes, keyring_id: int
    ) -> None:
        """§6.2 step 2.3-2.5: insns ‖ the bound maps' values in fd_array order, then PKCS#7."""
        from ..crypto import verify

        size = len(insns) + sum(m.value_size for m in bound)
        if size > MAX_SIGNED_PAYLOAD:  # §12.8, §13 row 28 (measured on 7.3.4)
            raise _fail(errno.E2BIG, f"signed payload too large: {size} bytes")
        payload = insns + b"".join(m.array_value(0) for m in bound)
        try:
            verify.verify(payload, signature, self.trust, keyring_id=keyring_id)
        except VerificationError as exc:  # §6.2 step 2.4, §13 rows 3-9, 34, 35, 52, 54
            raise _fail(exc.errno, f"signature verification failed: -{exc.errno}") from None

    def prog_info(self, fd: int) -> ProgInfo:
        p = self._progs.get(fd)
        if p is None:
            raise KernelError(errno.EBADF, "BPF_OBJ_GET_INFO_BY_FD")
        gpl = p.license in ("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL")  # fmt: skip
        return ProgInfo(
            type=p.prog_type, id=p.id, tag=p.digest[:8], name=p.name, gpl_compatible=gpl,
            verified_insns=p.insn_cnt, nr_map_ids=p.used_maps,
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
        """Answered from the profile (kernel.md §6.1, §6.2, §8.1)."""
        if feature == "inloader_loaders":
            return self.profile == "6.18"
        if feature == "loadtime_verification":
            return self.profile == "7.3"
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
        return UnsupportedFeature(f"{command} in the kernel model",
                                  "the model covers loading, not attaching or pinning")

    # -------------------------------------------------------------- keyrings
    def add_key(
        self, key_type: str, description: str | None, payload: bytes | None, keyring: int
    ) -> int:
        """``add_key("asymmetric", …, cert DER, keyring)`` into the TrustStore."""
        if key_type != "asymmetric" or payload is None:
            raise KernelError(errno.EINVAL, "add_key", message="the model holds asymmetric keys")
        serial = self.trust.add(payload, keyring)
        self._key_certs[serial] = payload
        return serial

    def key_search(self, keyring: int, key_type: str, description: str) -> int | None:
        raise self._not_modelled("KEYCTL_SEARCH")

    def keyring_id(self, special: int, *, create: bool = False) -> int:
        if special in (-3, -4, -5):
            return self.trust._ring(special).serial
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
