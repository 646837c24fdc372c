"""``bpfsign demo``: runs end to end, shows a verdict and a rejection, and is extensible."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign.cli import demo
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


STEP_TITLES = [
    "keygen",
    "sign",
    "verify",
    "tamper",
    "inspect-skeleton",
    "sign-skeleton",
    "verify-skeleton",
    "tamper-skeleton",
    "load",
]
REJECTED = (
    "EKEYREJECTED (129): signature does not verify with the trusted key "
    f"'CN={demo.DEMO_SUBJECT}' (RSA-3072): the payload or the signature was changed after "
    "signing, or it was signed over different bytes"
)
SKEL_REJECTED = (  # the kernel's log line, then what it compared
    "EKEYREJECTED (129): signature verification failed: -129: PKCS#7 over insns ‖ 1 map "
    "value (5480 bytes): "
    "signature does not verify with the trusted key "
    f"'CN={demo.DEMO_SUBJECT}' (RSA-3072): the payload or the signature was changed after "
    "signing, or it was signed over different bytes"
)
#: `bpfsign verify` on a tampered copy: the verdict, then (after a "why" line) the fix
VERIFY_REJECTED = (
    "kernel 7.3 would refuse it: EKEYREJECTED (129): signature verification failed: -129"
)
REJECTED_FIX = (
    "  fix: the signature does not match the loader and its data (tampered or wrong scheme): "
    "re-sign it with `bpfsign sign`"
)


def test_demo_runs_and_exits_0() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    total = len(demo.STEPS)
    assert total == len(STEP_TITLES)
    assert [line.split(":", 1)[0] for line in lines[:total]] == [
        f"[{i}/{total}] {title}" for i, title in enumerate(STEP_TITLES, 1)
    ]
    assert lines[2] == (
        f"[3/{total}] verify: OK example.bin: signer CN={demo.DEMO_SUBJECT}, sha256, rsaEncryption"
    )
    assert lines[3] == (
        f"[4/{total}] tamper: REJECTED example.tampered.bin (example.bin with its last byte "
        f"flipped) against example.bin.p7s: {REJECTED}"
    )
    assert lines[4] == (
        f"[5/{total}] inspect-skeleton: example.lskel.h: light skeleton 'sockfilter', 222 insns, "
        "3968 data bytes, maps proto_counts, rodata, programs count_proto; scheme inloader, "
        "in-loader hash check at insns 30..62; signed mode (ignores ctx overrides); signed by bpftool"
    )
    assert lines[5].startswith(
        f"[6/{total}] sign-skeleton: converted to loadtime: removed the in-loader check: "
        "insns 30..62 (33 insns, with the exclusivity prefix); 6 jumps fixed; 222 -> 189 insns; "
        "signed insns || data (5480 bytes) under loadtime -> example.loadtime.lskel.h (signature "
    )
    assert lines[6] == (
        f"[7/{total}] verify-skeleton: OK example.loadtime.lskel.h: loadtime scheme, 5480 bytes "
        f"signed, excl_prog_hash = SHA-256(insns), signer CN={demo.DEMO_SUBJECT}, sha256, "
        "rsaEncryption"
    )
    assert lines[7] == (
        f"[8/{total}] tamper-skeleton: REJECTED example.loadtime.tampered.lskel.h "
        f"(example.loadtime.lskel.h with data byte 1984 flipped): {SKEL_REJECTED}"
    )
    assert lines[8].startswith(f"[9/{total}] load: ")
    assert lines[-1] == "demo OK: signed, verified offline, and tampered copies rejected"


def test_example_skeleton_is_the_bpftool_fixture() -> None:
    """The bundled skeleton is the committed bpftool 7.8 -S fixture, byte for byte."""
    fixture = Path(__file__).parent / "fixtures" / "skel" / "sockfilter.signed.lskel.h"
    assert demo.example_skeleton_path().read_bytes() == fixture.read_bytes()


def test_demo_as_an_unprivileged_user_says_why_it_does_not_load(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")  # never on CI: it runs as root
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "bpfsign", "demo"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[8].startswith(  # the bpf probe: MAP_CREATE's EPERM, with the missing caps
        "[9/9] load: skipped: not loading: BPF_MAP_CREATE failed: EPERM: not permitted: bpf() "
        "needs CAP_BPF (plus CAP_PERFMON for tracing programs or CAP_NET_ADMIN for networking "
        "ones) or root; this process runs as uid 65534 (CAP_BPF missing"
    )
    assert lines[-1] == "demo OK: signed, verified offline, and tampered copies rejected"


@pytest.mark.kernel
def test_load_step_loads_the_converted_example(tmp_path: Path) -> None:
    """Signed where the kernel verifies signatures; else unsigned, saying plainly why."""
    from bpfsign.kernel import probes

    ctx = demo.DemoContext(workdir=tmp_path)
    for step in demo.STEPS[:-1]:
        step.run(ctx)
    text = demo.step_load(ctx)
    loaded = ctx.extra["load"]
    assert [p["name"] for p in loaded["progs"]] == ["count_proto"]
    assert [m["name"] for m in loaded["maps"]] == ["proto_counts", "rodata"]
    assert all(p["type"] == 1 for p in loaded["progs"])  # BPF_PROG_TYPE_SOCKET_FILTER
    assert text.endswith("; released")
    if probes.signed_prog_load().supported:
        assert loaded["signed"] is True
        assert text.startswith("loaded example.loadtime.lskel.h SIGNED: ")
    else:
        assert loaded["signed"] is False
        assert text.startswith(
            f"not loaded signed: {probes.signed_prog_load().detail}. Loaded the "
            "converted loader UNSIGNED instead (no signature checked)"
        )
        if probes.signed_prog_load().errno == 95:  # this host: no CONFIG_SYSTEM_DATA_VERIFICATION
            assert text.startswith(
                "not loaded signed: kernel lacks CONFIG_SYSTEM_DATA_VERIFICATION: every signed "
                "BPF_PROG_LOAD fails with EOPNOTSUPP. "
            )


def test_load_step_without_a_signed_skeleton_skips(tmp_path: Path) -> None:
    with pytest.raises(
        demo.Skip, match=r"^no signed example skeleton \(the sign-skeleton step did not run\)$"
    ):
        demo.step_load(demo.DemoContext(workdir=tmp_path))


def test_demo_json_and_keep(tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    proc = run("--json", "--keep", str(keep))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["workdir"] == str(keep)
    assert [s["title"] for s in report["steps"]] == STEP_TITLES
    assert all(s["status"] == "ok" for s in report["steps"][:-1])
    assert report["steps"][-1]["status"] in ("ok", "skipped")
    kept = [
        "demo.key",
        "demo.crt",
        "example.bin",
        "example.bin.p7s",
        "example.tampered.bin",
        "example.lskel.h",
        "example.loadtime.lskel.h",
        "example.loadtime.tampered.lskel.h",
    ]
    assert report["files"] == kept
    assert sorted(p.name for p in keep.iterdir()) == sorted(kept)
    assert [f for s in report["steps"] for f in s["files"]] == kept
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
    from bpfsign.crypto.verify import verify

    ctx = demo.DemoContext(workdir=tmp_path)
    for step in demo.STEPS[:3]:
        step.run(ctx)
    assert ctx.payload_path is not None and ctx.signature_path is not None
    tampered = bytearray(ctx.payload_path.read_bytes())
    tampered[flip] ^= 0x80
    with pytest.raises(VerificationError) as info:
        verify(bytes(tampered), ctx.signature_path.read_bytes(), ctx.trust)
    assert info.value.errno == 129


FILE_NAME = re.compile(r"[\w.-]+\.(?:key|crt|bin|p7s|lskel\.h)\b")


def test_keep_keeps_every_file_the_demo_shows(tmp_path: Path) -> None:
    """Each file named in the output is in DIR, DIR holds nothing else, and each verdict
    the demo shows comes out the same from `bpfsign verify` on the kept files."""
    keep = tmp_path / "kept"
    proc = run("--keep", str(keep))
    assert proc.returncode == 0, proc.stderr
    *steps, ok, files_line = proc.stdout.splitlines()
    assert ok == "demo OK: signed, verified offline, and tampered copies rejected"
    prefix = f"files kept in {keep}: "
    assert files_line.startswith(prefix)
    listed = files_line.removeprefix(prefix).split(", ")
    assert sorted(listed) == sorted(p.name for p in keep.iterdir())
    shown = {name for line in steps for name in FILE_NAME.findall(line)}
    assert shown == set(listed)

    def verify(*argv: str) -> tuple[int, str]:
        out = subprocess.run(
            [sys.executable, "-m", "bpfsign", "verify", "--trust", str(keep / "demo.crt"), *argv],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return out.returncode, out.stdout + out.stderr

    assert verify(str(keep / "example.bin"))[0] == 0
    code, out = verify("--sig", str(keep / "example.bin.p7s"), str(keep / "example.tampered.bin"))
    lines = out.splitlines()
    assert (code, lines[0], lines[2]) == (
        1,
        f"REJECTED {keep / 'example.tampered.bin'}: {VERIFY_REJECTED}",
        REJECTED_FIX,
    )
    assert lines[1].startswith("  why: PKCS#7 over the file (") and len(lines) == 3
    assert verify(str(keep / "example.loadtime.lskel.h"))[0] == 0
    code, out = verify(str(keep / "example.loadtime.tampered.lskel.h"))
    lines = out.splitlines()
    assert (code, lines[0], lines[2]) == (
        1,
        f"REJECTED {keep / 'example.loadtime.tampered.lskel.h'}: {VERIFY_REJECTED}",
        REJECTED_FIX,
    )
    assert lines[1].startswith("  why: PKCS#7 over insns ‖ 1 map value (") and len(lines) == 3
