"""The keygen/sign/verify commands: exit codes, exact messages, --json shapes, openssl interop."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from bpfsign import cli as _cli
from bpfsign.cli import _common, sign, verify
from bpfsign.cli._options import from_namespace

KEY_MISSING = "file not found"


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in a real process: exit code, stdout, stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "bpfsign", *argv], capture_output=True, text=True, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process (fast): exit code, stdout, stderr."""
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pki")
    code, _, err = run(
        "keygen",
        "--bits",
        "2048",
        "--subject",
        "cli test",
        "--key",
        str(d / "k.key"),
        "--cert",
        str(d / "k.crt"),
    )
    assert code == 0, err
    return d / "k.key", d / "k.crt"


@pytest.fixture
def payloads(tmp_path: Path) -> list[Path]:
    files = []
    for i in range(3):
        f = tmp_path / f"prog{i}.bin"
        f.write_bytes(bytes([i]) * (100 + i))
        files.append(f)
    return files


def openssl_verify(payload: Path, sig: Path, cert: Path) -> subprocess.CompletedProcess[bytes]:
    return openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        str(sig),
        "-content",
        str(payload),
        "-certfile",
        str(cert),
        "-nointern",
        "-noverify",
        "-out",
        "/dev/null",
    )


# -- keygen -------------------------------------------------------------------


def test_keygen_writes_key_0600_and_cert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = tmp_path / "a.key", tmp_path / "a.crt"
    code, out, err = call(
        capsys,
        "keygen",
        "--type",
        "ec",
        "--curve",
        "P-384",
        "--subject",
        "me",
        "--key",
        str(key),
        "--cert",
        str(cert),
        "--json",
    )
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert set(record) == {"ok", "key", "cert", "type", "bits", "curve", "subject", "skid", "days"}
    assert record["ok"] is True
    assert (record["type"], record["curve"], record["bits"]) == ("ec", "P-384", None)
    assert record["subject"] == "CN=me"
    assert len(record["skid"]) == 40
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = openssl("x509", "-in", str(cert), "-noout", "-text").stdout.decode()
    assert "ecdsa-with-SHA384" in text
    assert record["skid"].upper() in text.replace(":", "")


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, cert = tmp_path / "a.key", tmp_path / "a.crt"
    cert.write_text("keep me")
    code, out, err = call(capsys, "keygen", "--type", "ec", "--key", str(key), "--cert", str(cert))
    assert (code, out) == (2, "")
    assert err == f"bpfsign: {cert}: already exists; pass --force to overwrite it\n"
    assert cert.read_text() == "keep me"
    assert not key.exists()
    code, out, err = call(
        capsys, "keygen", "--type", "ec", "--key", str(key), "--cert", str(cert), "--force"
    )
    assert code == 0, err
    assert out.startswith(f"wrote {key} (ec P-256, mode 0600) and {cert} (CN=bpfsign, skid ")
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_keygen_bad_bits_is_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(
        capsys,
        "keygen",
        "--bits",
        "512",
        "--key",
        str(tmp_path / "k"),
        "--cert",
        str(tmp_path / "c"),
    )
    assert (code, out) == (2, "")
    assert err == "bpfsign: RSA key size 512 is out of range; use 2048..16384\n"


# -- sign ---------------------------------------------------------------------


def test_sign_writes_p7s_that_openssl_verifies(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = pki
    code, out, err = call(
        capsys, "sign", "--key", str(key), "--cert", str(cert), *map(str, payloads)
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    for payload, line in zip(payloads, lines, strict=True):
        sig = Path(f"{payload}.p7s")
        assert line == f"SIGNED {payload} -> {sig} ({sig.stat().st_size} bytes, sha256, skid)"
        verified = openssl_verify(payload, sig, cert)
        assert verified.returncode == 0, verified.stderr
        assert b"CMS Verification successful" in verified.stderr


def test_sign_is_byte_identical_to_openssl_keyid(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = pki
    out_path = payloads[0].with_suffix(".sig")
    code, _, err = call(
        capsys,
        "sign",
        "--key",
        str(key),
        "--cert",
        str(cert),
        "-o",
        str(out_path),
        str(payloads[0]),
    )
    assert code == 0, err
    theirs = openssl(
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-nocerts",
        "-keyid",
        "-nosmimecap",
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-in",
        str(payloads[0]),
        "-inkey",
        str(key),
        "-signer",
        str(cert),
    )
    assert theirs.returncode == 0
    assert out_path.read_bytes() == theirs.stdout


@pytest.mark.parametrize(("digest", "sid"), [("sha384", "issuer-serial"), ("sha512", "skid")])
def test_sign_options_json(
    pki: tuple[Path, Path],
    payloads: list[Path],
    capsys: pytest.CaptureFixture[str],
    digest: str,
    sid: str,
) -> None:
    key, cert = pki
    code, out, err = call(
        capsys,
        "sign",
        "--key",
        str(key),
        "--cert",
        str(cert),
        "--digest",
        digest,
        "--sid",
        sid,
        "--json",
        str(payloads[1]),
    )
    assert (code, err) == (0, "")
    sig = f"{payloads[1]}.p7s"
    assert json.loads(out) == [
        {
            "file": str(payloads[1]),
            "kind": "file",
            "ok": True,
            "signature": sig,
            "bytes": Path(sig).stat().st_size,
            "digest": digest,
            "sid": sid,
        }
    ]
    assert openssl_verify(payloads[1], Path(sig), cert).returncode == 0
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", sig).stdout.decode()
    assert ("subjectKeyIdentifier" in printed) == (sid == "skid")
    assert f"algorithm: {digest} " in printed


def test_sign_output_needs_one_file(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = pki
    code, out, err = call(
        capsys, "sign", "--key", str(key), "--cert", str(cert), "-o", "x", *map(str, payloads[:2])
    )
    assert (code, out, err) == (2, "", "bpfsign: -o/--output needs exactly one FILE\n")


def test_sign_missing_key_is_one_line(
    tmp_path: Path, pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.key"
    code, out, err = call(
        capsys, "sign", "--key", str(missing), "--cert", str(pki[1]), str(payloads[0])
    )
    assert (code, out, err) == (2, "", f"bpfsign: {missing}: {KEY_MISSING}\n")


def test_sign_key_cert_mismatch(
    tmp_path: Path, pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other_key = tmp_path / "o.key"
    code, _, _ = call(
        capsys, "keygen", "--type", "ec", "--key", str(other_key), "--cert", str(tmp_path / "o.crt")
    )
    assert code == 0
    code, out, err = call(
        capsys, "sign", "--key", str(other_key), "--cert", str(pki[1]), str(payloads[0])
    )
    assert (code, out) == (2, "")
    assert err == (
        f"bpfsign: {other_key}: the private key does not match the certificate's public key "
        "(certificate subject CN=cli test); pass the key and the certificate that were made "
        "together\n"
    )
    assert not Path(f"{payloads[0]}.p7s").exists()


def test_sign_missing_file_does_not_stop_the_others(
    tmp_path: Path, pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = pki
    missing = tmp_path / "gone.bin"
    code, out, err = call(
        capsys, "sign", "--key", str(key), "--cert", str(cert), str(missing), str(payloads[0])
    )
    assert code == 2
    assert err == f"bpfsign: {missing}: file not found\n"
    assert out.startswith(f"SIGNED {payloads[0]} -> ")
    assert Path(f"{payloads[0]}.p7s").exists()


# -- verify -------------------------------------------------------------------


@pytest.fixture
def signed(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> list[Path]:
    key, cert = pki
    code, _, err = call(capsys, "sign", "--key", str(key), "--cert", str(cert), *map(str, payloads))
    assert code == 0, err
    return payloads


def test_verify_ok(
    pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(capsys, "verify", "--trust", str(pki[1]), *map(str, signed))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"OK {f}: signer CN=cli test, sha256, rsaEncryption" for f in signed
    ]


def test_verify_sig_option_and_openssl_signature(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = pki
    sig = payloads[0].with_suffix(".der")
    made = openssl(
        "cms",
        "-sign",
        "-binary",
        "-noattr",
        "-nocerts",
        "-keyid",
        "-nosmimecap",
        "-md",
        "sha256",
        "-outform",
        "DER",
        "-in",
        str(payloads[0]),
        "-inkey",
        str(key),
        "-signer",
        str(cert),
        "-out",
        str(sig),
    )
    assert made.returncode == 0
    code, out, err = call(
        capsys, "verify", "--trust", str(cert), "--sig", str(sig), str(payloads[0])
    )
    assert (code, err) == (0, "")
    assert out == f"OK {payloads[0]}: signer CN=cli test, sha256, rsaEncryption\n"


def test_verify_tampered_is_rejected_with_errno(
    pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed[1].write_bytes(signed[1].read_bytes() + b"!")
    code, out, err = call(capsys, "verify", "--trust", str(pki[1]), *map(str, signed))
    assert (code, err) == (1, "")
    assert out.splitlines() == [  # accepted and rejected files on the same stream, in order
        f"OK {signed[0]}: signer CN=cli test, sha256, rsaEncryption",
        f"REJECTED {signed[1]}: kernel 7.3 would refuse it: EKEYREJECTED (129): signature "
        "verification failed: -129",
        f"  why: PKCS#7 over the file ({len(signed[1].read_bytes())} bytes): signature does not "
        "verify with the trusted key 'CN=cli test' (RSA-2048): the payload or the signature was "
        "changed after signing, or it was signed over different bytes",
        "  fix: the signature does not match the loader and its data (tampered or wrong scheme): "
        "re-sign it with `bpfsign sign`",
        f"OK {signed[2]}: signer CN=cli test, sha256, rsaEncryption",
    ]


def test_verify_json_shapes(
    pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed[0].write_bytes(b"tampered")
    code, out, err = call(capsys, "verify", "--json", "--trust", str(pki[1]), *map(str, signed[:2]))
    assert (code, err) == (1, "")
    rejected, ok = json.loads(out)
    assert rejected["ok"] is False
    assert (rejected["errno"], rejected["errno_name"]) == (129, "EKEYREJECTED")
    assert rejected["file"] == str(signed[0])
    assert rejected["signature"] == f"{signed[0]}.p7s"
    assert rejected["message"]
    assert rejected["error"] is None and rejected["verdict"] == "REJECTED"
    assert rejected["log"] == "signature verification failed: -129"
    assert ok["ok"] is True and ok["verdict"] == "OK" and ok["errno"] is None
    assert ok["file"] == str(signed[1])
    assert set(ok) == set(rejected) == set(verify.RECORD_KEYS)  # one shape for every outcome
    who = ok["signer"]
    assert set(who) == {
        "signer_subject",
        "skid",
        "issuer",
        "serial",
        "digest_algorithm",
        "signature_algorithm",
        "key_description",
        "keyring",
        "certificate_sha256",
        "signer_index",
        "warnings",
    }
    assert who["signer_subject"] == who["issuer"] == "CN=cli test"
    assert (who["digest_algorithm"], who["signature_algorithm"]) == ("sha256", "rsaEncryption")
    assert (who["key_description"], who["keyring"], ok["warnings"]) == ("RSA-2048", "session", [])
    assert len(who["skid"]) == 40


def test_verify_untrusted_signer_is_enokey(
    tmp_path: Path, pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.crt"
    code, _, _ = call(
        capsys, "keygen", "--type", "ec", "--key", str(tmp_path / "o.key"), "--cert", str(other)
    )
    assert code == 0
    code, out, err = call(capsys, "verify", "--trust", str(other), str(signed[0]))
    assert (code, err) == (1, "")
    skid = (
        x509.load_pem_x509_certificate(pki[1].read_bytes())
        .extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        .value.digest.hex()
    )
    assert out.splitlines()[:2] == [
        f"REJECTED {signed[0]}: kernel 7.3 would refuse it: ENOKEY (126): signature verification "
        "failed: -126",
        f"  why: PKCS#7 over the file (100 bytes): no key in the session keyring (keyring_id -3) "
        f"matches the signer (SKID {skid}): trust the signer's certificate (--trust CERT), or "
        "verify against the keyring that holds it",
    ]


def test_verify_garbage_signature_is_ebadmsg(
    pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(f"{signed[0]}.p7s").write_bytes(b"\x30\x03\x02\x01")
    code, out, err = call(capsys, "verify", "--trust", str(pki[1]), str(signed[0]))
    assert (code, err) == (1, "")
    assert out.splitlines()[1] == (
        "  why: PKCS#7 over the file (100 bytes): malformed PKCS#7 message: length 3 runs past the "
        "end of the enclosing element (2 bytes left) (at byte 0); the kernel's ASN.1 decoder "
        "rejects it; re-create the signature with bpfsign sign"
    )
    assert out.startswith(f"REJECTED {signed[0]}: kernel 7.3 would refuse it: EBADMSG (74): ")


def test_verify_missing_signature_is_input_error(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(capsys, "verify", "--trust", str(pki[1]), str(payloads[0]))
    assert (code, out) == (2, "")
    assert err == (
        f"bpfsign: {payloads[0]}.p7s: no signature: file not found; pass --sig or sign it "
        "with `bpfsign sign`\n"
    )


def test_verify_sig_needs_one_file(
    pki: tuple[Path, Path], payloads: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(
        capsys, "verify", "--trust", str(pki[1]), "--sig", "x.p7s", *map(str, payloads[:2])
    )
    assert (code, out) == (2, "")
    assert err == "bpfsign: --sig needs exactly one FILE (without it, FILE.p7s is used)\n"


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _cli.main(["verify", "somefile"])
    assert info.value.code == 2
    assert "the following arguments are required: --trust" in capsys.readouterr().err


# -- no tracebacks, in a real process -------------------------------------------


def test_garbage_inputs_give_one_line_no_traceback(tmp_path: Path, pki: tuple[Path, Path]) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(os.urandom(64))
    garbage.chmod(0o600)  # a key file: owner-only, so that its content is what gets judged
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"x")
    cases = [
        (
            ("sign", "--key", str(garbage), "--cert", str(pki[1]), str(payload)),
            f"bpfsign: {garbage}: not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)\n",
        ),
        (
            ("sign", "--key", str(pki[0]), "--cert", str(garbage), str(payload)),
            f"bpfsign: {garbage}: not an X.509 certificate (expected PEM or DER)\n",
        ),
        (
            ("verify", "--trust", str(pki[1]), str(tmp_path / "nothing")),
            f"bpfsign: {tmp_path / 'nothing'}: file not found\n",
        ),
    ]
    for argv, stderr in cases:
        code, out, err = run(*argv)
        assert "Traceback" not in err
        assert (code, out, err) == (2, "", stderr)


def test_garbage_trust_file_no_traceback(tmp_path: Path, signed: list[Path]) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"not a cert")
    code, out, err = run("verify", "--trust", str(garbage), str(signed[0]))
    assert "Traceback" not in err
    assert (code, out) == (2, "")
    assert err.startswith(f"bpfsign: {garbage}")
    assert err.count("\n") == 1


# -- light skeletons are handed on -----------------------------------------------


def test_skeleton_detection(tmp_path: Path) -> None:
    assert _common.is_skeleton("x/prog.lskel.h")
    assert not _common.is_skeleton("x/prog.h")
    assert _common.is_skeleton("x/prog.h", b"static int bpf_load_and_run(...)")
    assert not _common.is_skeleton("x/prog.bin", b"\0bpf_load_and_run")


@pytest.mark.parametrize(
    ("keyring_id", "code", "expect"),
    [
        ("0", 0, "OK"),  # --trust certs are placed in the builtin keyring and found there
        ("-4", 0, "OK"),
        ("-1", 1, "EINVAL (22): cannot resolve signing keyring with keyring_id -1"),
        ("7", 1, "EINVAL (22): cannot resolve signing keyring with keyring_id 7"),
    ],
)
def test_verify_keyring_id(
    pki: tuple[Path, Path],
    signed: list[Path],
    capsys: pytest.CaptureFixture[str],
    keyring_id: str,
    code: int,
    expect: str,
) -> None:
    got, out, err = call(
        capsys,
        "verify",
        "--trust",
        str(pki[1]),
        "--keyring",
        keyring_id,
        "--json",
        str(signed[0]),
    )
    assert got == code, err
    (record,) = json.loads(out)
    if expect == "OK":
        assert record["ok"] is True
        assert record["signer"]["keyring"] == {"0": "builtin", "-4": "user"}[keyring_id]
    else:
        assert record["ok"] is False
        assert f"{record['errno_name']} ({record['errno']}): {record['log']}" == expect


def test_sign_with_encrypted_key_reads_passphrase_from_env(
    tmp_path: Path,
    pki: tuple[Path, Path],
    payloads: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    encrypted = tmp_path / "enc.key"
    made = openssl(
        "pkey", "-in", str(pki[0]), "-aes256", "-passout", "pass:s3cret", "-out", str(encrypted)
    )
    assert made.returncode == 0, made.stderr
    monkeypatch.delenv(sign.PASSPHRASE_ENV, raising=False)
    argv = ("sign", "--key", str(encrypted), "--cert", str(pki[1]), str(payloads[0]))
    code, out, err = call(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == (
        f"bpfsign: {encrypted}: private key is encrypted; give its passphrase "
        "(--passphrase-file F, --passphrase-env NAME or $BPFSIGN_KEY_PASSPHRASE, or a terminal "
        "prompt)\n"
    )
    monkeypatch.setenv(sign.PASSPHRASE_ENV, "wrong")
    code, out, err = call(capsys, *argv)
    assert (code, out, err) == (
        2,
        "",
        f"bpfsign: wrong passphrase for {encrypted}\n",
    )
    monkeypatch.setenv(sign.PASSPHRASE_ENV, "s3cret")
    code, out, err = call(capsys, *argv)
    assert (code, err) == (0, "")
    assert "s3cret" not in out
    assert openssl_verify(payloads[0], Path(f"{payloads[0]}.p7s"), pki[1]).returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--trust", "c.crt", "a.bin"],
        ["--trust", "c.crt", "--trust", "dir", "a.bin", "b.bin", "--json"],
        ["a.bin", "--keyring", "-3", "--trust", "c.crt", "--sig", "a.sig"],
        ["--keyring", "0", "--keyring-id", "2", "--trust", "c", "x"],  # the old spelling, hidden
        ["--keyring", "bpf", "--kernel", "7.x-bpf-keyring", "--trust", "c", "x"],
        ["--sig", "s1", "--sig", "s2", "--trust", "c", "x"],
    ],
)
def test_verify_fast_parser_agrees_with_argparse(argv: list[str]) -> None:
    fast = verify.parse_fast(argv)
    assert fast is not None
    slow = from_namespace(verify.VerifyOptions, _cli.build_parser().parse_args(["verify", *argv]))
    assert fast == slow


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["a.bin"],  # --trust is required: argparse reports it
        ["--trust", "c.crt"],  # no FILE
        ["--trust=c.crt", "a.bin"],
        ["--tru", "c.crt", "a.bin"],  # an abbreviation argparse would accept
        ["--trust", "c.crt", "--", "-a.bin"],
        ["--trust", "c.crt", "-h"],
        ["--trust", "c.crt", "--kernel", "9.9", "a.bin"],
        ["--trust", "--json", "a.bin"],
        ["--trust", "c.crt", "a.bin", "--sig"],
    ],
)
def test_verify_fast_parser_defers_to_argparse(argv: list[str]) -> None:
    assert verify.parse_fast(argv) is None


def test_verify_fast_path_gives_the_same_verdicts(
    pki: tuple[Path, Path], signed: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed[2].write_bytes(b"changed")
    argv = ["--trust", str(pki[1]), "--json", *map(str, signed)]
    fast = verify.parse_fast(argv)
    assert fast is not None
    fast_code = _common.run(verify.handle, fast)
    fast_out, fast_err = capsys.readouterr()
    assert (fast_code, fast_out, fast_err) == call(capsys, "verify", *argv)
    assert fast_code == 1
