"""Install, inspect and remove the admission policy, all or nothing.

Order matters (docs/kernel.md §11): every check first (verdict in BTF, the BPF LSM
active, a bpf filesystem to pin in), then the maps (the config and the serials frozen), the
status iterator, the policy program, the pins, and only then the LSM link:
the policy never judges its own load, and a failure anywhere closes every fd
and removes every pin made so far, so nothing is left half-installed. A
pinned link keeps the policy alive after the process exits; unpinning it
removes the policy (a link obtained by id cannot be detached, docs/kernel.md §11).
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass, field

from ..errors import InputError, KernelError, UnsupportedFeature
from . import _sys as S
from . import probes
from .backend import Backend
from .btf import require_vmlinux
from .policy import (
    COUNTERS,
    COUNTERS_SIZE,
    FEATURE,
    Layout,
    Policy,
    build_lsm_program,
)
from .status import PIN_NAME as ITER_PIN
from .status import load_iterator
from .syscall import SyscallBackend

DEFAULT_PIN_DIR = "/sys/fs/bpf/bpfsign"
POLICY_NAME = "bpfsign_policy"
RING_SIZE = 1 << 20
#: pin names, in the order they are made; the link last (it makes the policy live)
PIN_CONFIG, PIN_COUNTERS, PIN_EVENTS, PIN_LINK = "config", "counters", "events", "policy"
PINS = (PIN_CONFIG, PIN_COUNTERS, PIN_EVENTS, ITER_PIN, PIN_LINK)
_KEY0 = bytes(4)


def preflight() -> Layout:
    """Everything the policy needs from this kernel, checked before anything is created."""
    layout = Layout.from_btf(require_vmlinux(FEATURE))
    layout.check_enums()
    lsm = probes.bpf_lsm()
    if lsm.supported is False:
        raise UnsupportedFeature(
            "BPF LSM",
            f"'bpf' is not an active LSM ({lsm.detail}); add it to the lsm= kernel boot "
            "parameter (e.g. lsm=...,bpf) and reboot",
        )
    return layout


def _mount_fstype(path: str) -> str | None:
    """The filesystem type of the mount holding ``path`` (longest mount-point prefix)."""
    real = os.path.realpath(path)
    best, fstype = "", None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                point = left.split()[4].replace("\\040", " ")
                if (real == point or real.startswith(point.rstrip("/") + "/")) and len(
                    point
                ) >= len(best):
                    best, fstype = point, right.split()[0]
    except OSError:
        return None
    return fstype


def check_pin_dir(pin_dir: str) -> None:
    parent = pin_dir if os.path.isdir(pin_dir) else os.path.dirname(os.path.abspath(pin_dir))
    if not os.path.isdir(parent):
        raise InputError(f"{parent} does not exist", path=pin_dir)
    fstype = _mount_fstype(parent)
    if fstype != "bpf":
        raise InputError(
            f"not on a bpf filesystem ({fstype or 'unknown'}): pin under a bpffs mount, "
            "e.g. /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)",
            path=pin_dir,
        )
    present = [n for n in PINS if os.path.lexists(os.path.join(pin_dir, n))]
    if present:
        raise InputError(
            f"a policy is already pinned here ({', '.join(present)}); remove it first",
            path=pin_dir,
        )


@dataclass
class Installed:
    """The live policy: its fds (closed by :meth:`close`) and where it is pinned."""

    be: SyscallBackend
    policy: Policy
    config: int
    counters: int
    events: int
    iter_prog: int
    iter_link: int
    prog: int
    link: int
    pin_dir: str | None
    prog_id: int = 0
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Close our fds. Unpinned, that removes the policy; pinned, it stays."""
        for fd in reversed(self.fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()

    def __enter__(self) -> Installed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def install(
    policy: Policy,
    pin_dir: str | None = None,
    *,
    ring_size: int = RING_SIZE,
    be: SyscallBackend | None = None,
) -> Installed:
    """Install ``policy``; pinned under ``pin_dir`` when given. All or nothing."""
    layout = preflight()
    if pin_dir is not None:
        check_pin_dir(pin_dir)
    if ring_size < 4096 or ring_size & (ring_size - 1) or ring_size > 1 << 30:
        raise InputError(f"ring buffer size {ring_size}: a power of two, 4096 to 1 GiB")
    be = be or SyscallBackend()
    fds: list[int] = []
    pinned: list[str] = []
    made_dir = False

    def keep(fd: int) -> int:
        fds.append(fd)
        return fd

    try:
        config = keep(
            be.map_create(
                S.MAP_TYPE_ARRAY,
                4,
                Policy.CONFIG.size,
                1,
                "bpfsign_config",
                flags=S.BPF_F_RDONLY_PROG,
            )
        )
        be.map_update(config, _KEY0, policy.pack())
        be.map_freeze(config)
        serials = keep(
            be.map_create(
                S.MAP_TYPE_HASH,
                Policy.SERIAL_KEY.size,
                1,
                max(1, len(policy.serials)),
                "bpfsign_serials",
                flags=S.BPF_F_RDONLY_PROG,
            )
        )
        for serial in policy.serials:
            be.map_update(serials, Policy.SERIAL_KEY.pack(serial), b"\x01")
        be.map_freeze(serials)
        counters = keep(be.map_create(S.MAP_TYPE_ARRAY, 4, COUNTERS_SIZE, 1, "bpfsign_counts"))
        events = keep(be.map_create(S.MAP_TYPE_RINGBUF, 0, 0, ring_size, "bpfsign_events"))
        iter_prog, iter_link = load_iterator(be, layout)
        fds += [iter_prog, iter_link]
        prog = keep(
            be.prog_load(
                S.PROG_TYPE_LSM,
                build_lsm_program(
                    layout, config, counters, events, serials, ring_size=ring_size
                ).assemble(),
                license="GPL",
                name=POLICY_NAME,
                expected_attach_type=S.BPF_LSM_MAC,
                attach_btf_id=layout.hook_btf_id,
            )
        )
        if pin_dir is not None:
            if not os.path.isdir(pin_dir):
                os.mkdir(pin_dir, 0o700)
                made_dir = True
            for name, fd in (
                (PIN_CONFIG, config),
                (PIN_COUNTERS, counters),
                (PIN_EVENTS, events),
                (ITER_PIN, iter_link),
            ):
                path = os.path.join(pin_dir, name)
                be.obj_pin(fd, path)
                pinned.append(path)
        link = keep(be.link_create(prog, 0, S.BPF_LSM_MAC))
        if pin_dir is not None:
            path = os.path.join(pin_dir, PIN_LINK)
            be.obj_pin(link, path)
            pinned.append(path)
    except BaseException:
        for path in reversed(pinned):
            with contextlib.suppress(OSError):
                os.unlink(path)
        if made_dir and pin_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(pin_dir)
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    inst = Installed(
        be,
        policy,
        config,
        counters,
        events,
        iter_prog,
        iter_link,
        prog,
        link,
        pin_dir,
        be.prog_info(prog).id,
        fds,
    )
    return inst


@dataclass
class Pinned:
    """A pinned policy opened again (by ``--status``, ``--off`` or the audit stream)."""

    be: SyscallBackend
    pin_dir: str
    config: int
    counters: int
    events: int

    def close(self) -> None:
        for fd in (self.events, self.counters, self.config):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_policy(pin_dir: str) -> InputError:
    return InputError("no bpfsign policy is pinned here", path=pin_dir)


def open_pinned(pin_dir: str, be: SyscallBackend | None = None) -> Pinned:
    be = be or SyscallBackend()
    paths = [os.path.join(pin_dir, n) for n in (PIN_CONFIG, PIN_COUNTERS, PIN_EVENTS)]
    if not all(os.path.exists(p) for p in paths):
        raise _no_policy(pin_dir)
    fds: list[int] = []
    try:
        for p in paths:
            fds.append(be.obj_get(p))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return Pinned(be, pin_dir, *fds)


def read_counters(be: Backend, counters_fd: int) -> dict[str, int]:
    raw = be.map_lookup(counters_fd, _KEY0, COUNTERS_SIZE)
    return dict(zip(COUNTERS, struct.unpack(f"<{len(COUNTERS)}Q", raw), strict=True))


def read_policy(be: Backend, config_fd: int) -> Policy:
    return Policy.unpack(be.map_lookup(config_fd, _KEY0, Policy.CONFIG.size))


def remove(pin_dir: str, be: SyscallBackend | None = None) -> list[str]:
    """Unpin the policy (the link first: that ends enforcement), then the rest.

    The last reference to a link released by unlinking its pin is dropped from
    a kernel work queue, so the policy could still judge a load made right
    after ``unlink()`` returned (seen under load in the guest). We hold the
    link through an fd of our own while unlinking and close it last: the last
    ``close()`` of a link detaches it before it returns, so when this returns
    the policy is gone.
    """
    removed = []
    held = None
    link_pin = os.path.join(pin_dir, PIN_LINK)
    if os.path.lexists(link_pin):
        with contextlib.suppress(KernelError, OSError):
            held = (be or SyscallBackend()).obj_get(link_pin)
    try:
        for name in (PIN_LINK, ITER_PIN, PIN_EVENTS, PIN_COUNTERS, PIN_CONFIG):
            path = os.path.join(pin_dir, name)
            if os.path.lexists(path):
                os.unlink(path)
                removed.append(name)
    finally:
        if held is not None:
            os.close(held)
    if not removed:
        raise _no_policy(pin_dir)
    with contextlib.suppress(OSError):
        os.rmdir(pin_dir)
    return removed
