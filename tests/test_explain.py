"""``bpfsign explain``: its text and --json output, checked exactly against committed copies.

Each case runs in a scratch directory holding the fixture headers, a converted
and signed copy, a signed blob and the fixture certificate, so the output names
files by relative path. The expected outputs live in tests/fixtures/explain/
(``<case>.txt``, ``<case>.json``); every verdict in them is the rules engine's,
whose errnos and log lines the guest suite checks against the 7.3.4 kernel.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bpfsign import cli
from bpfsign.skel import skeleton

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = FIXTURES / "explain"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"

#: case -> (exit code, explain arguments)
CASES: dict[str, tuple[int, list[str]]] = {
    "bpftool-S-on-7.3": (1, ["--trust", "cert.pem", "counter.signed.lskel.h"]),
    "bpftool-S-on-6.18": (0, ["--trust", "cert.pem", "--kernel", "6.18", "counter.signed.lskel.h"]),
    "bpftool-S-on-6.18-nosig": (1, ["--trust", "cert.pem", "--kernel", "6.18-nosig", "counter.signed.lskel.h"]),
    "bpftool-S-unsigned-on-7.3": (1, ["--unsigned", "counter.signed.lskel.h"]),
    "converted-on-7.3": (0, ["--trust", "cert.pem", "conv.lskel.h"]),
    "converted-on-6.18": (1, ["--trust", "cert.pem", "--kernel", "6.18", "conv.lskel.h"]),
    "converted-keyring-3": (1, ["--trust", "cert.pem", "--keyring", "3", "conv.lskel.h"]),
    "converted-bpf-keyring": (0, ["--trust", "cert.pem", "--kernel", "7.x-bpf-keyring", "--keyring", "bpf",
                                  "conv.lskel.h"]),
    "converted-bpf-keyring-on-7.3": (1, ["--trust", "cert.pem", "--keyring", "bpf", "conv.lskel.h"]),
    "converted-untrusted": (1, ["conv.lskel.h"]),
    "converted-tampered": (1, ["--trust", "cert.pem", "tampered.lskel.h"]),
    "unsigned-mode-header": (0, ["counter.v71.lskel.h"]),
    "blob": (0, ["--trust", "cert.pem", "blob.bin"]),
    "blob-changed": (1, ["--trust", "cert.pem", "--sig", "blob.bin.p7s", "changed.bin"]),
    "blob-signature-8193": (1, ["--trust", "cert.pem", "--sig", "big.p7s", "blob.bin"]),
    "missing-file": (2, ["--trust", "cert.pem", "nothing.lskel.h"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scratch directory every case runs in (built once)."""
    d = tmp_path_factory.mktemp("explain")
    for name in ("counter.signed.lskel.h", "counter.v71.lskel.h"):
        shutil.copy(FIXTURES / "skel" / name, d / name)
    shutil.copy(CERT, d / "cert.pem")
    old = Path.cwd()
    os.chdir(d)
    try:
        sign = ["sign", "--key", str(KEY), "--cert", "cert.pem"]
        assert cli.main([*sign, "-o", "conv.lskel.h", "counter.signed.lskel.h"]) == 0
        Path("blob.bin").write_bytes(b"hello bpf\n" * 20)
        assert cli.main([*sign, "blob.bin"]) == 0
    finally:
        os.chdir(old)
    conv = skeleton.load(d / "conv.lskel.h")
    assert conv.layout is not None
    text = skeleton.read_text(d / "conv.lskel.h")
    span = conv.layout.blobs["data"]
    data = bytearray(conv.data)
    data[100] ^= 0x01
    (d / "tampered.lskel.h").write_text(
        text[: span.start] + skeleton.render_literal(bytes(data)) + text[span.end :]
    )
    (d / "changed.bin").write_bytes(b"hello bpf\n" * 19 + b"hello BPF\n")
    sig = (d / "blob.bin.p7s").read_bytes()
    (d / "big.p7s").write_bytes(sig + bytes(8193 - len(sig)))
    return d


def _run(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> tuple[int, str, str]:
    old = Path.cwd()
    os.chdir(workdir)
    try:
        capsys.readouterr()
        code = cli.main(["explain", *argv])
        out, err = capsys.readouterr()
    finally:
        os.chdir(old)
    return code, out, err


@pytest.mark.parametrize("case", list(CASES))
def test_explain_text(case: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want_code, argv = CASES[case]
    code, out, err = _run(workdir, capsys, argv)
    assert code == want_code, (out, err)
    if case == "missing-file":
        assert (out, err) == ("", "bpfsign: nothing.lskel.h: file not found\n")
        return
    assert err == ""
    if os.environ.get("BPFSIGN_WRITE_EXPLAIN") == "1":  # regenerate, then review the diff
        (EXPECTED / f"{case}.txt").write_text(out)
    assert out == (EXPECTED / f"{case}.txt").read_text()


@pytest.mark.parametrize("case", list(CASES))
def test_explain_json(case: str, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want_code, argv = CASES[case]
    code, out, _ = _run(workdir, capsys, ["--json", *argv])
    assert code == want_code
    doc = json.loads(out)
    assert set(doc) == {"file", "kind", "kernel", "load", "steps", "verdict", "signer", "error"}
    if os.environ.get("BPFSIGN_WRITE_EXPLAIN") == "1":
        (EXPECTED / f"{case}.json").write_text(out)
    assert doc == json.loads((EXPECTED / f"{case}.json").read_text())


def test_every_verdict_agrees_with_verify(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """explain and verify --kernel give the same verdict, errno and log line for each file."""
    checked = 0
    for case, (_code, argv) in CASES.items():
        if (
            case in ("missing-file", "bpftool-S-unsigned-on-7.3", "unsigned-mode-header")
            or "--trust" not in argv
        ):
            continue  # verify needs --trust, and refuses unsigned headers as input errors
        _, out, _ = _run(workdir, capsys, ["--json", *argv])
        v = json.loads(out)["verdict"]
        old = Path.cwd()
        os.chdir(workdir)
        try:
            cli.main(["verify", "--json", *argv])
            (rec,) = json.loads(capsys.readouterr().out)
        finally:
            os.chdir(old)
        assert (rec["ok"], rec["errno"], rec["log"], rec["check"]) == (
            v["loads"],
            v["errno"],
            v["log"],
            v["check"],
        ), case
        checked += 1
    assert checked == 12
