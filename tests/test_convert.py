"""Converting bpftool -S (inloader) loaders to the load-time scheme (docs/lskel.md §10.7)."""

from __future__ import annotations

import dataclasses
import errno
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bpfsign.errors import InputError, UnsupportedFeature
from bpfsign.skel import insn, scheme, skeleton

SKEL_DIR = Path(__file__).parent / "fixtures" / "skel"
SIGNED = sorted(SKEL_DIR.glob("*.signed*.lskel.h")) if SKEL_DIR.is_dir() else []
UNSIGNED = (
    sorted(p for p in SKEL_DIR.glob("*.lskel.h") if ".signed" not in p.name)
    if SKEL_DIR.is_dir()
    else []
)


def _body(lines: list[str]) -> list[str]:
    """Disassembly without pc labels and jump displacements."""
    return [re.sub(r"pc[+-]\d+", "pc?", line.split(": ", 1)[1]) for line in lines]


def _pc(line: str) -> int:
    return int(line.split(":", 1)[0])


def _endian(skel: skeleton.Skeleton) -> insn.Endian:
    return "big" if skel.endian == "big" else "little"


@pytest.mark.parametrize("path", SIGNED, ids=[p.name for p in SIGNED])
def test_conversion_removes_exactly_the_verification_block(path: Path) -> None:
    skel = skeleton.load(path)
    endian = _endian(skel)
    old_slots = insn.decode(skel.insns, endian)
    goto_n = old_slots[6].off
    converted, removed = scheme.convert_to_loadtime(skel)

    assert removed.start == 7 + goto_n
    assert removed.count == 33 and removed.has_prefix
    assert removed.insns_after == removed.insns_before - 33 == converted.insn_count
    assert converted.data == skel.data
    assert converted.signature is None
    assert converted.excl_hash == scheme.sha256(converted.insns)

    # the rest of the program is unchanged apart from jump displacements
    old = insn.disasm(skel.insns, endian)
    kept = [ln for ln in old if not removed.start <= _pc(ln) < removed.start + removed.count]
    assert _body(kept) == _body(insn.disasm(converted.insns, endian))

    # every jump still lands on the same instruction, renumbered
    new_slots = insn.decode(converted.insns, endian)

    def renum(pc: int) -> int:
        return pc if pc < removed.start else pc - removed.count

    old_t = insn.targets(old_slots)
    expected = {}
    for pc, t in old_t.items():
        if removed.start <= pc < removed.start + removed.count:
            continue
        expected[renum(pc)] = removed.start if t == removed.start else renum(t)
    assert insn.targets(new_slots) == expected
    assert new_slots[6] == old_slots[6]  # insn 6 keeps N; it now lands after the old block
    assert set(removed.jumps_fixed) == {
        pc for pc, t in old_t.items() if pc >= removed.start + removed.count and t < removed.start
    }

    a = scheme.audit(converted)
    assert a.hash_check is None and a.scheme == "loadtime"
    assert a.mode == "signed"  # still ignores ctx overrides


@pytest.mark.parametrize("path", UNSIGNED, ids=[p.name for p in UNSIGNED])
def test_conversion_refuses_loaders_without_the_block(path: Path) -> None:
    skel = skeleton.load(path)
    with pytest.raises(InputError) as exc:
        scheme.convert_to_loadtime(skel)
    assert exc.value.reason == (
        "no in-loader hash check found after the cleanup block (insn 6's goto target does not "
        "have the shape of docs/lskel.md §9); refusing to convert"
    )


@pytest.mark.parametrize("path", SIGNED[:1], ids=[p.name for p in SIGNED[:1]])
def test_conversion_refuses_a_block_of_the_wrong_shape(path: Path) -> None:
    skel = skeleton.load(path)
    endian = _endian(skel)
    slots = insn.decode(skel.insns, endian)
    block = scheme.find_hash_block(slots, endian)
    assert block is not None
    # turn the third hash compare's "r7 = -22" into "r7 = -1"
    pos = block.start + 5 + 7 * 2 + 5
    slots[pos] = dataclasses.replace(slots[pos], imm=-1)
    bad = dataclasses.replace(skel, insns=insn.encode(slots, endian))
    with pytest.raises(InputError):
        scheme.convert_to_loadtime(bad)
    assert scheme.audit(bad).hash_check is None


@pytest.mark.parametrize("path", SIGNED, ids=[p.name for p in SIGNED])
def test_converted_header_round_trips(path: Path) -> None:
    skel = skeleton.load(path)
    converted, _ = scheme.convert_to_loadtime(skel)
    assert skel.signature is not None and converted.excl_hash is not None
    text = skeleton.with_signature(
        skeleton.read_text(path), skel.signature, converted.excl_hash, insns=converted.insns
    )
    again = skeleton.parse(text)
    assert again.insns == converted.insns
    assert again.data == skel.data
    assert again.excl_hash == converted.excl_hash
    # only the insns and excl-hash literals changed
    original = skeleton.read_text(path)
    lay = skel.layout
    assert lay is not None
    ins, ex = lay.blobs["insns"], lay.blobs["excl_hash"]
    assert text[: ins.start] == original[: ins.start]
    assert text.endswith(original[ex.end :])


#: -S fixtures by loader byte order: this machine runs the native ones; the others must be refused
NATIVE = [p for p in SIGNED if skeleton.load(p).endian == sys.byteorder]
FOREIGN = [p for p in SIGNED if skeleton.load(p).endian != sys.byteorder]


def test_both_byte_orders_are_covered() -> None:
    assert [p.name for p in NATIVE] == [
        "counter.signed.lskel.h", "globals.signed.lskel.h", "hidden.signed.lskel.h",
        "multi.signed.lskel.h", "sockfilter.signed.lskel.h",
    ]  # fmt: skip
    assert [p.name for p in FOREIGN] == ["sockfilter.bpfeb.signed.lskel.h"]


@pytest.mark.kernel
@pytest.mark.parametrize("path", NATIVE, ids=[p.name for p in NATIVE])
def test_converted_loader_loads_unsigned_on_this_kernel(path: Path) -> None:
    """Until the 7.x VM runs it signed: the converted loader loads and makes its programs."""
    from bpfsign.kernel import loader

    skel = skeleton.load(path)
    converted, _ = scheme.convert_to_loadtime(skel)
    with loader.load(converted, unsigned=True) as loaded:
        # every program but the one hidden.bpf.c does not autoload (SEC("?socket"))
        assert set(loaded.progs) == {p.name for p in skel.progs} - {"never_autoloaded"}
        assert all(fd > 0 for fd in loaded.progs.values())
        assert set(loaded.maps) == {m.name for m in skel.maps}


class _CallRecorder:
    """The real backend, noting every call made through it."""

    def __init__(self) -> None:
        from bpfsign.kernel.backend import default_backend

        self.real = default_backend()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.real, name)


@pytest.mark.parametrize("path", FOREIGN, ids=[p.name for p in FOREIGN])
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_foreign_endian_loader_is_refused_before_the_kernel(path: Path, signed: bool) -> None:
    """Its instructions cannot run here, converted or not: a typed error, no syscall made."""
    from bpfsign.kernel import loader

    skel = skeleton.load(path)
    converted, _ = scheme.convert_to_loadtime(skel)
    other = "big" if sys.byteorder == "little" else "little"
    assert converted.endian == other
    for candidate in (skel, converted):
        recorder = _CallRecorder()
        with pytest.raises(UnsupportedFeature) as info:
            loader.load(candidate, unsigned=not signed, backend=recorder)
        assert recorder.calls == []
        assert info.value.errno == errno.EINVAL  # what the kernel would answer
        assert str(info.value) == (
            f"{other}-endian loader (sockfilter) is not supported here: its instructions are for "
            f"a {other}-endian kernel and this one is {sys.byteorder}-endian (its BPF_PROG_LOAD "
            "would fail with EINVAL); regenerate the skeleton for this target"
        )
