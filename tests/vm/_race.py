"""The exclusive-map race: swap what an fd_array slot names while BPF_PROG_LOAD runs.

A signed program that returns the first u32 of its metadata map's value is
loaded again and again with ``fd_array = [slot]``, while another thread makes
``slot`` name something else -- ``dup2()`` of an unfrozen map, of a frozen map
with other contents, closing the slot and putting a map back, or (for the mmap
variant) a writer racing the freeze through a writable mmap. Every outcome is
counted: a refusal by errno and log line, or a load; and for each load the
program's map ids (``bpf_prog_info.map_ids``) and the value it reads (run
through ``BPF_PROG_TEST_RUN``) prove which map it uses. The property: no load
ever uses contents the signature did not cover.

On the kernel model (``KernelModel.dup2``) the same threads race its fd table;
the model asserts the property itself and reports its map ids and checked values.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import threading
import time
from collections import Counter
from typing import Any

from _catalogue import READS_VALUE

from bpfsign.errors import KernelError
from bpfsign.kernel.rules import program_digest

SIGNED = 0x11111111
FROZEN_OTHER = 0x22222222
UNFROZEN = 0x33333333
VARIANTS = ("dup2 unfrozen map", "dup2 frozen map, other contents", "close and recreate",
            "writable mmap before freeze")  # fmt: skip


def _value(word: int) -> bytes:
    return struct.pack("<I", word) + bytes(60)


def _map(be: Any, word: int, *, frozen: bool = True, flags: int = 0) -> int:
    fd = be.map_create(
        2, 4, 64, 1, "__loader.map", flags=flags, excl_prog_hash=program_digest(READS_VALUE)
    )
    be.map_update(fd, bytes(4), _value(word))
    if frozen:
        be.map_freeze(fd)
    return int(fd)


def kernel_map_ids(prog_fd: int) -> tuple[int, ...]:
    from bpfsign.kernel import _sys as S

    ids = (ctypes.c_uint32 * 8)()
    info = S.ProgInfo()
    info.nr_map_ids, info.map_ids = 8, S.addr(ids)
    S.bpf(S.OBJ_GET_INFO_BY_FD, S.InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info), info=S.addr(info)),
          S.SIZE_INFO)  # fmt: skip
    return tuple(ids[: info.nr_map_ids])


class _Dup2:
    """``dup2`` on the real fd table, or on the model's."""

    def __init__(self, be: Any) -> None:
        self.model = hasattr(be, "dup2")
        self.be = be

    def dup2(self, old: int, new: int) -> None:
        if self.model:
            self.be.dup2(old, new)
        else:
            os.dup2(old, new)

    def close(self, fd: int) -> None:
        try:
            if self.model:
                self.be.close(fd)
            else:
                os.close(fd)
        except OSError:
            pass


def race(
    be: Any, variant: str, attempts: int, signature: bytes, keyring_id: int = -3
) -> Counter[str]:
    """Run ``attempts`` loads under ``variant``; the outcome counts. Raises AssertionError on
    any load that uses a map or contents other than the signed ones."""
    model = hasattr(be, "dup2")
    signed = _map(be, SIGNED)
    signed_id = be.map_info(signed).id
    other = -1  # only the dup2 variants swap in another map
    if variant == "dup2 unfrozen map":
        other = _map(be, UNFROZEN, frozen=False)
    elif variant in ("dup2 frozen map, other contents", "close and recreate"):
        other = _map(be, FROZEN_OTHER)
    fds = _Dup2(be)
    # a high slot: while the swapper has it closed, a new program's fd (the lowest free
    # one) must not land on it
    slot = signed + 1000 if model else 900
    fds.dup2(signed, slot)
    stop = threading.Event()
    counts: Counter[str] = Counter()
    mm_target: list[int] = []

    def swapper() -> None:
        while not stop.is_set():
            if variant == "close and recreate":
                fds.close(slot)
                fds.dup2(other, slot)
                fds.close(slot)
                fds.dup2(signed, slot)
            elif variant == "writable mmap before freeze":
                if mm_target and not model:
                    try:
                        m = mmap.mmap(mm_target[0], mmap.PAGESIZE, mmap.MAP_SHARED,
                                      mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
                    except OSError:  # frozen: EPERM
                        continue
                    m[0:4] = struct.pack("<I", UNFROZEN)
                    m.close()
                elif mm_target:
                    try:
                        be.map_mmap_writable(mm_target[0])
                    except KernelError:
                        continue
                    be.map_munmap_writable(
                        mm_target[0], dict(enumerate(struct.pack("<I", UNFROZEN)))
                    )
            else:
                fds.dup2(other, slot)
                fds.dup2(signed, slot)
            if model:  # let the loading thread take the GIL at any point of the cycle
                time.sleep(0)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _ in range(attempts):
            target = slot
            fresh = None
            if variant == "writable mmap before freeze":
                fresh = _map(be, SIGNED, frozen=False, flags=1 << 10)
                mm_target[:] = [fresh]
                try:
                    be.map_freeze(fresh)
                except KernelError as exc:
                    counts[f"freeze {exc.errno}"] += 1
                target = fresh
            try:
                prog = be.prog_load(31, READS_VALUE, license="GPL", name="race", flags=0x10,
                                    fd_array=[target], fd_array_cnt=1, signature=signature,
                                    keyring_id=keyring_id, log_level=1)  # fmt: skip
            except KernelError as exc:
                line = [ln for ln in exc.log.splitlines() if ln.strip()][-1:] or [""]
                counts[f"refused {exc.errno}: {line[0]}"] += 1
            else:
                try:
                    want_id = be.map_info(fresh).id if fresh is not None else signed_id
                    if model:
                        ids = be.prog_map_ids(prog)
                        seen = struct.unpack_from("<I", be.prog_signed_values(prog)[0])[0]
                    else:
                        ids = kernel_map_ids(prog)
                        seen = be.test_run(prog, bytearray(8)) & 0xFFFFFFFF
                    assert ids == (want_id,), (
                        f"{variant}: loaded with maps {ids}, signed map {want_id}"
                    )
                    assert seen == SIGNED, f"{variant}: the loaded program reads {seen:#x}"
                    counts["loaded, uses the signed map and value"] += 1
                finally:
                    be.close(prog)
            finally:
                if fresh is not None:
                    mm_target[:] = []
                    be.close(fresh)
    finally:
        stop.set()
        thread.join()
        fds.close(slot)
        be.close(signed)
        if other >= 0:
            be.close(other)
    return counts
