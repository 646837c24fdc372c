"""Run commands inside a Debian Linux 7.x guest under qemu (the signed-load oracle).

``python -m tools.vm run -- CMD…`` boots the kernel, runs CMD in a chroot of
the host root (read-only over 9p) and exits with CMD's status. See docs/vm.md.
"""

from __future__ import annotations

from .errors import VmError, VmUnavailable
from .image import Kernel, KernelStore, build_initramfs, cache_dir, config_problems
from .runner import Console, GuestResult, Runner, parse_console

__all__ = [
    "Console",
    "GuestResult",
    "Kernel",
    "KernelStore",
    "Runner",
    "VmError",
    "VmUnavailable",
    "build_initramfs",
    "cache_dir",
    "config_problems",
    "parse_console",
]
