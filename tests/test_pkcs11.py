"""PKCS#11 signing against a real SoftHSM2 token: RSA byte-identical to the file key, ECDSA
P-256/P-384 verified offline and by openssl, keygen --pkcs11, and every error's exact text."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from _softhsm import MODULE, PIN, Token, softhsm_missing, softhsm_token
from bpfsign import cli as _cli
from bpfsign.crypto import keys
from bpfsign.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"
SKEL = FIXTURES / "skel" / "counter.v71.lskel.h"
SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "bpfsign-test"

_missing = softhsm_missing()
if _missing is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the PKCS#11 tests: {_missing}")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bpfsign", *argv], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    old = os.environ.get("SOFTHSM2_CONF")
    tok = softhsm_token(tmp_path_factory.mktemp("softhsm"), TOKEN)
    yield tok
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture(scope="module")
def imported(token: Token, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An RSA-2048 file key and certificate, the same key imported into the token (label
    ``imported``, id 0102, no certificate object)."""
    d = tmp_path_factory.mktemp("imported")
    pair = keys.generate("rsa", bits=2048, subject="pkcs11 imported")
    keys.write_key(d / "k.key", pair.key)
    keys.write_cert(d / "k.crt", pair.cert_der)
    token.import_key(d / "k.key", "imported", "0102")
    return d / "k.key", d / "k.crt"


@pytest.fixture(scope="module")
def generated(
    token: Token, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, Path]]:
    """keygen --pkcs11 for rsa, P-256 and P-384: name -> (URI, certificate file)."""
    d = tmp_path_factory.mktemp("generated")
    out = {}
    for name, args in (
        ("rsa", ("--type", "rsa", "--bits", "2048")),
        ("p256", ("--type", "ec", "--curve", "P-256")),
        ("p384", ("--type", "ec", "--curve", "P-384")),
    ):
        uri = token.uri(f"gen-{name}")
        code, outp, err = run("keygen", "--pkcs11", uri, *args, "--subject", f"hsm {name}",
                              "--cert", str(d / f"{name}.crt"))  # fmt: skip
        assert (code, err) == (0, ""), err
        assert PIN not in outp
        out[name] = (uri, d / f"{name}.crt")
    return out


def _copy_skel(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / f"{name}.lskel.h"
    shutil.copy(SKEL, dst)
    return dst


# -- RSA: byte-identical to the file key ----------------------------------------------


def test_rsa_token_signature_is_byte_identical_to_the_file_key(
    token: Token, imported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = imported
    by_file, by_token = _copy_skel(tmp_path, "file"), _copy_skel(tmp_path, "token")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(1000))
    code, _, err = call(capsys, "sign", "--key", str(key), "--cert", str(cert), str(by_file))
    assert code == 0, err
    file_sig = tmp_path / "file.p7s"
    assert call(capsys, "sign", "--key", str(key), "--cert", str(cert), "-o", str(file_sig),
                str(blob))[0] == 0  # fmt: skip
    uri = token.uri("imported", extra=";id=%01%02")
    for digest in ("sha256", "sha384", "sha512"):
        code, out, err = call(capsys, "sign", "--key", uri, "--cert", str(cert), "--digest",
                              digest, "-o", str(tmp_path / f"token-{digest}.p7s"), str(blob))  # fmt: skip
        assert code == 0, err
        code, out, err = call(capsys, "sign", "--key", str(key), "--cert", str(cert), "--digest",
                              digest, "-o", str(tmp_path / f"file-{digest}.p7s"), str(blob))  # fmt: skip
        assert code == 0, err
        assert (tmp_path / f"token-{digest}.p7s").read_bytes() == (
            tmp_path / f"file-{digest}.p7s"
        ).read_bytes()
    code, out, err = call(capsys, "sign", "--key", uri, "--cert", str(cert), str(by_token))
    assert code == 0, err
    assert by_token.read_bytes() == by_file.read_bytes()
    assert PIN not in out + err
    code, out, err = call(capsys, "verify", "--trust", str(cert), str(by_token))
    assert code == 0, err


# -- ECDSA and keygen --pkcs11 -------------------------------------------------------------


@pytest.mark.parametrize("name", ["rsa", "p256", "p384"])
def test_token_keys_sign_skeletons_and_blobs_that_verify(
    generated: dict[str, tuple[str, Path]], name: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """No --cert: the certificate comes from the token; bpfsign verify and openssl agree."""
    uri, cert = generated[name]
    skel = _copy_skel(tmp_path, name)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"payload " * 100)
    code, out, err = call(capsys, "sign", "--key", uri, str(skel), str(blob))
    assert code == 0, err
    assert PIN not in out + err
    code, out, err = call(capsys, "verify", "--trust", str(cert), str(skel), str(blob))
    assert code == 0, err
    algorithm = {"rsa": "rsaEncryption", "p256": "ecdsa-with-SHA256", "p384": "ecdsa-with-SHA256"}
    assert f"OK {blob}: signer CN=hsm {name}, sha256, {algorithm[name]}" in out
    proc = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", f"{blob}.p7s",
         "-content", str(blob), "-certfile", str(cert), "-nointern", "-noverify",
         "-out", "/dev/null"], capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_keygen_pkcs11_certificate(token: Token, generated: dict[str, tuple[str, Path]]) -> None:
    """The token-signed self-signed certificate carries what the kernel needs, is stored
    in the token beside the key (id = SKID), and the private key never leaves the token."""
    import pkcs11

    lib = pkcs11.lib(MODULE)
    with lib.get_token(token_label=TOKEN).open(user_pin=PIN) as session:
        for name, (_, cert_path) in generated.items():
            cert_der = keys.load_certificate(cert_path)
            cert = x509.load_der_x509_certificate(cert_der)
            cert.verify_directly_issued_by(cert)
            skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            assert (
                skid.digest == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
            )
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
            assert bc.critical and bc.value.ca is False
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
            assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
            assert cert.subject.rfc4514_string() == f"CN=hsm {name}"
            (stored,) = session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                                             pkcs11.Attribute.LABEL: f"gen-{name}"})  # fmt: skip
            assert bytes(stored[pkcs11.Attribute.VALUE]) == cert_der
            assert bytes(stored[pkcs11.Attribute.ID]) == skid.digest
            priv = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=f"gen-{name}")
            assert bytes(priv[pkcs11.Attribute.ID]) == skid.digest
            assert priv[pkcs11.Attribute.SENSITIVE] is True
            assert priv[pkcs11.Attribute.EXTRACTABLE] is False
            assert priv[pkcs11.Attribute.NEVER_EXTRACTABLE] is True


def test_keygen_pkcs11_json_and_existing_label(
    token: Token, generated: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    uri = token.uri("gen-json", extra=";id=%AA%BB")
    code, out, err = run("keygen", "--pkcs11", uri, "--type", "ec", "--json")
    assert (code, err) == (0, "")
    import json

    record = json.loads(out)
    assert record["pkcs11"] == f"pkcs11:token={TOKEN};object=gen-json;id=aabb"
    assert record["cert"] is None and record["curve"] == "P-256"
    code, out, err = run("keygen", "--pkcs11", generated["p256"][0], "--type", "ec")
    assert (code, out) == (2, "")
    assert err == (
        f"bpfsign: PKCS#11 token '{TOKEN}' already holds 3 object(s) object=gen-p256; "
        "choose another object= label\n"
    )
    code, out, err = run("keygen", "--pkcs11", uri, "--key", str(tmp_path / "k.key"))
    assert err == "bpfsign: --key and --pkcs11 exclude each other: the key stays in the token\n"


# -- PINs -----------------------------------------------------------------------------


def test_pin_sources(token: Token, generated: dict[str, tuple[str, Path]], tmp_path: Path) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"x")
    bare = token.uri("gen-p256", pin=False)
    ok = [
        (f"{bare}?pin-value={PIN}", (), {}),
        (f"{bare}?pin-source={token.pin_file}", (), {}),
        (f"{bare}?pin-source=file://{token.pin_file}", (), {}),
        (bare, ("--pin-env", "MY_PIN"), {"MY_PIN": PIN}),
        (bare, (), {"BPFSIGN_PKCS11_PIN": PIN}),
    ]
    for uri, extra, env in ok:
        code, out, err = run("sign", "--key", uri, *extra, str(blob), env=env)
        assert (code, err) == (0, ""), (uri, extra)
        assert PIN not in out
    env = {"BPFSIGN_PKCS11_PIN": ""}
    cases = [
        (bare, (), {},
         f"the PKCS#11 token token={TOKEN} needs its user PIN: give pin-source= in the URI, "
         "name an environment variable that holds it (--pin-env NAME) or set "
         "$BPFSIGN_PKCS11_PIN, or run on a terminal to be prompted"),
        (bare, ("--pin-env", "NOPE"), {},
         "environment variable 'NOPE' (the token PIN) is not set"),
        (f"{bare}?pin-source={tmp_path / 'none'}", (), {},
         f"{tmp_path / 'none'}: PIN file not found"),
        (f"{bare}?pin-value=0000", (), {}, f"wrong PIN for PKCS#11 token '{TOKEN}'"),
        (bare, (), env, f"wrong PIN for PKCS#11 token '{TOKEN}'"),  # an empty PIN
        (f"{bare}?pin-value=%FF", (), {}, "the PIN from the URI's pin-value is not UTF-8 text"),
        (f"{bare}?pin-value=1&pin-source=/x", (), {},
         "the PKCS#11 URI gives both pin-value and pin-source; keep one"),
        (f"{bare}?pin-source=https://example.invalid/pin", (), {},
         "unsupported pin-source 'https://example.invalid/pin': give a file: URI or a path "
         "to a file"),
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if k != "BPFSIGN_PKCS11_PIN"}
    for uri, extra, extra_env, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "bpfsign", "sign", "--key", uri, *extra, str(blob)],
            capture_output=True, text=True, check=False, env={**clean, **extra_env},
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"bpfsign: {message}\n"), uri
        assert PIN not in proc.stderr


# -- every other error path ----------------------------------------------------------------


def test_errors_name_what_is_wrong(
    token: Token,
    imported: tuple[Path, Path],
    generated: dict[str, tuple[str, Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"x")
    pin = f"pin-source={token.pin_file}"
    cases = [
        (f"pkcs11:token=nope;object=x?{pin}", (),
         f"no PKCS#11 token matches token=nope in module {MODULE} (initialised tokens: "
         f"'{TOKEN}')"),
        (f"pkcs11:token={TOKEN};object=nope?{pin}", (),
         f"no private key object=nope in PKCS#11 token '{TOKEN}'"),
        (f"pkcs11:token={TOKEN};id=%99?{pin}", (),
         f"no private key id=99 in PKCS#11 token '{TOKEN}'"),
        (f"pkcs11:token={TOKEN};object=imported?{pin}", (),
         f"no certificate object=imported in PKCS#11 token '{TOKEN}': give the certificate "
         "file (--cert FILE), or store one with the key's label and id, as key generation in "
         "the token does (`bpfsign keygen --pkcs11`)"),
        (f"pkcs11:token={TOKEN};object=imported?{pin}", ("--cert", str(generated["rsa"][1])),
         f"the private key object=imported in PKCS#11 token '{TOKEN}' does not match the "
         "certificate's public key (certificate subject CN=hsm rsa); pass the certificate "
         "that belongs to it"),
        (f"pkcs11:token={TOKEN};object=imported?{pin}", ("--cert", str(generated["p256"][1])),
         f"the private key object=imported in PKCS#11 token '{TOKEN}' (RSA) does not match "
         "the certificate's public key (certificate subject CN=hsm p256)"),
        (f"pkcs11:token={TOKEN};object=x?module-path=/nonexistent.so&{pin}", (),
         "cannot load the PKCS#11 module /nonexistent.so: file not found (set module-path= in "
         "the URI or $BPFSIGN_PKCS11_MODULE; Debian's SoftHSM2 is "
         "/usr/lib/softhsm/libsofthsm2.so, package softhsm2)"),
        (f"pkcs11:token={TOKEN};object=x?module-path=/etc/passwd&{pin}", (),
         "cannot load the PKCS#11 module /etc/passwd: not a loadable PKCS#11 library"),
        (f"pkcs11:token={TOKEN};object=x?module-name=softhsm2&{pin}", (),
         "the PKCS#11 URI attribute module-name is not supported; give "
         "module-path=/path/to/module.so"),
        (f"pkcs11:token={TOKEN};objet=x?{pin}", (),
         "unknown PKCS#11 URI path attribute 'objet'; use id, library-description, "
         "library-manufacturer, library-version, manufacturer, model, object, serial, "
         "slot-description, slot-id, slot-manufacturer, token, type"),
        (f"pkcs11:token={TOKEN}?{pin}", (),
         f"the PKCS#11 URI pkcs11:token={TOKEN} names no key: add object=LABEL and/or id=%XX…"),
        (f"pkcs11:token={TOKEN};object=gen-rsa;type=cert?{pin}", (),
         f"the PKCS#11 URI pkcs11:token={TOKEN};object=gen-rsa;type=cert has type=cert; a "
         "signing key is type=private"),
        (f"pkcs11:token={TOKEN};object=gen-rsa?{pin}", ("--passphrase-env", "X"),
         "--passphrase-file/--passphrase-env are for key files; a token's PIN comes from the "
         "URI (pin-source=, pin-value=), --pin-env NAME, $BPFSIGN_PKCS11_PIN or a prompt"),
        (str(imported[0]), ("--pin-env", "X", "--cert", str(imported[1])),
         "--pin-env is for pkcs11: URIs; a key file takes --passphrase-env"),
    ]  # fmt: skip
    for uri, extra, message in cases:
        code, out, err = call(capsys, "sign", "--key", uri, *extra, str(blob))
        assert (code, out, err) == (2, "", f"bpfsign: {message}\n"), uri
        assert not Path(f"{blob}.p7s").exists()


def test_missing_binding_says_how_to_install(tmp_path: Path, token: Token) -> None:
    """A real interpreter without site-packages: python-pkcs11 is not importable there."""
    blob = tmp_path / "b.bin"
    blob.write_bytes(b"x")
    code = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); from bpfsign.cli import main; "
        f"sys.exit(main(['sign', '--key', {token.uri('gen-rsa')!r}, {str(blob)!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", "bpfsign: PKCS#11 support is not installed: pip install 'bpfsign[pkcs11]'\n",
    )  # fmt: skip


def test_signer_repr_and_library_use(token: Token, generated: dict[str, tuple[str, Path]]) -> None:
    from bpfsign.crypto import cms, pkcs11
    from bpfsign.crypto.signer import Signer

    uri = token.uri("gen-p384")
    with pkcs11.Pkcs11Signer.open(uri) as signer:
        assert isinstance(signer, Signer)
        assert signer.key_type == "ec"
        text = repr(signer)
        assert text.startswith(f"Pkcs11Signer(token='{TOKEN}', object=gen-p384, key_type='ec'")
        assert PIN not in text and str(token.pin_file) not in text
        sig = cms.sign(b"payload", signer, digest="sha384")
        assert cms.parse_signed_data(sig).signer_infos[0].signature_algorithm.name == (
            "ecdsa-with-SHA384"
        )
        with pytest.raises(InputError) as info:
            signer.sign_digest(hashlib.sha256(b"x").digest(), "sha384")
        assert str(info.value) == "sha384 digest must be 48 bytes, got 32"
    assert str(pkcs11.parse_uri(f"pkcs11:token=a;object=b;id=%01?pin-value={PIN}")) == (
        "pkcs11:token=a;object=b;id=01"
    )


def test_pin_prompt_on_a_terminal(
    token: Token, generated: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    """No PIN in the URI or the environment, stdin a real pseudo-terminal: prompt, no echo."""
    import pty

    blob = tmp_path / "b.bin"
    blob.write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if k != "BPFSIGN_PKCS11_PIN"}
    argv = [sys.executable, "-m", "bpfsign", "sign", "--key", token.uri("gen-rsa", pin=False),
            str(blob)]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, argv, env)
    seen = b""
    while b"PIN for PKCS#11 token" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, PIN.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert f"PIN for PKCS#11 token token={TOKEN}: ".encode() in seen
    assert PIN.encode() not in seen
    assert Path(f"{blob}.p7s").exists()
