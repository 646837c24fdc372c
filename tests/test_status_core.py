"""The status iterator that the kernel relocates (CO-RE), and ``status --json`` made from records.

The program is a constant (``CORE_INSNS``) so that ``bpfsign status`` does not
import the builder; here it is rebuilt and compared. Its local BTF is read back
with the project's BTF reader to show that every relocated load's offset is the
one its access string names in the local types (the kernel checks the same at
load time). On this 6.18 host the kernel half is what it can do: load the local
BTF, answer the attach-point lookup, and refuse ``status`` cleanly.
"""

from __future__ import annotations

import json
import os

import pytest

from bpfsign.errors import Error, InputError, UnsupportedFeature
from bpfsign.kernel import _sys as S
from bpfsign.kernel import btf as B
from bpfsign.kernel import core_relo as C
from bpfsign.kernel import policy
from bpfsign.kernel import status as ST
from bpfsign.skel import insn as I


def test_the_constant_program_is_the_builders() -> None:
    b, relos = ST.build_core_iter_program()
    assert b.assemble() == ST.CORE_INSNS
    assert tuple(relos) == ST.CORE_RELOS
    listing = "\n".join(b.disasm())
    assert "call seq_write#127" in listing and "aux->sig.verdict" in listing


def test_the_constant_json_program_is_the_builders_and_shares_the_btf() -> None:
    b, relos = ST.build_core_json_program()
    assert b.assemble() == ST.CORE_JSON_INSNS
    assert tuple(relos) == ST.CORE_JSON_RELOS
    blob, records, func = ST._core_btf(ST.CORE_JSON_RELOS)
    assert blob == ST.CORE_BTF and C.FUNC_INFO.pack(0, func) == ST.CORE_FUNC_INFO
    assert C.relos(records) == ST.CORE_JSON_RELO_RECORDS
    listing = "\n".join(b.disasm())
    assert "call seq_printf#126" in listing and "map[idx:0][0]+0" in listing
    assert "r1 = be64 r1" in listing


def _slot(rodata: bytes, base: int, width: int, index: int) -> str:
    return rodata[base + index * width : base + (index + 1) * width].split(b"\0")[0].decode()


def _printed_by_the_kernel(raw: bytes, boot_ns: int) -> bytes:
    """What the JSON iterator prints for these records, step by step as its program
    does it: names and formats taken from its constants map, a value its table does
    not hold passed as a number with the format's bit set, printf as the kernel's
    (``%llu`` is Python's ``%lu``)."""
    ro = ST.json_rodata(boot_ns)
    out = []
    for pid, pt, tag, t, name, serial, v, kt, _ in ST.RECORD.iter_unpack(raw):
        bits = 0

        def named(value: int, table: int, count: int, width: int, bit: int) -> int | str:
            nonlocal bits
            if value < count:
                return _slot(ro, table, width, value)
            bits |= bit
            return value

        keyring = named(kt, ST.JSON_KEYRING_NAMES, len(ST.KEYRING_NAMES), 16, 4)
        type_name = named(pt, ST.JSON_TYPE_NAMES, len(ST.PROG_TYPES), 32, 1)
        verdict = named(v, ST.JSON_VERDICT_NAMES, len(ST.VERDICT_NAMES), 16, 2)
        x = (boot_ns + t) % (1 << 64)
        fmt = _slot(ro, ST.JSON_FMTS, 256, bits)
        out.append(
            fmt.replace("ll", "l")
            % (
                pid,
                serial,
                keyring,
                t,
                x // 10**9,
                x // 10**6 % 1000,
                name.split(b"\0")[0].decode(),
                int.from_bytes(tag, "big"),
                pt,
                type_name,
                verdict,
            )
        )
    return "".join(out).encode()


def test_the_json_iterators_rows_are_the_records_json() -> None:
    """Row for row, the kernel's formats over its constants give :func:`records_json`'s
    text: named and unnamed types (up to 2**32 - 1), verdicts and keyrings (0-255), in
    every combination."""
    boot = 1_733_350_000_123_456_789
    types = [*range(len(ST.PROG_TYPES) + 3), 4096, 2**32 - 1]
    combos = [(t, v, k) for k in (0, 4, 5, 255) for v in (0, 1, 2, 255) for t in types]
    recs = [
        (i + 1, t, bytes(range(i % 200, i % 200 + 8)), 10**9 * i + 999_999 * (i % 7),
         f"p{i}.x_{t}", -(2**31) + i * 99_991, v, k)
        for i, (t, v, k) in enumerate(combos)
    ]  # fmt: skip
    raw = b"".join(
        ST.RECORD.pack(pid, t, tag, lt, n.encode(), ser, v, k, ST.MAGIC)
        for pid, t, tag, lt, n, ser, v, k in recs
    )
    printed = _printed_by_the_kernel(raw, boot)
    assert ST.json_array(printed) == ST.records_json(raw, "records", boot)
    rows = json.loads(ST.json_array(printed))
    assert len({(r["type_name"][:5] == "type ", r["verdict"][:3] == "unk",
                 r["keyring_type"][:3] == "unk") for r in rows}) == 8  # fmt: skip
    assert [r["type_name"] for r in rows[:2]] == ["unspec", "socket_filter"]
    assert rows[len(types) - 1]["type_name"] == "type 4294967295"
    assert rows[1]["loaded_at"] == 1733350001.124  # .123456789 + 1.000999999 s, cut to ms


def test_the_json_constants_fit_their_slots() -> None:
    ro = ST.json_rodata(5)
    assert len(ro) == ST.JSON_RODATA_SIZE and ro[:8] == (5).to_bytes(8, "little")
    for base, width, count in (
        (ST.JSON_FMTS, 256, 8),
        (ST.JSON_TYPE_NAMES, 32, len(ST.PROG_TYPES)),
        (ST.JSON_VERDICT_NAMES, 16, len(ST.VERDICT_NAMES)),
        (ST.JSON_KEYRING_NAMES, 16, len(ST.KEYRING_NAMES)),
    ):
        for i in range(count):
            assert b"\0" in ro[base + i * width : base + (i + 1) * width]  # NUL-terminated
    assert _slot(ro, ST.JSON_FMTS, 256, 0) == ST.JSON_ROW
    assert _slot(ro, ST.JSON_FMTS, 256, 7) == ST.JSON_ROW.replace(
        '"keyring_type": "%s"', '"keyring_type": "unknown (%u)"'
    ).replace('"type_name": "%s"', '"type_name": "type %u"').replace(
        '"verdict": "%s"', '"verdict": "unknown (%u)"'
    )
    assert all(f.count("%") == ST.JSON_ARGS for f in ST.json_formats())
    assert _slot(ro, ST.JSON_VERDICT_NAMES, 16, 1) == "VERIFIED"
    assert _slot(ro, ST.JSON_TYPE_NAMES, 32, 24) == "raw_tracepoint_writable"
    assert ST.json_rodata(-1)[:8] == b"\xff" * 8  # a clock before boot wraps as u64 does


def test_json_array_refuses_rows_the_kernel_did_not_print() -> None:
    for text in (b"", b'{"id": 1},\n{"id": 2'):
        with pytest.raises(Error) as e:
            ST.json_array(text)
        assert type(e.value) is Error and str(e.value) == (
            f"status iterator: printed {len(text)} bytes, not whole JSON rows "
            "(the kernel's bpf_seq_printf refused them)"
        )


def _access_offset(btf: B.Btf, root: int, access: str) -> tuple[int, int]:
    """(byte offset, end of the struct member holding it) for a CO-RE access string."""
    idx = [int(x) for x in access.split(":")]
    assert idx[0] == 0
    tid, off, end = root, 0, 0
    for i in idx[1:]:
        t = btf.resolve(tid)
        if t.kind == B.KIND_STRUCT:
            m = btf.members(t.id)[i]
            off += m.offset
            tid = m.type_id
            end = off + btf.size(tid)
        else:
            assert t.kind == B.KIND_ARRAY
            elem = btf._array(t)[0]
            off += i * btf.size(elem)
            tid = elem
    return off, end


def test_the_load_time_constants_are_the_built_btf_relocations_and_func_info() -> None:
    """CORE_BTF, CORE_RELO_RECORDS and CORE_FUNC_INFO are what the writer builds now."""
    blob, records, func = ST._core_btf()
    assert blob == ST.CORE_BTF
    assert C.relos(records) == ST.CORE_RELO_RECORDS
    assert len(ST.CORE_RELO_RECORDS) == C.RELO.size * len(ST.CORE_RELOS)
    assert C.FUNC_INFO.pack(0, func) == ST.CORE_FUNC_INFO


def test_every_relocated_load_reads_what_its_access_string_names() -> None:
    blob, records, func = ST._core_btf()
    btf = B.Btf(blob, "local BTF")
    assert btf.type(func).kind == B.KIND_FUNC and btf.type(func).name == ST.ITER_NAME
    insns = I.decode(ST.CORE_INSNS)
    assert len(records) == len(ST.CORE_RELOS)
    for (idx, type_id, access_off), (idx2, root, access) in zip(
        records, ST.CORE_RELOS, strict=True
    ):
        assert idx == idx2 and btf.type(type_id).name == root
        assert btf._name(access_off) == access
        ins = insns[idx]
        assert ins.code & 0x07 == I.LDX  # a load, whose offset the kernel patches
        off, end = _access_offset(btf, type_id, access)
        assert ins.off == off, (idx, root, access)
        assert off + {0x18: 8, 0x00: 4, 0x10: 1}[ins.code & 0x18] <= end  # not past the member
    packed = C.relos(records)
    assert len(packed) == C.RELO.size * len(records)
    assert C.RELO.unpack_from(packed, 0) == (8 * records[0][0], records[0][1], records[0][2], 0)


def test_the_record_layout_matches_the_stores() -> None:
    """The stores put id, type, tag, load_time, name, serial, verdict, keyring and magic
    where RECORD unpacks them (the program writes at fp-48)."""
    stores = {
        i.off + ST.RECORD_SIZE: i.code & 0x18
        for i in I.decode(ST.CORE_INSNS)
        if i.code & 0x07 in (I.STX, I.ST) and i.dst == 10
    }
    sizes = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}
    want = {0: 4, 4: 4, 8: 8, 16: 8, 24: 8, 32: 8, 40: 4, 44: 1, 45: 1, 46: 2}
    assert {off: sizes[s] for off, s in stores.items() if off in want} == want


def test_status_speaks_the_policys_words() -> None:
    assert (ST.FEATURE, ST.NO_VERDICT) == (policy.FEATURE, policy.NO_VERDICT)


def _records(names: list[bytes]) -> bytes:
    return b"".join(
        ST.RECORD.pack(i + 1, 29 + i, bytes(range(i, i + 8)), 10**9 * i + 7, n, -5 + 4242 * i,
                       i % 3, i % 6, ST.MAGIC)
        for i, n in enumerate(names)
    )  # fmt: skip


def test_json_text_is_json_dumps_of_each_parsed_row() -> None:
    names = [b"plain", b'q"uote', b"back\\slash", "ünï".encode(), b"tab\there", b"", b"\xff\xfe"]
    raw = _records(names)
    lines = ST.records_json(raw, "records").splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    rows = ST.parse(raw, "records")
    for line, row in zip(lines[1:-1], rows, strict=True):
        ours = json.loads(line.rstrip(","))
        assert abs(ours["loaded_at"] - row.loaded_at) < 1  # read the clock twice
        want = row.as_dict() | {"loaded_at": ours["loaded_at"]}
        assert ours == want and list(ours) == sorted(want)
        # json.dumps's text but for loaded_at, which keeps its three decimals
        whole, _, millis = line.partition('"loaded_at": ')[2].partition(",")[0].partition(".")
        assert whole.isdigit() and len(millis) == 3 and millis.isdigit()
        dumped = json.dumps(want, sort_keys=True)
        assert line.rstrip(",").replace(f"{whole}.{millis}", repr(want["loaded_at"])) == dumped
    assert [r["verdict"] for r in json.loads("".join(lines))][:3] == [
        "UNSIGNED",
        "VERIFIED",
        "unknown (2)",
    ]


def test_json_text_common_case_is_the_general_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain names and named values take the one-comprehension path; its text is exactly
    the general path's, and any record it cannot name sends the whole array there."""
    monkeypatch.setattr(ST, "boot_offset_ns", lambda: 1733350000_123456789)
    plain = [b"many0", b"bpf.iter_x", b"", b"A" * 15, b"z" * 16]
    raw = b"".join(
        ST.RECORD.pack(i + 1, i % len(ST.PROG_TYPES), bytes(range(i, i + 8)), 10**12 * i + 7, n,
                       i * 4242 - 3, i % 2, i % len(ST.KEYRING_NAMES), ST.MAGIC)
        for i, n in enumerate(plain)
    )  # fmt: skip
    general = "[\n" + ",\n".join(ST._json_rows(raw, ST.boot_offset_ns())) + "\n]\n"
    assert ST.records_json(raw, "records") == general
    assert json.loads(general)[4]["name"] == "z" * 16  # a name with no NUL at all
    for field, index, named in (
        ("type_name", 1, "type 200"),
        ("verdict", 6, "unknown (200)"),
        ("keyring_type", 7, "unknown (200)"),
    ):
        rec = list(ST.RECORD.unpack(raw[: ST.RECORD_SIZE]))
        rec[index] = 200  # a value no table names
        odd = ST.RECORD.pack(*rec) + raw[ST.RECORD_SIZE :]
        text = ST.records_json(odd, "records")
        assert text == "[\n" + ",\n".join(ST._json_rows(odd, ST.boot_offset_ns())) + "\n]\n"
        assert json.loads(text)[0][field] == named
    embedded = raw.replace(b"many0", b"ma\0y0")  # a NUL inside: cut there, as parse() does
    assert json.loads(ST.records_json(embedded, "records"))[0]["name"] == "ma"


def test_the_names_json_takes_as_they_are() -> None:
    """The fast path writes the tables' names between quotes without escaping them."""
    for name in (*ST.PROG_TYPES, *ST.VERDICT_NAMES, *ST.KEYRING_NAMES):
        assert json.dumps(name) == f'"{name}"'
    raw = _records([b"a", b"bb\0\0x", b"c" * 16])
    assert ST.names_of(raw) == tuple(r[4] for r in ST.RECORD.iter_unpack(raw))


def test_json_text_refuses_what_parse_refuses() -> None:
    raw = _records([b"a"])
    with pytest.raises(InputError, match="not a whole number of 48-byte records"):
        ST.records_json(raw[:-1], "/x/progs")
    bad = raw[:-2] + b"\x01\x00"
    with pytest.raises(InputError, match="record format 0x0001, expected 0xb5f1") as e:
        ST.records_json(bad, "/x/progs")
    assert str(e.value).startswith("/x/progs")


def test_status_path_imports_no_builder_btf_or_typing() -> None:
    """The timed path (docs: bench/bench_vm_status.py) stays small."""
    import subprocess
    import sys

    code = (
        "import sys; from bpfsign.cli import status as CS; from bpfsign.kernel import status;"
        "import bpfsign.kernel._sys;"
        "print(sorted(m for m in sys.modules if m in ('typing', 'dataclasses', 'json', 'enum',"
        " 'bpfsign.skel.builder', 'bpfsign.kernel.btf', 'bpfsign.kernel.policy', 'argparse',"
        " 'bpfsign.kernel.core_relo', 'functools')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ this kernel


def _vmlinux() -> B.Btf:
    btf = B.vmlinux()
    if btf is None:
        pytest.skip(f"no {B.VMLINUX} on this kernel")
    return btf


@pytest.mark.kernel
def test_local_btf_loads_and_the_kernel_finds_the_attach_point() -> None:
    fd = S.btf_load(ST.CORE_BTF)
    os.close(fd)
    tid = ST._find_btf_func(ST.ITER_TARGET)
    t = _vmlinux().type(tid)
    assert (t.kind, t.name) == (B.KIND_FUNC, ST.ITER_TARGET)


@pytest.mark.kernel
def test_an_unknown_attach_point_is_a_clear_refusal() -> None:
    with pytest.raises(UnsupportedFeature) as e:
        ST._find_btf_func("bpfsign_no_such_func")
    assert e.value.why == ("the kernel's BTF has no FUNC bpfsign_no_such_func (lookup returned -2)")


@pytest.mark.kernel
def test_the_verdict_check_reads_only_the_string_section() -> None:
    btf = _vmlinux()
    has = btf.enum_values("bpf_sig_verdict") is not None
    if has:
        ST._check_verdict_btf()
    else:
        with pytest.raises(UnsupportedFeature) as e:
            ST._check_verdict_btf()
        assert e.value.why == ST.NO_VERDICT
        with pytest.raises(UnsupportedFeature) as e2:
            ST.load_core_iterator()  # the load fails here; the refusal says why
        assert e2.value.why == ST.NO_VERDICT
        with pytest.raises(UnsupportedFeature) as e3:
            ST.json_listing(None)  # the JSON iterator too (its constants map is closed)
        assert e3.value.why == ST.NO_VERDICT
