"""Key-file hygiene: owner-only permissions, passphrases from file/env/prompt, and a wrong
passphrase reported as one every time (decided from the key's structure, not pyca's text)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bpfsign import cli as _cli
from bpfsign.crypto import keys
from bpfsign.errors import InputError

ENCRYPTED_HINT = (  # as the CLI says it: the library's advice, then the flags
    "private key is encrypted; give its passphrase (--passphrase-file F, --passphrase-env NAME "
    "or $BPFSIGN_KEY_PASSPHRASE, or a terminal prompt)"
)
NOT_A_KEY = "not a private key (expected PEM or DER: PKCS#8, PKCS#1 RSA or SEC1 EC)"


def call(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = _cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def pair() -> keys.KeyPair:
    return keys.generate("ec", curve="P-256", subject="hygiene")


@pytest.fixture(scope="module")
def encrypted(
    tmp_path_factory: pytest.TempPathFactory, pair: keys.KeyPair
) -> dict[str, tuple[Path, Path]]:
    """Encrypted forms of one key (passphrase s3cret): name -> (key, cert)."""
    d = tmp_path_factory.mktemp("enc")
    plain = d / "plain.key"
    keys.write_key(plain, pair.key)
    cert = d / "k.crt"
    keys.write_cert(cert, pair.cert_der)
    forms = {
        "pkcs8-pem": ("pkey", "-in", str(plain), "-aes256", "-passout", "pass:s3cret"),
        "pkcs8-der": (
            "pkcs8",
            "-topk8",
            "-in",
            str(plain),
            "-outform",
            "DER",
            "-v2",
            "aes-128-cbc",
            "-passout",
            "pass:s3cret",
        ),
        "sec1-pem-proc-type": ("ec", "-in", str(plain), "-aes128", "-passout", "pass:s3cret"),
    }
    out: dict[str, tuple[Path, Path]] = {}
    for name, args in forms.items():
        path = d / f"{name}.key"
        openssl(*args, "-out", str(path))
        path.chmod(0o600)
        out[name] = (path, cert)
    return out


# -- structure, not exception text ---------------------------------------------------


def test_is_encrypted_key_reads_the_structure(
    encrypted: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    for path, _ in encrypted.values():
        assert keys.is_encrypted_key(path.read_bytes()), path
    assert encrypted["sec1-pem-proc-type"][0].read_bytes().splitlines()[1] == (
        b"Proc-Type: 4,ENCRYPTED"
    )
    for key in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP384R1())):
        for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
            for fmt in (
                serialization.PrivateFormat.PKCS8,
                serialization.PrivateFormat.TraditionalOpenSSL,
            ):
                data = key.private_bytes(encoding, fmt, serialization.NoEncryption())
                assert not keys.is_encrypted_key(data), (encoding, fmt)
    assert not keys.is_encrypted_key(b"")
    assert not keys.is_encrypted_key(os.urandom(64))


@pytest.mark.parametrize("form", ["pkcs8-pem", "pkcs8-der", "sec1-pem-proc-type"])
def test_500_random_wrong_passphrases_all_say_wrong_passphrase(
    encrypted: dict[str, tuple[Path, Path]], form: str
) -> None:
    """CBC decryption under a wrong key passes the padding check ~1 time in 256; the
    garbage that then fails to parse used to be reported as "not a private key"."""
    path = encrypted[form][0]
    for _ in range(500):
        wrong = os.urandom(12).hex().encode()
        with pytest.raises(InputError) as info:
            keys.load_private_key(path, password=wrong)
        assert str(info.value) == f"wrong passphrase for {path}"
        assert info.value.path == str(path)


def test_a_padding_collision_is_a_wrong_passphrase(
    encrypted: dict[str, tuple[Path, Path]],
) -> None:
    """Find a wrong passphrase whose decryption passes the padding check (pyca then fails
    while parsing, not while decrypting): it must still be a wrong passphrase."""
    path = encrypted["sec1-pem-proc-type"][0]
    data = path.read_bytes()
    for i in range(20000):
        wrong = f"wrong-{i}".encode()
        try:
            serialization.load_pem_private_key(data, password=wrong)
        except ValueError as exc:
            if "incorrect password" not in str(exc).lower():  # found the 1-in-256 case
                break
    else:
        pytest.fail("no padding collision in 20000 tries")
    with pytest.raises(InputError) as info:
        keys.load_private_key(path, password=wrong)
    assert str(info.value) == f"wrong passphrase for {path}"


def test_right_passphrase_loads_every_form(
    encrypted: dict[str, tuple[Path, Path]], pair: keys.KeyPair
) -> None:
    want = pair.key.private_numbers()
    for path, _ in encrypted.values():
        loaded = keys.load_private_key(path, password=b"s3cret")
        assert loaded.private_numbers() == want
        asked: list[int] = []

        def ask(asked: list[int] = asked) -> bytes:
            asked.append(1)
            return b"s3cret"

        keys.load_private_key(path, password=ask)
        assert asked == [1]


def test_passphrase_function_is_not_called_for_a_plain_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keys.write_key(path, keys.generate("ec").key)

    def never() -> bytes:
        raise AssertionError("asked for a passphrase of an unencrypted key")

    keys.load_private_key(path, password=never)
    with pytest.raises(InputError) as info:
        keys.load_private_key(path, password=b"x")
    assert str(info.value) == (
        f"{path}: a passphrase was given but the private key is not encrypted; drop the passphrase"
    )


# -- permissions -----------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444])
def test_group_or_world_readable_key_is_refused(
    tmp_path: Path, pair: keys.KeyPair, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    key, cert = tmp_path / "k.key", tmp_path / "k.crt"
    keys.write_key(key, pair.key)
    keys.write_cert(cert, pair.cert_der)
    key.chmod(mode)
    (tmp_path / "p.bin").write_bytes(b"payload")
    argv = ("sign", "--key", str(key), "--cert", str(cert), str(tmp_path / "p.bin"))
    code, out, err = call(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == (
        f"bpfsign: {key}: private key file is readable by its group or others (mode "
        f"{mode:04o}); run `chmod 600 {key}`, or allow insecure key permissions "
        "(--insecure-key-permissions) to use it anyway\n"
    )
    assert not (tmp_path / "p.bin.p7s").exists()
    code, out, err = call(capsys, *argv, "--insecure-key-permissions")
    assert (code, err) == (0, "")
    assert (tmp_path / "p.bin.p7s").exists()
    with pytest.raises(InputError):
        keys.load_private_key(key, check_permissions=True)
    keys.load_private_key(key)  # the library checks only when asked


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o620, 0o602])
def test_owner_only_readable_key_is_accepted(tmp_path: Path, pair: keys.KeyPair, mode: int) -> None:
    key = tmp_path / "k.key"
    keys.write_key(key, pair.key)
    key.chmod(mode)
    keys.load_private_key(key, check_permissions=True)


# -- the CLI's passphrase sources ------------------------------------------------------


@pytest.mark.parametrize("form", ["pkcs8-pem", "pkcs8-der", "sec1-pem-proc-type"])
def test_cli_passphrase_file_and_env(
    encrypted: dict[str, tuple[Path, Path]],
    form: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, cert = encrypted[form]
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"payload")
    base = ("sign", "--key", str(key), "--cert", str(cert), str(payload))
    monkeypatch.delenv("BPFSIGN_KEY_PASSPHRASE", raising=False)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"s3cret\n")
    bad.write_bytes(b"not it\n")
    monkeypatch.setenv("MY_PASS", "s3cret")
    monkeypatch.setenv("MY_WRONG", "s3cre")
    for extra, want in (
        ((), (2, f"bpfsign: {key}: {ENCRYPTED_HINT}\n")),
        (("--passphrase-file", str(bad)), (2, f"bpfsign: wrong passphrase for {key}\n")),
        (("--passphrase-env", "MY_WRONG"), (2, f"bpfsign: wrong passphrase for {key}\n")),
        (
            ("--passphrase-env", "MY_UNSET"),
            (2, "bpfsign: environment variable 'MY_UNSET' (the key passphrase) is not set\n"),
        ),
        (
            ("--passphrase-file", str(tmp_path / "none")),
            (2, f"bpfsign: {tmp_path / 'none'}: passphrase file not found\n"),
        ),
        (("--passphrase-file", str(good)), (0, "")),
        (("--passphrase-env", "MY_PASS"), (0, "")),
    ):
        code, out, err = call(capsys, *base, *extra)
        assert (code, err) == want, extra
        assert "s3cret" not in out + err
    monkeypatch.setenv("BPFSIGN_KEY_PASSPHRASE", "s3cret")
    assert call(capsys, *base)[:3:2] == (0, "")


def test_cli_prompts_on_a_terminal(encrypted: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    """A real pseudo-terminal: the prompt is shown, the passphrase is not echoed."""
    import pty

    key, cert = encrypted["pkcs8-pem"]
    payload = tmp_path / "p.bin"
    payload.write_bytes(b"payload")
    env = {k: v for k, v in os.environ.items() if k != "BPFSIGN_KEY_PASSPHRASE"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin/stdout/stderr and the controlling terminal are the pty
        os.execve(sys.executable, [sys.executable, "-m", "bpfsign", "sign", "--key", str(key),
                                   "--cert", str(cert), str(payload)], env)  # fmt: skip
    seen = b""
    while b"Passphrase for" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, b"s3cret\n")
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
    assert f"Passphrase for {key}: ".encode() in seen
    assert b"s3cret" not in seen
    assert (tmp_path / "p.bin.p7s").exists()


def test_sign_keyring_id_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    """It changed nothing in the output (keyring_id is the loader's choice at load time)."""
    with pytest.raises(SystemExit) as info:
        _cli.main(["sign", "--key", "k", "--cert", "c", "--keyring-id", "-3", "f"])
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    assert err.endswith("bpfsign: error: unrecognized arguments: --keyring-id\n"), err


def test_not_a_key_is_still_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InputError) as info:
        keys.load_private_key(path, password=lambda: b"unused")
    assert str(info.value) == f"{path}: {NOT_A_KEY}"
