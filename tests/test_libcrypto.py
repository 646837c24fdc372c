"""The libcrypto (ctypes) backend gives pyca's verdict and errno for every input.

pyca/cryptography is the oracle: each test runs the same check under both
backends and asserts they agree, and where it matters, what they agree on.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from errno import EKEYREJECTED
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _backends import using
from _pki import PemSigner, openssl_sign, pki
from bpfsign.crypto import _libcrypto, _oids, cms, der
from bpfsign.crypto.trust import TrustStore
from bpfsign.crypto.verify import VerifiedSignature, _signature_ok, verify
from bpfsign.crypto.x509 import Certificate
from bpfsign.errors import VerificationError

pytestmark = pytest.mark.skipif(_libcrypto.load() is None, reason="no libcrypto.so.3 here")

KINDS = ["rsa2048", "rsa3072", "p256", "p384"]
MDS = ["sha256", "sha384", "sha512", "sha224", "sha1"]
PAYLOAD = bytes(range(16))
BPFTOOL = ("-noattr", "-nocerts", "-keyid", "-nosmimecap")
WITH_ATTRS_AND_CERT = ("-nosmimecap", "-keyid")


def family(kind: str) -> str:
    return "rsa" if kind.startswith("rsa") else "ec"


@cache
def signer(kind: str) -> PemSigner:
    return PemSigner(pki(kind))


@cache
def cert(kind: str) -> Certificate:
    return Certificate.from_der(pki(kind).cert_der)


@cache
def openssl_cms(kind: str, md: str, flags: tuple[str, ...]) -> bytes:
    return openssl_sign(pki(kind), PAYLOAD, *flags, md=md)


@cache
def raw_sig(kind: str, md: str, payload: bytes = PAYLOAD) -> tuple[bytes, bytes]:
    """(digest, raw signature) of ``payload`` by ``kind``'s key; cached, as ECDSA is
    randomized and hypothesis replays an example expecting the same draws."""
    digest = hashlib.new(md, payload).digest()
    return digest, signer(kind).sign_digest(digest, md)


def both_ok(c: Certificate, fam: str, sig: bytes, digest: bytes, md: str) -> tuple[bool, bool]:
    with using("libcrypto"):
        lib = _signature_ok(c, fam, sig, digest, md)
    with using("pyca"):
        ref = _signature_ok(c, fam, sig, digest, md)
    return lib, ref


Outcome = VerifiedSignature | tuple[int, str]


def both_verify(payload: bytes, sig: bytes, store: TrustStore) -> tuple[Outcome, Outcome]:
    out: list[Outcome] = []
    for name in ("libcrypto", "pyca"):
        with using(name):
            try:
                out.append(verify(payload, sig, store))
            except VerificationError as exc:
                out.append((exc.errno, exc.reason))
    return out[0], out[1]


def trusting(*certs: bytes) -> TrustStore:
    store = TrustStore()
    for c in certs:
        store.add(c)
    return store


def with_spki(cert_der: bytes, spki: bytes) -> bytes:
    """``cert_der`` with its SubjectPublicKeyInfo replaced (its signature no longer
    matches; the kernel and bpfsign do not check a trusted cert's self-signature)."""
    tbs, alg, sig = der.read(cert_der).children()[:3]
    fields = [f.raw for f in tbs.children()]
    fields[6 if tbs.children()[0].tag == 0xA0 else 5] = spki
    return der.sequence(der.sequence(*fields), alg.raw, sig.raw)


def ec_spki(curve: bytes, point: bytes) -> bytes:
    alg = der.sequence(der.oid(_oids.EC_PUBLIC_KEY), der.oid(curve))
    return der.sequence(alg, der.encode(der.BIT_STRING, b"\0" + point))


def rejected_alike(payload: bytes, sig: bytes, store: TrustStore, message: str) -> None:
    lib, ref = both_verify(payload, sig, store)
    assert lib == ref == (EKEYREJECTED, message)


def bad_signature_message(kind: str) -> str:
    return (
        f"signature does not verify with the trusted key {cert(kind).subject_str!r} "
        f"({cert(kind).key_description}): the payload or the signature was changed after "
        "signing, or it was signed over different bytes"
    )


# --- property: the backends agree --------------------------------------------------


def mutate(data: st.DataObject, blob: bytes) -> bytes:
    out = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["set", "xor", "insert", "delete", "truncate", "append"]))
        pos = data.draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "set" and out:
            out[pos] = data.draw(st.integers(0, 255))
        elif kind == "xor" and out:
            out[pos] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and out:
            del out[pos]
        elif kind == "truncate":
            del out[pos:]
        elif kind == "append":
            out += data.draw(st.binary(min_size=1, max_size=4))
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    md=st.sampled_from(MDS),
    payload=st.binary(max_size=256),
    data=st.data(),
)
def test_backends_agree_on_raw_signatures(
    kind: str, md: str, payload: bytes, data: st.DataObject
) -> None:
    digest, sig = raw_sig(kind, md, payload)
    c, fam = cert(kind), family(kind)
    assert both_ok(c, fam, sig, digest, md) == (True, True)
    target = data.draw(st.sampled_from(["signature", "digest", "random"]))
    if target == "signature":
        bad_sig, bad_digest = mutate(data, sig), digest
    elif target == "digest":
        bad_sig, bad_digest = sig, mutate(data, digest)
    else:
        bad_sig, bad_digest = data.draw(st.binary(max_size=520)), digest
    lib, ref = both_ok(c, fam, bad_sig, bad_digest, md)
    assert lib == ref
    # ECDSA uses only the leftmost order-size bytes of a longer digest (SEC 1 §4.1.4)
    used = len(digest) if fam == "rsa" else c.key_bits // 8
    same_digest = len(bad_digest) == len(digest) and bad_digest[:used] == digest[:used]
    if bad_sig != sig or not same_digest:
        assert not lib


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    md=st.sampled_from(MDS),
    flags=st.sampled_from([BPFTOOL, WITH_ATTRS_AND_CERT]),
    data=st.data(),
)
def test_backends_agree_on_mutated_cms_signatures(
    kind: str, md: str, flags: tuple[str, ...], data: st.DataObject
) -> None:
    """Whole verify (verdict, errno and message) on openssl signatures, mutated."""
    sig = openssl_cms(kind, md, flags)
    store = trusting(pki(kind).cert_der)
    lib, ref = both_verify(PAYLOAD, sig, store)
    assert lib == ref and isinstance(lib, VerifiedSignature)
    payload = PAYLOAD
    if data.draw(st.booleans(), label="mutate payload"):
        payload = mutate(data, PAYLOAD)
    else:
        sig = mutate(data, sig)
    lib, ref = both_verify(payload, sig, store)
    assert lib == ref


# --- the cases by name ------------------------------------------------------------


def test_digest_matches_hashlib_for_every_kernel_hash() -> None:
    for md in MDS:
        for data in (b"", b"abc", bytes(range(256)) * 300):
            want = hashlib.new(md, data).digest()
            assert _libcrypto.digest(md, data) == want
            assert _libcrypto.digest(md, bytearray(data)) == want
            assert _libcrypto.digest(md, memoryview(data)) == want
            for name in ("libcrypto", "pyca"):
                with using(name):
                    assert _oids.digest(md, data) == want


def test_wrong_key_type_for_the_signature_algorithm() -> None:
    digest, rsa_sig = raw_sig("rsa2048", "sha256")
    _, ec_sig = raw_sig("p256", "sha256")
    rsa_spki, ec_key = cert("rsa2048").public_key_der, cert("p256").public_key_der
    assert _libcrypto.verify(rsa_spki, True, rsa_sig, digest, "sha256")
    assert not _libcrypto.verify(rsa_spki, False, rsa_sig, digest, "sha256")  # as ECDSA
    assert _libcrypto.verify(ec_key, False, ec_sig, digest, "sha256")
    assert not _libcrypto.verify(ec_key, True, ec_sig, digest, "sha256")  # as RSA
    assert both_ok(cert("rsa2048"), "ec", rsa_sig, digest, "sha256") == (False, False)
    assert both_ok(cert("p256"), "rsa", ec_sig, digest, "sha256") == (False, False)
    # an ecdsa-with-SHA256 SignerInfo naming an RSA certificate, and the reverse
    for key_kind, sig, sig_type in (("rsa2048", ec_sig, "ec"), ("p256", rsa_sig, "rsa")):
        cms_sig = cms.build_signed_data(pki(key_kind).cert_der, sig, key_type=sig_type)  # type: ignore[arg-type]
        store = trusting(pki(key_kind).cert_der)
        rejected_alike(PAYLOAD, cms_sig, store, bad_signature_message(key_kind))


@pytest.mark.parametrize("kind", ["rsa2048", "rsa3072"])
def test_truncated_and_oversize_rsa_signatures(kind: str) -> None:
    digest, sig = raw_sig(kind, "sha256")
    n_bytes = len(sig)
    variants = {
        "truncated": sig[:-1],
        "one byte": sig[:1],
        "empty": b"",
        "zero appended": sig + b"\0",
        "leading zero": b"\0" + sig,
        "doubled": sig + sig,
        "above the modulus": b"\xff" * n_bytes,
        "zero": bytes(n_bytes),
    }
    store = trusting(pki(kind).cert_der)
    for what, bad in variants.items():
        assert both_ok(cert(kind), "rsa", bad, digest, "sha256") == (False, False), what
        if bad:  # the SignerInfo needs a non-empty OCTET STRING to parse
            cms_sig = cms.build_signed_data(pki(kind).cert_der, bad)
            rejected_alike(PAYLOAD, cms_sig, store, bad_signature_message(kind))


def _ecdsa_variants(sig: bytes) -> dict[str, bytes]:
    r_el, s_el = der.read(sig).children()
    r, s = r_el.content, s_el.content
    width = (len(r.lstrip(b"\0")) + len(s.lstrip(b"\0")) + 1) // 2
    rs = r.lstrip(b"\0").rjust(width, b"\0") + s.lstrip(b"\0").rjust(width, b"\0")
    body = r_el.raw + s_el.raw
    return {
        "trailing byte": sig + b"\0",
        "non-minimal r": der.sequence(der.encode(der.INTEGER, b"\0" + r), s_el.raw),
        "long-form length": b"\x30\x81" + bytes((len(body),)) + body,
        "BER indefinite": b"\x30\x80" + body + b"\0\0",
        "SET instead of SEQUENCE": b"\x31" + sig[1:],
        "r and s swapped": der.sequence(s_el.raw, r_el.raw),
        "raw r||s (P1363)": rs,
        "r only": der.sequence(r_el.raw),
        "negative s": der.sequence(r_el.raw, der.encode(der.INTEGER, b"\xff" + s)),
        "truncated": sig[:-1],
    }


@pytest.mark.parametrize(("kind", "md"), [("p256", "sha256"), ("p384", "sha384")])
def test_malformed_ecdsa_der(kind: str, md: str) -> None:
    digest, sig = raw_sig(kind, md)
    store = trusting(pki(kind).cert_der)
    for what, bad in _ecdsa_variants(sig).items():
        assert bad != sig
        assert both_ok(cert(kind), "ec", bad, digest, md) == (False, False), what
        cms_sig = cms.build_signed_data(pki(kind).cert_der, bad, digest=md, key_type="ec")  # type: ignore[arg-type]
        rejected_alike(PAYLOAD, cms_sig, store, bad_signature_message(kind))


def test_spki_that_libcrypto_cannot_parse_is_a_bad_signature() -> None:
    digest, sig = raw_sig("p256", "sha256")
    for junk in (b"", b"\x30\x00", b"\x30\x03\x02\x01\x01", b"not DER at all"):
        assert not _libcrypto.verify(junk, False, sig, digest, "sha256")
        assert not _libcrypto.verify(junk, True, sig, digest, "sha256")
    # a P-256 point that is not on the curve: d2i_PUBKEY fails, pyca's
    # from_encoded_point raises ValueError; both are a bad signature (EKEYREJECTED)
    good = cert("p256")
    point = bytearray(good._key_numbers)
    point[-1] ^= 1
    off_curve = with_spki(pki("p256").cert_der, ec_spki(_oids.P256, bytes(point)))
    broken = Certificate.from_der(off_curve)
    assert broken.key_type == "ec" and broken.skid == good.skid
    assert not _libcrypto.verify(broken.public_key_der, False, sig, digest, "sha256")
    with pytest.raises(ValueError):
        broken.public_key()
    assert both_ok(broken, "ec", sig, digest, "sha256") == (False, False)
    cms_sig = cms.build_signed_data(off_curve, sig, key_type="ec")
    lib, ref = both_verify(PAYLOAD, cms_sig, trusting(off_curve))
    assert lib == ref
    assert lib[0] == EKEYREJECTED and "signature does not verify with the trusted key" in lib[1]


def test_keys_pyca_refuses_are_refused_before_libcrypto() -> None:
    """OpenSSL takes an RSA key with e = 1 and a hybrid EC point; pyca does not,
    so the libcrypto path refuses them first and the backends still agree."""
    # e = 1: the "signature" is the PKCS#1 v1.5 encoded message itself
    rsa = cert("rsa2048")
    n, _ = rsa.rsa_public_numbers
    digest = hashlib.sha256(PAYLOAD).digest()
    info = cms.digest_info("sha256", digest)
    k = (n.bit_length() + 7) // 8
    em = b"\0\1" + b"\xff" * (k - len(info) - 3) + b"\0" + info
    rsa_alg = der.sequence(der.oid(_oids.RSA_ENCRYPTION), der.null())
    e1_key = der.sequence(der.integer(n), der.integer(1))
    e1_spki = der.sequence(rsa_alg, der.encode(der.BIT_STRING, b"\0" + e1_key))
    assert _libcrypto.verify(e1_spki, True, em, digest, "sha256")  # OpenSSL alone: valid
    e1_cert = with_spki(pki("rsa2048").cert_der, e1_spki)
    assert both_ok(Certificate.from_der(e1_cert), "rsa", em, digest, "sha256") == (False, False)
    lib, ref = both_verify(PAYLOAD, cms.build_signed_data(e1_cert, em), trusting(e1_cert))
    assert lib == ref and lib[0] == EKEYREJECTED

    # a hybrid point (0x06/0x07 || x || y) of the real key, with a valid signature
    ec = cert("p256")
    digest, sig = raw_sig("p256", "sha256")
    point = ec._key_numbers
    hybrid = bytes((6 | (point[-1] & 1),)) + point[1:]
    hybrid_spki = ec_spki(_oids.P256, hybrid)
    assert _libcrypto.verify(hybrid_spki, False, sig, digest, "sha256")  # OpenSSL alone: valid
    hybrid_cert = with_spki(pki("p256").cert_der, hybrid_spki)
    assert both_ok(Certificate.from_der(hybrid_cert), "ec", sig, digest, "sha256") == (
        False,
        False,
    )
    cms_sig = cms.build_signed_data(hybrid_cert, sig, key_type="ec")
    lib, ref = both_verify(PAYLOAD, cms_sig, trusting(hybrid_cert))
    assert lib == ref and lib[0] == EKEYREJECTED


def test_parsed_keys_and_contexts_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_libcrypto, "_keys", {})
    monkeypatch.setattr(_libcrypto, "_ctxs", {})
    digest, sig = raw_sig("rsa2048", "sha256")
    spki = cert("rsa2048").public_key_der
    assert _libcrypto.verify(spki, True, sig, digest, "sha256")
    assert list(_libcrypto._keys) == [spki] and len(_libcrypto._ctxs) == 1
    parked = dict(_libcrypto._ctxs)
    bad = sig[:-1] + bytes((sig[-1] ^ 1,))
    for _ in range(3):  # the parked context, reused, after a failure too
        assert not _libcrypto.verify(spki, True, bad, digest, "sha256")
        assert _libcrypto.verify(spki, True, sig, digest, "sha256")
    assert _libcrypto._ctxs == parked
    sha1_digest, sha1_sig = raw_sig("rsa2048", "sha1")
    assert _libcrypto.verify(spki, True, sha1_sig, sha1_digest, "sha1")
    assert not _libcrypto.verify(spki, True, sig, digest, "sha1")  # digest length != SHA-1's
    assert len(_libcrypto._ctxs) == 2  # one per digest
    monkeypatch.setattr(_libcrypto, "KEY_CACHE_SIZE", 1)
    ec_digest, ec_sig = raw_sig("p256", "sha256")
    assert _libcrypto.verify(cert("p256").public_key_der, False, ec_sig, ec_digest, "sha256")
    assert list(_libcrypto._keys) == [spki]  # full: parsed, used and freed
    assert len(_libcrypto._ctxs) == 2


def _run(code: str, backend: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(_libcrypto.ENV, None)
    if backend is not None:
        env[_libcrypto.ENV] = backend
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_backend_rule_and_env_switch() -> None:
    code = "from bpfsign.crypto import _libcrypto; print(_libcrypto.backend())"
    assert _run(code, None).stdout.strip() == "libcrypto"
    assert _run(code, "pyca").stdout.strip() == "pyca"
    assert _run(code, "libcrypto").stdout.strip() == "libcrypto"
    bad = _run(code, "gnutls")
    assert "ValueError: BPFSIGN_CRYPTO_BACKEND='gnutls': expected 'pyca' or 'libcrypto'" in (
        bad.stderr
    )
    missing = (
        "from bpfsign.crypto import _libcrypto; _libcrypto.SONAME = 'libcrypto.so.0-missing'\n"
        "print(_libcrypto.backend())"
    )
    assert _run(missing, None).stdout.strip() == "pyca"
    forced = _run(missing, "libcrypto")
    assert (
        "RuntimeError: BPFSIGN_CRYPTO_BACKEND=libcrypto, but libcrypto.so.0-missing cannot be "
        "loaded with ctypes" in forced.stderr
    )
