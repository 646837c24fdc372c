"""The BTF reader: synthetic blobs for every kind the policy needs, and the host kernel's
own BTF checked member by member against ``bpftool btf dump``.

The 7.3.4 guest's BTF (with ``prog->aux->sig``) is read in tests/vm/test_vm_enforce.py.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bpfsign.errors import InputError, UnsupportedFeature
from bpfsign.kernel import btf as B
from bpfsign.skel.builder import FieldAccess


class BlobWriter:
    """Encode a BTF blob the way the kernel lays it out (header, types, strings)."""

    def __init__(self) -> None:
        self.types: list[bytes] = []
        self.strings = bytearray(b"\0")

    def s(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def add(
        self, name: str, kind: int, vlen: int, ref: int, extra: bytes = b"", kflag: bool = False
    ) -> int:
        info = kind << 24 | vlen | (1 << 31 if kflag else 0)
        self.types.append(struct.pack("<III", self.s(name), info, ref) + extra)
        return len(self.types)

    def int_(
        self, name: str, size: int, signed: bool = False, bits: int | None = None, offset: int = 0
    ) -> int:
        enc = (1 if signed else 0) << 24 | offset << 16 | (bits if bits is not None else size * 8)
        return self.add(name, B.KIND_INT, 0, size, struct.pack("<I", enc))

    def members(
        self,
        name: str,
        kind: int,
        size: int,
        members: list[tuple[str, int, int]],
        kflag: bool = False,
    ) -> int:
        extra = b"".join(struct.pack("<III", self.s(n), t, o) for n, t, o in members)
        return self.add(name, kind, len(members), size, extra, kflag)

    def blob(self) -> bytes:
        types = b"".join(self.types)
        hdr = struct.pack(
            "<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(self.strings)
        )
        return hdr + types + bytes(self.strings)


@pytest.fixture(scope="module")
def synthetic() -> B.Btf:
    w = BlobWriter()
    u32 = w.int_("unsigned int", 4)  # 1
    s32 = w.int_("int", 4, signed=True)  # 2
    u8 = w.int_("u8", 1)  # 3
    td = w.add("__u32", B.KIND_TYPEDEF, 0, u32)  # 4: typedef chain
    cv = w.add("", B.KIND_CONST, 0, w.add("", B.KIND_VOLATILE, 0, td))  # 6 -> 5 -> 4
    # enum bpf_sig_verdict { UNSIGNED, VERIFIED }, and a signed one with a negative value
    w.add(
        "bpf_sig_verdict",
        B.KIND_ENUM,
        2,
        4,
        struct.pack("<IiIi", w.s("BPF_SIG_UNSIGNED"), 0, w.s("BPF_SIG_VERIFIED"), 1),
    )  # 7
    w.add("signed_e", B.KIND_ENUM, 1, 4, struct.pack("<Ii", w.s("NEG"), -5), kflag=True)  # 8
    w.add(
        "big",
        B.KIND_ENUM64,
        2,
        8,
        struct.pack("<III", w.s("HUGE"), 0, 1)
        + struct.pack("<III", w.s("MINUS"), 0xFFFFFFFE, 0xFFFFFFFF),
        kflag=True,
    )  # 9
    sig = w.members(
        "",
        B.KIND_STRUCT,
        8,
        [("keyring_serial", s32, 0), ("keyring_type", u8, 32), ("verdict", u8, 40)],
    )  # 10
    anon_u = w.members("", B.KIND_UNION, 4, [("a", u32, 0), ("b", cv, 0)])  # 11
    aux = w.members(
        "bpf_prog_aux",
        B.KIND_STRUCT,
        24,
        [("id", u32, 0), ("", anon_u, 32), ("sig", sig, 64), ("x", cv, 128)],
    )  # 12
    aux_ptr = w.add("", B.KIND_PTR, 0, aux)  # 13
    # kflag=1 bitfields: size<<24 | bit offset
    w.members(
        "bpf_prog",
        B.KIND_STRUCT,
        16,
        [("jited", u32, 1 << 24 | 16), ("wide", s32, 5 << 24 | 17), ("aux", aux_ptr, 64)],
        kflag=True,
    )  # 14
    bf = w.int_("", 4, bits=3, offset=2)  # 15: kflag=0 bitfield via the INT encoding
    w.members("old_style", B.KIND_STRUCT, 4, [("three", bf, 8)])  # 16
    proto = w.add(
        "", B.KIND_FUNC_PROTO, 2, s32, struct.pack("<IIII", w.s("prog"), 13, w.s("kernel"), u8)
    )  # 17
    w.add("hook", B.KIND_FUNC, 0, proto)  # 18
    w.add("arr", B.KIND_ARRAY, 0, 0, struct.pack("<III", u8, u32, 16))  # 19
    return B.Btf(w.blob(), "synthetic.btf")


def test_typedef_const_volatile_chain_resolves_to_the_int(synthetic: B.Btf) -> None:
    t = synthetic.resolve(6)
    assert (t.kind, t.name, synthetic.size(6)) == (B.KIND_INT, "unsigned int", 4)
    assert synthetic.size(19) == 16  # u8[16]


def test_enums_with_signedness_and_enum64(synthetic: B.Btf) -> None:
    assert synthetic.enum_values("bpf_sig_verdict") == {
        "BPF_SIG_UNSIGNED": 0,
        "BPF_SIG_VERIFIED": 1,
    }
    assert synthetic.enum_values("signed_e") == {"NEG": -5}
    assert synthetic.enum_values("big") == {"HUGE": 1 << 32, "MINUS": -2}
    assert synthetic.enum_values("absent") is None


def test_field_paths_through_pointers_anonymous_unions_and_bitfields(synthetic: B.Btf) -> None:
    assert synthetic.access("bpf_prog", "aux->sig.verdict") == [
        FieldAccess(8, 8, False, 0, 0, "bpf_prog->aux"),
        FieldAccess(13, 1, False, 0, 0, "bpf_prog->aux->sig.verdict"),
    ]
    serial = synthetic.access("bpf_prog", "aux->sig.keyring_serial")[-1]
    assert (serial.offset, serial.size, serial.signed) == (8, 4, True)
    assert synthetic.access("bpf_prog", "aux->b")[-1].offset == 4  # inside the anonymous union
    assert synthetic.access("bpf_prog", "jited") == [
        FieldAccess(0, 4, False, 16, 1, "bpf_prog->jited")
    ]
    assert synthetic.access("bpf_prog", "wide") == [
        FieldAccess(0, 4, True, 17, 5, "bpf_prog->wide")
    ]
    three = synthetic.member(16, "three")
    assert three is not None and (three.bit_offset, three.bitfield_size) == (10, 3)


def test_missing_member_is_unsupported_and_names_the_struct(synthetic: B.Btf) -> None:
    with pytest.raises(UnsupportedFeature) as e:
        synthetic.access("bpf_prog", "aux->nope", feature="signature verdict")
    assert str(e.value) == (
        "signature verdict is not supported here: struct bpf_prog_aux has no member 'nope' "
        "in the kernel's BTF (synthetic.btf)"
    )
    with pytest.raises(InputError, match="bpf_prog->jited is not a pointer"):
        synthetic.access("bpf_prog", "jited->x")


def test_func_proto_parameters(synthetic: B.Btf) -> None:
    assert [n for n, _ in synthetic.func_params("hook")] == ["prog", "kernel"]
    assert synthetic.pointee(synthetic.func_params("hook")[0][1]).name == "bpf_prog_aux"
    with pytest.raises(UnsupportedFeature, match="no FUNC nohook"):
        synthetic.func_params("nohook")


@pytest.mark.parametrize(
    "blob, why",
    [
        (b"\x9f\xeb" + bytes(10), "too short for a BTF header"),
        (struct.pack("<HBBIIIII", 0xEB9E, 1, 0, 24, 0, 0, 0, 1) + b"\0", "not little-endian BTF"),
        (
            struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 100, 100, 1) + b"\0",
            "BTF header points past the end of the blob",
        ),
        (
            struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 12, 12, 1)
            + struct.pack("<III", 0, B.KIND_STRUCT << 24 | 5, 4)
            + b"\0",
            "BTF type section is truncated",
        ),
    ],
)
def test_bad_blobs_are_input_errors(blob: bytes, why: str) -> None:
    with pytest.raises(InputError) as e:
        B.Btf(blob, "bad.btf")
    assert str(e.value).startswith(f"bad.btf: {why}")


# ---------------------------------------------------------------- host kernel

host_btf = pytest.mark.skipif(not Path(B.VMLINUX).exists(), reason=f"{B.VMLINUX} absent")


def _bpftool_members(struct_name: str) -> list[tuple[str, int, int]]:
    out = subprocess.run(
        [
            shutil.which("bpftool") or "/usr/sbin/bpftool",
            "btf",
            "dump",
            "file",
            B.VMLINUX,
            "format",
            "raw",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    block = out.split(f"STRUCT '{struct_name}' size=", 1)[1].split("\n[", 1)[0]
    return [
        (m[0], int(m[1]), int(m[2] or 0))
        for m in re.findall(
            r"\t'([^']*)' type_id=\d+ bits_offset=(\d+)(?: bitfield_size=(\d+))?", block
        )
    ]


@host_btf
@pytest.mark.skipif(not Path("/usr/sbin/bpftool").exists(), reason="no /usr/sbin/bpftool")
@pytest.mark.parametrize("name", ["bpf_prog", "bpf_prog_aux", "bpf_iter__bpf_prog"])
def test_host_struct_layout_matches_bpftool(name: str) -> None:
    btf = B.vmlinux()
    assert btf is not None
    tid = btf.find(name, B.KIND_STRUCT)
    assert tid is not None
    ours = [(m.name or "(anon)", m.bit_offset, m.bitfield_size) for m in btf.members(tid)]
    assert ours == _bpftool_members(name)


@host_btf
def test_host_kernel_has_the_hook_and_iterator_but_no_verdict() -> None:
    """This 6.18 host: the hook's argument order from BTF; no ``aux->sig`` (docs/kernel.md §10)."""
    btf = B.vmlinux()
    assert btf is not None
    assert [n for n, _ in btf.func_params("bpf_lsm_bpf_prog_load")] == [
        "prog",
        "attr",
        "token",
        "kernel",
    ]
    assert btf.find("bpf_iter_bpf_prog", B.KIND_FUNC) is not None
    assert btf.enum_values("bpf_func_id")["BPF_FUNC_seq_write"] == 127  # type: ignore[index]
    assert btf.enum_values("bpf_sig_verdict") is None
    with pytest.raises(UnsupportedFeature, match="struct bpf_prog_aux has no member 'sig'"):
        btf.access("bpf_prog", "aux->sig.verdict")
    assert btf.access("bpf_prog", "aux")[0].size == 8
