"""Feature probes and the BTF reader, against the running kernel."""

from __future__ import annotations

import errno
import json
import os
import struct

import pytest

from bpfsign._cli import main
from bpfsign.backend import btf, probes
from bpfsign.errors import InputError


def _tiny_btf() -> bytes:
    """Hand-built BTF: int u32; struct s { u32 a; u32 b[4]; }; enum e { X = 5 }."""
    strings = b"\0u32\0s\0a\0b\0e\0X\0"
    off = {name: strings.index(b"\0" + name.encode() + b"\0") + 1 for name in ["u32", "s", "a", "b", "e", "X"]}
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
    assert members["sha"] == btf.Member("sha", 0, 32)  # kernel.md §8.1, both kernels
    assert kernel.enum_values("bpf_prog_type")["BPF_PROG_TYPE_SYSCALL"] == 31  # type: ignore[index]


@pytest.mark.kernel
def test_probes_on_this_kernel() -> None:
    probes.clear_cache()
    results = {p.name: p for p in probes.probe_all()}
    assert list(results) == [
        "bpf", "exclusive_maps", "map_hash", "signed_prog_load", "loadtime_verification",
        "inloader_loaders", "bpf_lsm",
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
    if lsm.supported is not None:
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
