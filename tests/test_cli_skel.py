"""``bpfsign inspect`` and the light-skeleton side of ``bpfsign sign``/``verify``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign import _cli, scheme, skeleton

FIXTURES = Path(__file__).parent / "fixtures"
SKEL_DIR = FIXTURES / "skel"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
COUNTER_V71 = SKEL_DIR / "counter.v71.lskel.h"
COUNTER_SIGNED = SKEL_DIR / "counter.signed.lskel.h"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"fixture {path.name} not generated yet")
    return path


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_text(capsys: pytest.CaptureFixture[str]) -> None:
    path = need(COUNTER_V71)
    skel = skeleton.load(path)
    code, out, err = call(capsys, "inspect", str(path))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{path}: light skeleton 'counter' (old style, little-endian)"
    assert lines[1] == (
        f"  insns      {len(skel.insns)} bytes ({skel.insn_count} insns)  "
        f"sha256 {scheme.sha256(skel.insns).hex()}"
    )
    assert "  signature  none (unsigned)" in lines
    assert "  scheme     loadtime (no in-loader hash check; signature covers insns + data)" in lines
    assert (
        "  mode       unsigned: honours ctx overrides (max_entries/initial_value) for "
        "counts, data, bss" in lines
    )
    assert "      28 +4  maps.counts.max_entries (in)" in lines
    assert "      76 +4  progs.count_getpid.prog_fd (out)" in lines
    assert "  prog 0: count_sys_enter (attach: raw_tp:sys_enter)" in lines


def test_inspect_signed_json_and_disasm(capsys: pytest.CaptureFixture[str]) -> None:
    path = need(COUNTER_SIGNED)
    skel = skeleton.load(path)
    code, out, _ = call(capsys, "inspect", "--json", "--disasm", str(path))
    assert code == 0
    rec = json.loads(out)
    assert rec["scheme"] == "inloader" and rec["style"] == "new" and rec["signed"]
    hc = rec["loader"]["hash_check"]
    assert hc["length"] == 33 and hc["exclusivity_prefix"] and hc["cleanup_targets"] == [7]
    assert hc["matches_data"] is True
    assert hc["baked_hash"] == scheme.sha256(skel.data).hex()
    assert rec["loader"]["mode"] == "signed" and rec["loader"]["ctx_overrides"] == []
    assert rec["excl_hash"] == {"hex": scheme.sha256(skel.insns).hex(), "matches_insns": True}
    cms = rec["signature"]["cms"]
    assert rec["signature"]["bytes"] == 375
    assert cms["parsed"] and cms["sid"] == "skid" and cms["digest"] == "sha256"
    assert cms["certificates"] == 0 and cms["detached"] is True
    assert rec["keyring_id_field"] is True
    assert rec["disasm"][0] == "   0: (bf) r6 = r1"
    assert rec["disasm"][5] == "   5: (85) call probe_read_kernel#113"
    assert rec["ctx_size"] == 80


def test_inspect_signed_text(capsys: pytest.CaptureFixture[str]) -> None:
    path = need(COUNTER_SIGNED)
    a = scheme.audit(skeleton.load(path))
    assert a.hash_check is not None
    code, out, _ = call(capsys, "inspect", str(path))
    assert code == 0
    start = a.hash_check.start
    assert (
        f"  scheme     inloader (6.18): hash check at insns {start}..{start + 32} (33 insns, with "
        "exclusivity prefix), goto-cleanup -> insn 7" in out.splitlines()
    )
    assert "  mode       signed: ignores ctx overrides (the blob is authoritative)" in out


def test_inspect_bad_header_is_one_line_with_the_line_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = skeleton.read_text(need(COUNTER_V71))
    bad = tmp_path / "bad.lskel.h"
    bad.write_text(text[: text.index("opts.insns = (void *)") + 300])
    line = text[: text.index("opts.insns = (void *)")].count("\n") + 1
    code, out, err = call(capsys, "inspect", str(bad))
    assert code == 2 and out == ""
    assert err == (
        f"bpfsign: {bad}:{line}: unterminated string literal (is the file truncated?)\n"
    )


def _sign_args(*extra: str) -> list[str]:
    return ["sign", "--key", str(KEY), "--cert", str(CERT), *extra]


def test_sign_writes_elsewhere_with_o_and_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = need(COUNTER_V71)
    before = src.read_bytes()
    out_path = tmp_path / "counter.signed-by-us.lskel.h"
    code, out, err = call(capsys, *_sign_args("-o", str(out_path), str(src)))
    assert code == 0
    assert src.read_bytes() == before
    signed = skeleton.load(out_path)
    assert signed.signature is not None and signed.insns == skeleton.load(src).insns
    assert err.startswith(f"bpfsign: warning: {src}: unsigned-mode loader: ")
    assert "for: counts (max_entries), data (max_entries/initial_value)" in err
    lines = out.splitlines()
    assert lines[0].startswith(
        f"SIGNED {src} -> {out_path} (loadtime: {len(signed.signature)}-byte signature over "
        "insns + data, "
    )
    assert lines[1].startswith("  note: the signed header uses opts.signature/")
    assert lines[2].startswith("  note: load it with a load-time runtime (fd_array_cnt = 1")


def test_sign_strict_refuses_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "counter.lskel.h"
    shutil.copy(need(COUNTER_V71), src)
    before = src.read_bytes()
    code, _, err = call(capsys, *_sign_args("--strict", str(src)))
    assert code == 2
    assert src.read_bytes() == before
    assert list(tmp_path.iterdir()) == [src]  # no temp file left behind
    assert "Refusing under --strict." in err


def test_sign_converts_an_inloader_header_in_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "counter.signed.lskel.h"
    shutil.copy(need(COUNTER_SIGNED), src)
    old = skeleton.load(src)
    a = scheme.audit(old)
    assert a.hash_check is not None
    code, out, err = call(capsys, *_sign_args("--scheme", "loadtime", str(src)))
    assert code == 0 and err == ""
    new = skeleton.load(src)
    start = a.hash_check.start
    lines = out.splitlines()
    assert lines[0].startswith(
        f"CONVERTED {src}: removed the in-loader check: insns {start}..{start + 32} (33 insns, "
        "with the exclusivity prefix); "
    )
    assert lines[0].endswith(f"jumps fixed; {old.insn_count} -> {new.insn_count} insns")
    assert new.insn_count == old.insn_count - 33
    assert scheme.audit(new).scheme == "loadtime"
    assert new.excl_hash == scheme.sha256(new.insns)


def test_sign_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "counter.signed.lskel.h"
    shutil.copy(need(COUNTER_SIGNED), src)
    code, out, _ = call(capsys, *_sign_args("--json", "--keyring-id", "-3", str(src)))
    assert code == 0
    rec = json.loads(out)
    assert rec["ok"] and rec["scheme"] == "loadtime" and rec["keyring_id"] == -3
    assert rec["converted"]["count"] == 33 and rec["warnings"] == []


def test_verify_a_bpftool_signed_header(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bpfsign.verify")
    path = need(COUNTER_SIGNED)
    code, out, err = call(capsys, "verify", "--trust", str(CERT), str(path))
    assert code == 0, err
    assert out.startswith(f"OK {path}: inloader scheme, signer ")


def test_verify_rejects_tampered_data_with_the_kernel_errno(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("bpfsign.verify")
    src = tmp_path / "counter.lskel.h"
    shutil.copy(need(COUNTER_V71), src)
    assert call(capsys, *_sign_args(str(src)))[0] == 0
    code, out, err = call(capsys, "verify", "--trust", str(CERT), str(src))
    assert code == 0, err
    assert out.startswith(f"OK {src}: loadtime scheme, signer ")
    skel = skeleton.load(src)
    assert skel.layout is not None
    text = skeleton.read_text(src)
    span = skel.layout.blobs["data"]
    tampered_data = bytearray(skel.data)
    tampered_data[2000] ^= 0x40
    text = text[: span.start] + skeleton.render_literal(bytes(tampered_data)) + text[span.end :]
    src.write_text(text)
    code, _, err = call(capsys, "verify", "--trust", str(CERT), str(src))
    assert code == 1
    assert f"REJECTED {src}: EKEYREJECTED (129)" in err


def test_cli_in_a_real_process() -> None:
    path = need(COUNTER_V71)
    proc = subprocess.run(
        [sys.executable, "-m", "bpfsign", "inspect", "--json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "counter"
