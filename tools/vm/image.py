"""Pick a Debian kernel by its configuration, cache it, and build the initramfs.

Layout of the cache directory (default /var/cache/bpfsign-vm, env
``BPFSIGN_VM_CACHE``)::

    apt/<suite>/         private apt state (sources.list, lists, archives)
    debs/                downloaded kernel .debs
    kernels/<ABI>/kroot  the extracted packages; ``ok`` marks a complete, checked tree
    kernels/<ABI>/initrd-<hash>.gz
    logs/, run/          console logs and guest scripts of the runner
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bpfsign._fileio import atomic_write

from . import apt
from .errors import VmUnavailable

DEFAULT_CACHE = "/var/cache/bpfsign-vm"
DEFAULT_SUITE = "trixie-backports"
#: Re-read the suite's package lists at most this often (seconds).
UPDATE_INTERVAL = 6 * 3600

#: Options that must be built in (docs/vm.md §3).
REQUIRED_BUILTIN = (
    "CONFIG_SYSTEM_DATA_VERIFICATION",
    "CONFIG_BPF_SYSCALL",
    "CONFIG_PKCS7_MESSAGE_PARSER",
    "CONFIG_X509_CERTIFICATE_PARSER",
    "CONFIG_ASYMMETRIC_PUBLIC_KEY_SUBTYPE",
    "CONFIG_DEBUG_INFO_BTF",
)
#: Options that may be modules (they go into the initramfs).
REQUIRED_BUILTIN_OR_MODULE = ("CONFIG_NET_9P", "CONFIG_NET_9P_VIRTIO", "CONFIG_9P_FS")
#: The modules the guest needs to mount the host root; dependencies are added.
ROOT_MODULES = ("9pnet_virtio", "9p")
BUSYBOX_APPLETS = ("sh", "mount", "insmod", "mkdir", "poweroff", "chroot", "cat", "echo", "sed")


def cache_dir() -> Path:
    return Path(os.environ.get("BPFSIGN_VM_CACHE") or DEFAULT_CACHE)


def config_problems(config_text: str) -> list[str]:
    """What a kernel config lacks for the VM tests; empty when it fits."""
    values: dict[str, str] = {}
    for line in config_text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2)
    problems = [
        f"{o}={values.get(o, 'n')} (need y)" for o in REQUIRED_BUILTIN if values.get(o) != "y"
    ]
    problems += [
        f"{o}={values.get(o, 'n')} (need y or m)"
        for o in REQUIRED_BUILTIN_OR_MODULE
        if values.get(o) not in ("y", "m")
    ]
    return problems


@dataclass(frozen=True)
class Kernel:
    """An extracted, checked kernel: what qemu boots and where its modules are."""

    abi: str
    vmlinuz: Path
    config: Path
    modules: Path  # .../modules/<ABI>

    @classmethod
    def locate(cls, kroot: Path, abi: str) -> Kernel | None:
        new = kroot / "usr/lib/modules" / abi  # 7.x split packages
        if (new / "vmlinuz").is_file() and (new / "config").is_file():
            return cls(abi, new / "vmlinuz", new / "config", new)
        boot = kroot / "boot"
        for mods in (kroot / "usr/lib/modules" / abi, kroot / "lib/modules" / abi):
            if (boot / f"vmlinuz-{abi}").is_file() and mods.is_dir():
                return cls(abi, boot / f"vmlinuz-{abi}", boot / f"config-{abi}", mods)
        return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise cache fills between concurrent runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _note(msg: str) -> None:
    print(f"bpfsign-vm: {msg}", file=sys.stderr, flush=True)


class KernelStore:
    """Kernels of one suite in the cache; fetches the newest one that fits."""

    def __init__(self, root: Path | None = None, suite: str | None = None) -> None:
        self.root = root or cache_dir()
        self.suite = suite or os.environ.get("SUITE") or DEFAULT_SUITE

    def _kernel_dir(self, abi: str) -> Path:
        return self.root / "kernels" / abi

    def cached(self, abi: str) -> Kernel | None:
        d = self._kernel_dir(abi)
        if not (d / "ok").is_file():
            return None
        return Kernel.locate(d / "kroot", abi)

    def _rejected(self, abi: str) -> str | None:
        try:
            return (self._kernel_dir(abi) / "rejected").read_text()
        except FileNotFoundError:
            return None

    def _apt(self) -> apt.PrivateApt:
        return apt.PrivateApt(self.root / "apt" / self.suite, self.suite, apt.debian_mirror())

    def _fetch(self, pa: apt.PrivateApt, abi: str) -> Kernel:
        """Download, extract and check one ABI; cached once checked."""
        d = self._kernel_dir(abi)
        shutil.rmtree(d / "kroot", ignore_errors=True)
        _note(f"fetching linux-image-{abi} from {pa.mirror} {pa.suite}")
        t0 = time.monotonic()
        debs = pa.download(pa.kernel_parts(abi), self.root / "debs", note=_note)
        apt.extract(debs, d / "kroot")
        kernel = Kernel.locate(d / "kroot", abi)
        if kernel is None:
            raise VmUnavailable(f"no vmlinuz/config/modules found in the packages of {abi}")
        problems = config_problems(kernel.config.read_text(errors="replace"))
        if problems:
            atomic_write(d / "rejected", ", ".join(problems).encode())
            shutil.rmtree(d / "kroot", ignore_errors=True)
            raise VmUnavailable(f"kernel {abi} does not fit: {', '.join(problems)}")
        atomic_write(d / "ok", f"{self.suite}\n".encode())
        for deb in debs:  # the extracted tree is what is kept
            with contextlib.suppress(OSError):
                deb.unlink()
        _note(f"kernel {abi} ready in {time.monotonic() - t0:.1f} s")
        return kernel

    def _cached_of_suite(self) -> list[str]:
        base = self.root / "kernels"
        found = []
        if base.is_dir():
            for d in base.iterdir():
                with contextlib.suppress(OSError):
                    if (d / "ok").read_text().strip() == self.suite:
                        found.append(d.name)
        return sorted(found, key=apt.version_key, reverse=True)

    def select(self, kver: str | None = None) -> Kernel:
        """The pinned ABI (env ``KVER``), else the newest ABI of the suite that fits."""
        kver = kver or os.environ.get("KVER") or None
        with _locked(self.root / "lock"):
            if kver:
                kernel = self.cached(kver)
                if kernel is not None:
                    return kernel
                pa = self._apt()
                pa.update()
                try:
                    pa.show(f"linux-image-{kver}")
                except VmUnavailable:
                    known = ", ".join(pa.image_abis()) or "none"
                    raise VmUnavailable(
                        f"KVER={kver}: no linux-image-{kver} in {self.suite} (it has: {known}); "
                        "unset KVER to take the newest that fits"
                    ) from None
                return self._fetch(pa, kver)
            return self._select_newest()

    def _select_newest(self) -> Kernel:
        pa = self._apt()
        stamp = pa.workdir / "updated"
        fresh = stamp.is_file() and time.time() - stamp.stat().st_mtime < UPDATE_INTERVAL
        if not fresh:
            try:
                pa.update()
                atomic_write(stamp, b"")
            except VmUnavailable as exc:
                cached = self._cached_of_suite()
                if cached:
                    _note(f"apt update failed, using cached {cached[0]}: {exc}")
                    kernel = self.cached(cached[0])
                    if kernel is not None:
                        return kernel
                raise
        reasons = []
        for abi in pa.image_abis():
            kernel = self.cached(abi)
            if kernel is not None:
                return kernel
            why = self._rejected(abi)
            if why is None:
                try:
                    return self._fetch(pa, abi)
                except VmUnavailable as exc:
                    why = str(exc)
            reasons.append(f"{abi}: {why}")
        raise VmUnavailable(
            f"no kernel in {self.suite} fits the VM tests"
            + (": " + "; ".join(reasons) if reasons else " (linux-image-amd64 names no ABI)")
        )


# --- initramfs -------------------------------------------------------------

INIT_SCRIPT = r"""#!/bin/sh
# bpfsign guest init (docs/vm.md 6.2): mount the host root read-only over 9p,
# run the script named by bpfsign_script= in a chroot, report on the console.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/order); do insmod /lib/$m.ko || echo "INSMOD-FAILED $m"; done
# cache=loose: the guest caches lookups and file pages of the (read-only) share,
# which makes Python's imports several times faster than uncached 9p
opts=trans=virtio,version=9p2000.L,ro,msize=262144
if ! mount -t 9p -o $opts,cache=loose hostroot /newroot && ! mount -t 9p -o $opts hostroot /newroot; then
  echo MOUNT-9P-FAILED
  poweroff -f
fi
script=
keep=
for a in $(cat /proc/cmdline); do
  case "$a" in
    bpfsign_script=*) script="${a#bpfsign_script=}" ;;
    bpfsign_keep=*) keep="${a#bpfsign_keep=}" ;;
  esac
done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs tmpfs /newroot/run
# directories under /tmp that the run needs stay visible through the tmpfs
n=0
for d in $(echo "$keep" | sed 's/,/ /g'); do
  mkdir -p /keep/$n && mount -o bind "/newroot$d" /keep/$n
  n=$((n+1))
done
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
n=0
for d in $(echo "$keep" | sed 's/,/ /g'); do
  mkdir -p "/newroot$d" && mount -o bind /keep/$n "/newroot$d"
  n=$((n+1))
done
read up rest < /proc/uptime
echo "GUEST-KERNEL $(cat /proc/sys/kernel/osrelease)"
echo "GUEST-READY $up"
if [ -n "$script" ]; then
  chroot /newroot /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 /bin/sh "$script"
  rc=$?
else
  echo "no bpfsign_script= on the kernel command line"
  rc=127
fi
read up rest < /proc/uptime
echo "GUEST-DONE rc=$rc $up"
poweroff -f
"""


def _module_files(modules: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in (modules / "kernel").rglob("*.ko*"):
        name = path.name.split(".ko", 1)[0].replace("-", "_")
        files.setdefault(name, path)
    return files


def _module_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(raw)
    if path.name.endswith(".ko.zst"):
        if shutil.which("zstd") is None:
            raise VmUnavailable(f"{path.name} is zstd-compressed: install zstd")
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return raw


def _builtin(modules: Path) -> set[str]:
    try:
        text = (modules / "modules.builtin").read_text()
    except FileNotFoundError:
        return set()
    return {Path(line).name.split(".ko", 1)[0].replace("-", "_") for line in text.split()}


def module_closure(
    modules: Path, wanted: tuple[str, ...] = ROOT_MODULES
) -> list[tuple[str, bytes]]:
    """(name, decompressed .ko) in load order: dependencies first, builtins skipped."""
    files = _module_files(modules)
    builtin = _builtin(modules)
    order: list[tuple[str, bytes]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in files:
            raise VmUnavailable(f"module {name} not found under {modules}")
        data = _module_bytes(files[name])
        m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
        for dep in m.group(1).decode().split(",") if m else []:
            if dep:
                visit(dep)
        order.append((name, data))

    for w in wanted:
        visit(w)
    return order


class _Cpio:
    """Minimal writer of the newc format the kernel unpacks."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(name.encode() + b"\0")
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def busybox_path() -> Path:
    for cand in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(cand).is_file():
            return Path(cand)
    raise VmUnavailable("busybox not found: install busybox-static (scripts/setup.sh)")


def build_initramfs(kernel: Kernel, root: Path | None = None) -> Path:
    """The gzip'd newc initramfs for ``kernel``, cached by content."""
    busybox = busybox_path()
    bb = busybox.read_bytes()
    if b"/lib64/ld-linux" in bb[:4096]:  # PT_INTERP sits in the first page
        raise VmUnavailable(f"{busybox} is dynamically linked: install busybox-static")
    mods = module_closure(kernel.modules)
    h = hashlib.sha256(INIT_SCRIPT.encode() + bb)
    for name, data in mods:
        h.update(name.encode() + hashlib.sha256(data).digest())
    root = root or cache_dir()
    out = root / "kernels" / kernel.abi / f"initrd-{h.hexdigest()[:16]}.gz"
    if out.is_file():
        return out
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "lib", "keep"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.file("bin/busybox", bb, 0o755)
    for applet in BUSYBOX_APPLETS:
        cpio.symlink(f"bin/{applet}", "busybox")
    for name, data in mods:
        cpio.file(f"lib/{name}.ko", data)
    cpio.file("lib/order", "".join(f"{n}\n" for n, _ in mods).encode())
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root / "lock"):
        atomic_write(out, gzip.compress(cpio.finish(), compresslevel=1, mtime=0))
        for old in out.parent.glob("initrd-*.gz"):
            if old != out and time.time() - old.stat().st_mtime > 3600:  # not one in use now
                with contextlib.suppress(OSError):
                    old.unlink()
    return out
