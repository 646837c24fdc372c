"""``bpfsign enforce``, ``status`` and ``audit`` as commands on this 6.18 host.

This kernel records no verdict (docs/kernel.md §10), so enforce and status must
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
    return subprocess.run(
        [sys.executable, "-m", "bpfsign", *args], capture_output=True, text=True, timeout=60
    )


def _bpffs() -> set[str]:
    return set(os.listdir("/sys/fs/bpf")) if os.path.isdir("/sys/fs/bpf") else set()


@no_verdict
@pytest.mark.kernel
@pytest.mark.parametrize(
    "args",
    [
        ("enforce",),
        ("enforce", "--pin", "/sys/fs/bpf/bpfsign-cli-test"),
        ("enforce", "--audit", "--allow-keyring", "0,1,2", "--allow-serial", "12345"),
        ("status",),
        ("status", "--pin", "/sys/fs/bpf/bpfsign-cli-test"),
    ],
)
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


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("enforce", "--status", "/nonexistent/dir"),
            "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n",
        ),
        (
            ("enforce", "--off", "/nonexistent/dir"),
            "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n",
        ),
        (
            ("audit", "--pin", "/nonexistent/dir"),
            "bpfsign: /nonexistent/dir: no bpfsign policy is pinned here\n",
        ),
        (
            ("enforce", "--allow-keyring", "4"),
            "bpfsign: keyring id 4: only 0 (builtin), 1 (secondary) and 2 (platform) are system "
            "keyrings; pin other keyrings by serial\n",
        ),
        (
            ("enforce", "--allow-keyring", "x"),
            "bpfsign: --allow-keyring 'x': expected comma-separated keyring ids such as 0,1,2\n",
        ),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    run = bpfsign(*args)
    assert (run.returncode, run.stdout, run.stderr) == (2, "", message)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--json"],
        ["--pin", "/x"],
        ["--json", "--pin", "/x"],
        ["--pin", "/x", "--json"],
    ],
)
def test_status_fast_parser_agrees_with_argparse(argv: list[str]) -> None:
    from bpfsign.cli import _options, build_parser
    from bpfsign.cli import status as cli_status

    ns = build_parser().parse_args(["status", *argv])
    assert cli_status.parse_fast(argv) == _options.from_namespace(cli_status.StatusOptions, ns)


@pytest.mark.parametrize("argv", [["--pin"], ["--pin", "--json"], ["--pin=/x"], ["-h"], ["x"]])
def test_status_fast_parser_leaves_the_rest_to_argparse(argv: list[str]) -> None:
    from bpfsign.cli import status as cli_status

    assert cli_status.parse_fast(argv) is None


def test_status_json_rows_are_what_json_dumps_gives(tmp_path: os.PathLike[str]) -> None:
    """A pinned iterator is read as a file; here a file of records stands in for one."""
    import json

    from bpfsign.kernel import status as ST

    names = [b"plain", b'q"uote', b"back\\slash", "ünï".encode(), b"tab\there", b""]
    raw = b"".join(
        ST.RECORD.pack(i + 1, 29, bytes(range(8)), 10**9 * i, n, 4242 * i, i % 2, i % 5, ST.MAGIC)
        for i, n in enumerate(names)
    )
    pin = os.path.join(tmp_path, "pin")
    os.mkdir(pin)
    with open(os.path.join(pin, "progs"), "wb") as f:
        f.write(raw)
    run = bpfsign("status", "--json", "--pin", pin)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    want = [r.as_dict() for r in ST.parse(raw)]
    for r, w in zip(rows, want, strict=True):  # loaded_at depends on the clock of each run
        assert abs(r.pop("loaded_at") - w.pop("loaded_at")) < 1
        assert r == w
    assert [r["name"] for r in rows] == [n.decode() for n in names]
    assert rows[3]["verdict"] == "VERIFIED" and rows[3]["keyring_type"] == "PLATFORM"
    table = bpfsign("status", "--pin", pin).stdout.splitlines()
    assert table[0].split() == [
        "ID",
        "TYPE",
        "NAME",
        "TAG",
        "LOADED",
        "VERDICT",
        "KEYRING",
        "SERIAL",
    ]
    assert table[1].split()[:3] == ["1", "lsm", "plain"] and len(table) == 7
