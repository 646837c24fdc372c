"""The syscall layer: attr layouts against docs/kernel.md §4, and errno → typed errors."""

from __future__ import annotations

import ctypes
import errno
import functools
import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign.errors import KernelError, UnsupportedFeature
from bpfsign.kernel import _sys as S
from bpfsign.kernel import syscall as syscall_module
from bpfsign.kernel.syscall import SyscallBackend

REPO = Path(__file__).resolve().parent.parent
RET0 = bytes.fromhex("b7000000000000009500000000000000")  # r0 = 0; exit


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
    assert "fd_array_cnt = 0" in S.explain(
        errno.EACCES, "program's hash doesn't match map's excl_prog_hash"
    )
    assert "convert it to the loadtime scheme" in S.explain(
        errno.EACCES,
        "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4",
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
    """CHECK_ATTR: bytes after FREEZE's map_fd must be zero (docs/kernel.md §2)."""
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
    from bpfsign.kernel import probes

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
    """docs/kernel.md §5: the keyring is resolved first; keyring_id 3 never resolves."""
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
    assert info.value.log == ""  # refused before the verifier runs (docs/kernel.md §6.3)
    assert str(info.value) == (
        "BPF_PROG_LOAD: EINVAL (22): the signature is 8193 bytes; the kernel caps signatures "
        "at 8192 bytes (KMALLOC_MAX_CACHE_SIZE): sign with fewer or smaller embedded "
        "certificates (e.g. without the chain)"
    )


@pytest.mark.kernel
def test_signature_of_8192_bytes_with_a_bad_keyring_still_names_the_keyring() -> None:
    be = SyscallBackend()
    with pytest.raises(KernelError) as info:
        be.prog_load(S.PROG_TYPE_SOCKET_FILTER, RET0, signature=bytes(8192), keyring_id=3)
    assert info.value.errno == errno.EINVAL
    assert "check keyring_id" in str(info.value) and "8192" not in str(info.value)


def test_explain_checks_the_signature_size_before_the_keyring() -> None:
    big = S.explain(errno.EINVAL, "", signature_size=8193)
    assert big.startswith("the signature is 8193 bytes; the kernel caps signatures at 8192 bytes")
    assert "keyring" not in big
    assert S.explain(errno.EINVAL, "", signature_size=8192).startswith("check keyring_id")
    assert S.explain(errno.EINVAL, "") == ""  # unsigned: keyring_id is never read


def _run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def _disabled() -> str:
    with open(S.UNPRIVILEGED_BPF_DISABLED) as f:
        return f.read().strip()


@pytest.mark.kernel
def test_cli_load_as_an_unprivileged_user_says_what_is_missing() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    run = _run_as_nobody("-m", "bpfsign", "load", "tests/fixtures/skel/sockfilter.lskel.h")
    assert run.returncode == 1
    off = " (unprivileged bpf() is off)" if _disabled() != "0" else ""
    assert run.stderr == (
        "bpfsign: BPF_MAP_CREATE: EPERM (1): sockfilter: map create of __loader.map failed: "
        "not permitted: bpf() needs CAP_BPF (plus CAP_PERFMON for tracing programs or CAP_NET_ADMIN for networking ones) or root; this "
        "process runs as uid 65534 (CAP_BPF missing, CAP_PERFMON missing, CAP_SYS_ADMIN missing) "
        f"and kernel.unprivileged_bpf_disabled = {_disabled()}{off}; run it as root with full "
        "capabilities, or grant them (an LSM may refuse it too)\n"
    )


@pytest.mark.kernel
@pytest.mark.parametrize("cmd", [S.MAP_CREATE, S.PROG_LOAD])
def test_the_privileged_commands_get_the_eperm_hint(cmd: int) -> None:
    """Since 6.5 only MAP_CREATE and PROG_LOAD check capabilities up front."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to uid 65534")
    code = (
        "from bpfsign.kernel import _sys as S\n"
        "from bpfsign.errors import KernelError\n"
        "attr = {0: S.MapCreateAttr(map_type=2, key_size=4, value_size=4, max_entries=1),\n"
        "        5: S.ProgLoadAttr(prog_type=1)}\n"
        f"try:\n    S.bpf({cmd}, attr[{cmd}], 16)\n"
        "except KernelError as e:\n    print(e.command, e.errno, e)\n"
    )
    run = _run_as_nobody("-c", code)
    assert run.returncode == 0, run.stderr
    name = S.COMMAND_NAMES[cmd]
    assert run.stdout.startswith(f"{name} 1 {name}: EPERM (1): not permitted: bpf() needs CAP_BPF")
    assert "uid 65534 (CAP_BPF missing, CAP_PERFMON missing, CAP_SYS_ADMIN missing)" in run.stdout


@pytest.mark.kernel
def test_eperm_with_every_capability_points_elsewhere(tmp_path: Path) -> None:
    """Root pinning outside bpffs: EPERM that capabilities cannot fix."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    fd = S.bpf(
        S.MAP_CREATE,
        S.MapCreateAttr(map_type=2, key_size=4, value_size=4, max_entries=1),
        S.SIZE_MAP_CREATE,
    )
    try:
        path = ctypes.create_string_buffer(str(tmp_path / "pin").encode())
        with pytest.raises(KernelError) as info:
            S.bpf(S.OBJ_PIN, S.ObjPinAttr(pathname=S.addr(path), bpf_fd=fd), S.SIZE_OBJ_PIN)
    finally:
        os.close(fd)
    assert info.value.errno == errno.EPERM
    assert str(info.value) == (
        "BPF_OBJ_PIN: EPERM (1): not permitted although this process has CAP_BPF, CAP_PERFMON "
        "and CAP_SYS_ADMIN: an LSM or a rule of this command refused it; the path must be on a "
        "bpf filesystem (mount -t bpf bpf DIR)"
    )


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
    # the one retry loop also serves add_key and keyctl, and bpf_errno for probes
    script[:] = [
        (-1, errno.EINTR),
        (41, 0),
        (-1, errno.EINTR),
        (42, 0),
        (-1, errno.EAGAIN),
        (43, 0),
    ]
    assert S.add_key(b"asymmetric", None, b"x", -3) == 41
    assert S.keyctl(S.KEYCTL_GET_KEYRING_ID, -3, 0) == 42
    assert S.bpf_errno(S.MAP_FREEZE, S.MapElemAttr(), S.SIZE_FREEZE) == (43, 0)
    script[:] = [(-1, errno.EINTR)] * 5
    assert S.bpf_errno(S.MAP_FREEZE, S.MapElemAttr(), S.SIZE_FREEZE) == (-1, errno.EINTR)
    assert script == []


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
            S.MAP_TYPE_HASH,
            no_prealloc,
            4,
            "h",
        )
    finally:
        be.close(fd)


@pytest.mark.kernel
def test_run_packet_gives_the_socket_filter_an_skb_without_its_mac_header() -> None:
    skb_len = bytes.fromhex("61100000000000009500000000000000")  # r0 = skb->len; exit
    be = SyscallBackend()
    fd = be.prog_load(S.PROG_TYPE_SOCKET_FILTER, skb_len, name="skb_len")
    try:
        assert be.test_run_packet(fd, bytes(14) + b"x" * 50) == 50
    finally:
        be.close(fd)


UAPI_PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/bpf.h>
#define F(m) printf("%s %zu %zu\n", #m, offsetof(union bpf_attr, m), \
                    sizeof(((union bpf_attr *)0)->m))
int main(void) {
    F(raw_tracepoint.name); F(raw_tracepoint.prog_fd); F(raw_tracepoint);
    F(link_create.prog_fd); F(link_create.target_fd); F(link_create.attach_type);
    F(link_create.flags); F(link_create.iter_info); F(link_create.iter_info_len);
    F(iter_create.link_fd); F(iter_create.flags); F(iter_create);
    F(pathname); F(bpf_fd); F(file_flags);
#ifdef BPF_F_PATH_FD
    F(path_fd);
#endif
    return 0;
}
"""


@pytest.fixture(scope="module")
def uapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, int]]:
    """Offsets and sizes from the UAPI header, as gcc sees them."""
    if shutil.which("gcc") is None or not Path("/usr/include/linux/bpf.h").exists():
        pytest.skip("needs gcc and the kernel UAPI headers")
    tmp = tmp_path_factory.mktemp("uapi")
    (tmp / "uapi.c").write_text(UAPI_PROGRAM)
    subprocess.run(["gcc", "-o", str(tmp / "uapi"), str(tmp / "uapi.c")], check=True)
    out = subprocess.run([str(tmp / "uapi")], check=True, capture_output=True, text=True).stdout
    return {
        name: (int(off), int(size)) for name, off, size in (ln.split() for ln in out.splitlines())
    }


def _end(uapi: dict[str, tuple[int, int]], name: str) -> int:
    off, size = uapi[name]
    return off + size


@pytest.mark.parametrize(
    ("struct", "prefix", "fields"),
    [
        (S.RawTracepointAttr, "raw_tracepoint.", ["name", "prog_fd"]),
        (
            S.LinkCreateAttr,
            "link_create.",
            ["prog_fd", "target_fd", "attach_type", "flags", "iter_info", "iter_info_len"],
        ),
        (S.IterCreateAttr, "iter_create.", ["link_fd", "flags"]),
        (S.ObjPinAttr, "", ["pathname", "bpf_fd", "file_flags"]),
    ],
)
def test_attach_and_pin_attr_offsets_match_the_uapi(
    uapi: dict[str, tuple[int, int]],
    struct: type[ctypes.Structure],
    prefix: str,
    fields: list[str],
) -> None:
    for name in fields:
        field = getattr(struct, name)
        assert (field.offset, field.size) == uapi[prefix + name], name


def test_attach_and_pin_sizes_sent_end_at_the_last_field_used(
    uapi: dict[str, tuple[int, int]],
) -> None:
    """offsetofend() of the last field each command needs, as libbpf sends it."""
    # raw_tracepoint: name + prog_fd, padded to the struct as it was before `cookie` (16)
    assert S.SIZE_RAW_TP == uapi["raw_tracepoint"][1] == 16
    assert S.RawTracepointAttr.cookie.offset == S.SIZE_RAW_TP  # cookie is never sent
    assert S.SIZE_LINK_CREATE == _end(uapi, "link_create.flags") == 16
    assert S.SIZE_ITER_CREATE == _end(uapi, "iter_create.flags") == uapi["iter_create"][1] == 8
    # path_fd (6.5+) follows file_flags; this Debian header may predate it
    assert S.ObjPinAttr.path_fd.offset == _end(uapi, "file_flags") == 16
    if "path_fd" in uapi:
        assert _end(uapi, "path_fd") == S.SIZE_OBJ_PIN
    assert S.SIZE_OBJ_PIN == S.ObjPinAttr.path_fd.offset + 4 == 20
    for struct, sent in (
        (S.RawTracepointAttr, S.SIZE_RAW_TP),
        (S.LinkCreateAttr, S.SIZE_LINK_CREATE),
        (S.IterCreateAttr, S.SIZE_ITER_CREATE),
        (S.ObjPinAttr, S.SIZE_OBJ_PIN),
    ):
        assert ctypes.sizeof(struct) >= sent


# ------------------------------------------------------- buffers stay alive

_POINTERS = ("insns", "license", "log_buf", "fd_array", "signature")


def _live_owner(ptr: int, expect: bytes) -> object | None:
    """A live ctypes object whose memory holds ``expect`` at ``ptr`` (after a full collection)."""
    gc.collect()
    for obj in gc.get_objects():
        if not isinstance(obj, (ctypes.Array, ctypes.Structure, ctypes._SimpleCData)):
            continue
        start = ctypes.addressof(obj)
        inside = start <= ptr and ptr + len(expect) <= start + ctypes.sizeof(obj)
        if inside and ctypes.string_at(ptr, len(expect)) == expect:
            return obj
    return None


class _Watch:
    """Wraps the choke point: at each PROG_LOAD, find a live owner for every pointer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, expect: dict[str, bytes]) -> None:
        self.real = S._syscall
        self.expect = expect
        self.owners: list[dict[str, object | None]] = []
        monkeypatch.setattr(S, "_syscall", self)
        # the loader's hot path calls the choke point through _sys.raw_bpf(), bound at import
        monkeypatch.setattr(syscall_module, "_RAW_BPF", functools.partial(self, S.NR_BPF))

    def __call__(self, nr: int, cmd: int, ref: object, size: int) -> int:
        if nr == S.NR_BPF and cmd == S.PROG_LOAD:
            attr = ref._obj  # type: ignore[attr-defined]  # byref() keeps the object
            found = {}
            for name in _POINTERS:
                ptr = getattr(attr, name)
                if ptr and name in self.expect:
                    found[name] = _live_owner(ptr, self.expect[name])
            self.owners.append(found)
        ret: int = self.real(nr, cmd, ref, size)
        return ret


def test_the_owner_check_sees_a_freed_buffer() -> None:
    """The check is not a tautology: a buffer dropped before the call has no live owner."""
    payload = b"bpfsign-freed-" * 70
    buf = ctypes.create_string_buffer(payload, len(payload))
    ptr = ctypes.addressof(buf)
    assert _live_owner(ptr, payload) is buf
    del buf
    assert _live_owner(ptr, payload) is None


@pytest.mark.kernel
def test_prepared_prog_load_buffers_are_owned_by_the_prepared_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loader's PROG_LOAD points only at buffers its _Prepared owns (or the caller's frame)."""
    from bpfsign.kernel import loader
    from bpfsign.skel import skeleton

    skel = skeleton.load(REPO / "tests/fixtures/skel/counter.lskel.h")
    backend = SyscallBackend()
    ld = loader.Loader(skel, backend=backend, log_level=1)
    watch = _Watch(
        monkeypatch,
        {
            "insns": skel.insns,
            "license": b"Dual BSD/GPL\0",
            "log_buf": bytes(16),
        },
    )
    ld.load().close()
    assert len(watch.owners) == 1
    prepared = backend._prepared[ld.request]
    owners = watch.owners[0]
    assert owners["insns"] is prepared.insns
    assert owners["license"] is prepared.license
    assert owners["log_buf"] is prepared.log


@pytest.mark.kernel
def test_prog_load_buffers_are_alive_during_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backend.prog_load builds its buffers as locals: each one must still be alive in the call."""
    map_fd = S.bpf(
        S.MAP_CREATE,
        S.MapCreateAttr(map_type=2, key_size=4, value_size=4, max_entries=1),
        S.SIZE_MAP_CREATE,
    )
    sig = b"\x30\x82" + bytes(40)
    watch = _Watch(
        monkeypatch,
        {
            "insns": RET0,
            "license": b"GPL\0",
            "fd_array": map_fd.to_bytes(4, "little"),
            "signature": sig,
        },
    )
    try:
        with pytest.raises((KernelError, UnsupportedFeature)):
            SyscallBackend().prog_load(
                S.PROG_TYPE_SOCKET_FILTER, RET0, fd_array=(map_fd,), signature=sig, keyring_id=-3
            )
    finally:
        os.close(map_fd)
    assert watch.owners, "PROG_LOAD never reached the choke point"
    for owners in watch.owners:
        assert set(owners) == {"insns", "license", "fd_array", "signature"}
        assert all(o is not None for o in owners.values()), owners


@pytest.mark.kernel
def test_an_unsigned_load_with_a_bad_name_gets_no_keyring_hint() -> None:
    """The kernel takes names of letters, digits, '_' and '.' only (docs/kernel.md §10);
    its EINVAL has no log, and an unsigned load never reads keyring_id."""
    be = SyscallBackend()
    ret0 = bytes.fromhex("b7000000000000009500000000000000")
    os.close(be.prog_load(S.PROG_TYPE_SOCKET_FILTER, ret0, name="ok_name.1"))
    for bad in ("a-b", "a b", 'q"'):
        with pytest.raises(KernelError) as e:
            be.prog_load(S.PROG_TYPE_SOCKET_FILTER, ret0, name=bad)
        assert (e.value.errno, str(e.value)) == (errno.EINVAL, "BPF_PROG_LOAD: EINVAL (22)")
