"""The syscall layer: attr layouts against kernel.md §4, and errno → typed errors."""

from __future__ import annotations

import ctypes
import errno

import pytest

from bpfsign.backend import _sys as S
from bpfsign.backend.syscall import SyscallBackend
from bpfsign.errors import KernelError, UnsupportedFeature

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit


@pytest.mark.parametrize(
    ("struct", "size", "sent"),
    [
        (S.MapCreateAttr, 92, S.SIZE_MAP_CREATE),
        (S.MapElemAttr, 32, S.SIZE_MAP_ELEM),
        (S.InfoAttr, 16, S.SIZE_INFO),
        (S.MapInfo, 104, None),
        (S.ProgInfo, 232, None),
        (S.ProgLoadAttr, 168, S.SIZE_PROG_LOAD),
        (S.TestRunAttr, 80, S.SIZE_TEST_RUN),
    ],
)
def test_attr_sizes(struct: type[ctypes.Structure], size: int, sent: int | None) -> None:
    assert ctypes.sizeof(struct) == size
    if sent is not None:
        assert sent == size


def test_freeze_sends_only_map_fd() -> None:
    assert S.SIZE_FREEZE == 4
    assert S.MapElemAttr.map_fd.offset == 0


@pytest.mark.parametrize(
    ("struct", "field", "offset"),
    [
        (S.MapCreateAttr, "map_name", 28),
        (S.MapCreateAttr, "map_extra", 64),
        (S.MapCreateAttr, "value_type_btf_obj_fd", 72),
        (S.MapCreateAttr, "map_token_fd", 76),
        (S.MapCreateAttr, "excl_prog_hash", 80),
        (S.MapCreateAttr, "excl_prog_hash_size", 88),
        (S.MapElemAttr, "key", 8),
        (S.MapElemAttr, "value", 16),
        (S.MapElemAttr, "flags", 24),
        (S.InfoAttr, "info_len", 4),
        (S.InfoAttr, "info", 8),
        (S.MapInfo, "name", 24),
        (S.MapInfo, "map_extra", 80),
        (S.MapInfo, "hash", 88),
        (S.MapInfo, "hash_size", 96),
        (S.ProgInfo, "tag", 8),
        (S.ProgInfo, "name", 64),
        (S.ProgInfo, "gpl_compatible", 84),
        (S.ProgInfo, "btf_id", 128),
        (S.ProgInfo, "run_time_ns", 192),
        (S.ProgInfo, "verified_insns", 216),
        (S.ProgInfo, "attach_btf_id", 224),
        (S.ProgLoadAttr, "license", 16),
        (S.ProgLoadAttr, "log_buf", 32),
        (S.ProgLoadAttr, "prog_flags", 44),
        (S.ProgLoadAttr, "prog_name", 48),
        (S.ProgLoadAttr, "expected_attach_type", 68),
        (S.ProgLoadAttr, "attach_btf_id", 108),
        (S.ProgLoadAttr, "fd_array", 120),
        (S.ProgLoadAttr, "core_relos", 128),
        (S.ProgLoadAttr, "log_true_size", 140),
        (S.ProgLoadAttr, "prog_token_fd", 144),
        (S.ProgLoadAttr, "fd_array_cnt", 148),
        (S.ProgLoadAttr, "signature", 152),
        (S.ProgLoadAttr, "signature_size", 160),
        (S.ProgLoadAttr, "keyring_id", 164),
        (S.TestRunAttr, "retval", 4),
        (S.TestRunAttr, "repeat", 32),
        (S.TestRunAttr, "ctx_size_in", 40),
        (S.TestRunAttr, "ctx_in", 48),
        (S.TestRunAttr, "flags", 64),
        (S.TestRunAttr, "batch_size", 72),
        (S.RawTracepointAttr, "prog_fd", 8),
        (S.LinkCreateAttr, "attach_type", 8),
        (S.LinkCreateAttr, "flags", 12),
        (S.ObjPinAttr, "bpf_fd", 8),
        (S.ObjPinAttr, "path_fd", 16),
    ],
)
def test_field_offsets(struct: type[ctypes.Structure], field: str, offset: int) -> None:
    assert getattr(struct, field).offset == offset


def test_keyring_id_is_signed() -> None:
    attr = S.ProgLoadAttr(keyring_id=-3)
    assert bytes(attr)[164:168] == (-3).to_bytes(4, "little", signed=True)


def test_explain_names_the_fix() -> None:
    assert "fd_array_cnt = 0" in S.explain(errno.EACCES, "program's hash doesn't match map's excl_prog_hash")
    assert "--scheme loadtime" in S.explain(
        errno.EACCES, "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"
    )
    assert "a key's own serial is not a keyring" in S.explain(errno.ENOKEY, "")


@pytest.mark.kernel
def test_unknown_command_is_a_kernel_error() -> None:
    with pytest.raises(KernelError) as info:
        S.bpf(999, S.MapElemAttr(), S.SIZE_MAP_ELEM)
    assert info.value.errno == errno.EINVAL
    assert info.value.command == "bpf cmd 999"


@pytest.mark.kernel
def test_nonzero_tail_past_the_command_is_einval() -> None:
    """CHECK_ATTR: bytes after FREEZE's map_fd must be zero (kernel.md §2)."""
    be = SyscallBackend()
    fd = be.map_create(S.MAP_TYPE_ARRAY, 4, 8, 1, "tail")
    try:
        with pytest.raises(KernelError) as info:
            S.bpf(S.MAP_FREEZE, S.MapElemAttr(map_fd=fd, flags=1), S.SIZE_MAP_ELEM)
        assert info.value.errno == errno.EINVAL
        assert info.value.command == "BPF_MAP_FREEZE"
    finally:
        be.close(fd)


@pytest.mark.kernel
def test_prog_load_failure_carries_the_verifier_log() -> None:
    be = SyscallBackend()
    bad = bytes.fromhex("9500000000000000")  # exit without setting r0
    with pytest.raises(KernelError) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, bad, name="nolog")
    exc = info.value
    assert exc.errno == errno.EACCES
    assert exc.command == "BPF_PROG_LOAD"
    assert "R0 !read_ok" in exc.log
    assert "R0 !read_ok" in str(exc)


@pytest.mark.kernel
def test_prog_load_ok_and_info() -> None:
    be = SyscallBackend()
    fd = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, name="bpfsign_ret0")
    try:
        info = be.prog_info(fd)
        assert info.type == S.PROG_TYPE_SOCKET_FILTER
        assert info.name == "bpfsign_ret0"
        assert len(info.tag) == 8 and info.id > 0
    finally:
        be.close(fd)


@pytest.mark.kernel
def test_signed_load_without_verification_is_unsupported() -> None:
    from bpfsign.backend import probes

    if probes.signed_prog_load().supported:
        pytest.skip("this kernel verifies signatures; the signed path is tested in the VM")
    be = SyscallBackend()
    with pytest.raises(UnsupportedFeature) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, signature=b"\x30" * 16, keyring_id=-3)
    assert info.value.errno == errno.EOPNOTSUPP
    assert info.value.name == "signed BPF_PROG_LOAD"
    assert "CONFIG_SYSTEM_DATA_VERIFICATION" in str(info.value)


@pytest.mark.kernel
def test_unresolvable_keyring_is_einval_before_the_signature() -> None:
    """kernel.md §5: the keyring is resolved first; keyring_id 3 never resolves."""
    be = SyscallBackend()
    with pytest.raises(KernelError) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, signature=b"\x30" * 16, keyring_id=3)
    assert info.value.errno == errno.EINVAL


@pytest.mark.kernel
def test_signature_larger_than_8192_is_einval() -> None:
    be = SyscallBackend()
    with pytest.raises(KernelError) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, signature=bytes(8193), keyring_id=-3)
    assert info.value.errno == errno.EINVAL
    assert info.value.log == ""  # refused before the verifier runs (kernel.md §6.3)


@pytest.mark.kernel
def test_prog_load_with_a_requested_log_keeps_it_on_failure() -> None:
    be = SyscallBackend()
    with pytest.raises(KernelError) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, bytes.fromhex("9500000000000000"), log_level=2)
    assert info.value.errno == errno.EACCES
    assert "R0 !read_ok" in info.value.log


def test_eintr_and_eagain_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel cannot be made to return EINTR on demand; script the choke point's view."""
    script = [(-1, errno.EINTR), (-1, errno.EAGAIN), (7, 0)]
    state = {"errno": 0}

    def fake_syscall(*_args: object) -> int:
        ret, state["errno"] = script.pop(0)
        return ret

    monkeypatch.setattr(S, "_syscall", fake_syscall)
    monkeypatch.setattr(S, "_get_errno", lambda: state["errno"])
    assert S.bpf(S.MAP_FREEZE, S.MapElemAttr(), S.SIZE_FREEZE) == 7
    assert script == []
    script[:] = [(-1, errno.EAGAIN)] * 5
    with pytest.raises(KernelError) as info:
        S.bpf(S.MAP_FREEZE, S.MapElemAttr(), S.SIZE_FREEZE)
    assert info.value.errno == errno.EAGAIN


def test_log_retry_keeps_the_first_errno(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry asks for a log; if the kernel then fails differently, the first errno wins
    and the other failure's log is not passed off as this one's."""
    script = [errno.EACCES, errno.EPERM]

    def fake_syscall(*_args: object) -> int:
        return -1

    monkeypatch.setattr(S, "_syscall", fake_syscall)
    monkeypatch.setattr(S, "_get_errno", lambda: script.pop(0))
    attr = S.ProgLoadAttr(prog_type=S.PROG_TYPE_SOCKET_FILTER)
    with pytest.raises(KernelError) as info:
        S.prog_load(attr)
    assert script == []
    assert info.value.errno == errno.EACCES
    assert info.value.log == ""
    assert "the retry with a verifier log failed with EPERM instead" in str(info.value)
    assert (attr.log_level, attr.log_size, attr.log_buf) == (0, 0, 0)


@pytest.mark.kernel
def test_fd_array_cnt_binds_maps_the_program_never_uses() -> None:
    """fd_array_cnt (the load-time scheme's input): every map in fd_array[0..cnt) is bound."""
    be = SyscallBackend()
    m = be.map_create(S.MAP_TYPE_ARRAY, 4, 8, 1, "bound")
    try:
        plain = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, fd_array=[m])
        bound = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, fd_array=[m], fd_array_cnt=1)
        try:
            assert be.prog_info(plain).nr_map_ids == 0
            assert be.prog_info(bound).nr_map_ids == 1
        finally:
            be.close(plain)
            be.close(bound)
    finally:
        be.close(m)


@pytest.mark.kernel
def test_fd_array_cnt_entry_that_is_not_a_map_carries_the_log() -> None:
    be = SyscallBackend()
    with open("/dev/null", "rb") as f, pytest.raises(KernelError) as info:
        fd = f.fileno()
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, fd_array=[fd], fd_array_cnt=1)
    assert info.value.errno == errno.EINVAL
    assert f"fd {fd} is not pointing to valid bpf_map or btf" in info.value.log.splitlines()


@pytest.mark.kernel
def test_map_of_another_type_with_flags() -> None:
    be = SyscallBackend()
    no_prealloc = 1  # BPF_F_NO_PREALLOC
    fd = be.map_create(S.MAP_TYPE_HASH, 4, 8, 4, "h", flags=no_prealloc)
    try:
        info = be.map_info(fd)
        assert (info.type, info.map_flags, info.max_entries, info.name) == (
            S.MAP_TYPE_HASH, no_prealloc, 4, "h",
        )
    finally:
        be.close(fd)


@pytest.mark.kernel
def test_run_packet_gives_the_socket_filter_an_skb_without_its_mac_header() -> None:
    skb_len = bytes.fromhex("6110000000000000" "9500000000000000")  # r0 = skb->len; exit
    be = SyscallBackend()
    fd = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, skb_len, name="skb_len")
    try:
        assert be.test_run_packet(fd, bytes(14) + b"x" * 50) == 50
    finally:
        be.close(fd)
