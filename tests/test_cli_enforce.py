"""``bpfsign enforce``, ``status`` and ``audit`` as commands on this 6.18 host.

This kernel records no verdict (kernel.md §10), so enforce and status must
refuse with one line naming what is missing, exit 1, print no traceback and
leave nothing behind: no pins and no fds. The commands at work are run in the
7.3 guest (tests/vm/test_vm_enforce.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bpfsign.kernel import btf as B

MISSING = (
    "bpfsign: reading the BPF signature verdict is not supported here: this kernel records no "
    "verdict (its BTF has no bpf_prog_aux.sig); it needs a kernel with load-time BPF signature "
    "verification (Linux 7.x)\n"
)

no_verdict = pytest.mark.skipif(
    B.vmlinux() is None or B.vmlinux().enum_values("bpf_sig_verdict") is not None,  # type: ignore[union-attr]
    reason="this kernel records the verdict (the refusal is for kernels that do not)",
)


def bpfsign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bpfsign", *args], capture_output=True,
                          text=True, timeout=60)


def _bpffs() -> set[str]:
    return set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()


@no_verdict
@pytest.mark.kernel
@pytest.mark.parametrize("args", [
    ("enforce",),
    ("enforce", "--pin", "/sys/fs/bpf/bpfsign-cli-test"),
    ("enforce", "--audit", "--allow-keyring", "0,1,2", "--allow-serial", "12345"),
    ("status",),
    ("status", "--pin", "/sys/fs/bpf/bpfsign-cli-test"),
])
def test_refuses_here_in_one_line_and_leaves_nothing(args: tuple[str, ...]) -> None:
    before = _bpffs()
    run = bpfsign(*args)
    assert (run.returncode, run.stdout, run.stderr) == (1, "", MISSING)
    assert _bpffs() == before


@no_verdict
@pytest.mark.kernel
def test_status_json_refusal_is_one_document() -> None:
    import json

    run = bpfsign("status", "--json")
    assert run.returncode == 1 and run.stderr == MISSING
    doc = json.loads(run.stdout)
    assert doc == {"ok": False, "error": "UnsupportedFeature", "message": MISSING[9:-1]}


@pytest.mark.parametrize("args, message", [
    (("enforce", "--status", "/nonexistent/dir"),
     "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n"),
    (("enforce", "--off", "/nonexistent/dir"),
     "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n"),
    (("audit", "--pin", "/nonexistent/dir"),
     "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n"),
    (("enforce", "--allow-keyring", "4"),
     "bpfsign: keyring id 4: only 0 (builtin), 1 (secondary) and 2 (platform) are system "
     "keyrings; pin other keyrings by serial\n"),
    (("enforce", "--allow-keyring", "x"),
     "bpfsign: --allow-keyring 'x': expected comma-separated keyring ids such as 0,1,2\n"),
])
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    run = bpfsign(*args)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", message)
