"""``bpfsign demo``: runs end to end, shows a verdict and a rejection, and is extensible."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign import demo
from bpfsign.errors import VerificationError


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bpfsign", "demo", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def test_example_payload_is_bundled() -> None:
    payload = demo.example_payload()
    assert len(payload) == 100
    assert payload[96:] == b"\0\0\0\0"  # the data section after 12 instructions
    assert payload[88:96] == bytes.fromhex("9500000000000000")  # BPF_EXIT
    assert hashlib.sha256(payload).hexdigest() == (
        "44031af965c2229f29d368bff95b5b7768ab4bcbfa3b25b4d6decd016bf24093"
    )


def test_demo_runs_and_exits_0() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    total = len(demo.STEPS)
    assert [line.split(":", 1)[0] for line in lines[:4]] == [
        f"[1/{total}] keygen",
        f"[2/{total}] sign",
        f"[3/{total}] verify",
        f"[4/{total}] tamper",
    ]
    assert lines[2] == (
        f"[3/{total}] verify: OK example.bin: signer CN={demo.DEMO_SUBJECT}, sha256, rsaEncryption"
    )
    assert lines[3].startswith(
        f"[4/{total}] tamper: REJECTED example.bin with one byte flipped: EKEYREJECTED (129): "
    )
    assert lines[-1] == "demo OK: signed, verified offline, and a tampered copy rejected"


def test_demo_json_and_keep(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    proc = run("--json", "--keep", str(keep))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["workdir"] == str(keep)
    assert [s["title"] for s in report["steps"]][:4] == ["keygen", "sign", "verify", "tamper"]
    assert all(s["status"] in ("ok", "skipped") for s in report["steps"])
    assert {p.name for p in keep.iterdir()} >= {
        "demo.crt",
        "demo.key",
        "example.bin",
        "example.bin.p7s",
    }
    assert stat.S_IMODE(os.stat(keep / "demo.key").st_mode) == 0o600
    verified = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(keep / "example.bin.p7s"),
            "-content",
            str(keep / "example.bin"),
            "-certfile",
            str(keep / "demo.crt"),
            "-nointern",
            "-noverify",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr


def test_steps_extend_skip_and_fail() -> None:
    seen: list[str] = []

    def skipped(ctx: demo.DemoContext) -> str:
        raise demo.Skip("no kernel support here")

    def failing(ctx: demo.DemoContext) -> str:
        raise demo.DemoFailure("this step is broken")

    def never(ctx: demo.DemoContext) -> str:
        seen.append("ran")
        return "unreachable"

    steps = [
        *demo.STEPS[:2],
        demo.DemoStep("skip-me", skipped),
        demo.DemoStep("fail-me", failing),
        demo.DemoStep("after", never),
    ]
    reported: list[tuple[int, int, str]] = []
    results = demo.run(steps, report=lambda i, n, r: reported.append((i, n, r.status)))
    assert [(r.title, r.status) for r in results] == [
        ("keygen", "ok"),
        ("sign", "ok"),
        ("skip-me", "skipped"),
        ("fail-me", "failed"),
    ]
    assert results[2].detail == "no kernel support here"
    assert results[3].detail == "this step is broken"
    assert reported == [(1, 5, "ok"), (2, 5, "ok"), (3, 5, "skipped"), (4, 5, "failed")]
    assert seen == []


@pytest.mark.parametrize("flip", [0, 50, 99])
def test_tamper_step_rejects_any_flipped_byte(tmp_path: Path, flip: int) -> None:
    """The demo's rejection is not special to the byte it flips."""
    from bpfsign.verify import verify

    ctx = demo.DemoContext(workdir=tmp_path)
    for step in demo.STEPS[:3]:
        step.run(ctx)
    assert ctx.payload_path is not None and ctx.signature_path is not None
    tampered = bytearray(ctx.payload_path.read_bytes())
    tampered[flip] ^= 0x80
    with pytest.raises(VerificationError) as info:
        verify(bytes(tampered), ctx.signature_path.read_bytes(), ctx.trust)
    assert info.value.errno == 129
