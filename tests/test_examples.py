"""The shipped example runs end to end on this machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.kernel
def test_sign_verify_load_example_on_this_kernel() -> None:
    from bpfsign.kernel import keyring, probes

    before = {k.serial for k in keyring.list_keys("session")}
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "sign_verify_load.py"),
         str(REPO / "tests" / "fixtures" / "skel" / "counter.signed.lskel.h")],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # the throwaway signer's certificate must not outlive the example
    assert {k.serial for k in keyring.list_keys("session")} == before
    lines = out.stdout.splitlines()
    assert lines[0].startswith("converted: Removed(start=39, count=33, has_prefix=True")
    assert lines[1] == "offline: the kernel would load it (loadtime, 6192 bytes signed)"
    if probes.signed_prog_load().supported:
        assert lines[2].startswith("loaded: ")
    else:
        assert lines[2].startswith(
            "not loaded: signed BPF_PROG_LOAD is not supported here: the kernel lacks "
            "signature verification (CONFIG_SYSTEM_DATA_VERIFICATION is not set)"
        )
