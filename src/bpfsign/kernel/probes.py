"""Feature probes: ask the running kernel what it can do, once per process.

Each probe makes the smallest call that tells the answer apart (docs/kernel.md §14)
and closes what it created. Results are cached; ``bpfsign probe`` prints them.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from ..errors import errno_name
from . import _sys as S
from . import btf as _btf

SECURITY_DIR = "/sys/kernel/security"
LSM_FILE = SECURITY_DIR + "/lsm"

# r0 = 0; exit
_RET0 = bytes.fromhex("b7000000000000009500000000000000")


@dataclass(frozen=True)
class Probe:
    """One answer: ``supported`` is None when the probe could not tell."""

    name: str
    supported: bool | None
    detail: str
    errno: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def _map_create(excl: bytes | None = None, value_size: int = 8) -> tuple[int, int]:
    attr = S.MapCreateAttr(
        map_type=S.MAP_TYPE_ARRAY,
        key_size=4,
        value_size=value_size,
        max_entries=1,
        map_name=b"bpfsign_probe",
    )
    buf = None
    if excl is not None:
        buf = ctypes.create_string_buffer(excl, len(excl))
        attr.excl_prog_hash, attr.excl_prog_hash_size = S.addr(buf), len(excl)
    return S.bpf_errno(S.MAP_CREATE, attr, S.SIZE_MAP_CREATE)


@cache
def bpf_usable() -> Probe:
    """Decided by a real BPF_MAP_CREATE: capabilities, not the uid, are what count."""
    fd, err = _map_create()
    if fd < 0:
        hint = f": {S.eperm_hint()}" if err == errno.EPERM else ""
        return Probe("bpf", False, f"BPF_MAP_CREATE failed: {errno_name(err)}{hint}", err)
    _close(fd)
    return Probe("bpf", True, "bpf() works (created a 1-entry ARRAY)")


@cache
def exclusive_maps() -> Probe:
    if not bpf_usable().supported:
        return Probe("exclusive_maps", None, "bpf() unusable")
    fd, err = _map_create(excl=bytes(32))
    if fd >= 0:
        _close(fd)
        return Probe("exclusive_maps", True, "BPF_MAP_CREATE accepts excl_prog_hash")
    return Probe(
        "exclusive_maps",
        False,
        f"BPF_MAP_CREATE with excl_prog_hash gave {errno_name(err)}: kernel older than 6.18",
        err,
    )


@cache
def map_hash() -> Probe:
    if not bpf_usable().supported:
        return Probe("map_hash", None, "bpf() unusable")
    fd, err = _map_create(value_size=12)
    if fd < 0:
        return Probe("map_hash", None, f"BPF_MAP_CREATE failed: {errno_name(err)}", err)
    try:
        _, err = S.bpf_errno(S.MAP_FREEZE, S.MapElemAttr(map_fd=fd), S.SIZE_FREEZE)
        if err:
            return Probe("map_hash", False, f"BPF_MAP_FREEZE gave {errno_name(err)}", err)
        info = S.MapInfo()
        hbuf = ctypes.create_string_buffer(32)
        info.hash, info.hash_size = S.addr(hbuf), 32
        attr = S.InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=S.addr(info))
        _, err = S.bpf_errno(S.OBJ_GET_INFO_BY_FD, attr, S.SIZE_INFO)
    finally:
        _close(fd)
    if err:
        return Probe("map_hash", False, f"bpf_map_info.hash gave {errno_name(err)}", err)
    if hbuf.raw != hashlib.sha256(bytes(16)).digest():
        return Probe("map_hash", False, "the kernel's map hash is not SHA-256 of the padded value")
    return Probe("map_hash", True, "BPF_OBJ_GET_INFO_BY_FD returns SHA-256 of a frozen ARRAY")


def _signed_load(signature: bytes, keyring_id: int, fd_array_cnt: int = 0) -> tuple[int, int]:
    ibuf = ctypes.create_string_buffer(_RET0, len(_RET0))
    lic = ctypes.create_string_buffer(b"GPL")
    sbuf = ctypes.create_string_buffer(signature, len(signature))
    attr = S.ProgLoadAttr(
        prog_type=S.PROG_TYPE_SOCKET_FILTER,
        insn_cnt=2,
        insns=S.addr(ibuf),
        license=S.addr(lic),
        signature=S.addr(sbuf),
        signature_size=len(signature),
        keyring_id=keyring_id,
        fd_array_cnt=fd_array_cnt,
    )
    return S.bpf_errno(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD)


@cache
def signed_prog_load() -> Probe:
    """A 16-byte garbage signature, keyring -3: EBADMSG means the kernel parses PKCS#7."""
    if not bpf_usable().supported:
        return Probe("signed_prog_load", None, "bpf() unusable")
    fd, err = _signed_load(b"\x30\x0e" + bytes(14), S.KEY_SPEC_SESSION_KEYRING)
    if fd >= 0:  # cannot happen: garbage never verifies
        _close(fd)
        return Probe("signed_prog_load", None, "a garbage signature loaded?!")
    if err == errno.EBADMSG:
        return Probe("signed_prog_load", True, "the kernel verifies PKCS#7 signatures", err)
    if err == errno.EOPNOTSUPP:
        return Probe(
            "signed_prog_load",
            False,
            "kernel lacks CONFIG_SYSTEM_DATA_VERIFICATION: every signed BPF_PROG_LOAD fails "
            "with EOPNOTSUPP",
            err,
        )
    if err in (errno.E2BIG, errno.EINVAL) and not exclusive_maps().supported:
        return Probe("signed_prog_load", False, "kernel older than 6.18: no signature fields", err)
    return Probe("signed_prog_load", None, f"garbage-signature probe gave {errno_name(err)}", err)


@cache
def loadtime_verification() -> Probe:
    """The load-time scheme: the verdict enum in BTF (absent on 6.18, docs/kernel.md §10)."""
    btf = _btf.vmlinux()
    if btf is None:
        return Probe("loadtime_verification", None, f"no {_btf.VMLINUX} to inspect")
    verdict = btf.enum_values("bpf_sig_verdict")
    signing = signed_prog_load().supported
    if verdict is None:
        return Probe(
            "loadtime_verification",
            False,
            "BTF has no enum bpf_sig_verdict: a 6.18-scheme kernel (signature over insns only)",
        )
    note = "" if signing else " (but signed loads cannot succeed here)"
    return Probe(
        "loadtime_verification",
        True,
        "BTF has enum bpf_sig_verdict: the kernel verifies insns ‖ metadata at "
        f"BPF_PROG_LOAD{note}",
    )


@cache
def inloader_loaders() -> Probe:
    """Can a bpftool ≤ 7.8 ``-S`` loader verify here? It reads u32 bpf_map.excl at offset 32."""
    btf = _btf.vmlinux()
    if btf is None:
        return Probe("inloader_loaders", None, f"no {_btf.VMLINUX} to inspect")
    members = btf.struct_members("bpf_map")
    if members is None:
        return Probe("inloader_loaders", None, "BTF has no struct bpf_map")
    excl = members.get("excl")
    if excl is not None and excl.offset == 32 and excl.size == 4:
        return Probe(
            "inloader_loaders", True, "struct bpf_map has u32 excl at offset 32 (6.18 layout)"
        )
    at32 = next((m.name for m in members.values() if m.offset == 32), "nothing")
    return Probe(
        "inloader_loaders",
        False,
        f"struct bpf_map has no u32 excl at offset 32 ({at32} is there): an unconverted bpftool "
        "<= 7.8 -S loader is refused with EACCES; convert it to the loadtime scheme",
    )


def _read_lsm_file() -> tuple[str | None, str]:
    """The LSM list, changing nothing on the host.

    If securityfs is mounted, read it. Otherwise mount it in a child's private
    mount namespace (``unshare --mount``), which vanishes with the child.
    """
    try:
        with open(LSM_FILE) as f:
            return f.read().strip(), f"read {LSM_FILE}"
    except OSError:
        pass
    unshare = shutil.which("unshare")
    if unshare is None or not os.path.isdir(SECURITY_DIR):
        return None, f"{LSM_FILE} absent (securityfs not mounted) and no unshare(1) to look"
    script = (
        f"mount -t securityfs securityfs {SECURITY_DIR} 2>/dev/null || exit 3; exec cat {LSM_FILE}"
    )
    try:
        run = subprocess.run(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{LSM_FILE} absent and unshare failed: {exc}"
    if run.returncode != 0:
        why = run.stderr.strip() or f"exit {run.returncode}"
        return None, (
            f"{LSM_FILE} absent (securityfs not mounted) and a private mount "
            f"namespace could not mount it ({why}; needs root)"
        )
    return run.stdout.strip(), "securityfs mounted in a private mount namespace"


@cache
def bpf_lsm() -> Probe:
    text, how = _read_lsm_file()
    if text is None:
        return Probe("bpf_lsm", None, how)
    lsms = text.split(",")
    active = "bpf" in lsms
    return Probe("bpf_lsm", active, "active LSMs: " + ",".join(lsms) + f" ({how})")


PROBES = (
    bpf_usable,
    exclusive_maps,
    map_hash,
    signed_prog_load,
    loadtime_verification,
    inloader_loaders,
    bpf_lsm,
)


def probe_all() -> list[Probe]:
    """Every probe, in a stable order (each cached)."""
    return [p() for p in PROBES]


def clear_cache() -> None:
    for p in PROBES:
        p.cache_clear()
    _btf.vmlinux.cache_clear()
