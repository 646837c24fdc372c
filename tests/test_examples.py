"""The shipped example runs end to end on this machine, from any directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sign_verify_load.py"


def _run(*args: str, cwd: Path) -> list[str]:
    """Run the example in a real process; its stdout lines. No throwaway key may outlive it."""
    from bpfsign.kernel import keyring

    before = {k.serial for k in keyring.list_keys("session")}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True, text=True, check=False, cwd=cwd,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert {k.serial for k in keyring.list_keys("session")} == before
    return out.stdout.splitlines()


def _assert_load_line(line: str) -> None:
    from bpfsign.kernel import probes

    if probes.signed_prog_load().supported:
        assert line.startswith("loaded: ")
    else:
        assert line == (
            "not loaded: signed BPF_PROG_LOAD is not supported here: the kernel lacks "
            "signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is not set), so every "
            "signed load fails with EOPNOTSUPP; load it on a kernel built with it (e.g. "
            "Debian's Linux 7.x), or without its signature"
        )


@pytest.mark.kernel
def test_sign_verify_load_example_on_this_kernel() -> None:
    lines = _run(str(REPO / "tests" / "fixtures" / "skel" / "counter.signed.lskel.h"), cwd=REPO)
    assert lines[0].startswith("converted: Removed(start=39, count=33, has_prefix=True")
    assert lines[1] == "offline: the kernel would load it (loadtime, 6192 bytes signed)"
    _assert_load_line(lines[2])


@pytest.mark.kernel
@pytest.mark.parametrize("where", ["root", "tmp"])
def test_example_runs_from_any_directory(where: str, tmp_path: Path) -> None:
    """Without an argument it signs the skeleton bundled in the package: no repo paths."""
    from importlib import resources

    from bpfsign.skel import scheme, skeleton

    bundled = skeleton.load(str(resources.files("bpfsign") / "data" / "example.lskel.h"))
    converted, removed = scheme.convert_to_loadtime(bundled)
    lines = _run(cwd=Path("/") if where == "root" else tmp_path)
    assert lines[0] == f"converted: {removed}"
    signed = len(converted.insns) + len(converted.data)
    assert lines[1] == f"offline: the kernel would load it (loadtime, {signed} bytes signed)"
    _assert_load_line(lines[2])
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
