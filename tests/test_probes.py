"""Feature probes and the BTF reader, against the running kernel."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign.cli import main
from bpfsign.errors import InputError
from bpfsign.kernel import btf, probes


def _tiny_btf() -> bytes:
    """Hand-built BTF: int u32; struct s { u32 a; u32 b[4]; }; enum e { X = 5 }."""
    strings = b"\0u32\0s\0a\0b\0e\0X\0"
    off = {
        name: strings.index(b"\0" + name.encode() + b"\0") + 1
        for name in ["u32", "s", "a", "b", "e", "X"]
    }
    types = b""
    types += struct.pack("<III", off["u32"], 1 << 24, 4) + struct.pack("<I", 32)  # 1: INT
    types += struct.pack("<III", 0, 3 << 24, 0) + struct.pack("<III", 1, 1, 4)  # 2: ARRAY u32[4]
    types += struct.pack("<III", off["s"], (4 << 24) | 2, 20)  # 3: STRUCT s
    types += struct.pack("<III", off["a"], 1, 0) + struct.pack("<III", off["b"], 2, 32)
    types += struct.pack("<III", off["e"], (6 << 24) | 1, 4) + struct.pack("<Ii", off["X"], 5)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_btf_reader_on_a_hand_built_blob() -> None:
    b = btf.Btf(_tiny_btf())
    members = b.struct_members("s")
    assert members is not None
    assert members["a"] == btf.Member("a", 0, 4)
    assert members["b"] == btf.Member("b", 4, 16)
    assert b.enum_values("e") == {"X": 5}
    assert b.struct_members("missing") is None
    assert b.enum_values("s") is None  # a struct is not an enum


def test_btf_reader_rejects_garbage() -> None:
    with pytest.raises(InputError, match="not little-endian BTF"):
        btf.Btf(bytes(64), "/tmp/x")


@pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason="no vmlinux BTF")
def test_vmlinux_bpf_map_layout() -> None:
    kernel = btf.vmlinux()
    assert kernel is not None
    members = kernel.struct_members("bpf_map")
    assert members is not None
    assert members["sha"] == btf.Member("sha", 0, 32)  # docs/kernel.md §8.1, both kernels
    assert kernel.enum_values("bpf_prog_type")["BPF_PROG_TYPE_SYSCALL"] == 31  # type: ignore[index]


@pytest.mark.kernel
def test_probes_on_this_kernel() -> None:
    probes.clear_cache()
    results = {p.name: p for p in probes.probe_all()}
    assert list(results) == [
        "bpf",
        "exclusive_maps",
        "map_hash",
        "signed_prog_load",
        "loadtime_verification",
        "inloader_loaders",
        "bpf_lsm",
    ]
    assert results["bpf"].supported is True
    assert results["exclusive_maps"].supported is True
    assert results["map_hash"].supported is True
    signed = results["signed_prog_load"]
    # EBADMSG: PKCS#7 parsed (verifying kernel); EOPNOTSUPP: no CONFIG_SYSTEM_DATA_VERIFICATION
    assert (signed.supported, signed.errno) in ((True, errno.EBADMSG), (False, errno.EOPNOTSUPP))
    if signed.supported is False:
        assert "CONFIG_SYSTEM_DATA_VERIFICATION" in signed.detail
    kernel = btf.vmlinux()
    assert kernel is not None
    has_verdict = kernel.enum_values("bpf_sig_verdict") is not None
    assert results["loadtime_verification"].supported is has_verdict
    members = kernel.struct_members("bpf_map") or {}
    excl = members.get("excl")
    assert results["inloader_loaders"].supported is (excl is not None and excl.offset == 32)
    lsm = results["bpf_lsm"]
    if lsm.supported is not None and os.path.exists(probes.LSM_FILE):
        with open(probes.LSM_FILE) as f:
            assert lsm.supported is ("bpf" in f.read().strip().split(","))


@pytest.mark.kernel
def test_probes_are_cached() -> None:
    assert probes.map_hash() is probes.map_hash()


@pytest.mark.kernel
def test_cli_probe_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["probes"]["bpf"]["supported"] is True
    assert set(out["probes"]) >= {"signed_prog_load", "map_hash", "bpf_lsm"}


@pytest.mark.kernel
def test_cli_probe_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe"]) == 0
    out = capsys.readouterr().out
    assert "signed_prog_load" in out and "exclusive_maps" in out


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.kernel
def test_bpf_usable_comes_from_map_create_not_the_uid() -> None:
    """Root without CAP_BPF/CAP_SYS_ADMIN/CAP_PERFMON: euid 0, and still no bpf()."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    code = (
        "import json, os; from bpfsign.kernel import probes; p = probes.bpf_usable(); "
        "print(json.dumps([os.geteuid(), p.supported, p.errno, p.detail]))"
    )
    run = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-bpf,-sys_admin,-perfmon,-net_admin",
            "--inh-caps=-all",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    euid, supported, err, detail = json.loads(run.stdout)
    assert (euid, supported, err) == (0, False, errno.EPERM)
    assert detail.startswith("BPF_MAP_CREATE failed: EPERM: not permitted: bpf() needs CAP_BPF")
    assert "uid 0 (CAP_BPF missing" in detail
    probes.clear_cache()
    assert probes.bpf_usable().supported is True  # this process has them


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" - ")[0].split(" ", 4)[4] for line in f]  # mount point + options


@pytest.mark.kernel
def test_bpf_lsm_probe_changes_no_mount_here() -> None:
    before = _mounts()
    probes.clear_cache()
    result = probes.bpf_lsm()
    assert _mounts() == before
    assert result.supported is not None, result.detail


@pytest.mark.kernel
def test_bpf_lsm_probe_without_securityfs_reads_it_in_a_private_namespace() -> None:
    """Unmount securityfs in a throwaway namespace, probe there, and look at what is left.

    The probe mounts securityfs only in its own child's namespace: afterwards neither the
    test's namespace nor this one has it mounted.
    """
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1)")
    host_before = _mounts()
    code = (
        "import json, os; from bpfsign.kernel import probes; p = probes.bpf_lsm(); "
        "mounted = any(l.split()[4] == probes.SECURITY_DIR for l in open('/proc/self/mountinfo')); "
        "print(json.dumps([p.supported, p.detail, mounted]))"
    )
    script = (
        f"umount {probes.SECURITY_DIR} 2>/dev/null; "
        f'test -e {probes.LSM_FILE} && exit 9; exec {sys.executable} -c "$0"'
    )
    run = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    supported, detail, still_mounted = json.loads(run.stdout)
    assert supported is not None, detail
    assert detail.endswith("(securityfs mounted in a private mount namespace)")
    assert still_mounted is False  # the probe's own mount died with its child
    assert _mounts() == host_before
