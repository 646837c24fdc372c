"""Exclusive maps, freezing and the map hash on the running kernel (docs/kernel.md §7, §8, §13)."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator

import pytest

from bpfsign.errors import KernelError
from bpfsign.kernel import _sys as S
from bpfsign.kernel.backend import LOADER_LICENSE, LOADER_PROG_NAME
from bpfsign.kernel.syscall import SyscallBackend

pytestmark = pytest.mark.kernel

# r1 = map (ld_imm64 src_reg=MAP_IDX, imm=0 → fd_array[0]); r0 = 0; exit.
USES_MAP = bytes.fromhex("18510000000000000000000000000000b7000000000000009500000000000000")
RET0 = bytes.fromhex("b7000000000000009500000000000000")
EXCL_LOG = "program's hash doesn't match map's excl_prog_hash"


@pytest.fixture
def be() -> SyscallBackend:
    return SyscallBackend()


@pytest.fixture
def fds(be: SyscallBackend) -> Iterator[list[int]]:
    opened: list[int] = []
    yield opened
    for fd in opened:
        be.close(fd)


def _array(be: SyscallBackend, fds: list[int], value_size: int = 16, **kw: object) -> int:
    fd = be.map_create(S.MAP_TYPE_ARRAY, 4, value_size, 1, "__loader.map", **kw)  # type: ignore[arg-type]
    fds.append(fd)
    return fd


def _load_syscall(be: SyscallBackend, insns: bytes, map_fd: int, fd_array_cnt: int) -> int:
    return be.prog_load(
        S.PROG_TYPE_SYSCALL,
        insns,
        license=LOADER_LICENSE,
        name=LOADER_PROG_NAME,
        flags=S.BPF_F_SLEEPABLE,
        fd_array=(map_fd,),
        fd_array_cnt=fd_array_cnt,
    )


def test_exclusive_map_accepts_the_program_with_its_hash(
    be: SyscallBackend, fds: list[int]
) -> None:
    fd = _array(be, fds, excl_prog_hash=hashlib.sha256(USES_MAP).digest())
    prog = _load_syscall(be, USES_MAP, fd, 0)
    fds.append(prog)
    assert be.prog_info(prog).type == S.PROG_TYPE_SYSCALL


def test_exclusive_map_wrong_hash_is_eacces_with_log(be: SyscallBackend, fds: list[int]) -> None:
    fd = _array(be, fds, excl_prog_hash=hashlib.sha256(b"another program").digest())
    with pytest.raises(KernelError) as info:
        _load_syscall(be, USES_MAP, fd, 0)
    assert info.value.errno == errno.EACCES
    assert EXCL_LOG in info.value.log
    assert "fd_array_cnt" in str(info.value)


def test_excl_hash_of_20_bytes_is_einval(be: SyscallBackend) -> None:
    with pytest.raises(KernelError) as info:
        be.map_create(S.MAP_TYPE_ARRAY, 4, 16, 1, "x", excl_prog_hash=bytes(20))
    assert info.value.errno == errno.EINVAL
    assert info.value.command == "BPF_MAP_CREATE"


def test_unsigned_load_with_fd_array_cnt_1_and_exclusive_map_is_eacces(
    be: SyscallBackend, fds: list[int]
) -> None:
    """docs/kernel.md §13 row 11: the count binds the map before an unsigned load has a digest."""
    fd = _array(be, fds, excl_prog_hash=hashlib.sha256(RET0).digest())
    be.map_freeze(fd)
    with pytest.raises(KernelError) as info:
        _load_syscall(be, RET0, fd, 1)
    assert info.value.errno == errno.EACCES
    assert EXCL_LOG in info.value.log
    prog = _load_syscall(be, RET0, fd, 0)  # the same load with cnt 0 is fine
    fds.append(prog)


def test_unsigned_fd_array_cnt_1_non_exclusive_loads(be: SyscallBackend, fds: list[int]) -> None:
    fd = _array(be, fds)
    fds.append(_load_syscall(be, RET0, fd, 1))


def test_update_after_freeze_is_eperm(be: SyscallBackend, fds: list[int]) -> None:
    fd = _array(be, fds)
    be.map_update(fd, bytes(4), b"A" * 16)
    be.map_freeze(fd)
    with pytest.raises(KernelError) as info:
        be.map_update(fd, bytes(4), b"B" * 16)
    assert info.value.errno == errno.EPERM
    assert info.value.command == "BPF_MAP_UPDATE_ELEM"
    assert be.map_lookup(fd, bytes(4), 16) == b"A" * 16


def test_freeze_twice_is_eperm(be: SyscallBackend, fds: list[int]) -> None:
    """docs/kernel.md row 47 says EBUSY (from source); measured on 6.18.44: EPERM, because a
    frozen map's syscall-side permissions drop write, and freeze needs write."""
    fd = _array(be, fds)
    be.map_freeze(fd)
    with pytest.raises(KernelError) as info:
        be.map_freeze(fd)
    assert info.value.errno == errno.EPERM


def test_hash_before_freeze_is_eperm(be: SyscallBackend, fds: list[int]) -> None:
    fd = _array(be, fds)
    with pytest.raises(KernelError) as info:
        be.map_info(fd, want_hash=True)
    assert info.value.errno == errno.EPERM
    assert info.value.command == "BPF_OBJ_GET_INFO_BY_FD"


@pytest.mark.parametrize("value_size", [16, 12, 5, 3936])
def test_map_hash_is_sha256_of_the_value_padded_to_8(
    be: SyscallBackend, fds: list[int], value_size: int
) -> None:
    value = bytes((i * 7 + 1) & 0xFF for i in range(value_size))
    fd = _array(be, fds, value_size=value_size)
    be.map_update(fd, bytes(4), value)
    be.map_freeze(fd)
    info = be.map_info(fd, want_hash=True)
    padded = value + bytes(-value_size % 8)
    assert info.hash == hashlib.sha256(padded).digest()
    assert (info.type, info.value_size, info.max_entries, info.name) == (
        S.MAP_TYPE_ARRAY,
        value_size,
        1,
        "__loader.map",
    )


def test_map_info_without_hash(be: SyscallBackend, fds: list[int]) -> None:
    fd = be.map_create(S.MAP_TYPE_HASH, 4, 8, 7, "bpfsign_hash")
    fds.append(fd)
    info = be.map_info(fd)
    assert (info.type, info.key_size, info.value_size, info.max_entries) == (1, 4, 8, 7)
    assert info.hash is None and info.id > 0
