"""The two signing schemes: audit, payloads, signing, and the offline verdict of each scheme's
kernel (kernel/offline.py over kernel/rules.py) with the kernel's errno."""

from __future__ import annotations

import dataclasses
import errno
import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfsign.errors import InputError, VerificationError
from bpfsign.kernel import offline
from bpfsign.skel import insn, scheme, skeleton

FIXTURES = Path(__file__).parent / "fixtures"
SKEL_DIR = FIXTURES / "skel"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"
CERT = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
HEADERS = sorted(SKEL_DIR.glob("*.lskel.h")) if SKEL_DIR.is_dir() else []
SIGNED = [p for p in HEADERS if ".signed" in p.name]
UNSIGNED = [p for p in HEADERS if ".signed" not in p.name]
COUNTER_V71 = SKEL_DIR / "counter.v71.lskel.h"


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _load(path: Path) -> skeleton.Skeleton:
    if not path.exists():
        pytest.skip(f"fixture {path.name} not generated yet")
    return skeleton.load(path)


def _signer() -> Any:
    pytest.importorskip("bpfsign.crypto.cms")
    from bpfsign.crypto.keys import FileSigner

    return FileSigner.from_files(str(KEY), str(CERT))


def _trust() -> Any:
    pytest.importorskip("bpfsign.crypto.verify")
    from bpfsign.crypto.trust import TrustStore

    trust = TrustStore()
    trust.add_path(str(CERT))
    return trust


def _endian(skel: skeleton.Skeleton) -> insn.Endian:
    return "big" if skel.endian == "big" else "little"


# -------------------------------------------------------------------- audit


def test_audit_of_an_unsigned_mode_loader() -> None:
    a = scheme.audit(_load(COUNTER_V71))
    assert a.scheme == "loadtime"
    assert a.hash_check is None and not a.exclusivity_check
    assert a.mode == "unsigned"
    assert [(o.map, o.field) for o in a.overrides] == [
        ("counts", "max_entries"),
        ("data", "max_entries"),
        ("data", "initial_value"),
        ("bss", "max_entries"),
        ("bss", "initial_value"),
    ]
    assert a.override_maps == ("counts", "data", "bss")
    assert a.uses_copy_from_user
    assert a.baked_hash_matches is None and a.excl_hash_matches is None


@pytest.mark.parametrize("path", UNSIGNED, ids=_ids(UNSIGNED))
def test_every_unsigned_fixture_is_unsigned_mode(path: Path) -> None:
    skel = skeleton.load(path)
    a = scheme.audit(skel)
    assert a.hash_check is None
    if skel.maps:
        assert a.mode == "unsigned"
        assert {o.map for o in a.overrides if o.field == "max_entries"} == {
            m.name for m in skel.maps
        }
        with_images = {m.name for m in skel.maps if m.initial_value is not None}
        assert with_images <= {o.map for o in a.overrides if o.field == "initial_value"}


@pytest.mark.parametrize("path", SIGNED, ids=_ids(SIGNED))
def test_audit_of_a_bpftool_signed_loader(path: Path) -> None:
    skel = skeleton.load(path)
    a = scheme.audit(skel)
    assert a.scheme == "inloader" == scheme.detect_scheme(skel)
    block = a.hash_check
    assert block is not None
    slots = insn.decode(skel.insns, _endian(skel))
    assert block.start == 7 + slots[6].off
    assert (block.length, block.has_prefix, a.exclusivity_check) == (33, True, True)
    assert block.hash_insns == tuple(block.start + 5 + 3 + 7 * i for i in range(4))
    assert block.cleanup_targets == (7,) and a.cleanup_target == 7
    assert block.baked_hash == scheme.sha256(skel.data) and a.baked_hash_matches
    assert a.excl_hash_matches
    assert a.mode == "signed" and not a.overrides and not a.uses_copy_from_user


def _signed_fixture() -> skeleton.Skeleton:
    if not SIGNED:
        pytest.skip("no bpftool -S fixture generated yet")
    return skeleton.load(SIGNED[0])


def test_libbpf_170_shape_without_prefix_and_off_by_one() -> None:
    """libbpf v1.7.0: no exclusivity prefix (28 insns) and goto-cleanup landing on insn 8."""
    skel = _signed_fixture()
    endian = _endian(skel)
    block = scheme.audit(skel).hash_check
    assert block is not None
    no_prefix = insn.remove_range(
        skel.insns, block.start, 5, endian=endian, allow_entry_at_start=True
    )
    slots = insn.decode(no_prefix, endian)
    for i in range(4):
        jne = block.start + 6 + 7 * i
        slots[jne] = dataclasses.replace(slots[jne], off=slots[jne].off + 1)
    variant = dataclasses.replace(skel, insns=insn.encode(slots, endian))
    a = scheme.audit(variant)
    assert a.hash_check is not None
    assert (a.hash_check.length, a.hash_check.has_prefix, a.exclusivity_check) == (28, False, False)
    assert a.hash_check.cleanup_targets == (8,)
    assert a.baked_hash_matches
    converted, removed = scheme.convert_to_loadtime(variant)
    assert removed.count == 28 and not removed.has_prefix
    assert converted.insn_count == skel.insn_count - 33


def test_big_endian_loader_hash_is_read_in_target_order() -> None:
    skel = _signed_fixture()
    block = scheme.audit(skel).hash_check
    assert block is not None
    slots = insn.decode(skel.insns)
    digest = scheme.sha256(skel.data)
    for i, pc in enumerate(block.hash_insns):
        v = int.from_bytes(digest[8 * i : 8 * i + 8], "big")
        slots[pc] = dataclasses.replace(slots[pc], imm=_s32(v & 0xFFFFFFFF))
        slots[pc + 1] = dataclasses.replace(slots[pc + 1], imm=_s32(v >> 32))
    be = insn.encode(slots, "big")
    assert insn.detect_endian(be) == "big"
    variant = dataclasses.replace(skel, insns=be, endian="big", excl_hash=scheme.sha256(be))
    a = scheme.audit(variant)
    assert a.hash_check is not None and a.hash_check.baked_hash == digest
    assert a.baked_hash_matches and a.excl_hash_matches
    assert insn.disasm(be, "big") == insn.disasm(insn.encode(slots), "little")


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def test_signed_payload_per_scheme() -> None:
    skel = _load(COUNTER_V71)
    assert scheme.signed_payload(skel, "loadtime") == skel.insns + skel.data
    assert scheme.signed_payload(skel, "inloader") == skel.insns
    with pytest.raises(InputError) as exc:
        scheme.signed_payload(skel, "both")  # type: ignore[arg-type]
    assert exc.value.reason == "unknown scheme 'both'; use one of loadtime, inloader"


# ------------------------------------------------------------------ signing


def _openssl_verify(tmp_path: Path, payload: bytes, signature: bytes) -> None:
    (tmp_path / "payload.bin").write_bytes(payload)
    (tmp_path / "sig.der").write_bytes(signature)
    proc = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "sig.der"),
            "-content",
            str(tmp_path / "payload.bin"),
            "-certfile",
            str(CERT),
            "-CAfile",
            str(CERT),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Verification successful" in proc.stderr


def test_signing_an_unsigned_mode_loader_warns_naming_the_maps() -> None:
    skel = _load(COUNTER_V71)
    signer = _signer()
    text, report = scheme.sign_skeleton(skel, signer)
    assert report.scheme == "loadtime" and report.converted is None
    assert report.override_maps == ("counts", "data", "bss")
    assert report.warnings == (
        "unsigned-mode loader: it takes map sizes and initial values from the caller's ctx, "
        "outside the signature, for: counts (max_entries), data (max_entries/initial_value), "
        "bss (max_entries/initial_value). Whoever builds the ctx can change them. Regenerate "
        "with bpftool -S (signed mode) to have the signature cover them.",
    )
    out = skeleton.parse(text)
    assert out.insns == skel.insns and out.data == skel.data
    with pytest.raises(InputError) as exc:
        scheme.sign_skeleton(skel, signer, strict=True)
    assert exc.value.reason == report.warnings[0] + " Refusing in strict mode."


@pytest.mark.parametrize("path", HEADERS, ids=_ids(HEADERS))
def test_every_fixture_signed_under_loadtime_verifies_with_openssl(
    path: Path, tmp_path: Path
) -> None:
    skel = skeleton.load(path)
    text, report = scheme.sign_skeleton(skel, _signer(), scheme="loadtime")
    out = skeleton.parse(text)
    assert out.signature is not None
    assert out.excl_hash == scheme.sha256(out.insns)
    assert report.payload_size == len(out.insns) + len(out.data)
    if scheme.audit(skel).hash_check is not None:
        assert report.converted is not None and report.converted.count == 33
        assert out.insn_count == skel.insn_count - 33
    _openssl_verify(tmp_path, out.insns + out.data, out.signature)
    verdict = offline.verify_skeleton(out, _trust())
    assert verdict.scheme == "loadtime" and verdict.loads and verdict.errno is None


@pytest.mark.parametrize("path", SIGNED, ids=_ids(SIGNED))
def test_resigning_a_bpftool_fixture_under_inloader_reproduces_it(path: Path) -> None:
    skel = skeleton.load(path)
    text, report = scheme.sign_skeleton(skel, _signer(), scheme="inloader")
    assert report.converted is None and report.payload_size == len(skel.insns)
    assert text == skeleton.read_text(path)


def test_inloader_needs_the_hash_block() -> None:
    with pytest.raises(InputError) as exc:
        scheme.sign_skeleton(_load(COUNTER_V71), _signer(), scheme="inloader")
    assert exc.value.reason == (
        "the inloader scheme needs a loader with the in-loader hash check (bpftool -S output); "
        "this one has none. Use the loadtime scheme."
    )


# ------------------------------------------------------------- verification


@pytest.mark.parametrize("path", SIGNED, ids=_ids(SIGNED))
def test_bpftool_signed_fixture_verifies_offline_under_inloader(path: Path) -> None:
    verdict = offline.verify_skeleton(skeleton.load(path), _trust(), kernel="6.18")
    assert verdict.scheme == "inloader" and verdict.kernel.name == "6.18"
    assert verdict.payload_size == len(skeleton.load(path).insns)


@pytest.mark.parametrize("path", SIGNED, ids=_ids(SIGNED))
def test_bpftool_signed_fixture_is_refused_by_a_loadtime_kernel(path: Path) -> None:
    """The 6.18 scheme's header as-is: Linux 7.x refuses it (the fd_array_cnt = 0 read)."""
    e = _reject(skeleton.load(path), _trust(), kernel="7.3")
    assert e.errno == errno.EACCES
    assert e.log == "signed program must bind maps via a continuous fd_array (fd_array_cnt)"
    assert e.reason.startswith(f"{e.log}: insn ") and e.reason.endswith(
        "past fd_array_cnt 0: a map the signature did not cover"
    )
    assert e.hint == (  # type: ignore[attr-defined]
        "a 6.18-style (in-loader) signed loader on a load-time kernel: its signature does not "
        "cover the maps it uses; convert it to the loadtime scheme, which signs the loader and "
        "its data together"
    )
    result = offline.check_skeleton(skeleton.load(path), _trust(), kernel="7.3")
    assert not result.loads and result.errno == errno.EACCES and result.scheme == "inloader"


def _flip(b: bytes, pos: int) -> bytes:
    return b[:pos] + bytes([b[pos] ^ 0x01]) + b[pos + 1 :]


def _reject(skel: skeleton.Skeleton, trust: Any, kernel: str = "7.3") -> VerificationError:
    with pytest.raises(VerificationError) as exc:
        offline.verify_skeleton(skel, trust, kernel=kernel)
    return exc.value


@functools.cache
def _signed_texts() -> tuple[tuple[str, str, str], ...]:
    """(fixture, scheme, signed header text) for every fixture under every scheme it takes."""
    out = []
    for path in HEADERS:
        skel = skeleton.load(path)
        text, _ = scheme.sign_skeleton(skel, _signer(), scheme="loadtime")
        out.append((path.name, "loadtime", text))
        if path in SIGNED:  # bpftool -S output, signed under the 6.18 scheme
            out.append((path.name, "inloader", skeleton.read_text(path)))
    return tuple(out)


def _tamper_text(text: str, blob: str, pos: int, mask: int) -> str:
    """Flip bits of one blob byte inside the header TEXT (the literal re-encoded)."""
    skel = skeleton.parse(text)
    assert skel.layout is not None
    span = skel.layout.blobs[blob]
    value = bytearray(skel.insns if blob == "insns" else skel.data)
    value[pos % len(value)] ^= mask
    return text[: span.start] + skeleton.render_literal(bytes(value)) + text[span.end :]


def test_every_fixture_is_covered_by_the_tamper_property() -> None:
    cases = {(name, sch) for name, sch, _ in _signed_texts()}
    assert {name for name, _ in cases} == {p.name for p in HEADERS}
    assert {name for name, sch in cases if sch == "inloader"} == {p.name for p in SIGNED}


@settings(deadline=None, max_examples=50)
@given(
    case=st.integers(min_value=0, max_value=10_000),
    blob=st.sampled_from(["insns", "data"]),
    pos=st.integers(min_value=0, max_value=1 << 20),
    mask=st.integers(min_value=1, max_value=255),
)
def test_tampering_a_blob_in_the_header_text_gets_the_kernels_errno(
    case: int, blob: str, pos: int, mask: int
) -> None:
    """loadtime: data -> EKEYREJECTED, insns -> EACCES (the excl hash no longer matches,
    checked before the signature). inloader: insns -> EKEYREJECTED (the signature covers
    them), data -> the loader's run-time -EINVAL (its baked hash no longer matches).

    A flip that breaks the 6.18 hash-check block (or the insns up to it) leaves a loader
    without an in-loader check: it is judged as a load-time loader (EACCES), see
    test_breaking_the_hash_check_block_makes_a_loadtime_loader."""
    texts = _signed_texts()
    name, sch, text = texts[case % len(texts)]
    tampered = skeleton.parse(_tamper_text(text, blob, pos, mask), path=name)
    assert tampered.signature is not None
    if sch == "inloader" and scheme.audit(tampered).scheme == "loadtime":
        hc = scheme.audit(skeleton.parse(text)).hash_check
        assert hc is not None and blob == "insns"
        assert pos % len(tampered.insns) < (hc.start + hc.length) * insn.INSN_SIZE, name
        sch = "loadtime"
    e = _reject(tampered, _trust(), kernel="7.3" if sch == "loadtime" else "6.18")
    if sch == "loadtime" and blob == "data":
        assert e.errno == errno.EKEYREJECTED, name
    elif sch == "loadtime":
        assert e.errno == errno.EACCES, name
        assert e.reason.startswith("program's hash doesn't match map's excl_prog_hash"), name
    elif blob == "insns":
        assert e.errno == errno.EKEYREJECTED, name
    else:
        assert e.errno == errno.EINVAL, name
        assert re.fullmatch(
            "error returned by loader prog: SHA-256[(]data[)] [0-9a-f]{64} != the hash baked "
            "into the loader [0-9a-f]{64}",
            e.reason,
        ), (name, e.reason)


@pytest.mark.parametrize("path", SIGNED, ids=_ids(SIGNED))
def test_breaking_the_hash_check_block_makes_a_loadtime_loader(path: Path) -> None:
    text = skeleton.read_text(path)
    hc = scheme.audit(skeleton.parse(text)).hash_check
    assert hc is not None
    tampered = skeleton.parse(_tamper_text(text, "insns", hc.start * insn.INSN_SIZE, 0x01))
    assert scheme.audit(tampered).scheme == "loadtime"
    e = _reject(tampered, _trust())
    assert e.errno == errno.EACCES
    assert e.reason.startswith("program's hash doesn't match map's excl_prog_hash")


def test_loadtime_rules_beyond_blob_flips() -> None:
    skel = _load(COUNTER_V71)
    text, _ = scheme.sign_skeleton(skel, _signer())
    signed = skeleton.parse(text)
    trust = _trust()
    verdict = offline.verify_skeleton(signed, trust)
    # it verifies, but the verdict says what the signature does not cover
    assert verdict.notes == (scheme.override_warning(scheme.audit(signed)),)
    tampered = _flip(signed.insns, len(signed.insns) // 2)
    # with the excl hash forged to match, the signature check rejects it
    forged = dataclasses.replace(signed, insns=tampered, excl_hash=scheme.sha256(tampered))
    assert _reject(forged, trust).errno == errno.EKEYREJECTED
    e = _reject(dataclasses.replace(signed, excl_hash=None), trust)
    assert e.errno == errno.EPERM
    assert e.reason.startswith("signed program metadata map '__loader.map' must be exclusive")


def test_verify_refuses_an_unsigned_header() -> None:
    with pytest.raises(InputError) as exc:
        offline.verify_skeleton(_load(COUNTER_V71), _trust())
    assert exc.value.reason == "not signed: the header has no opts_sig; sign it with `bpfsign sign`"


# ------------------------------------------------------- hostile loaders, big payloads


@pytest.mark.parametrize("off", [-32768, -100, -8, 32767, 30000])
def test_a_cleanup_jump_far_outside_the_program_is_no_hash_block(off: int) -> None:
    """Insn 6's goto names the in-loader check; pointing it anywhere must not crash."""
    skel = _load(SKEL_DIR / "counter.signed.lskel.h")
    ins = bytearray(skel.insns)
    ins[6 * 8 + 2 : 6 * 8 + 4] = off.to_bytes(2, "little", signed=True)
    bad = dataclasses.replace(skel, insns=bytes(ins))
    a = scheme.audit(bad)
    assert a.hash_check is None and a.scheme == "loadtime"
    with pytest.raises(InputError) as exc:
        scheme.convert_to_loadtime(bad)
    assert exc.value.reason.startswith("no in-loader hash check found after the cleanup block")


def test_signing_refuses_a_payload_the_kernel_would_refuse() -> None:
    skel = _load(SKEL_DIR / "counter.lskel.h")
    limit = skeleton.MAX_PAYLOAD
    assert limit == 16_777_215
    fits = (limit - len(skel.insns)) // 8 * 8
    over = dataclasses.replace(skel, data=bytes(fits + 8))
    with pytest.raises(skeleton.TooLargeError) as exc:
        scheme.sign(over, _signer())
    e = exc.value
    assert (e.insns_size, e.data_size, e.errno) == (len(skel.insns), fits + 8, errno.E2BIG)
    assert str(e) == (
        f"{skel.path}: E2BIG: loader insns ({len(skel.insns)} bytes) + data ({fits + 8} bytes) = "
        f"{len(skel.insns) + fits + 8} bytes, over the kernel's 16777215-byte limit for one "
        "signed load"
    )
    signed, report = scheme.sign(dataclasses.replace(skel, data=bytes(fits)), _signer())
    assert report.payload_size == len(skel.insns) + fits <= limit
    assert signed.signature is not None and signed.excl_hash == scheme.sha256(skel.insns)


def test_sign_returns_the_model_that_sign_skeleton_renders() -> None:
    skel = _load(SKEL_DIR / "counter.signed.lskel.h")  # -S: converted while signing
    signed, report = scheme.sign(skel, _signer())
    text, _ = scheme.sign_skeleton(skel, _signer())
    assert report.converted is not None
    again = skeleton.parse(signed.render())
    assert again.insns == signed.insns and again.signature == signed.signature
    # RSA PKCS#1 v1.5 is deterministic: both calls sign the same bytes the same way
    assert text == signed.render()
