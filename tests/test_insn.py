"""The eBPF instruction codec: encoding, disassembly, and range removal with jump fixups."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfsign.errors import InputError
from bpfsign.skel import insn
from bpfsign.skel.insn import Insn


def mov_reg(dst: int, src: int) -> Insn:
    return Insn(0xBF, dst, src, 0, 0)


def mov_imm(dst: int, imm: int) -> Insn:
    return Insn(0xB7, dst, 0, 0, imm)


def goto(off: int) -> Insn:
    return Insn(0x05, 0, 0, off, 0)


def jslt(dst: int, imm: int, off: int) -> Insn:
    return Insn(0xC5, dst, 0, off, imm)


def call(helper: int) -> Insn:
    return Insn(0x85, 0, 0, 0, helper)


EXIT = Insn(0x95, 0, 0, 0, 0)


def ld_imm64(dst: int, src: int, lo: int, hi: int) -> list[Insn]:
    return [Insn(0x18, dst, src, 0, lo), Insn(0, 0, 0, 0, hi)]


def test_encode_little_and_big_endian() -> None:
    i = Insn(0x61, 2, 1, 32, -22)
    assert insn.encode([i], "little") == bytes([0x61, 0x12, 0x20, 0x00, 0xEA, 0xFF, 0xFF, 0xFF])
    assert insn.encode([i], "big") == bytes([0x61, 0x21, 0x00, 0x20, 0xFF, 0xFF, 0xFF, 0xEA])
    for endian in ("little", "big"):
        assert insn.decode(insn.encode([i], endian), endian) == [i]


def test_exclusivity_read_encodes_as_in_the_spec() -> None:
    # docs/lskel.md §9.1: r2 = *(u32 *)(r1 + 32) is 61 12 20 00 00 00 00 00
    assert insn.encode([Insn(0x61, 2, 1, 32, 0)]) == bytes.fromhex("6112200000000000")


def test_detect_endian_from_prologue() -> None:
    prog = [mov_reg(6, 1), EXIT]
    assert insn.detect_endian(insn.encode(prog, "little")) == "little"
    assert insn.detect_endian(insn.encode(prog, "big")) == "big"


def test_decode_rejects_partial_insn() -> None:
    with pytest.raises(InputError) as exc:
        insn.decode(b"\x00" * 12)
    assert exc.value.reason == "instruction blob is 12 bytes, not a multiple of 8"


def test_disasm_loader_idioms() -> None:
    prog = [
        mov_reg(6, 1),
        Insn(0x07, 1, 0, 0, -136),
        call(113),
        goto(3),
        *ld_imm64(1, 5, 0, 0),
        *ld_imm64(2, 6, 0, 1280),
        Insn(0x61, 2, 1, 32, 0),
        jslt(7, 0, -5),
        Insn(0x5D, 2, 3, -7, 0),
        *ld_imm64(3, 0, 0x11223344, 0x55667788),
        Insn(0x7B, 6, 1, 24, 0),
        Insn(0x85, 0, 1, 0, -3),
        call(148),
        call(166),
        call(167),
        call(168),
        call(179),
        EXIT,
    ]
    assert insn.disasm(insn.encode(prog)) == [
        "   0: (bf) r6 = r1",
        "   1: (07) r1 += -136",
        "   2: (85) call probe_read_kernel#113",
        "   3: (05) goto pc+3",
        "   4: (18) r1 = map[idx:0]",
        "   6: (18) r2 = map[idx:0][0]+1280",
        "   8: (61) r2 = *(u32 *)(r1 +32)",
        "   9: (c5) if r7 s< 0x0 goto pc-5",
        "  10: (5d) if r2 != r3 goto pc-7",
        "  11: (18) r3 = 0x5566778811223344 ll",
        "  13: (7b) *(u64 *)(r6 +24) = r1",
        "  14: (85) call pc-3",
        "  15: (85) call copy_from_user#148",
        "  16: (85) call sys_bpf#166",
        "  17: (85) call btf_find_by_name_kind#167",
        "  18: (85) call sys_close#168",
        "  19: (85) call kallsyms_lookup_name#179",
        "  20: (95) exit",
    ]


def _program_for_removal() -> list[Insn]:
    # 0: goto +4 (over the "cleanup" at 1..3, to 5)   -> lands on the range start
    # 1..3: cleanup: r0 = r7; exit; (pad)
    # 5..7: block to remove (3 insns)
    # 8: if r7 s< 0 goto cleanup (1)                   -> crosses the range backwards
    # 9: call pc+2 (BPF-to-BPF, target 12)             -> does not cross
    # 10: ld_imm64 r1 = subprog at 12-ish, pc-relative -> does not cross
    return [
        goto(4),  # 0 -> 5
        mov_reg(0, 7),  # 1
        EXIT,  # 2
        mov_imm(0, 0),  # 3
        mov_imm(0, 0),  # 4
        mov_imm(1, 1),  # 5  (removed)
        jslt(1, 0, 1),  # 6  (removed, its own jump vanishes)
        mov_imm(2, 2),  # 7  (removed)
        jslt(7, 0, -8),  # 8 -> 1
        Insn(0x85, 0, 1, 0, 2),  # 9 call -> 12
        *ld_imm64(1, 4, -10, 0),  # 10 subprog -> 1
        mov_imm(0, 0),  # 12
        EXIT,  # 13
    ]


def test_remove_range_fixes_crossing_jumps_calls_and_func_pointers() -> None:
    prog = insn.encode(_program_for_removal())
    new, removal = insn.remove_range_ex(prog, 5, 3, allow_entry_at_start=True)
    out = insn.decode(new)
    assert len(out) == 11
    assert out[0] == goto(4)  # now lands on the insn after the old block (old 8, new 5)
    assert out[5] == jslt(7, 0, -5)  # old 8 -> 1 still
    assert out[6] == Insn(0x85, 0, 1, 0, 2)  # call does not cross: unchanged
    assert out[7] == Insn(0x18, 1, 4, 0, -7)  # subprog pointer crosses: -10 + 3
    assert removal.fixed == (8, 10)
    assert insn.targets(out) == {0: 5, 5: 1, 6: 9, 7: 1}


def test_remove_range_refuses_jump_into_range() -> None:
    prog = insn.encode(_program_for_removal())
    with pytest.raises(InputError) as exc:
        insn.remove_range(prog, 5, 3)
    assert exc.value.reason == (
        "insn 0 jumps to 5, inside the range 5..7 being removed; refusing to guess where it "
        "should go"
    )
    with pytest.raises(InputError) as exc:
        insn.remove_range(prog, 4, 3, allow_entry_at_start=True)
    assert exc.value.reason.startswith("insn 0 jumps to 5, inside the range 4..6")


def test_remove_range_refuses_to_split_ld_imm64() -> None:
    prog = insn.encode(_program_for_removal())
    with pytest.raises(InputError) as exc:
        insn.remove_range(prog, 11, 1)
    assert exc.value.reason == "insns 11..11 split an ld_imm64 pair"


def test_remove_range_fixes_gotol_and_jmp32() -> None:
    prog = [
        Insn(0x06, 0, 0, 0, 3),  # gotol pc+3 -> 4
        mov_imm(0, 1),  # 1 removed
        Insn(0x16, 1, 0, 1, 0),  # 2: if w1 == 0 goto pc+1 -> 4 (crosses nothing after removal?)
        EXIT,  # 3
        EXIT,  # 4
    ]
    out = insn.decode(insn.remove_range(insn.encode(prog), 1, 1))
    assert out[0] == Insn(0x06, 0, 0, 0, 2)
    assert out[1] == Insn(0x16, 1, 0, 1, 0)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=6, max_value=40),
    data=st.data(),
)
def test_remove_range_preserves_every_target_outside(n: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=1, max_value=n - 2))
    count = data.draw(st.integers(min_value=1, max_value=n - 1 - start))
    outside = [i for i in range(n) if not start <= i < start + count]
    prog = []
    for pc in range(n):
        if data.draw(st.booleans()):
            target = data.draw(st.sampled_from(outside))
            prog.append(goto(target - pc - 1))
        else:
            prog.append(mov_imm(pc % 10, pc))
    new = insn.decode(insn.remove_range(insn.encode(prog), start, count))

    def renum(old: int) -> int:
        return old if old < start else old - count

    old_targets = insn.targets(prog)
    new_targets = insn.targets(new)
    expected = {renum(pc): renum(t) for pc, t in old_targets.items() if pc in outside}
    assert new_targets == expected
    assert [i.imm for i in new if i.code == 0xB7] == [
        i.imm for pc, i in enumerate(prog) if i.code == 0xB7 and pc in outside
    ]
