"""bpfsign.kernel.loaderprog: the loader program's own bpf() calls, and where a run stopped."""

from __future__ import annotations

import struct
from pathlib import Path

from bpfsign.kernel import consts as C
from bpfsign.kernel.loaderprog import inner_calls, locate_failure
from bpfsign.skel import skeleton

SKEL = Path(__file__).resolve().parent / "fixtures" / "skel"


def test_counter_loader_calls_in_order_with_their_objects() -> None:
    s = skeleton.load(SKEL / "counter.lskel.h")
    calls = inner_calls(s.insns, s.data)
    assert [c.describe() for c in calls] == [
        "BPF_BTF_LOAD of the program's BTF",
        "BPF_MAP_CREATE of map counts",
        "BPF_MAP_CREATE of map counter.data",
        "BPF_MAP_UPDATE_ELEM of map counter.data",
        "BPF_MAP_CREATE of map counter.bss",
        "BPF_MAP_UPDATE_ELEM of map counter.bss",
        "BPF_PROG_LOAD of program count_sys_enter",
        "BPF_PROG_LOAD of program count_getpid",
    ]
    assert [c.fd_slot for c in calls if c.cmd == C.MAP_CREATE] == [0, 4, 8]
    # the sizes gen_loader gives each command (docs/lskel.md §8)
    assert {c.command: c.size for c in calls} == {
        "BPF_BTF_LOAD": 28,
        "BPF_MAP_CREATE": 72,
        "BPF_MAP_UPDATE_ELEM": 32,
        "BPF_PROG_LOAD": 140,
    }


def test_v71_loader_decodes_the_same_way() -> None:
    s = skeleton.load(SKEL / "multi.v71.lskel.h")
    names = [c.describe() for c in inner_calls(s.insns, s.data)]
    assert names[5:8] == [
        "BPF_MAP_CREATE of map multi.rodata",
        "BPF_MAP_UPDATE_ELEM of map multi.rodata",
        "BPF_MAP_FREEZE of map multi.rodata",
    ]
    assert names[-2:] == ["BPF_PROG_LOAD of program on_fork", "BPF_PROG_LOAD of program on_switch"]


def _marked(data: bytes, *, created: int, reached: list[int]) -> bytes:
    """The blob as a run leaves it: the first ``created`` fd slots set, ``reached`` attrs filled."""
    s = skeleton.load(SKEL / "counter.lskel.h")
    blob = bytearray(data)
    calls = inner_calls(s.insns, s.data)
    for c in [c for c in calls if c.cmd == C.MAP_CREATE][:created]:
        assert c.fd_slot is not None
        struct.pack_into("<I", blob, c.fd_slot, 7)
    for i in reached:
        c = calls[i]
        if c.cmd == C.PROG_LOAD:
            struct.pack_into("<Q", blob, c.attr + 8, 0x7F0000001000)
        else:
            struct.pack_into("<I", blob, c.attr, 7)
    return bytes(blob)


def test_the_marks_pin_down_the_failing_call() -> None:
    s = skeleton.load(SKEL / "counter.lskel.h")
    calls = inner_calls(s.insns, s.data)

    def where(created: int, reached: list[int]) -> list[str]:
        blob = _marked(s.data, created=created, reached=reached)
        return [c.describe() for c in locate_failure(calls, blob)]

    assert where(0, []) == ["BPF_BTF_LOAD of the program's BTF", "BPF_MAP_CREATE of map counts"]
    assert where(1, []) == ["BPF_MAP_CREATE of map counter.data"]
    assert where(2, [3]) == [
        "BPF_MAP_UPDATE_ELEM of map counter.data",
        "BPF_MAP_CREATE of map counter.bss",
    ]
    assert where(3, [3, 5, 6]) == ["BPF_PROG_LOAD of program count_sys_enter"]
    assert where(3, [3, 5, 6, 7]) == ["BPF_PROG_LOAD of program count_getpid"]
    assert locate_failure(calls, None) == []
