"""Test-suite plumbing: report header, kernel/vm markers, fd-leak guard.

* ``kernel`` tests need root and a usable bpf(). They skip (with the reason
  printed) only when bpf() is truly unavailable, and fail instead when
  ``BPFSIGN_REQUIRE_KERNEL=1`` says this machine must have it (CI sets it).
* ``vm`` tests run only inside the 7.x guest (``BPFSIGN_IN_VM=1``); on the
  host they are deselected and run through tests/test_vm.py, which boots the
  guest and fails if they do.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import subprocess
from functools import cache

import pytest

IN_VM = os.environ.get("BPFSIGN_IN_VM") == "1"


def _fixture_keys_owner_only() -> None:
    """git checks the fixture key out with the umask's mode (often 0644), and `bpfsign sign`
    refuses keys that group or others can read: make it 0600 (the guest's root is read-only;
    there the host's mode is seen)."""
    keys = os.path.join(os.path.dirname(__file__), "fixtures", "keys")
    for name in os.listdir(keys) if os.path.isdir(keys) else ():
        if name.endswith(".key.pem"):
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(keys, name), 0o600)


_fixture_keys_owner_only()
REQUIRE_KERNEL = os.environ.get("BPFSIGN_REQUIRE_KERNEL") == "1"


@cache
def bpf_unavailable_reason() -> str | None:
    """None when bpf() works here, else why not (probe: create a 1-entry ARRAY)."""
    if os.geteuid() != 0:
        return "not root"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = (ctypes.c_uint32 * 6)(2, 4, 4, 1, 0, 0)  # ARRAY, key 4, value 4, 1 entry
    fd = libc.syscall(321, 0, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        return f"bpf(BPF_MAP_CREATE) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    os.close(fd)
    return None


def _openssl_version() -> str:
    try:
        return subprocess.run(
            ["openssl", "version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "openssl: not found"


def pytest_report_header(config: pytest.Config) -> list[str]:
    reason = bpf_unavailable_reason()
    kernel = "run" if reason is None else f"skip ({reason})"
    if reason is not None and REQUIRE_KERNEL:
        kernel = f"FAIL ({reason}; BPFSIGN_REQUIRE_KERNEL=1)"
    vm = (
        "run (inside the guest)"
        if IN_VM
        else "deselected here; run in the guest by tests/test_vm.py"
    )
    return [
        f"bpfsign: kernel {platform.release()} ({'guest' if IN_VM else 'host'}), {_openssl_version()}",
        f"bpfsign markers: kernel={kernel}; vm={vm}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_VM:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (drop if item.get_closest_marker("vm") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def _kernel_guard(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Skip/fail kernel tests by availability, and catch leaked fds around them
    (and around the guest's vm tests, which talk to the 7.x kernel the same way)."""
    kernel = request.node.get_closest_marker("kernel") is not None
    guest = IN_VM and request.node.get_closest_marker("vm") is not None
    if not (kernel or guest):
        yield
        return
    reason = bpf_unavailable_reason() if kernel else None
    if reason is not None:
        if REQUIRE_KERNEL:
            pytest.fail(f"bpf() unavailable but required here: {reason}")
        pytest.skip(f"bpf() unavailable: {reason}")
    before = _open_fds()
    yield
    leaked = _open_fds() - before
    # fds whose target is gone by now were transient (e.g. the listdir itself)
    leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    if leaked:
        targets = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked}
        pytest.fail(f"fd leak: {targets}")
