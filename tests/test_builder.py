"""The program builder: label resolution and listing here, then the real verifier and
interpreter on this host (socket filters run through BPF_PROG_TEST_RUN).

LSM and iterator programs with BTF-typed loads need the 7.3 guest
(tests/vm/test_vm_enforce.py): this host refuses tracing and LSM loads (docs/kernel.md §11).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from bpfsign.errors import InputError, KernelError
from bpfsign.kernel import _sys as S
from bpfsign.kernel.syscall import SyscallBackend
from bpfsign.skel import insn as I
from bpfsign.skel.builder import R0, R1, R2, R3, R6, R7, R10, FieldAccess, ProgramBuilder

PACKET = bytes(64)


def test_forward_and_backward_jumps_resolve_by_name() -> None:
    b = ProgramBuilder()
    b.mov(R0, 0).mov(R1, 3)
    b.label("loop").jmp("==", R1, 0, "done")  # pc 2: forward to 6
    b.alu("+=", R0, R1).alu("-=", R1, 1).ja("loop")  # pc 5: back to 2
    b.label("done").exit()
    slots = b.insns()
    assert (slots[2].off, slots[5].off) == (3, -4)
    assert b.disasm() == [
        "   0: r0 = 0",
        "   1: r1 = 3",
        "loop:",
        "   2: if r1 == 0x0 goto done",
        "   3: r0 += r1",
        "   4: r1 -= 1",
        "   5: goto loop",
        "done:",
        "   6: exit",
    ]


def test_ld_imm64_takes_two_slots_in_jump_distances() -> None:
    b = ProgramBuilder()
    b.jmp("!=", R1, R2, "end").ld_imm64(R0, 1 << 40).label("end").exit()
    slots = b.insns()
    assert (
        slots[0].off == 2
        and slots[1].is_ld_imm64
        and I.ld_imm64_value(slots[1], slots[2]) == 1 << 40
    )


def test_listing_names_helpers_maps_and_fields() -> None:
    b = ProgramBuilder()
    b.ld_map_fd(R1, 7, "events").mov(R2, 64).mov(R3, 0).call("ringbuf_reserve")
    b.load_field(
        R6,
        R1,
        [
            FieldAccess(80, 8, False, 0, 0, "bpf_prog->aux"),
            FieldAccess(169, 1, False, 0, 0, "bpf_prog->aux->sig.verdict"),
        ],
    )
    b.exit()
    assert b.disasm() == [
        "   0: r1 = map[fd:7]                         ; map events",
        "   2: r2 = 64",
        "   3: r3 = 0",
        "   4: call ringbuf_reserve#131",
        "   5: r6 = *(u64 *)(r1 +80)                  ; bpf_prog->aux (pointer)",
        "   6: r6 = *(u8 *)(r6 +169)                  ; bpf_prog->aux->sig.verdict",
        "   7: exit",
    ]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda b: b.ja("nowhere").exit(), "program builder: jump to undefined label 'nowhere'"),
        (lambda b: b.label("x").label("x"), "program builder: label 'x' defined twice"),
        (lambda b: b.call("no_such_helper"), "program builder: unknown helper 'no_such_helper'"),
        (lambda b: b.ldx(3, R0, R1, 0), "program builder: access size 3 (1, 2, 4 or 8)"),
        (
            lambda b: b.mov(R0, 1 << 33),
            "program builder: immediate 8589934592 does not fit 32 bits",
        ),
        (lambda b: b.alu("**=", R0, 1), "program builder: unknown ALU op '**='"),
        (lambda b: b.to_be(R1, 8), "program builder: cannot byte-swap 8 bits"),
    ],
)
def test_builder_mistakes_are_input_errors(build, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as e:
        build(ProgramBuilder()).insns()
    assert str(e.value) == message


def test_pc_map_index_values_and_byte_swaps() -> None:
    """``pc`` counts slots (ld_imm64 takes two); a map named by its fd_array index and
    a byte swap encode as the kernel reads them."""
    b = ProgramBuilder().mov(R0, 0)
    assert b.pc == 1
    b.ld_map_idx_value(R1, 2, 24, "consts")
    assert b.pc == 3
    b.to_be(R1, 64)
    assert b.pc == 4
    lo, hi, swap = b.insns()[1:]
    assert (lo.code, lo.dst, lo.src, lo.imm, hi.imm) == (0x18, 1, I.PSEUDO_MAP_IDX_VALUE, 2, 24)
    assert (swap.code, swap.dst, swap.imm) == (0xDC, 1, 64)  # BPF_ALU | BPF_END | BPF_TO_BE
    assert b.disasm()[1:] == [
        "   1: r1 = map[idx:2][0]+24                  ; &consts.value+24",
        "   3: r1 = be64 r1",
    ]


def test_far_jump_is_refused() -> None:
    b = ProgramBuilder().ja("far")
    for _ in range(1 << 15):
        b.mov(R0, 0)
    b.label("far").exit()
    with pytest.raises(InputError, match="jump to 'far' is 32768 slots away"):
        b.assemble()


# ------------------------------------------------------------ the real kernel


@pytest.fixture
def be() -> SyscallBackend:
    return SyscallBackend()


@pytest.fixture
def fds(be: SyscallBackend) -> Iterator[list[int]]:
    opened: list[int] = []
    yield opened
    for fd in opened:
        be.close(fd)


def _run(be: SyscallBackend, fds: list[int], b: ProgramBuilder) -> int:
    fd = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, b.assemble(), name="builder_test")
    fds.append(fd)
    return be.test_run_packet(fd, PACKET)


@pytest.mark.kernel
def test_loop_with_backward_jump_runs(be: SyscallBackend, fds: list[int]) -> None:
    b = ProgramBuilder()
    b.mov(R0, 0).mov(R1, 10)
    b.label("loop").alu("+=", R0, R1).alu("-=", R1, 1).jmp(">", R1, 0, "loop")
    b.exit()
    assert _run(be, fds, b) == 55


@pytest.mark.kernel
def test_map_lookup_and_atomic_add_through_map_fd(be: SyscallBackend, fds: list[int]) -> None:
    m = be.map_create(S.MAP_TYPE_ARRAY, 4, 8, 1, "builder_ctr")
    fds.append(m)
    b = ProgramBuilder()
    b.st(4, R10, -4, 0).ld_map_fd(R1, m, "builder_ctr").mov(R2, R10).alu("+=", R2, -4)
    b.call("map_lookup_elem").jmp("==", R0, 0, "out")
    b.mov(R1, 5).atomic_add(8, R0, 0, R1)
    b.label("out").ret(1)
    for _ in range(3):
        assert _run(be, fds, b) == 1
    assert struct.unpack("<Q", be.map_lookup(m, bytes(4), 8))[0] == 15


@pytest.mark.kernel
def test_direct_map_value_and_bitfield_loads(be: SyscallBackend, fds: list[int]) -> None:
    """A u32 with bits 0b101 at 16..18 and a signed 5-bit field at 19..23 (value -3)."""
    m = be.map_create(S.MAP_TYPE_ARRAY, 4, 8, 1, "builder_bits")
    fds.append(m)
    word = 0b101 << 16 | (-3 & 0x1F) << 19 | 0xFFFF
    be.map_update(m, bytes(4), struct.pack("<Q", word))
    unsigned = [FieldAccess(0, 4, False, 16, 3, "x.three")]
    signed = [FieldAccess(0, 4, True, 19, 5, "x.five")]
    b = ProgramBuilder().ld_map_value(R6, m, 0, "builder_bits")
    b.load_field(R7, R6, unsigned).load_field(R0, R6, signed)
    b.alu("*=", R0, 100).alu("+=", R0, R7).alu("+=", R0, 1000).exit()  # -300 + 5 + 1000
    assert _run(be, fds, b) == 705


@pytest.mark.kernel
def test_verifier_refusal_comes_back_with_its_log(be: SyscallBackend) -> None:
    b = ProgramBuilder().ldx(8, R0, R2, 0).exit()  # r2 is not initialised
    with pytest.raises(KernelError) as e:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, b.assemble(), name="builder_bad")
    assert e.value.errno == 13 and "R2 !read_ok" in e.value.log


@pytest.mark.kernel
def test_syscall_program_reads_its_ctx(be: SyscallBackend, fds: list[int]) -> None:
    """A sleepable SYSCALL program (the loader's type): ctx in, a return value out."""
    b = ProgramBuilder()
    b.ldx(4, R6, R1, 0).ldx(4, R7, R1, 4)
    b.jmp("s<", R6, R7, "less", wide=False).mov(R0, R6).ja("out")  # s32 compare
    b.label("less").mov(R0, R7)
    b.label("out").alu("*=", R0, 2).exit()
    fd = be.prog_load(S.PROG_TYPE_SYSCALL, b.assemble(), name="builder_sys", flags=0x10)
    fds.append(fd)
    assert be.test_run(fd, bytearray(struct.pack("<ii", 7, 30))) == 60
    assert be.test_run(fd, bytearray(struct.pack("<ii", 9, -4))) == 18
