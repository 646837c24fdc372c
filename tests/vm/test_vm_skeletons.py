"""Real light skeletons on the 7.x guest: the fixture headers signed by bpfsign.

Positive: every fixture signed under ``loadtime`` (unsigned-mode ``-L``
loaders as they are, bpftool ``-S`` loaders converted) loads through
bpfsign's loader, its loader program runs, its programs exist, and the
sockfilter program filters a packet. Negative: the same loaders with tampered
bytes or the 6.18 runtime, with the errno and log line of docs/kernel.md §6.5.
Every case also runs through bpfsign's KernelModel("7.3"), which must give the
same verdict (for the positive cases: PROG_LOAD of the loader; the model does
not run programs, so what the loader then does is checked on the kernel only).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from _vmcase import (
    GuestKeys,
    attempt,
    both,
    check,
    metadata_map,
    model_backend,
    opened,
    verdict_line,
)

from bpfsign.kernel.backend import default_backend

pytestmark = pytest.mark.vm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = (
    json.loads((FIXTURES / "reference.json").read_text())
    if (FIXTURES / "reference.json").exists()
    else {}
)
#: headers whose loader runs on this (little-endian) machine
SKELS = sorted(
    p
    for p in (FIXTURES / "skel").glob("*.lskel.h")
    if REFERENCE.get(p.name, {}).get("endian", "little" if ".bpfeb." not in p.name else "big")
    == sys.byteorder
)
SIG_FAILED = "signature verification failed: {}"
CNT0_REFUSED = "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
OFF32_REFUSED = "cannot access ptr member ops with moff 32 in struct bpf_map with off 32 size 4"


@functools.cache
def _skel(path: Path) -> Any:
    from bpfsign.skel import skeleton

    return skeleton.load(path)


def _is_signed_mode(path: Path) -> bool:
    """A bpftool -S header (carries opts_sig): its loader has the 6.18 in-loader check."""
    return _skel(path).signature is not None


def _signed_loadtime(path: Path, gk: GuestKeys) -> Any:
    """The fixture signed by bpfsign under loadtime (converted first if it is -S)."""
    from bpfsign.skel import scheme, skeleton

    text, report = scheme.sign_skeleton(_skel(path), gk.signers["fixture"], scheme="loadtime")
    signed = skeleton.parse(text, path=str(path))
    assert signed.signature is not None and signed.excl_hash == scheme.sha256(signed.insns)
    assert report.scheme == "loadtime"
    return signed


def _raw_loader_load(skel: Any, *, signature: bytes | None, cnt: int, data: bytes | None = None,
                     insns: bytes | None = None, be: Any = None) -> tuple[int | None, str]:  # fmt: skip
    """The loader's PROG_LOAD as skel_internal.h issues it (exclusive frozen __loader.map)."""
    insns = skel.insns if insns is None else insns
    data = skel.data if data is None else data
    with opened(metadata_map(data, insns, be=be), be=be) as (m,):
        return attempt(insns, be=be, fd_array=[m], fd_array_cnt=cnt, signature=signature)


def _model_verdict(skel: Any, gk: GuestKeys, **kw: Any) -> tuple[int | None, str]:
    """bpfsign.kernel.loader over the kernel model: the verdict on the loader's PROG_LOAD."""
    from bpfsign.errors import KernelError
    from bpfsign.kernel import loader

    model = model_backend(gk)
    ld = loader.Loader(skel, backend=model, **kw)
    try:
        model.loader_verdict(ld.request)
    except KernelError as exc:
        return exc.errno, exc.log
    return None, ""


def _offline_skeleton(skel: Any, gk: GuestKeys, *, unsigned: bool = False) -> int | None:
    """bpfsign's offline verdict for a whole header: the rules engine, as ``bpfsign verify
    --kernel 7.3`` and ``bpfsign explain`` give it."""
    from _vmoffline import engine_skeleton

    return engine_skeleton(skel, gk, unsigned=unsigned)[0]


#: An Ethernet/IPv4/UDP frame. BPF_PROG_TEST_RUN hands a socket filter the skb
#: from the network header on (eth_type_trans pulls the MAC header), so the
#: program's load_bytes(ETH_HLEN + 9) reads IP byte 23, the low byte of the
#: UDP destination port; port 0x1611 makes that byte 17, the IP protocol, so
#: both readings count key 17.
UDP_FRAME = (
    bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00"  # dst, src, ETH_P_IP
    + bytes.fromhex("45000020000040004011") + bytes(2)  # IPv4, proto 17 (UDP), csum 0
    + bytes([10, 0, 0, 1, 10, 0, 0, 2])
    + struct.pack(">HHHH", 1234, 0x1611, 12, 0) + b"ping"
)  # fmt: skip
IPV6_FRAME = bytes(12) + b"\x86\xdd" + bytes(40)  # not IPv4: the filter returns 0, counts nothing


@pytest.mark.parametrize("path", SKELS, ids=[p.name for p in SKELS])
def test_signed_fixture_loads_and_runs(
    path: Path, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    from bpfsign.kernel import loader

    signed = _signed_loadtime(path, guest_keys)
    name = (
        f"{path.name} signed by bpfsign (loadtime{', converted' if _is_signed_mode(path) else ''})"
    )
    loaded = loader.load(signed, keyring_id=-3)
    try:
        progs = dict(loaded.progs)
        maps = dict(loaded.maps)
        # every program but one the object does not autoload (hidden.bpf.c's SEC("?socket"))
        assert set(progs) == {p.name for p in signed.progs} - {"never_autoloaded"}
        assert set(maps) == {m.name for m in signed.maps}
        for fd in (*progs.values(), *maps.values()):
            assert fd > 0 and os.path.exists(f"/proc/self/fd/{fd}")
        ref_types = {p["name"]: p["type"] for p in REFERENCE.get(path.name, {}).get("progs", [])}
        be = default_backend()
        for prog, fd in progs.items():
            kind = be.prog_info(fd).type
            assert kind == ref_types.get(prog, kind) > 0, prog
        if "count_proto" in progs:  # sockfilter: the created program filters a UDP frame
            assert be.test_run_packet(progs["count_proto"], UDP_FRAME) == 0xFFFF  # .rodata snap_len
            assert be.test_run_packet(progs["count_proto"], IPV6_FRAME) == 0
            counts = {k: _lookup_u64(maps["proto_counts"], k) for k in range(256)}
            assert {k: v for k, v in counts.items() if v} == {17: 1}
        if "count_sys_enter" in progs:  # counter: the raw_tp program counts our syscalls
            _count_own_getpids(loaded, path, maps["counts"])
    finally:
        loaded.close()
    check(agreement, name, (None, ""), None, None, model=_model_verdict(signed, guest_keys, keyring_id=-3),
          offline=_offline_skeleton(signed, guest_keys))  # fmt: skip


def _lookup_u64(map_fd: int, key: int) -> int:
    value = default_backend().map_lookup(map_fd, struct.pack("<I", key), 8)
    return int(struct.unpack("<Q", value)[0])


def _count_own_getpids(loaded: Any, path: Path, counts_fd: int, calls: int = 7) -> None:
    """Set .bss target_tgid, attach sys_enter, make getpid() calls, read the counts back."""
    bss_vars = REFERENCE[path.name]["sections"]["bss"]["variables"]
    bss = loaded.globals("bss")
    struct.pack_into("<I", bss, bss_vars["target_tgid"]["offset"], os.getpid())
    loaded.attach("count_sys_enter")
    for _ in range(calls):
        os.getpid()  # glibc does not cache the pid: one syscall each
    loaded.detach()
    struct.pack_into("<I", bss, bss_vars["target_tgid"]["offset"], 0)
    enter_events = struct.unpack_from("<I", bss, bss_vars["enter_events"]["offset"])[0]
    getpid_seen = _lookup_u64(counts_fd, 39)  # __NR_getpid on x86-64
    assert getpid_seen >= calls and enter_events >= getpid_seen, (getpid_seen, enter_events)


#: one header of each kind for the negative cases: -L 7.8, -S 7.8 (converted), -L 7.1
NEGATIVE = [
    p
    for p in SKELS
    if p.name in ("sockfilter.lskel.h", "counter.signed.lskel.h", "multi.v71.lskel.h")
]


@pytest.mark.parametrize("path", NEGATIVE, ids=[p.name for p in NEGATIVE])
def test_signed_fixture_with_tampered_data(
    path: Path, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    import dataclasses

    signed = _signed_loadtime(path, guest_keys)
    evil = bytearray(signed.data)
    evil[len(evil) // 2] ^= 0x40
    tampered = dataclasses.replace(signed, data=bytes(evil))
    got, model = both(
        guest_keys, lambda be: _raw_loader_load(tampered, signature=signed.signature, cnt=1, be=be)
    )
    assert (
        _model_verdict(tampered, guest_keys, keyring_id=-3) == model
    )  # the same through bpfsign.kernel.loader
    check(agreement, f"{path.name}: data byte flipped after signing", got, errno.EKEYREJECTED,
          SIG_FAILED.format(-129), model=model, offline=_offline_skeleton(tampered, guest_keys))  # fmt: skip


@pytest.mark.parametrize("path", NEGATIVE, ids=[p.name for p in NEGATIVE])
def test_loader_signed_with_6_18_runtime_is_refused(
    path: Path, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    """Signed over insns only and loaded with fd_array_cnt 0: the loader uses its map."""
    from _vmsign import bpfsign_sign

    skel = _skel(path)
    sig = bpfsign_sign(skel.insns, guest_keys.signers["fixture"])
    got, model = both(guest_keys, lambda be: _raw_loader_load(skel, signature=sig, cnt=0, be=be))
    check(agreement, f"{path.name}: insns-only signature, cnt 0 (libbpf 1.7 runtime)", got,
          errno.EACCES, CNT0_REFUSED, model=model, offline="n/a (scheme)")  # fmt: skip


SIGNED_MODE = [p for p in SKELS if REFERENCE.get(p.name, {}).get("signed", ".signed." in p.name)]


@pytest.mark.parametrize("path", SIGNED_MODE, ids=[p.name for p in SIGNED_MODE])
def test_unconverted_bpftool_signed_header(
    path: Path, guest_keys: GuestKeys, agreement: list[tuple[str, str, str, str]]
) -> None:
    """bpftool <= 7.8 -S as generated: the kernel refuses it; bpfsign says to convert."""
    from bpfsign.errors import UnsupportedFeature
    from bpfsign.kernel import loader

    skel = _skel(path)
    got, model = both(
        guest_keys, lambda be: _raw_loader_load(skel, signature=skel.signature, cnt=0, be=be)
    )
    # bpfsign.kernel.loader over the model sends the same PROG_LOAD (inloader scheme: cnt 0)
    assert _model_verdict(skel, guest_keys, keyring_id=-3) == model
    from _vmoffline import engine_skeleton

    assert engine_skeleton(skel, guest_keys) == verdict_line(got)  # verify --kernel 7.3 / explain
    check(agreement, f"{path.name} as generated (bpftool -S), cnt 0", got, errno.EACCES,
          CNT0_REFUSED, model=model, offline=_offline_skeleton(skel, guest_keys))  # fmt: skip
    unsigned, model = both(
        guest_keys, lambda be: _raw_loader_load(skel, signature=None, cnt=0, be=be)
    )
    assert _model_verdict(skel, guest_keys, unsigned=True) == model
    assert engine_skeleton(skel, guest_keys, unsigned=True) == verdict_line(
        unsigned
    )  # explain --unsigned
    check(agreement, f"{path.name} as generated (bpftool -S), signature dropped", unsigned,
          errno.EACCES, OFF32_REFUSED, model=model, offline=_offline_skeleton(skel, guest_keys, unsigned=True))  # fmt: skip
    got1, model = both(
        guest_keys, lambda be: _raw_loader_load(skel, signature=skel.signature, cnt=1, be=be)
    )
    check(agreement, f"{path.name} as generated (bpftool -S), cnt 1", got1, errno.EKEYREJECTED,
          SIG_FAILED.format(-129), model=model, offline=_offline_loadtime_bytes(skel, guest_keys))  # fmt: skip
    # bpfsign refuses both before any syscall, with the kernel's errno and log line above
    convert = "convert it to the loadtime scheme, which signs the loader and its data together"
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(skel, keyring_id=-3)
    assert (info.value.errno, str(info.value)) == (
        errno.EACCES,
        f"6.18-scheme signature ({skel.name}) is not supported here: even when its signature "
        f"verifies, this kernel refuses it with EACCES '{CNT0_REFUSED}': a 6.18-style (in-loader) signed loader on a load-time "
        f"kernel: its signature does not cover the maps it uses; {convert}",
    )
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(skel, unsigned=True)
    assert (info.value.errno, str(info.value)) == (
        errno.EACCES,
        f"6.18-style signed loader ({skel.name}) is not supported here: this kernel's verifier "
        f"refuses it with EACCES '{OFF32_REFUSED}': the loader reads struct bpf_map at a 6.18-only offset "
        f"(bpftool <= 7.8 -S exclusivity check); {convert}",
    )


@pytest.mark.parametrize("path", SIGNED_MODE, ids=[p.name for p in SIGNED_MODE])
def test_bpfsign_load_cli(path: Path, guest_keys: GuestKeys, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """`bpfsign load` refuses the unconverted header, pointing to the conversion, and
    loads the one `bpfsign sign --scheme loadtime` made."""
    from bpfsign.cli import main

    assert main(["load", str(path)]) == 1
    err = capsys.readouterr().err
    assert "bpfsign sign --scheme loadtime" in err and len(err.strip().splitlines()) == 1, err
    converted = tmp_path / path.name
    key_dir = FIXTURES / "keys"
    assert main(["sign", str(path), "--key", str(key_dir / "TEST-ONLY-lskel-signing.key.pem"),
                 "--cert", str(key_dir / "TEST-ONLY-lskel-signing.cert.pem"),
                 "--insecure-key-permissions",  # the read-only 9p tree keeps git's mode
                 "-o", str(converted)]) == 0, capsys.readouterr().err  # fmt: skip
    capsys.readouterr()
    assert main(["load", str(converted)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "signed, loadtime scheme" in out, out  # the CLI text moved the parentheses


def _offline_loadtime_bytes(skel: Any, gk: GuestKeys) -> int | None:
    from _vmoffline import offline_errno

    return offline_errno(skel.insns + skel.data, skel.signature, gk, -3)
