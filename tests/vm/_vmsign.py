"""Signatures for the guest cases: bpfsign's CMS for the normal shape, and the
real ``openssl cms`` for the shapes bpfsign refuses to make (sMIMECapabilities
attributes, RSA-PSS padding)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


def bpfsign_sign(payload: bytes, signer: Any, *, digest: str = "sha256") -> bytes:
    from bpfsign.crypto import cms

    return cms.sign(payload, signer, digest=digest)  # type: ignore[arg-type]  # str -> HashName


def _key_files(pair: Any, workdir: Path, name: str) -> tuple[Path, Path]:
    from bpfsign.crypto import keys

    key, cert = workdir / f"{name}.key.pem", workdir / f"{name}.crt.pem"
    if not key.exists():
        keys.write_key(key, pair.key)
        keys.write_cert(cert, pair.cert_der)
    return key, cert


def openssl_sign(payload: bytes, pair: Any, workdir: Path, name: str, *flags: str) -> bytes:
    """``openssl cms -sign -binary -outform DER -md sha256 FLAGS`` over ``payload``."""
    key, cert = _key_files(pair, workdir, name)
    data = workdir / "payload.bin"
    data.write_bytes(payload)
    proc = subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
         "-in", str(data), "-signer", str(cert), "-inkey", str(key), *flags],
        capture_output=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(
            f"openssl cms -sign {' '.join(flags)}: {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout
