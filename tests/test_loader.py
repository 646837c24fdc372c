"""Loading the fixture light skeletons into the running kernel, as skel_internal.h does."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpfsign.cli import main
from bpfsign.errors import InputError, KernelError, UnsupportedFeature
from bpfsign.kernel import _sys as S
from bpfsign.kernel import loader, probes
from bpfsign.kernel.backend import Backend, LoaderRequest, PrimitiveSteps, default_backend
from bpfsign.skel import scheme, skeleton

pytestmark = pytest.mark.kernel

FIXTURES = Path(__file__).parent / "fixtures"
SKEL = FIXTURES / "skel"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
UNSIGNED = sorted(
    name for name, ref in REFERENCE.items() if not ref["signed"] and ref["endian"] == "little"
)
SIGNED = sorted(
    name for name, ref in REFERENCE.items() if ref["signed"] and ref["endian"] == "little"
)
NR_GETPID = 39
ETH_P_ALL = 0x0003
SO_ATTACH_BPF = 50


def _skel(name: str) -> skeleton.Skeleton:
    return skeleton.load(SKEL / name)


def _u64(be: Backend, fd: int, key: int) -> int:
    return int.from_bytes(be.map_lookup(fd, struct.pack("<I", key), 8), "little")


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def _bpf_fds() -> set[int]:
    """Open fds that are BPF objects (listdir's own transient fd is not one)."""
    out = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{n}").startswith("anon_inode:bpf"):
                out.add(int(n))
        except OSError:
            pass
    return out


@pytest.mark.parametrize("name", UNSIGNED)
def test_every_unsigned_fixture_loads_with_its_programs_and_maps(name: str) -> None:
    ref = REFERENCE[name]
    with loader.load(_skel(name)) as ls:
        info = ls.describe()
        assert (info["scheme"], info["signed"]) == ("loadtime", False)
        progs = {p["name"]: (p.get("kernel_name"), p.get("type")) for p in info["progs"]}
        assert progs == {
            p["name"]: (
                p["kernel_name"] and p["kernel_name"][:15],
                p["type"] if p["loaded"] else None,
            )
            for p in ref["progs"]
        }
        assert [p["loaded"] for p in info["progs"]] == [p["loaded"] for p in ref["progs"]]
        maps = {m["name"]: (m["kernel_name"], m["type"]) for m in info["maps"]}
        assert maps == {m["name"]: (m["kernel_name"][:15], m["type"]) for m in ref["maps"]}
        assert all(p["id"] > 0 for p in info["progs"] if p["loaded"])


@pytest.mark.parametrize("name", UNSIGNED)
def test_global_data_round_trips(name: str) -> None:
    skel = _skel(name)
    be = default_backend()
    # the sections the C header maps (its skel-><section> pointers) are exactly ours
    assert {m.name for m in skel.maps if m.mmapable} == set(REFERENCE[name]["sections"])
    with loader.load(skel) as ls:
        for spec in skel.maps:
            if spec.section is None:
                continue
            if not spec.mmapable:  # the header never maps it: neither do we (docs/lskel.md §5)
                with pytest.raises(InputError, match=r"is not mmapable: "):
                    ls.globals(spec.section)
                continue
            view = ls.globals(spec.section)
            image = spec.initial_value or b""
            assert bytes(view[: len(image)]) == image  # the live value starts as the image
            fd = ls.map_fd(spec.name)
            if spec.readonly:
                assert view.readonly
                assert be.map_lookup(fd, bytes(4), len(image)) == image
                continue
            new = bytes((i * 37 + 11) & 0xFF for i in range(len(image)))
            view[: len(image)] = new  # Python → kernel
            assert be.map_lookup(fd, bytes(4), len(image)) == new
            back = bytes(reversed(new))
            be.map_update(fd, bytes(4), back)  # kernel → Python
            assert bytes(view[: len(image)]) == back


def test_sockfilter_counts_a_udp_frame_through_test_run() -> None:
    """A test run strips the Ethernet header that a packet socket keeps, so the program's
    read at ETH_HLEN + 9 lands 14 bytes further: put 17 (UDP) at both places."""
    with loader.load(_skel("sockfilter.lskel.h")) as ls:
        packet = bytearray(40)
        packet[0], packet[9], packet[23] = 0x45, 17, 17
        frame = bytes(12) + b"\x08\x00" + bytes(packet)
        data = ctypes.create_string_buffer(frame, len(frame))
        attr = S.TestRunAttr(
            prog_fd=ls.prog_fd("count_proto"),
            data_size_in=len(frame),
            data_in=ctypes.addressof(data),
            repeat=1,
        )
        S.bpf(S.PROG_TEST_RUN, attr, S.SIZE_TEST_RUN)
        assert attr.retval == 0xFFFF  # snap_len from .rodata
        assert _u64(default_backend(), ls.map_fd("proto_counts"), 17) == 1


def test_sockfilter_attached_to_a_socket_counts_real_packets() -> None:
    """SO_ATTACH_BPF on a packet socket on lo; send UDP; the filter counts protocol 17."""
    be = default_backend()
    with loader.load(_skel("sockfilter.lskel.h")) as ls:
        counts = ls.map_fd("proto_counts")
        before = _u64(be, counts, 17)
        with (
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as raw,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            raw.bind(("lo", 0))
            raw.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, ls.prog_fd("count_proto"))
            raw.settimeout(2)
            udp.sendto(b"bpfsign", ("127.0.0.1", 9))
            frame = raw.recv(2048)
        assert frame[12:14] == b"\x08\x00" and frame[23] == 17
        assert _u64(be, counts, 17) > before


def test_sockfilter_on_a_socketpair_drops_non_ip() -> None:
    """On an AF_UNIX socketpair skb->protocol is not IPv4, so the filter returns 0: drop."""
    with loader.load(_skel("sockfilter.lskel.h")) as ls:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            b.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, ls.prog_fd("count_proto"))
            a.send(b"ping")
            b.setblocking(False)
            with pytest.raises(BlockingIOError):
                b.recv(16)


def test_counter_raw_tracepoint_counts_getpid_of_this_process() -> None:
    be = default_backend()
    with loader.load(_skel("counter.lskel.h")) as ls:
        bss = ls.globals("bss")
        struct.pack_into("<I", bss, 8, os.getpid())  # target_tgid, set through the live mmap
        links = ls.attach()
        assert set(links) == {"count_sys_enter"}  # count_getpid: no auto-attach in lskels
        for _ in range(25):
            os.getpid()
        ls.detach()
        enter_events, _getpid_calls, tgid = struct.unpack_from("<III", bss, 0)
        assert tgid == os.getpid()
        assert enter_events >= 25
        assert _u64(be, ls.map_fd("counts"), NR_GETPID) >= 25


def test_attach_refuses_a_program_without_auto_attach() -> None:
    with (
        loader.load(_skel("counter.lskel.h")) as ls,
        pytest.raises(InputError, match="does not support auto-attach"),
    ):
        ls.attach("count_getpid")


def test_unsigned_mode_loader_applies_ctx_overrides() -> None:
    """docs/lskel.md §6 item 5: a -L loader takes max_entries and the section image from the ctx."""
    with loader.load(
        _skel("counter.lskel.h"),
        max_entries={"counts": 777},
        initial_values={"data": struct.pack("<I", 42)},
    ) as ls:
        assert default_backend().map_info(ls.map_fd("counts")).max_entries == 777
        assert struct.unpack_from("<I", ls.globals(".data"))[0] == 42


def test_signed_mode_loader_refuses_ctx_overrides_before_any_syscall() -> None:
    """docs/lskel.md §6: a -S loader ignores the ctx; the override must not vanish silently."""
    before = _bpf_fds()
    with pytest.raises(
        InputError, match="cannot set max_entries of counts for counter: a signed-mode loader"
    ):
        loader.load(_skel("counter.signed.lskel.h"), unsigned=True, max_entries={"counts": 777})
    assert _bpf_fds() == before


def test_typed_globals_are_live_and_named_like_the_c_skeleton() -> None:
    """skel->bss->target_tgid in C is loaded.bss.target_tgid here, over the same mmap."""
    be = default_backend()
    pid = os.getpid()
    with loader.load(
        _skel("counter.lskel.h"),
        initial_values={"data": {"sample_every": 42}, "bss": {"target_tgid": pid}},
    ) as ls:
        assert ls.data.sample_every == 42
        assert ls.bss.as_dict() == {"enter_events": 0, "getpid_calls": 0, "target_tgid": pid}
        ls.attach()
        for _ in range(25):
            os.getpid()
        ls.detach()
        assert ls.bss.enter_events >= 25  # written by the program, read through the struct
        ls.data.sample_every = 3  # Python → kernel
        assert be.map_lookup(ls.map_fd("data"), bytes(4), 4) == struct.pack("<I", 3)
        be.map_update(ls.map_fd("bss"), bytes(4), struct.pack("<III", 1, 2, 7))  # kernel → Python
        assert (ls.bss.enter_events, ls.bss.getpid_calls, ls.bss.target_tgid) == (1, 2, 7)
        assert bytes(ls.globals("bss")[:12]) == struct.pack("<III", 1, 2, 7)  # raw bytes too
        assert ls.section(".bss") is ls.bss
        with pytest.raises(
            AttributeError,
            match=r"section bss has no member 'hits' \(it has: "
            r"enter_events, getpid_calls, target_tgid\)",
        ):
            ls.bss.hits = 1
        with pytest.raises(AttributeError, match="has no global-data section of that name"):
            ls.rodata  # noqa: B018


def test_read_only_sections_refuse_writes_with_a_clear_error() -> None:
    with loader.load(
        _skel("sockfilter.lskel.h"), initial_values={"rodata": {"snap_len": 100, "only_proto": 17}}
    ) as ls:
        assert (ls.rodata.snap_len, ls.rodata.only_proto) == (100, 17)
        assert ls.rodata.readonly
        with pytest.raises(InputError) as info:
            ls.rodata.snap_len = 5
        assert str(info.value) == (
            "rodata.snap_len is read-only: the kernel froze the rodata map at load; set it before "
            "load with initial_values={'rodata': {'snap_len': ...}}"
        )
        assert ls.rodata.snap_len == 100


def test_struct_typed_globals_are_opaque_bytes_of_the_right_size() -> None:
    cfg = struct.pack("<IIQ24s", os.getpid(), 0, 0, b"typed")
    with loader.load(_skel("multi.lskel.h"), initial_values={"rodata": {"cfg": cfg}}) as ls:
        assert ls.rodata.cfg == cfg
        assert ls.rodata.layout.opaque == ("cfg",)
        assert ls.bss.stats == bytes(16)
        ls.bss.stats = struct.pack("<QI4x", 9, 8)
        assert struct.unpack_from("<QI", ls.globals("bss")) == (9, 8)
        assert ls.data.generation == 1


def test_typed_views_do_not_keep_the_mappings_after_close() -> None:
    before = _bpf_fds()
    ls = loader.load(_skel("counter.lskel.h"))
    assert ls.bss.target_tgid == 0 and ls.data.sample_every == 1
    ls.close()
    assert _bpf_fds() == before  # our own typed views released the mmaps
    with pytest.raises(InputError, match="closed"):
        ls.section("bss")


def test_bad_override_makes_the_loader_fail_and_leaks_nothing() -> None:
    """A ringbuf of 1000 bytes is refused inside the loader: retval -EINVAL."""
    before = _bpf_fds()
    with pytest.raises(KernelError) as info:
        loader.load(_skel("multi.lskel.h"), max_entries={"events": 1000})
    assert (info.value.errno, info.value.command, info.value.step) == (
        errno.EINVAL,
        "loader program",
        "run",
    )
    assert str(info.value) == (
        "loader program: EINVAL (22): multi: loader run of __loader.prog returned -22 (EINVAL); "
        "it failed at one of its BPF_BTF_LOAD of the program's BTF, BPF_MAP_CREATE of map events"
    )
    assert _bpf_fds() == before


@pytest.mark.parametrize("name", SIGNED)
def test_signed_load_here_is_unsupported_feature(name: str) -> None:
    if probes.signed_prog_load().supported:
        pytest.skip("this kernel verifies signatures: the signed path runs in the VM tests")
    before = _bpf_fds()
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(_skel(name))
    assert info.value.errno == errno.EOPNOTSUPP
    assert "lacks signature verification" in str(info.value)
    assert _bpf_fds() == before


@pytest.mark.parametrize("name", SIGNED)
def test_converted_signed_loader_loads_unsigned(name: str) -> None:
    converted, removed = scheme.convert_to_loadtime(_skel(name))
    assert removed.count in (28, 33)
    with loader.load(converted) as ls:
        assert (ls.scheme, ls.signed) == ("loadtime", False)
        info = ls.describe()
        ref = REFERENCE[name]
        assert {p["name"]: p.get("type") for p in info["progs"]} == {
            p["name"]: p["type"] if p["loaded"] else None for p in ref["progs"]
        }


def test_inloader_loader_on_a_kernel_without_excl_is_refused_before_any_syscall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        probes, "inloader_loaders", lambda: probes.Probe("inloader_loaders", False, "x")
    )
    with pytest.raises(UnsupportedFeature, match="convert it to the loadtime scheme"):
        loader.Loader(_skel("counter.signed.lskel.h"), unsigned=True)


class _PrimitivesOnly:
    """A backend without the fast path: the generic run_loader does the sequence."""

    def __init__(self) -> None:
        self._be = default_backend()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._be, name)
        if callable(attr):

            def wrapped(*a: object, **k: object) -> object:
                self.calls.append(name)
                return attr(*a, **k)

            return wrapped
        return attr

    def loader_steps(self, request: LoaderRequest) -> PrimitiveSteps:
        return PrimitiveSteps(self, request)  # type: ignore[arg-type]


def test_generic_sequence_over_backend_primitives() -> None:
    be = _PrimitivesOnly()
    skel = _skel("counter.signed.lskel.h")
    if not probes.inloader_loaders().supported:
        skel = scheme.convert_to_loadtime(skel)[0]
    with loader.load(skel, unsigned=True, backend=be) as ls:  # type: ignore[arg-type]
        assert len(ls.progs) == 2
    be.calls = [c for c in be.calls if c != "probe"]  # capabilities are asked, not assumed
    expected = ["map_create", "map_update", "map_freeze"]
    if ls.scheme == "inloader":
        expected.append("map_info")
    assert be.calls[: len(expected) + 2] == [*expected, "prog_load", "test_run"]


def test_close_releases_every_fd() -> None:
    before = _bpf_fds()
    ls = loader.load(_skel("counter.lskel.h"))
    ls.attach()
    fds = set(ls.maps.values()) | set(ls.progs.values()) | set(ls.links.values())
    assert len(fds) == 6 and fds <= _bpf_fds()
    ls.close()
    assert _bpf_fds() == before
    with pytest.raises(InputError, match="closed"):
        ls.map_fd("counts")
    ls.close()  # idempotent


def test_a_view_held_past_close_stays_valid_until_released() -> None:
    """No dangling memory: the mapping (and its map) lives as long as a view of it."""
    before = _bpf_fds()
    ls = loader.load(_skel("counter.lskel.h"))
    data = ls.globals("data")
    word = data[0:4]  # a slice shares the export
    ls.close()
    assert bytes(word) == struct.pack("<I", 1)  # sample_every, still readable
    word.release()
    data.release()
    assert _bpf_fds() == before


def test_unknown_names_are_input_errors() -> None:
    with loader.load(_skel("sockfilter.lskel.h")) as ls:
        with pytest.raises(InputError, match=r"no map 'nope'.*proto_counts"):
            ls.map_fd("nope")
        with pytest.raises(InputError, match=r"no global-data section 'bss'.*rodata"):
            ls.globals("bss")
    with pytest.raises(InputError, match="no global-data section"):
        loader.load(_skel("sockfilter.lskel.h"), initial_values={"bss": b"x"})


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_pin_into_bpffs(bpffs: Path) -> None:
    with loader.load(_skel("counter.lskel.h")) as ls:
        ls.attach()
        pinned = ls.pin(bpffs / "counter")
    names = sorted(Path(p).name for p in pinned)
    assert names == [
        "link_count_sys_enter",
        "map_bss",
        "map_counts",
        "map_data",
        "prog_count_getpid",
        "prog_count_sys_enter",
    ]
    assert all(Path(p).exists() for p in pinned)  # they outlive the fds


def test_pin_outside_bpffs_explains(tmp_path: Path) -> None:
    with loader.load(_skel("sockfilter.lskel.h")) as ls, pytest.raises(KernelError) as info:
        ls.pin(tmp_path / "notbpffs")
    assert info.value.errno == errno.EPERM
    assert "bpf filesystem" in str(info.value)


def _no_fds(obj: object) -> bool:
    if isinstance(obj, dict):
        return "fd" not in obj and all(_no_fds(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_no_fds(v) for v in obj)
    return True


def test_cli_load_json_has_ids_and_no_fds(capsys: pytest.CaptureFixture[str]) -> None:
    """The fds are closed by the time it prints: only kernel ids (and pins) are reported."""
    assert main(["load", str(SKEL / "sockfilter.lskel.h"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in out["progs"]] == ["count_proto"]
    assert {m["name"]: m["type"] for m in out["maps"]} == {"proto_counts": 2, "rodata": 2}
    assert _no_fds(out)
    assert all(m["id"] > 0 for m in out["maps"]) and out["pinned"] == []
    assert (out["signed"], out["skeleton_signed"], out["scheme"]) == (False, False, None)


def test_cli_load_text_lines(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(SKEL / "counter.lskel.h")
    assert main(["load", path, "--attach"]) == 0
    lines = capsys.readouterr().out.splitlines()
    patterns = [
        re.escape(f"loaded counter from {path}: unsigned (no signature in the header)"),
        r"  map  counts           id \d+ *hash          key 4 value 8 max_entries 1024",
        r"  map  data             id \d+ *array         key 4 value 4 max_entries 1",
        r"  map  bss              id \d+ *array         key 4 value 12 max_entries 1",
        r"  prog count_sys_enter  id \d+ *raw_tracepoint   tag [0-9a-f]{16}",
        r"  prog count_getpid     id \d+ *tracepoint       tag [0-9a-f]{16}",
        r"  link count_sys_enter",
        re.escape("released on exit (use --pin DIR to keep them)"),
    ]
    assert len(lines) == len(patterns)
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)


def test_cli_load_signed_error(capsys: pytest.CaptureFixture[str]) -> None:
    if probes.signed_prog_load().supported:
        pytest.skip("this kernel verifies signatures: the signed path runs in the VM tests")
    assert main(["load", str(SKEL / "counter.signed.lskel.h")]) == 1
    assert "lacks signature verification" in capsys.readouterr().err


# the demo's load step is tested in tests/test_demo.py


def test_multi_tp_btf_programs_attach_and_count_forks_of_this_process() -> None:
    """tp_btf → RAW_TRACEPOINT_OPEN(NULL); .rodata set before load (unsigned-mode override)."""
    rodata = next(m for m in _skel("multi.lskel.h").maps if m.name == "rodata")
    image = bytearray(rodata.initial_value or b"")
    struct.pack_into("<I", image, 0, os.getpid())  # cfg.target_tgid
    with loader.load(_skel("multi.lskel.h"), initial_values={"rodata": bytes(image)}) as ls:
        mapped = ls.globals("rodata")
        assert mapped.readonly and struct.unpack_from("<I", mapped)[0] == os.getpid()
        assert set(ls.attach()) == {"on_fork", "on_switch"}
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        ls.detach()
        forks, _switches = struct.unpack_from("<QI", ls.globals("bss"))
        assert forks == 3


def test_cli_load_pin(bpffs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = bpffs / "sf"
    assert main(["load", str(SKEL / "sockfilter.lskel.h"), "--pin", str(target)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4:] == [
        f"pinned 3 objects under {target}",
        f"  {target}/map_proto_counts",
        f"  {target}/map_rodata",
        f"  {target}/prog_count_proto",
    ]
    assert sorted(p.name for p in target.iterdir()) == [
        "map_proto_counts",
        "map_rodata",
        "prog_count_proto",
    ]


def test_cli_load_pin_json_gives_paths_not_fds(
    bpffs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = bpffs / "sf"
    assert main(["load", str(SKEL / "sockfilter.lskel.h"), "--pin", str(target), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert _no_fds(out)
    assert {m["name"]: m["pinned"] for m in out["maps"]} == {
        "proto_counts": f"{target}/map_proto_counts",
        "rodata": f"{target}/map_rodata",
    }
    assert [p["pinned"] for p in out["progs"]] == [f"{target}/prog_count_proto"]
    assert all(Path(p).exists() for p in out["pinned"])


ITER_SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct seq_file;
struct bpf_iter_meta { struct seq_file *seq; __u64 session_id; __u64 seq_num; }
	__attribute__((preserve_access_index));
struct bpf_map { __u32 id; } __attribute__((preserve_access_index));
struct bpf_iter__bpf_map { struct bpf_iter_meta *meta; struct bpf_map *map; }
	__attribute__((preserve_access_index));

SEC("iter/bpf_map")
int dump_map_ids(struct bpf_iter__bpf_map *ctx)
{
	struct bpf_map *map = ctx->map;

	if (map)
		BPF_SEQ_PRINTF(ctx->meta->seq, "%u\n", map->id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_iter_program_attaches_with_link_create(tmp_path: Path) -> None:
    """Built here with clang and bpftool -L: iter → LINK_CREATE(BPF_TRACE_ITER), then read it."""
    src, obj = tmp_path / "mapids.bpf.c", tmp_path / "mapids.bpf.o"
    src.write_text(ITER_SOURCE)
    subprocess.run(
        [
            "clang",
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            str(src),
            "-o",
            str(obj),
        ],
        check=True,
    )
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    header = subprocess.run(
        [bpftool, "gen", "skeleton", "-L", str(obj), "name", "mapids"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    skel = skeleton.parse(header, path="mapids.lskel.h")
    assert [p.attach for p in skel.progs] == ["iter"]
    be = default_backend()
    with loader.load(skel) as ls:
        link = ls.attach()["dump_map_ids"]
        fd = be.iter_create(link)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        ids = {int(line) for line in b"".join(chunks).split()}
        assert be.map_info(ls.map_fd("rodata")).id in ids  # our own format-string map


# --- mapping each section as the header says; where a load failed ---------------------------


def _percpu_mapped(skel: skeleton.Skeleton) -> skeleton.Skeleton:
    """multi with its per-CPU array wrongly marked mmapable (what a name-guessing loader did)."""
    import dataclasses

    maps = [
        dataclasses.replace(m, section=".percpu", mmapable=True, mmap_size=4096)
        if m.name == "cpu_counts"
        else m
        for m in skel.maps
    ]
    return dataclasses.replace(skel, maps=tuple(maps))


def test_mmap_of_a_per_cpu_array_is_the_kernels_enotsupp_named_by_map_and_step() -> None:
    before = _bpf_fds()
    with pytest.raises(KernelError) as info:
        loader.load(_percpu_mapped(_skel("multi.lskel.h")))
    assert (info.value.errno, info.value.command, info.value.step) == (524, "mmap", "mmap")
    assert str(info.value) == (
        "mmap: ENOTSUPP (524): multi: mmap of map cpu_counts failed (4096 bytes, "
        "PROT_READ | PROT_WRITE)"
    )
    assert _bpf_fds() == before


def test_frozen_rodata_is_mapped_read_only_as_the_header_says() -> None:
    skel = _skel("multi.lskel.h")
    assert [(m.name, m.mmapable, m.readonly) for m in skel.maps if m.section] == [
        ("rodata", True, True),
        ("bss", True, False),
        ("data", True, False),
    ]
    with loader.load(skel) as ls:
        assert ls.globals("rodata").readonly and not ls.globals("bss").readonly
        assert len(ls.rodata.cfg) == ls.rodata.layout.size
        with pytest.raises(InputError) as info:
            ls.rodata.cfg = bytes(ls.rodata.layout.size)
        assert str(info.value) == (
            "rodata.cfg is read-only: the kernel froze the rodata map at load; set it before "
            "load with initial_values={'rodata': {'cfg': ...}}"
        )


def test_a_section_the_header_never_maps_says_it_is_not_mmapable() -> None:
    import dataclasses

    skel = _skel("multi.lskel.h")
    maps = tuple(
        dataclasses.replace(m, mmapable=False) if m.name == "data" else m for m in skel.maps
    )
    with loader.load(dataclasses.replace(skel, maps=maps)) as ls:
        with pytest.raises(InputError) as info:
            ls.section("data")
        assert info.value.reason == (
            "section .data (map data) of skeleton multi is not mmapable: it is a per-CPU array, "
            "which the kernel cannot mmap, so the header never maps it (its image is the initial "
            "value only); read each CPU's value with a map lookup on map_fd('data')"
        )
        assert ls.section("bss").layout.size == 16  # the others stay live


def test_dropped_skeleton_releases_its_fds_and_warns() -> None:
    import gc
    import warnings

    before = _bpf_fds()
    ls = loader.load(_skel("counter.lskel.h"))
    ls.attach()
    fds = set(ls.maps.values()) | set(ls.progs.values()) | set(ls.links.values())
    assert len(fds) == 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del ls
        gc.collect()
    assert [(c.category, str(c.message)) for c in caught] == [
        (ResourceWarning, "unclosed <LoadedSkeleton counter loadtime (3 maps, 2 progs)>")
    ]
    assert not any(os.path.exists(f"/proc/self/fd/{fd}") for fd in fds)
    assert _bpf_fds() == before


def test_a_failing_inner_program_load_is_named_with_its_verifier_log() -> None:
    """A program the kernel refuses inside the loader: its name and the verifier's log."""
    skel = _skel("counter.lskel.h")
    data = bytearray(skel.data)
    from bpfsign.kernel.loaderprog import inner_calls

    prog = [c for c in inner_calls(skel.insns, skel.data) if c.cmd == S.PROG_LOAD][1]
    struct.pack_into("<I", data, prog.attr, 9999)  # its prog_type: no such type
    import dataclasses

    with pytest.raises(KernelError) as info:
        loader.load(dataclasses.replace(skel, data=bytes(data)))
    assert (info.value.errno, info.value.step) == (errno.EINVAL, "run")
    assert str(info.value).startswith(
        "loader program: EINVAL (22): counter: loader run of __loader.prog returned -22 (EINVAL); "
        "it failed at its BPF_PROG_LOAD of program count_getpid"
    ), str(info.value)


def test_a_static_only_rodata_is_neither_passed_nor_mapped() -> None:
    """bpftool 7.8 gives hidden.bpf.c's .rodata (static variables only) no image and no
    mapping, as the kernel's bpf_preload iterators; mapping it anyway is the kernel's EINVAL."""
    import dataclasses

    skel = _skel("hidden.lskel.h")
    rodata = next(m for m in skel.maps if m.name == "rodata")
    assert (rodata.section, rodata.initial_value, rodata.mmapable) == (".rodata", None, False)
    with loader.load(skel) as ls:
        with pytest.raises(InputError) as info:
            ls.section("rodata")
        assert info.value.reason == (
            "section .rodata (map rodata) of skeleton hidden is not mmapable: bpftool did not make "
            "it mmapable (none of its variables is visible to user space), so the header never "
            "maps it"
        )
        # the kernel pulls the 14-byte Ethernet header: skb->len is the rest (min_len 14)
        be, prog = default_backend(), ls.prog_fd("drop_short")
        assert be.test_run_packet(prog, bytes(14 + 14)) == 14
        assert (be.test_run_packet(prog, bytes(14 + 13)), ls.bss.dropped) == (0, 1)
    guessed = dataclasses.replace(
        skel,
        maps=tuple(
            dataclasses.replace(m, mmapable=True, mmap_size=4096) if m.name == "rodata" else m
            for m in skel.maps
        ),
    )
    with pytest.raises(KernelError) as failed:
        loader.load(guessed)
    assert str(failed.value) == (
        "mmap: EINVAL (22): hidden: mmap of map rodata failed (4096 bytes, PROT_READ)"
    )


@pytest.mark.parametrize("name", ["globals.lskel.h", "globals.v71.lskel.h"])
def test_every_kind_of_global_data_maps_as_its_header_says(name: str) -> None:
    skel = _skel(name)
    mapped = {m.name: m.readonly for m in skel.maps if m.mmapable}
    # bpftool 7.1's libbpf made the string literals' map mmapable too; 7.8's does not
    strings = {"rodata_str1_1": True} if "v71" in name else {}
    assert mapped == {
        "rodata": True,
        "rodata_limits": True,
        "data_stats": False,
        "bss": False,
        **strings,
    }
    be = default_backend()
    with loader.load(skel) as ls:
        assert (ls.rodata.min_len, bytes(ls.rodata.tag)) == (14, b"bpfsign")
        assert list(ls.section(".rodata.limits").limits) == [60, 1500]
        with pytest.raises(InputError, match=r"^rodata_limits\.limits is read-only"):
            ls.section("rodata.limits").limits = [1, 2]
        if not strings:  # a map of the loader's, not a section of the skeleton's
            with pytest.raises(InputError) as info:
                ls.section("rodata_str1_1")
            assert info.value.reason == (
                "skeleton globals has no global-data section 'rodata_str1_1' "
                "(it has: rodata, rodata_limits, data_stats, bss)"
            )
        prog = ls.prog_fd("size_frames")
        for size in (20, 100, 2000):  # skb->len: the frame after its Ethernet header
            assert be.test_run_packet(prog, bytes(14 + size)) == size
        assert ls.data_stats.frames == 3  # .data.stats, live and writable
        assert (ls.bss.small, ls.bss.big, ls.bss.last_len) == (1, 1, 2000)
        ls.data_stats.frames = 40
        be.test_run_packet(prog, bytes(14 + 20))
        assert ls.data_stats.frames == 41


def test_a_program_the_object_does_not_autoload_has_no_fd_as_in_c() -> None:
    """hidden.bpf.c's SEC("?socket") program: the loader skips it and leaves its slot 0;
    C's skel_closenz never closes it, and neither do we (fd 0 is this process's stdin)."""
    before = _bpf_fds()
    ref = REFERENCE["hidden.lskel.h"]
    assert [(p["name"], p["loaded"]) for p in ref["progs"]] == [
        ("drop_short", True),
        ("never_autoloaded", False),
    ]
    with loader.load(_skel("hidden.lskel.h")) as ls:
        assert set(ls.progs) == {"drop_short"}
        with pytest.raises(InputError) as info:
            ls.prog_fd("never_autoloaded")
        assert info.value.reason == (
            "program 'never_autoloaded' of skeleton hidden was not loaded: the loader left no fd "
            "for it (the BPF object does not autoload it)"
        )
        assert ls.describe()["progs"][1] == {
            "name": "never_autoloaded",
            "fd": None,
            "loaded": False,
            "attach": None,
        }
    assert _bpf_fds() == before
    assert os.path.exists("/proc/self/fd/0")  # stdin was never "closed" for it


# --- the hot path (kernel/syscall.py _Prepared.sequence): errors name the step --------------


def test_a_loader_program_the_verifier_refuses_names_the_load_step_with_its_log() -> None:
    """The fast sequence hands a failed PROG_LOAD to _sys, which retries with a log."""
    import dataclasses

    skel = _skel("counter.lskel.h")
    bad = bytes.fromhex("bf50000000000000") + bytes.fromhex("9500000000000000")  # r0 = r5; exit
    before = _bpf_fds()
    with pytest.raises(KernelError) as info:
        loader.Loader(dataclasses.replace(skel, insns=bad), check_kernel=False).load()
    exc = info.value
    assert (exc.errno, exc.command, exc.step) == (errno.EACCES, "BPF_PROG_LOAD", "load")
    assert "R5 !read_ok" in exc.log
    assert str(exc).startswith(
        "BPF_PROG_LOAD: EACCES (13): counter: loader program load of __loader.prog failed"
    ), str(exc)
    assert _bpf_fds() == before  # the loader map was closed


def test_a_loader_map_the_kernel_refuses_names_the_create_step() -> None:
    import dataclasses

    skel = _skel("counter.lskel.h")
    before = _bpf_fds()
    with pytest.raises(KernelError) as info:  # value_size 0: the kernel's EINVAL
        loader.Loader(dataclasses.replace(skel, data=b""), check_kernel=False).load()
    exc = info.value
    assert (exc.errno, exc.command, exc.step) == (errno.EINVAL, "BPF_MAP_CREATE", "create")
    assert str(exc) == "BPF_MAP_CREATE: EINVAL (22): counter: map create of __loader.map failed"
    assert _bpf_fds() == before


def test_concurrent_loads_of_one_loader_each_get_their_own_attrs() -> None:
    """The attrs are reused from load to load through a free list: threads never share one."""
    import threading

    ld = loader.Loader(_skel("counter.lskel.h"))
    before = _bpf_fds()
    errors: list[BaseException] = []
    seen: list[tuple[int, ...]] = []

    def work() -> None:
        try:
            for _ in range(20):
                with ld.load() as ls:
                    ls.data.sample_every = 3
                    seen.append((*ls.maps.values(), *ls.progs.values()))
                    assert ls.data.sample_every == 3
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 80 and all(len(set(fds)) == len(fds) == 5 for fds in seen)
    assert _bpf_fds() == before


@pytest.mark.parametrize("name", SIGNED)
def test_up_front_refusals_name_the_check_the_kernel_would_fail(name: str) -> None:
    """A bpftool -S (6.18-scheme) header on a load-time kernel is refused before any
    syscall, with the errno and log line of the check the kernel fails -- the one the
    kernel model reaches when it is let through (here the 7.3 profile answers the probes)."""
    from bpfsign.crypto import trust
    from bpfsign.kernel.model import KernelModel

    skel = _skel(name)
    store = trust.TrustStore()  # the signer trusted, so the model gets past the signature
    store.add_path(str(FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"), "session")
    model = KernelModel("7.3", store)
    convert = "convert it to the loadtime scheme, which signs the loader and its data together"
    cases: tuple[tuple[dict[str, bool], str], ...] = (
        (
            {},
            f"6.18-scheme signature ({skel.name}) is not supported here: even when its signature "
            "verifies, this kernel refuses it with EACCES 'signed program must bind maps via a continuous fd_array "
            "(fd_array_cnt)': a 6.18-style (in-loader) signed loader on a load-time kernel: its "
            f"signature does not cover the maps it uses; {convert}",
        ),
        (
            {"unsigned": True},
            f"6.18-style signed loader ({skel.name}) is not supported here: this kernel's verifier "
            "refuses it with EACCES 'cannot access ptr member ops with moff 32 in struct bpf_map with "
            "off 32 size 4': the loader reads struct bpf_map at a 6.18-only offset (bpftool <= "
            f"7.8 -S exclusivity check); {convert}",
        ),
    )
    for kwargs, text in cases:
        with pytest.raises(UnsupportedFeature) as up_front:
            loader.Loader(skel, backend=model, check_kernel=True, **kwargs)
        assert (up_front.value.errno, str(up_front.value)) == (errno.EACCES, text)
        with pytest.raises(KernelError) as judged:
            loader.Loader(skel, backend=model, check_kernel=False, **kwargs).load()
        assert judged.value.errno == errno.EACCES
        assert f"'{judged.value.log.strip().splitlines()[-1]}'" in text
