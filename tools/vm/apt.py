"""Fetch Debian kernel packages from another suite with a private apt state.

The machine's apt configuration is never touched: every apt call gets a
private sources list, lists and archives directory through ``-o`` options
(docs/vm.md §2). The mirror is the one the machine already uses for Debian.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import VmUnavailable

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_DEBIAN_SUITE = re.compile(
    r"^(?:buster|bullseye|bookworm|trixie|forky|duke|sid|stable|testing|unstable|oldstable)"
    r"(?:-updates|-backports|-proposed-updates)?$"
)


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    signed_by: str = ""


def _parse_deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(uri, tuple(fields.get("suites", "").split()), fields.get("signed-by", ""))
            )
    return sources


def _parse_one_line(text: str) -> list[AptSource]:
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
            sources.append(AptSource(m.group(2), (m.group(3),), opts.get("signed-by", "")))
    return sources


def configured_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every enabled ``deb`` source of the machine, in apt's reading order."""
    files: list[Path] = []
    if (etc_apt / "sources.list").is_file():
        files.append(etc_apt / "sources.list")
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    out: list[AptSource] = []
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        out += _parse_deb822(text) if f.suffix == ".sources" else _parse_one_line(text)
    return out


def debian_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The URI the machine uses for Debian's main archive (not -security, not third-party).

    ``BPFSIGN_VM_MIRROR`` overrides it.
    """
    override = os.environ.get("BPFSIGN_VM_MIRROR")
    if override:
        return override.rstrip("/")
    for src in configured_sources(etc_apt):
        if any(_DEBIAN_SUITE.match(s) for s in src.suites) and src.uri.startswith(
            ("http://", "https://", "file:/")
        ):
            return src.uri.rstrip("/")
    raise VmUnavailable(
        "no Debian archive mirror found in /etc/apt/sources.list(.d): need a 'deb' source "
        "for a Debian suite (e.g. bookworm); set BPFSIGN_VM_MIRROR=<uri> to name one"
    )


def version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key for ABI/version strings: digit runs compare as numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", text))


def _depends(show_output: str) -> list[list[str]]:
    """The package names of each ``Depends:`` line (one list per stanza)."""
    result = []
    for line in show_output.splitlines():
        if line.startswith(("Depends:", "Pre-Depends:")):
            names = []
            for dep in line.split(":", 1)[1].split(","):
                for alt in dep.split("|"):
                    name = alt.strip().split(" ", 1)[0].split(":", 1)[0]
                    if name:
                        names.append(name)
            result.append(names)
    return result


class PrivateApt:
    """apt-get/apt-cache over a private state directory for one suite."""

    def __init__(self, workdir: Path, suite: str, mirror: str, arch: str = "amd64") -> None:
        for tool in ("apt-get", "apt-cache", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise VmUnavailable(f"{tool} not found: the VM runner needs Debian's apt tools")
        if not Path(KEYRING).is_file():
            raise VmUnavailable(f"{KEYRING} missing: install debian-archive-keyring")
        self.workdir = workdir
        self.suite = suite
        self.mirror = mirror
        self.arch = arch
        self.sources_list = workdir / "sources.list"
        self.lists = workdir / "lists"
        self.archives = workdir / "archives"

    def prepare(self) -> None:
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.archives / "partial").mkdir(parents=True, exist_ok=True)
        line = f"deb [signed-by={KEYRING}] {self.mirror} {self.suite} main\n"
        try:
            current = self.sources_list.read_text()
        except FileNotFoundError:
            current = None
        if current != line:  # leave an identical file alone (shared work dirs)
            from bpfsign._fileio import atomic_write

            atomic_write(self.sources_list, line.encode())

    def options(self) -> list[str]:
        opts = {
            "Dir::Etc::sourcelist": str(self.sources_list),
            "Dir::Etc::sourceparts": "-",
            "Dir::State::Lists": str(self.lists),
            "Dir::Cache::Archives": str(self.archives),
            "Dir::Cache::pkgcache": "",
            "Dir::Cache::srcpkgcache": "",
            "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            "DPkg::Lock::Timeout": "600",
            "APT::Sandbox::User": "root",
        }
        out: list[str] = []
        for k, v in opts.items():
            out += ["-o", f"{k}={v}"]
        return out

    def _run(self, tool: str, args: Sequence[str], cwd: Path | None = None) -> str:
        cmd = [tool, *self.options(), *args]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise VmUnavailable(
                f"{tool} {' '.join(args)} failed (exit {proc.returncode}) against "
                f"{self.mirror} {self.suite}: {proc.stderr.strip()[-600:]}"
            )
        return proc.stdout

    def update(self) -> None:
        self.prepare()
        self._run("apt-get", ["-q", "update"])

    def show(self, package: str) -> str:
        return self._run("apt-cache", ["show", package])

    def image_abis(self, meta: str = "linux-image-amd64") -> list[str]:
        """ABIs the meta package depends on, newest first."""
        abis = set()
        flavour = meta.removeprefix("linux-image-")
        for names in _depends(self.show(meta)):
            for name in names:
                if name.startswith("linux-image-") and name.endswith("-" + flavour):
                    abi = name.removeprefix("linux-image-")
                    if abi[:1].isdigit():
                        abis.add(abi)
        return sorted(abis, key=version_key, reverse=True)

    def kernel_parts(self, abi: str) -> list[str]:
        """linux-image-ABI plus the split packages (binary, modules, base) it depends on."""
        parts = [f"linux-image-{abi}"]
        for names in _depends(self.show(f"linux-image-{abi}")):
            parts += [n for n in names if n.endswith("-" + abi) and n not in parts]
        return parts

    def size(self, package: str) -> int:
        """The candidate .deb's size in bytes (0 if the index does not say)."""
        found = re.search(r"^Size: (\d+)$", self.show(package), re.M)
        return int(found.group(1)) if found else 0

    def download(
        self, packages: Iterable[str], dest: Path, note: Callable[[str], None] | None = None
    ) -> list[Path]:
        """``apt-get download`` into ``dest``; ``note`` gets a progress line every 5%."""
        dest.mkdir(parents=True, exist_ok=True)
        pkgs = list(packages)
        if note is None:
            self._run("apt-get", ["-q", "download", *pkgs], cwd=dest)
        else:
            total = sum(self.size(p) for p in pkgs)
            what = f"{len(pkgs)} package{'s' if len(pkgs) != 1 else ''}"
            if total:
                what += f", {total / 1e6:.1f} MB"
            note(f"downloading {what}")
            report = progress_reporter(total, note)
            cmd = ["apt-get", *self.options(), "-q", "download", *pkgs]
            rc, err = run_with_progress(cmd, dest, report)
            if rc != 0:
                raise VmUnavailable(
                    f"apt-get download {' '.join(pkgs)} failed (exit {rc}) against "
                    f"{self.mirror} {self.suite}: {err.strip()[-600:]}"
                )
        debs = []
        for p in pkgs:
            found = sorted(dest.glob(f"{p}_*.deb"))
            if not found:
                raise VmUnavailable(f"apt-get download {p} produced no .deb in {dest}")
            debs.append(found[-1])
        return debs


def progress_reporter(
    total: int, note: Callable[[str], None], step: float = 5.0
) -> Callable[[float], None]:
    """A callback for download percentages that notes each ``step`` % crossed, and 100 %."""
    last = [0.0]

    def report(percent: float) -> None:
        finished = percent >= 100.0 > last[0]
        if not finished and percent < last[0] + step:
            return
        last[0] = percent
        done = f" ({total * percent / 100 / 1e6:.1f} of {total / 1e6:.1f} MB)" if total else ""
        note(f"downloaded {percent:.0f}%{done}")

    return report


def run_with_progress(
    cmd: Sequence[str], cwd: Path, report: Callable[[float], None]
) -> tuple[int, str]:
    """Run an apt-get ``cmd``, calling ``report(percent)`` as its download advances.

    apt writes machine-readable ``dlstatus:N:PERCENT:text`` lines to the file
    descriptor named by ``APT::Status-Fd``: a pipe of our own, so apt's own
    stdout and stderr stay as they are. Returns (exit code, stderr).
    """
    read_fd, write_fd = os.pipe()
    with (
        tempfile.TemporaryFile(mode="w+") as err,
        os.fdopen(read_fd, encoding="utf-8", errors="replace") as status,
    ):
        try:
            proc = subprocess.Popen(
                [cmd[0], "-o", f"APT::Status-Fd={write_fd}", *cmd[1:]],
                cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, pass_fds=(write_fd,),
            )  # fmt: skip
        finally:
            os.close(write_fd)  # the child holds its copy: EOF when it exits
        for line in status:
            kind, _, rest = line.partition(":")
            if kind == "dlstatus":
                fields = rest.split(":", 2)
                try:
                    report(float(fields[1]))
                except (IndexError, ValueError):
                    continue
        rc = proc.wait()
        err.seek(0)
        return rc, err.read()


def extract(debs: Iterable[Path], root: Path) -> None:
    """Unpack .debs into ``root`` (nothing is installed)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise VmUnavailable(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()}")
