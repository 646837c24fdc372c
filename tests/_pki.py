"""Test PKI made with the openssl CLI: keys, self-signed certs, openssl CMS signatures.

Shared by several test modules; keys are generated once per test session into a
temporary directory (RSA-3072 generation takes a while), then reused.

    from _pki import pki, openssl_sign, openssl_verify
    p = pki("rsa2048")            # also: rsa3072, p256, p384, rsa-pss, noskid
    sig = openssl_sign(p, payload, "-noattr", "-nocerts", "-keyid")
    assert openssl_verify(sig, payload, p).returncode == 0

Kinds follow the settings the kernel accepted (docs/cms.md §5): CN=bpf-signing-test,
CA:FALSE, keyUsage digitalSignature, SKID (except ``noskid``) and AKID.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from bpfsign.crypto.signer import KeyType

_CONFIG = """[req]
distinguished_name = dn
prompt = no
x509_extensions = ext
[dn]
CN = bpf-signing-test ({kind})
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
{skid}
"""

_NEWKEY: dict[str, list[str]] = {
    "rsa2048": ["-newkey", "rsa:2048", "-sha256"],
    "rsa3072": ["-newkey", "rsa:3072", "-sha256"],
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-sha256"],
    "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-sha384"],
    "rsa-pss": ["-newkey", "rsa-pss", "-pkeyopt", "rsa_keygen_bits:2048", "-sha256"],
    "noskid": ["-newkey", "rsa:2048", "-sha256"],
}


class Pki(NamedTuple):
    kind: str
    key: Path  #: PEM private key
    cert: Path  #: PEM certificate
    cert_der: bytes  #: the certificate, DER


_cache: dict[str, Pki] = {}
_root: Path | None = None


def _workdir() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="bpfsign-pki-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def run(*args: str | Path, input: bytes | None = None) -> bytes:
    """Run a command, return stdout; raise with stderr on failure."""
    proc = subprocess.run([str(a) for a in args], input=input, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        )
    return proc.stdout


def pki(kind: str = "rsa2048") -> Pki:
    """Key + self-signed cert of ``kind`` (cached for the session)."""
    hit = _cache.get(kind)
    if hit is not None:
        return hit
    d = _workdir() / kind
    d.mkdir()
    skid = (
        "subjectKeyIdentifier = none\nauthorityKeyIdentifier = none"
        if kind == "noskid"
        else "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid"
    )
    (d / "req.cnf").write_text(_CONFIG.format(kind=kind, skid=skid))
    run(
        "openssl", "req", "-new", "-x509", *_NEWKEY[kind], "-nodes", "-days", "3650",
        "-config", d / "req.cnf", "-keyout", d / "key.pem", "-out", d / "cert.pem",
    )  # fmt: skip
    der = run("openssl", "x509", "-in", d / "cert.pem", "-outform", "DER")
    (d / "cert.der").write_bytes(der)
    _cache[kind] = Pki(kind, d / "key.pem", d / "cert.pem", der)
    return _cache[kind]


def _msg_file(payload: bytes) -> Path:
    path = Path(tempfile.mkstemp(dir=_workdir(), suffix=".bin")[1])
    path.write_bytes(payload)
    return path


def openssl_sign(
    p: Pki, payload: bytes, *flags: str, md: str = "sha256", tool: str = "cms"
) -> bytes:
    """``openssl cms -sign -binary -outform DER -md MD`` plus ``flags``; returns the DER.

    ``tool="smime"`` gives the legacy PKCS#7 v1 form."""
    msg = _msg_file(payload)
    try:
        return run(
            "openssl", tool, "-sign", "-binary", "-outform", "DER", "-md", md,
            "-signer", p.cert, "-inkey", p.key, "-in", msg, *flags,
        )  # fmt: skip
    finally:
        msg.unlink()


def openssl_verify(sig: bytes, payload: bytes, p: Pki) -> subprocess.CompletedProcess[bytes]:
    """``openssl cms -verify`` of a detached DER signature against ``p``'s cert (no chain)."""
    msg = _msg_file(payload)
    sig_path = _msg_file(sig)
    try:
        return subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig_path),
             "-content", str(msg), "-certfile", str(p.cert), "-nointern", "-noverify",
             "-out", "/dev/null"],
            capture_output=True, check=False,
        )  # fmt: skip
    finally:
        msg.unlink()
        sig_path.unlink()


def raw_signature(sig_der: bytes) -> bytes:
    """The signature OCTET STRING of the first SignerInfo (asn1crypto as the oracle)."""
    from asn1crypto import cms as acms

    info = acms.ContentInfo.load(sig_der)["content"]["signer_infos"][0]
    return bytes(info["signature"].native)


class PemSigner:
    """A ``bpfsign.crypto.signer.Signer`` over a ``Pki`` key (pyca, in process); for tests."""

    def __init__(self, p: Pki) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        self._key = load_pem_private_key(p.key.read_bytes(), None)
        self.certificate = p.cert_der
        self.key_type: KeyType = "ec" if p.kind in ("p256", "p384") else "rsa"

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

        algo = utils.Prehashed(getattr(hashes, hash_name.upper())())
        if self.key_type == "ec":
            return self._key.sign(digest, ec.ECDSA(algo))  # type: ignore[call-arg,arg-type,union-attr]
        return self._key.sign(digest, padding.PKCS1v15(), algo)  # type: ignore[call-arg,arg-type,union-attr]
