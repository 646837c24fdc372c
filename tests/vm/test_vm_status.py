"""``bpfsign status`` on the real 7.3 kernel: the CO-RE iterator against the BTF-built one.

The iterator ``status`` loads for itself is relocated by the kernel
(kernel/status.py, kernel/core_relo.py); the one ``enforce --pin`` pins is built
from offsets read in Python from the kernel's BTF. Both must see the same
programs with the same fields, and both must match ``bpftool prog show``.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from bpfsign.kernel import _sys as S
from bpfsign.kernel import btf as B
from bpfsign.kernel import status as ST
from bpfsign.kernel.policy import Layout
from bpfsign.kernel.syscall import SyscallBackend

pytestmark = pytest.mark.vm

RET0 = bytes.fromhex("b7000000000000009500000000000000")
BPFTOOL = shutil.which("bpftool") or "/usr/sbin/bpftool"


def _load(name: str) -> int:
    ibuf = ctypes.create_string_buffer(RET0, len(RET0))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = S.ProgLoadAttr(
        prog_type=S.PROG_TYPE_SOCKET_FILTER,
        insn_cnt=2,
        insns=S.addr(ibuf),
        license=S.addr(lic),
        prog_name=name.encode(),
    )
    return S.bpf(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD)


def _fields(rows: list[ST.ProgStatus]) -> dict[int, tuple[object, ...]]:
    return {
        r.id: (r.type, r.name, r.tag, r.load_time_ns, r.verdict, r.keyring_type, r.keyring_serial)
        for r in rows
        if r.name != ST.ITER_NAME
    }


def test_core_iterator_reads_what_the_btf_built_one_reads() -> None:
    fds = [_load(f"core_{i}") for i in range(5)]
    be = SyscallBackend()
    prog, link = ST.load_iterator(be, Layout.from_btf(B.require_vmlinux(ST.FEATURE)))
    try:
        core = ST.list_programs()  # its own, CO-RE iterator
        built = ST.parse(ST.run_iterator(be, link))
        assert _fields(core) == _fields(built)
        mine = [r for r in core if r.name.startswith("core_")]
        assert len(mine) == 5 and {r.type_name for r in mine} == {"socket_filter"}
        assert all(len(r.tag) == 16 and r.tag != "0" * 16 for r in mine)
    finally:
        be.close(link)
        be.close(prog)
        for fd in fds:
            os.close(fd)


def test_cli_status_json_matches_bpftool_and_leaves_nothing() -> None:
    fds = [_load(f"cli_{i}") for i in range(3)]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bpfsign", "status", "--json", "--pin", "/sys/fs/bpf/none"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        rows = json.loads(run.stdout)
        tool = json.loads(
            subprocess.run(
                [BPFTOOL, "prog", "show", "--json"], capture_output=True, text=True
            ).stdout
        )
    finally:
        for fd in fds:
            os.close(fd)
    ours = {r["id"]: (r["type_name"], r["name"]) for r in rows if r["name"] != ST.ITER_NAME}
    theirs = {
        p["id"]: (p["type"], p.get("name", ""))
        for p in tool
        if p.get("name") not in ("iter", ST.ITER_NAME)  # bpftool's own pid iterator
    }
    assert ours == theirs
    assert sum(1 for r in rows if r["name"].startswith("cli_")) == 3
    # the iterator (and the attach-point lookup program) went with the process
    assert not any(p.get("name") in (ST.ITER_NAME, "bpfsign_btfid") for p in tool)


def test_the_kernels_json_rows_are_the_records_json(guest_keys: Any) -> None:
    """``status --json``'s own iterator prints, row for row, what ``records_json`` makes of
    the record iterator's output: here a signed loader held open (VERIFIED against the
    caller's keyring), the programs it created (UNSIGNED) and plain loads."""
    from test_vm_enforce import HoldLoader, signed_sockfilter

    from bpfsign.kernel import loader

    signed = signed_sockfilter(guest_keys)
    hold = HoldLoader()
    be = SyscallBackend()
    fds = [_load(f"json_{i}") for i in range(3)]
    boot = ST.boot_offset_ns()
    try:
        loaded = loader.load(signed, keyring_id=-3, backend=hold)
        rprog, rlink = ST.load_core_iterator()
        jprog, jlink = ST.load_core_iterator(as_json=True, boot_ns=boot)
        try:
            records = ST.run_iterator(be, rlink)
            printed = ST.run_iterator(be, jlink)
            loader_id = hold.prog_info(hold.held[0]).id
            made = {hold.prog_info(fd).id for fd in dict(loaded.progs).values()}
        finally:
            for fd in (jlink, jprog, rlink, rprog):
                os.close(fd)
            loaded.close()
    finally:
        hold.release()
        for fd in fds:
            os.close(fd)
    text = ST.json_array(printed)
    assert text == ST.records_json(records, "records", boot)
    rows = {r["id"]: r for r in json.loads(text)}
    ld = rows[loader_id]
    assert (ld["name"], ld["verdict"], ld["keyring_type"], ld["keyring_serial"]) == (
        "__loader.prog",
        "VERIFIED",
        "USER",
        guest_keys.session_serial,
    )
    assert made and all(rows[i]["verdict"] == "UNSIGNED" for i in made)
    assert sum(r["name"].startswith("json_") for r in rows.values()) == 3
    assert sum(r["name"] == ST.ITER_NAME for r in rows.values()) == 2  # both iterators


def test_every_json_row_format_is_one_the_kernel_prints() -> None:
    """The JSON iterator's 8 row formats through the kernel's own printf.

    On 7.3 every type, verdict and keyring has a name, so the iterator only ever
    prints the first format; the other seven (a value printed as a number) are run
    here by ``bpf_snprintf`` in a syscall program, over the same constants map, and
    each must print what Python's printf gives for the same arguments.
    """
    from bpfsign.skel.builder import R0, R1, R2, R3, R4, R5, R8, R9, R10, ProgramBuilder

    width, args = 512, -8 * ST.JSON_ARGS
    type_slot = ST.JSON_TYPE_NAMES + 26 * 32  # "tracing"
    keyring_slot = ST.JSON_KEYRING_NAMES + 2 * 16  # "SECONDARY"
    verdict_slot = ST.JSON_VERDICT_NAMES + 1 * 16  # "VERIFIED"
    b = ProgramBuilder({"snprintf": 165})
    b.ld_map_idx_value(R9, 0, name="constants").ld_map_idx_value(R8, 1, name="out")
    want = []
    for bits in range(8):
        unnamed_type = bits & ST.JSON_UNNAMED_TYPE
        unknown_verdict = bits & ST.JSON_UNKNOWN_VERDICT
        unknown_keyring = bits & ST.JSON_UNKNOWN_KEYRING
        values: list[int | tuple[int, str]] = [
            4242,
            -7,
            200 if unknown_keyring else (keyring_slot, "SECONDARY"),
            123456789,
            1733350000,
            7,
            (type_slot, "tracing"),  # a name: any NUL-terminated string
            0x0123456789ABCDEF,
            99 if unnamed_type else 26,
            99 if unnamed_type else (type_slot, "tracing"),
            7 if unknown_verdict else (verdict_slot, "VERIFIED"),
        ]
        for k, v in enumerate(values):
            if isinstance(v, tuple):
                b.mov(R1, R9).alu("+=", R1, v[0]).stx(8, R10, args + 8 * k, R1)
            else:
                b.ld_imm64(R1, v).stx(8, R10, args + 8 * k, R1)
        b.mov(R1, R8).alu("+=", R1, bits * width).mov(R2, width)
        b.mov(R3, R9).alu("+=", R3, ST.JSON_FMTS + 256 * bits)
        b.mov(R4, R10).alu("+=", R4, args).mov(R5, 8 * ST.JSON_ARGS).call("snprintf")
        b.jmp("s<", R0, 0, "out")
        fmt = ST.json_formats()[bits].replace("ll", "l")
        py = [v[1] if isinstance(v, tuple) else v for v in values]
        want.append(fmt % tuple(py))
    b.mov(R0, 0).label("out").exit()

    be = SyscallBackend()
    consts = be.map_create(
        S.MAP_TYPE_ARRAY, 4, ST.JSON_RODATA_SIZE, 1, "json_consts", flags=S.BPF_F_RDONLY_PROG
    )
    out = be.map_create(S.MAP_TYPE_ARRAY, 4, 8 * width, 1, "json_out")
    try:
        be.map_update(consts, bytes(4), ST.json_rodata(0))
        be.map_freeze(consts)
        prog = be.prog_load(
            S.PROG_TYPE_SYSCALL, b.assemble(), flags=S.BPF_F_SLEEPABLE, fd_array=[consts, out]
        )
        try:
            assert be.test_run(prog, bytearray(8)) == 0
        finally:
            os.close(prog)
        got = be.map_lookup(out, bytes(4), 8 * width)
    finally:
        os.close(out)
        os.close(consts)
    printed = [got[i * width : (i + 1) * width].split(b"\0")[0].decode() for i in range(8)]
    assert printed == want
    rows = [json.loads(p.rstrip().rstrip(",")) for p in printed]
    assert [(r["type_name"], r["verdict"], r["keyring_type"]) for r in rows[::7]] == [
        ("tracing", "VERIFIED", "SECONDARY"),
        ("type 99", "unknown (7)", "unknown (200)"),
    ]
