"""SignedData building (byte-identical to openssl) and parsing."""

from __future__ import annotations

import hashlib
from errno import EBADMSG

import pytest
from asn1crypto import cms as acms

from _backends import crypto_backend  # noqa: F401  (autouse: every test under both backends)
from _pki import PemSigner, openssl_sign, openssl_verify, pki, raw_signature
from bpfsign.crypto import cms
from bpfsign.errors import InputError, VerificationError

PAYLOAD = bytes(range(16))
BPFTOOL_FLAGS = ("-noattr", "-nocerts", "-keyid", "-nosmimecap")


@pytest.mark.parametrize("md", ["sha256", "sha384", "sha512", "sha224"])
@pytest.mark.parametrize("kind", ["rsa2048", "rsa3072"])
def test_rsa_skid_is_byte_identical_to_openssl(kind: str, md: str) -> None:
    p = pki(kind)
    ref = openssl_sign(p, PAYLOAD, *BPFTOOL_FLAGS, md=md)
    signer = PemSigner(p)
    ours = cms.sign(PAYLOAD, signer, digest=md)  # type: ignore[arg-type]
    assert ours == ref
    assert cms.build_signed_data(p.cert_der, raw_signature(ref), digest=md) == ref  # type: ignore[arg-type]


def test_rsa_issuer_serial_is_byte_identical_to_openssl() -> None:
    p = pki("rsa2048")
    ref = openssl_sign(p, PAYLOAD, "-noattr", "-nocerts", "-nosmimecap")
    assert cms.sign(PAYLOAD, PemSigner(p), sid="issuer_serial") == ref


def test_bpftool_shape_layout() -> None:
    """docs/cms.md §1.1: 375 bytes for RSA-2048 with a 20-byte SKID."""
    p = pki("rsa2048")
    sig = cms.sign(PAYLOAD, PemSigner(p))
    assert len(sig) == 375
    assert sig[:4] == bytes.fromhex("30820173")
    assert sig[23:41] == bytes.fromhex("020103310d300b0609608648016503040201")
    assert sig[100:115] == bytes.fromhex("300d06092a864886f70d0101010500")
    assert cms.sign(PAYLOAD, PemSigner(p)) == sig  # reproducible


@pytest.mark.parametrize(
    ("kind", "md"), [("p256", "sha256"), ("p384", "sha384"), ("p256", "sha512")]
)
def test_ec_shape_matches_openssl_around_the_signature(kind: str, md: str) -> None:
    """ECDSA signatures are random: splice openssl's signature into our builder."""
    p = pki(kind)
    ref = openssl_sign(p, PAYLOAD, *BPFTOOL_FLAGS, md=md)
    assert cms.build_signed_data(p.cert_der, raw_signature(ref), digest=md, key_type="ec") == ref  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "sid"), [("rsa2048", "skid"), ("p256", "skid"), ("p384", "issuer_serial")]
)
def test_openssl_verifies_our_signatures(kind: str, sid: str) -> None:
    p = pki(kind)
    sig = cms.sign(PAYLOAD, PemSigner(p), digest="sha384" if kind == "p384" else "sha256", sid=sid)  # type: ignore[arg-type]
    ok = openssl_verify(sig, PAYLOAD, p)
    assert ok.returncode == 0, ok.stderr
    assert b"Verification successful" in ok.stderr
    bad = openssl_verify(sig, PAYLOAD + b"!", p)
    assert bad.returncode == 4


def test_refusals() -> None:
    p = pki("rsa2048")
    with pytest.raises(ValueError, match="refusing to emit a 'sha1' signature"):
        cms.build_signed_data(p.cert_der, b"x", digest="sha1")
    with pytest.raises(ValueError, match="refusing to sign with 'sha1'"):
        cms.sign(PAYLOAD, PemSigner(p), digest="sha1")
    with pytest.raises(InputError) as info:
        cms.build_signed_data(pki("noskid").cert_der, b"x")
    assert "has no subjectKeyIdentifier" in str(info.value)
    noskid = cms.build_signed_data(pki("noskid").cert_der, b"x", sid="issuer_serial")
    assert cms.parse_signed_data(noskid).signer_infos[0].sid.kind == "issuer_serial"


def test_digest_info_matches_asn1crypto() -> None:
    from asn1crypto import algos, core

    for name in ("sha224", "sha256", "sha384", "sha512"):
        digest = hashlib.new(name, b"abc").digest()
        ref = algos.DigestInfo(
            {"digest_algorithm": {"algorithm": name, "parameters": core.Null()}, "digest": digest}
        ).dump()
        assert cms.digest_info(name, digest) == ref
    with pytest.raises(ValueError, match="does not sign with 'sha1'"):
        cms.digest_info("sha1", bytes(20))
    with pytest.raises(ValueError, match="a sha256 digest is 32 bytes, got 3"):
        cms.digest_info("sha256", b"abc")


def test_parse_fields_against_asn1crypto() -> None:
    p = pki("rsa2048")
    for flags in (BPFTOOL_FLAGS, ("-nosmimecap", "-nocerts"), ("-noattr",)):
        sig = openssl_sign(p, PAYLOAD, *flags)
        sd = cms.parse_signed_data(sig)
        ref = acms.ContentInfo.load(sig)["content"]
        info, ref_info = sd.signer_infos[0], ref["signer_infos"][0]
        assert sd.version == int(ref["version"].native[1:])
        assert sd.detached and sd.content_type == bytes.fromhex("2a864886f70d010701")
        assert sd.certificates == tuple(c.dump() for c in ref["certificates"] or [])
        assert info.signature == ref_info["signature"].native
        assert info.sid.raw == ref_info["sid"].chosen.dump()
        assert info.digest_algorithm.name == "sha256"
        assert info.signature_algorithm.name == "rsaEncryption"
        if ref_info["signed_attrs"]:
            assert info.signed_attrs_raw == ref_info["signed_attrs"].dump()
            assert info.signed_attrs_for_hashing == b"\x31" + ref_info["signed_attrs"].dump()[1:]
            assert [a.oid for a in info.signed_attrs] == [
                a["type"].contents for a in ref_info["signed_attrs"]
            ]
        else:
            assert info.signed_attrs_raw is None
        assert sd.warnings == () and sd.problems == ()


def test_lenient_parse_collects_problems_strict_raises() -> None:
    p = pki("rsa2048")
    sig = openssl_sign(p, PAYLOAD, "-nocerts")  # openssl default attributes: sMIMECapabilities
    sd = cms.parse_signed_data(sig)
    assert [e for e, _ in sd.problems] == [129]
    with pytest.raises(VerificationError) as info:
        cms.parse_signed_data(sig, kernel_rules=True)
    assert info.value.errno == 129


def test_trailing_bytes_are_reported() -> None:
    sig = cms.sign(PAYLOAD, PemSigner(pki("rsa2048")))
    sd = cms.parse_signed_data(sig + bytes(25))
    assert sd.length == len(sig)
    assert sd.warnings == (
        "25 trailing zero bytes after the PKCS#7 message (the kernel ignores them)",
    )


def test_garbage_is_ebadmsg() -> None:
    with pytest.raises(VerificationError) as info:
        cms.parse_signed_data(bytes.fromhex("3003020100"))
    assert info.value.errno == EBADMSG
    assert info.value.reason == (
        "malformed PKCS#7 message: expected contentType (tag 0x06), found tag 0x02 (at byte 2); "
        "the kernel's ASN.1 decoder rejects it; re-create the signature with bpfsign sign"
    )


@pytest.mark.parametrize(
    ("kind", "md", "flags"),
    [
        ("rsa2048", "sha256", BPFTOOL_FLAGS),
        ("rsa2048", "sha1", BPFTOOL_FLAGS),
        ("rsa3072", "sha512", BPFTOOL_FLAGS),
        ("p256", "sha256", BPFTOOL_FLAGS),
        ("p384", "sha384", BPFTOOL_FLAGS),
        ("rsa2048", "sha256", ("-noattr", "-nocerts")),
        ("rsa2048", "sha256", ("-nosmimecap", "-nocerts", "-keyid")),
    ],
)
def test_fast_path_agrees_with_the_general_walker(
    kind: str, md: str, flags: tuple[str, ...]
) -> None:
    """The canonical-shape fast path must give exactly what the kernel-order walker gives."""
    sig = openssl_sign(pki(kind), PAYLOAD, *flags, md=md)
    general = cms._parse(sig, cms._Walk(strict=True))
    assert cms.parse_signed_data(sig, kernel_rules=True) == general
    fast = cms._parse_bpftool_shape(sig)
    assert fast is None or fast == general
    assert (fast is not None) == ("-keyid" in flags and "-noattr" in flags)
    for extra in (b"\0", b"\x30\x00"):  # anything trailing leaves the fast path
        assert cms._parse_bpftool_shape(sig + extra) is None


def test_value_types_are_written_once_and_cost_no_typing_import() -> None:
    """cms/der value types use NamedTuple syntax once; at run time no typing import."""
    import subprocess
    import sys

    from bpfsign.crypto import cms, der

    probe = (
        "import sys, bpfsign.crypto.cms as c, bpfsign.crypto.der as d\n"
        "print('typing' in sys.modules, 'dataclasses' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    alg = cms.AlgorithmId(b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", None)
    assert alg._fields == ("oid", "parameters") and tuple(alg) == (alg.oid, None)
    assert alg.name == "rsaEncryption"
    with pytest.raises(AttributeError):
        alg.oid = b""  # type: ignore[misc]
    assert cms.SignedData._fields == (
        "version",
        "digest_algorithms",
        "content_type",
        "content",
        "certificates",
        "signer_infos",
        "length",
        "warnings",
        "problems",
    )
    assert cms.SignerInfo.__doc__ is not None and "raw encodings" in cms.SignerInfo.__doc__
    el = der.read(b"\x02\x01\x05")
    assert el._fields[:3] == ("data", "offset", "tag") and der.decode_integer(el) == 5
    assert repr(el).startswith("Element(data=")
