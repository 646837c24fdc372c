"""The VM runner, and the guest suite run through it (one boot per test run).

``test_guest_suite`` boots Debian's Linux 7.x under qemu once, runs
``pytest -m vm tests/vm`` inside it with this checkout's venv, streams the
guest's output, and fails when the guest pytest fails. It skips only when
qemu or the kernel packages cannot be had here, and fails instead under
``BPFSIGN_REQUIRE_VM=1`` (CI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tools.vm import apt, image
from tools.vm.errors import VmError, VmUnavailable
from tools.vm.runner import Console, GuestResult, Runner, _guest_script, parse_console

CHECKOUT = Path(__file__).resolve().parents[1]
REQUIRE_VM = os.environ.get("BPFSIGN_REQUIRE_VM") == "1"


# --- host-side units: no boot -------------------------------------------------


def test_console_markers_survive_bios_escapes_and_cr() -> None:
    text = (
        "\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)\r\n"
        "\x1b[2JGUEST-KERNEL 7.3.4+deb13-amd64\r\n"
        "GUEST-READY 2.91\r\n"
        "hello\r\n"
        "[   12.1] clocksource: Watchdog remote CPU 1 read timed out\r\n"
        "world\r\n"
        "GUEST-DONE rc=3 3.50\r\n"
        "reboot: Power down\r\n"
    )
    c = parse_console(text)
    assert (c.rc, c.release, c.ready_at, c.done_at) == (3, "7.3.4+deb13-amd64", 2.91, 3.5)
    assert c.output == ["hello", "world"]
    assert c.fatal is None


def test_console_fatal_markers_and_done_only_after_ready() -> None:
    assert parse_console("MOUNT-9P-FAILED\n").fatal == "MOUNT-9P-FAILED"
    assert parse_console("x\nKernel panic - not syncing: VFS\n").fatal == "Kernel panic"
    early = parse_console("GUEST-DONE rc=0 1.0\n")  # no GUEST-READY: not a result
    assert early.rc is None and early.ready_index is None
    c = Console()
    c.feed("GUEST-READY 1.0")
    c.feed("Kernel panic in the test output is still a line")
    c.feed("GUEST-DONE rc=0 2.0")
    assert c.rc == 0


def test_config_check_names_what_is_missing() -> None:
    good = "\n".join(
        [f"{o}=y" for o in image.REQUIRED_BUILTIN]
        + [f"{o}=m" for o in image.REQUIRED_BUILTIN_OR_MODULE]
    )
    assert image.config_problems(good) == []
    bad = good.replace(
        "CONFIG_SYSTEM_DATA_VERIFICATION=y", "# CONFIG_SYSTEM_DATA_VERIFICATION is not set"
    )
    bad = bad.replace("CONFIG_9P_FS=m", "")
    assert image.config_problems(bad) == [
        "CONFIG_SYSTEM_DATA_VERIFICATION=n (need y)",
        "CONFIG_9P_FS=n (need y or m)",
    ]
    assert image.config_problems(
        good.replace("CONFIG_DEBUG_INFO_BTF=y", "CONFIG_DEBUG_INFO_BTF=m")
    ) == ["CONFIG_DEBUG_INFO_BTF=m (need y)"]


def test_mirror_comes_from_the_machines_debian_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BPFSIGN_VM_MIRROR", raising=False)
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "a-thirdparty.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n"
    )
    (d / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    (d / "off.list.disabled").write_text("deb http://elsewhere/debian bookworm main\n")
    assert apt.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# old style\ndeb [arch=amd64] http://old.example/debian/ bookworm main\n"
    )
    assert apt.debian_mirror(tmp_path) == "http://old.example/debian"
    monkeypatch.setenv("BPFSIGN_VM_MIRROR", "http://pinned/debian/")
    assert apt.debian_mirror(tmp_path) == "http://pinned/debian"


def test_mirror_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BPFSIGN_VM_MIRROR", raising=False)
    with pytest.raises(VmUnavailable, match="BPFSIGN_VM_MIRROR"):
        apt.debian_mirror(tmp_path)


def test_abi_order_is_numeric() -> None:
    abis = ["7.3.4+deb13-amd64", "7.10.1+deb13-amd64", "6.18.44+deb13-amd64", "7.3.12+deb13-amd64"]
    assert sorted(abis, key=apt.version_key, reverse=True) == [
        "7.10.1+deb13-amd64",
        "7.3.12+deb13-amd64",
        "7.3.4+deb13-amd64",
        "6.18.44+deb13-amd64",
    ]


def test_guest_script_quotes_arguments(tmp_path: Path) -> None:
    script = _guest_script(["sh", "-c", 'echo "$1"; exit 4', "-", "a b'c"], tmp_path, {"X": "y z"})
    # run it on the host with the same shell the guest uses
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (4, "a b'c\n")
    assert "export X='y z'" in script


def _runner_or_skip() -> Runner:
    """A prepared runner (kernel fetched and cached); fails under BPFSIGN_REQUIRE_VM=1."""
    try:
        runner = Runner()
        runner.prepare()
    except VmUnavailable as exc:
        if REQUIRE_VM:
            pytest.fail(f"the VM cannot run here but BPFSIGN_REQUIRE_VM=1: {exc}")
        print(f"\nSKIP reason: the VM cannot run here: {exc}", file=sys.stderr)
        pytest.skip(f"the VM cannot run here: {exc}")
    return runner


def test_initramfs_module_order_and_contents(tmp_path: Path) -> None:
    """Build from the kernel the guest suite uses (fetched once into the cache)."""
    kernel = _runner_or_skip().prepare()
    order = [name for name, _ in image.module_closure(kernel.modules)]
    assert order[-2:] == ["9pnet_virtio", "9p"]
    assert order.index("9pnet") < order.index("9pnet_virtio")
    initrd = image.build_initramfs(kernel, tmp_path)
    listing = subprocess.run(
        f"zcat {initrd} | cpio -t --quiet", shell=True, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in ("init", "bin/busybox", "bin/sh", "dev/console", "lib/order", "lib/9p.ko"):
        assert name in listing


# --- the guest suite: one boot -------------------------------------------------


def test_guest_suite(request: pytest.FixtureRequest) -> None:
    venv_python = CHECKOUT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.fail(
            f"{venv_python} missing: run scripts/setup.sh (the guest uses the checkout's venv)"
        )
    runner = _runner_or_skip()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")

    def show(line: str) -> None:
        if reporter is not None and capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.write_line("  guest| " + line)

    # the guest's root is read-only: compile the corpus's C reference loaders here first
    subprocess.run(
        [sys.executable, str(CHECKOUT / "tests" / "corpus" / "refload.py"), "--build-all"],
        check=True,
    )
    show(f"booting: {runner.qemu_version}, accel {runner.accel}, kernel {runner.prepare().abi}")
    cmd = [
        "sh", "-c", 'echo "GUEST-UNAME $(uname -r)"; exec "$@"', "-",
        str(venv_python), "-m", "pytest", "-m", "vm", "tests/vm",
        "-p", "no:cacheprovider", "-v", "--color=no", "-o", "console_output_style=classic",
    ]  # fmt: skip
    try:
        # no third-party pytest plugins in the guest: imports over 9p under TCG are slow
        env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        result: GuestResult = runner.run(cmd, cwd=CHECKOUT, env=env, timeout=1800, on_line=show)
    except VmError as exc:
        pytest.fail(f"guest run failed: {exc}")
    show(result.header())
    show(result.timings() + f"; log {result.log}")
    for kept in result.failed_logs:
        show(f"an earlier attempt's log was kept: {kept}")
    text = "\n".join(result.output)
    uname = re.search(r"^GUEST-UNAME (\S+)$", text, re.M)
    assert uname is not None, text[-2000:]
    assert uname.group(1) == result.release == result.abi
    summary = [
        ln for ln in result.output if re.match(r"^=+ .*\b(passed|failed|error|skipped)\b.* =+$", ln)
    ]
    assert summary, f"no pytest summary line in the guest output:\n{text[-3000:]}"
    failed = re.search(r"\b(\d+) (failed|errors?)\b", summary[-1])
    # the exit status made the round trip through GUEST-DONE rc=N ...
    assert result.rc == (1 if failed else 0), f"guest pytest: {summary[-1]} but rc {result.rc}"
    # ... and the guest suite passed
    assert not failed and result.rc == 0, f"the guest suite failed: {summary[-1]}"
    assert re.search(r"\b\d+ passed\b", summary[-1]), summary[-1]


def _fake_runner(tmp_path: Path, script: str) -> Runner:
    """A Runner whose "qemu" is a shell script (no kernel is booted)."""
    qemu = tmp_path / "fake-qemu"
    qemu.write_text("#!/bin/sh\n" + script)
    qemu.chmod(0o755)
    runner = Runner(qemu=str(qemu), cache=tmp_path / "cache", accel="tcg")
    runner._kernel = image.Kernel("0.0-test", tmp_path / "vmlinuz", tmp_path / "config", tmp_path)
    runner._initrd = tmp_path / "initrd.gz"
    return runner


def test_runner_retries_once_on_early_exit_and_keeps_the_log(tmp_path: Path) -> None:
    count = tmp_path / "count"
    runner = _fake_runner(
        tmp_path,
        f"""
case "$1" in --version) echo "QEMU emulator version 0.0 (fake)"; exit 0;; esac
n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}
if [ "$n" = 0 ]; then echo "SeaBIOS"; echo "early exit"; exit 1; fi
printf '\\033[2JGUEST-KERNEL 0.0-test\\r\\nGUEST-READY 1.5\\r\\nhello\\r\\nGUEST-DONE rc=5 2.5\\r\\n'
""",
    )
    lines: list[str] = []
    result = runner.run(["true"], cwd=tmp_path, on_line=lines.append)
    assert (result.rc, result.output, lines, result.attempts) == (5, ["hello"], ["hello"], 2)
    assert (result.release, result.guest_uptime_ready, result.guest_uptime_done) == (
        "0.0-test",
        1.5,
        2.5,
    )
    assert [p.name.endswith(".failed-1.log") for p in result.failed_logs] == [True]
    assert "early exit" in result.failed_logs[0].read_text()
    assert not list((tmp_path / "cache" / "run").iterdir())  # the guest script is removed


def test_runner_gives_up_after_the_retry(tmp_path: Path) -> None:
    runner = _fake_runner(
        tmp_path,
        """
case "$1" in --version) echo "QEMU emulator version 0.0 (fake)"; exit 0;; esac
echo "Kernel panic - not syncing: test"; sleep 30
""",
    )
    with pytest.raises(VmError, match="Kernel panic") as info:
        runner.run(["true"], cwd=tmp_path, timeout=20)
    assert info.value.log is not None and info.value.log.endswith(".failed-2.log")


def test_runner_without_qemu_is_unavailable() -> None:
    with pytest.raises(VmUnavailable, match="install qemu-system-x86"):
        Runner(qemu="/nonexistent/qemu-system-x86_64")


def test_runner_deadline_kills_qemu_without_retry(tmp_path: Path) -> None:
    runner = _fake_runner(
        tmp_path,
        """
case "$1" in --version) echo "QEMU emulator version 0.0 (fake)"; exit 0;; esac
echo "booting"; exec sleep 60
""",
    )
    with pytest.raises(VmError, match="deadline of 1 s") as info:
        runner.run(["true"], cwd=tmp_path, timeout=1)
    assert info.value.log is not None and info.value.log.endswith(".failed-1.log")


def test_runner_retries_a_boot_that_hangs_before_userspace(tmp_path: Path) -> None:
    count = tmp_path / "count"
    runner = _fake_runner(
        tmp_path,
        f"""
case "$1" in --version) echo "QEMU emulator version 0.0 (fake)"; exit 0;; esac
n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count}
if [ "$n" = 0 ]; then echo "Booting from ROM..."; exec sleep 60; fi
printf 'GUEST-READY 1.0\\nGUEST-DONE rc=0 2.0\\n'
""",
    )
    runner.ready_timeout = 0.5
    result = runner.run(["true"], cwd=tmp_path, timeout=30)
    assert (result.rc, result.attempts, len(result.failed_logs)) == (0, 2, 1)
    assert "Booting from ROM" in result.failed_logs[0].read_text()


NO_BPF_LSM = "lockdown,capability,landlock,yama,apparmor"


def test_enforce_refuses_without_the_bpf_lsm() -> None:
    """One more boot, with ``lsm=`` lacking bpf: the kernel records the verdict but the BPF LSM
    is off, so ``bpfsign enforce`` refuses in one line naming the boot parameter, exits 1 and
    creates nothing (docs/kernel.md §11: the ``lsm=`` parameter decides)."""
    _runner_or_skip()  # the kernel is cached, or a skip (a failure under BPFSIGN_REQUIRE_VM=1)
    runner = Runner(extra_append=f"lsm={NO_BPF_LSM}")
    bpfsign = str(CHECKOUT / ".venv" / "bin" / "bpfsign")
    script = (
        f"mount -t bpf bpf /sys/fs/bpf; {bpfsign} enforce --pin /sys/fs/bpf/bpfsign; "
        "echo rc=$?; ls -A /sys/fs/bpf | wc -l"
    )
    result = runner.run(["sh", "-c", script], cwd=CHECKOUT, timeout=600)
    lines = [ln for ln in result.output if ln.strip()]
    assert lines[-3:] == [
        "bpfsign: BPF LSM is not supported here: 'bpf' is not an active LSM (active LSMs: "
        f"{NO_BPF_LSM},ima,evm (securityfs mounted in a private mount namespace)); add it to the "
        "lsm= kernel boot parameter (e.g. lsm=...,bpf) and reboot",
        "rc=1",
        "0",
    ], lines
