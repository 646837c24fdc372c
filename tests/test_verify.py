"""Offline verification against openssl-made signatures: the kernel's verdicts and errnos.

Every rejection asserts the exact errno and message (docs/kernel.md §13 rows cited)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from errno import E2BIG, EBADMSG, EINVAL, EKEYREJECTED, ENOKEY, ENOPKG

import pytest

from _backends import crypto_backend  # noqa: F401  (autouse: every test under both backends)
from _pki import PemSigner, Pki, openssl_sign, pki
from bpfsign.crypto import cms, der
from bpfsign.crypto.trust import TrustStore
from bpfsign.crypto.verify import VerifiedSignature, verify, verify_many
from bpfsign.crypto.x509 import Certificate
from bpfsign.errors import VerificationError

PAYLOAD = b"\xb7\x00\x00\x00\x00\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00"  # r0 = 0; exit
BPFTOOL = ("-noattr", "-nocerts", "-keyid", "-nosmimecap")


def trusting(*kinds: str, keyring: str | int = "session") -> TrustStore:
    store = TrustStore()
    for kind in kinds:
        store.add(pki(kind).cert_der, keyring)
    return store


def rejected(
    sig: bytes, store: TrustStore, payload: bytes = PAYLOAD, **kw: int
) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify(payload, sig, store, **kw)
    return info.value


def enokey_message(p: Pki, keyring: str = "session", keyring_id: int = -3) -> str:
    cert = Certificate.from_der(p.cert_der)
    assert cert.skid is not None
    return (
        f"no key in the {keyring} keyring (keyring_id {keyring_id}) matches the signer "
        f"(SKID {cert.skid.hex()}): trust the signer's certificate, or verify "
        "against the keyring that holds it"
    )


def reencode(data: bytes, indefinite: Callable[[der.Element, int], bool]) -> bytes:
    """Re-encode DER with BER indefinite lengths on the chosen constructed elements."""

    def enc(el: der.Element, depth: int) -> bytes:
        if not el.constructed:
            return el.raw
        inner = b"".join(enc(kid, depth + 1) for kid in el.children())
        if indefinite(el, depth):
            return bytes((el.tag, 0x80)) + inner + b"\0\0"
        return der.encode(el.tag, inner)

    return enc(der.read(data), 0)


# --- accepted (docs/kernel.md §13 row 10) -----------------------------------------------


def test_bpftool_shape_verifies_and_describes_the_signer() -> None:
    p = pki("rsa2048")
    sig = openssl_sign(p, PAYLOAD, *BPFTOOL)
    got = verify(PAYLOAD, sig, trusting("rsa2048"))
    cert = Certificate.from_der(p.cert_der)
    assert got == VerifiedSignature(
        signer_subject="CN=bpf-signing-test (rsa2048)",
        skid=cert.skid.hex() if cert.skid else None,
        issuer="CN=bpf-signing-test (rsa2048)",
        serial=cert.serial.hex(),
        digest_algorithm="sha256",
        signature_algorithm="rsaEncryption",
        key_description="RSA-2048",
        keyring="session",
        certificate_sha256=hashlib.sha256(p.cert_der).hexdigest(),
        signer_index=0,
        warnings=(),
    )


@pytest.mark.parametrize(
    "flags",
    [
        ("-noattr", "-nocerts"),  # issuer+serial, v1
        ("-nosmimecap", "-nocerts"),  # signed attributes, issuer+serial
        ("-nosmimecap", "-nocerts", "-keyid"),  # signed attributes, SKID
        ("-noattr", "-keyid"),  # certificate embedded, SKID
        ("-noattr",),  # certificate embedded, issuer+serial (embedded-signer path)
        ("-nosmimecap",),  # attributes + embedded cert: signingTime checked against it
    ],
)
def test_openssl_variants_verify(flags: tuple[str, ...]) -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *flags)
    got = verify(PAYLOAD, sig, trusting("rsa2048"))
    assert got.signer_subject == "CN=bpf-signing-test (rsa2048)" and got.warnings == ()


@pytest.mark.parametrize("md", ["sha224", "sha384", "sha512"])
def test_other_sha2_digests(md: str) -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL, md=md)
    assert verify(PAYLOAD, sig, trusting("rsa2048")).digest_algorithm == md


def test_sha1_is_accepted_with_a_warning() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL, md="sha1")
    got = verify(PAYLOAD, sig, trusting("rsa2048"))
    assert got.digest_algorithm == "sha1"
    assert got.warnings == (
        "SignerInfo uses SHA-1: the kernel (7.3.4) accepts it, but SHA-1 is broken for "
        "signatures; re-sign with SHA-256",
    )


@pytest.mark.parametrize(
    ("kind", "md", "alg"),
    [("p256", "sha256", "ecdsa-with-SHA256"), ("p384", "sha384", "ecdsa-with-SHA384")],
)
def test_ecdsa(kind: str, md: str, alg: str) -> None:
    sig = openssl_sign(pki(kind), PAYLOAD, *BPFTOOL, md=md)
    got = verify(PAYLOAD, sig, trusting(kind))
    assert (got.signature_algorithm, got.key_description) == (alg, f"EC P-{kind[1:]}")
    ours = cms.sign(PAYLOAD, PemSigner(pki(kind)), digest=md)  # type: ignore[arg-type]
    assert verify(PAYLOAD, ours, trusting(kind)).digest_algorithm == md


def test_legacy_pkcs7_v1_from_openssl_smime() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, "-noattr", "-nocerts", tool="smime")
    sd = cms.parse_signed_data(sig)
    assert (sd.version, sd.signer_infos[0].digest_algorithm.parameters) == (1, b"\x05\x00")
    assert verify(PAYLOAD, sig, trusting("rsa2048")).signer_index == 0


def test_ber_indefinite_on_the_three_outer_layers() -> None:
    sig = reencode(openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL), lambda el, depth: depth < 3)
    assert sig[:2] == b"\x30\x80"
    got = verify(PAYLOAD, sig, trusting("rsa2048"))
    assert got.warnings == (
        "BER indefinite length on ContentInfo, [0], SignedData (the kernel accepts this on the "
        "three outer layers; bpfsign emits DER)",
    )


_BELOW_SIGNED_DATA: dict[str, Callable[[der.Element, int], bool]] = {
    "digestAlgorithms": lambda el, d: d == 3 and el.tag == 0x31 and el.length < 20,
    "encapContentInfo": lambda el, d: d == 3 and el.tag == 0x30,
    "signerInfos": lambda el, d: d == 3 and el.tag == 0x31 and el.length > 20,
    "SignerInfo": lambda el, d: d == 4 and el.tag == 0x30 and el.length > 100,
}


@pytest.mark.parametrize("what", list(_BELOW_SIGNED_DATA))
def test_ber_indefinite_below_signed_data_is_accepted_with_a_warning(what: str) -> None:
    """Measured on 7.3.4 (each element re-encoded alone): all four load."""
    sig = reencode(openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL), _BELOW_SIGNED_DATA[what])
    got = verify(PAYLOAD, sig, trusting("rsa2048"))
    assert got.warnings == (
        f"{what} uses a BER indefinite length, which the kernel accepts (measured on 7.3.4); "
        "bpfsign emits DER",
    )


def test_primitive_tag_where_the_grammar_wants_constructed() -> None:
    """The kernel ignores the constructed bit there (measured on 7.3.4: [0] as 0x80 loads)."""
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    assert sig[15] == 0xA0
    prim = sig[:15] + b"\x80" + sig[16:]
    assert verify(PAYLOAD, prim, trusting("rsa2048")).signer_index == 0
    attrs = openssl_sign(pki("rsa2048"), PAYLOAD, "-nosmimecap", "-nocerts", "-keyid")
    info = cms.parse_signed_data(attrs).signer_infos[0]
    assert info.signed_attrs_raw is not None and attrs.count(info.signed_attrs_raw) == 1
    at = attrs.index(info.signed_attrs_raw)
    prim_attrs = attrs[:at] + b"\x80" + attrs[at + 1 :]  # hashed as SET (0x31) all the same
    assert verify(PAYLOAD, prim_attrs, trusting("rsa2048")).signer_index == 0
    # where the grammar wants a primitive, the constructed form is refused
    at = sig.index(bytes.fromhex("0482"))
    assert rejected(sig[:at] + b"\x24" + sig[at + 1 :], trusting("rsa2048")).errno == EBADMSG


def test_trailing_zeros_up_to_the_8192_cap() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    padded = sig + bytes(8192 - len(sig))
    got = verify(PAYLOAD, padded, trusting("rsa2048"))
    assert got.warnings == (
        f"{8192 - len(sig)} trailing zero bytes after the PKCS#7 message (the kernel ignores them)",
    )
    err = rejected(padded + b"\0", trusting("rsa2048"))  # row 29
    assert (err.errno, err.reason) == (
        EINVAL,
        "signature is 8193 bytes; BPF_PROG_LOAD accepts at most 8192 (drop embedded "
        "certificates or padding: sign with -nocerts)",
    )


def test_signed_payload_size_limit() -> None:  # row 28 (measured)
    p = pki("rsa2048")
    store = trusting("rsa2048")
    largest = bytes((1 << 24) - 1)
    assert verify(largest, cms.sign(largest, PemSigner(p)), store).digest_algorithm == "sha256"
    too_big = bytes(1 << 24)
    err = rejected(cms.sign(too_big, PemSigner(p)), store, payload=too_big)
    assert (err.errno, err.reason) == (
        E2BIG,
        "signed payload too large: 16777216 bytes; the kernel signs at most 16777215 bytes "
        "(insns and metadata map values together)",
    )


def test_system_and_user_keyrings() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    builtin = trusting("rsa2048", keyring="builtin")
    assert verify(PAYLOAD, sig, builtin, keyring_id=0).keyring == "builtin"
    assert verify(PAYLOAD, sig, builtin, keyring_id=1).keyring == "builtin"
    secondary = trusting("rsa2048", keyring="secondary")
    assert verify(PAYLOAD, sig, secondary, keyring_id=1).keyring == "secondary"
    err = rejected(sig, secondary, keyring_id=0)
    assert (err.errno, err.reason) == (ENOKEY, enokey_message(pki("rsa2048"), "builtin", 0))
    store = TrustStore()
    ring = store.create_keyring("bpf")
    store.add(pki("rsa2048").cert_der, ring)
    assert verify(PAYLOAD, sig, store, keyring_id=ring).keyring == "bpf"
    assert verify(PAYLOAD, sig, store).keyring == "bpf"  # linked into the session keyring


def test_verify_many() -> None:
    p = pki("rsa2048")
    store = trusting("rsa2048")
    good = cms.sign(PAYLOAD, PemSigner(p))
    results = verify_many([(PAYLOAD, good), (PAYLOAD + b"x", good), (PAYLOAD, b"junk")], store)
    assert isinstance(results[0], VerifiedSignature)
    assert [getattr(r, "errno", 0) for r in results] == [0, EKEYREJECTED, EBADMSG]


# --- rejected ------------------------------------------------------------------------


def test_openssl_default_attributes_are_rejected() -> None:  # row 9 (measured)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, "-nocerts", "-keyid")
    err = rejected(sig, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EKEYREJECTED,
        "signed attributes include sMIMECapabilities, which the kernel rejects (S/MIME Caps "
        "only allowed with Authenticode): re-sign with -nosmimecap or -noattr",
    )


TAMPERED = (
    "signature does not verify with the trusted key 'CN=bpf-signing-test (rsa2048)' (RSA-2048): "
    "the payload or the signature was changed after signing, or it was signed over different bytes"
)


def test_tampered_payload() -> None:  # row 8 (measured)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    err = rejected(sig, trusting("rsa2048"), payload=PAYLOAD[:-1] + b"\x01")
    assert (err.errno, err.reason) == (EKEYREJECTED, TAMPERED)


def test_tampered_payload_with_embedded_cert() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, "-noattr")
    err = rejected(sig, trusting("rsa2048"), payload=b"other")
    assert (err.errno, err.reason) == (
        EKEYREJECTED,
        "signature does not verify with the embedded certificate 'CN=bpf-signing-test (rsa2048)': "
        "the payload or the signature was changed after signing",
    )


def test_wrong_key_and_untrusted_key() -> None:  # row 5 (measured)
    p = pki("rsa3072")
    sig = openssl_sign(p, PAYLOAD, *BPFTOOL)
    for store in (trusting("rsa2048"), TrustStore()):
        err = rejected(sig, store)
        assert (err.errno, err.reason) == (ENOKEY, enokey_message(p))


def test_embedded_unknown_self_signed_cert_is_enokey() -> None:  # row 44
    p = pki("rsa3072")
    sig = openssl_sign(p, PAYLOAD, "-noattr")
    err = rejected(sig, trusting("rsa2048"))
    assert err.errno == ENOKEY and err.reason.startswith("no key in the session keyring")


def test_embedded_content_is_ebadmsg() -> None:  # row 35 (measured)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL, "-nodetach")
    err = rejected(sig, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EBADMSG,
        "the signature embeds its content (not detached), which the kernel rejects (PKCS7: Data "
        "already supplied): sign without -nodetach and without -stream",
    )


def test_truncated_and_garbage_are_ebadmsg() -> None:  # rows 6, 7 (measured)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    err = rejected(sig[:-10], trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EBADMSG,
        "malformed PKCS#7 message: length 371 runs past the end of the enclosing element "
        "(361 bytes left) (at byte 0); the kernel's ASN.1 decoder rejects it; re-create the "
        "signature with bpfsign sign",
    )
    for junk in (bytes.fromhex("3003020100"), b"\x00" * 64, b"hello world"):
        assert rejected(junk, trusting("rsa2048")).errno == EBADMSG


def test_rsa_pss_padding_is_enopkg() -> None:  # row 34 (measured)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL, "-keyopt", "rsa_padding_mode:pss")
    err = rejected(sig, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        ENOPKG,
        "signature algorithm RSASSA-PSS is not supported by the kernel (ENOPKG on 7.3.4): "
        "re-sign with PKCS#1 v1.5 padding (drop -keyopt rsa_padding_mode:pss)",
    )


def test_rsa_pss_key_cannot_be_trusted_so_enokey() -> None:  # row 55 (measured)
    p = pki("rsa-pss")
    sig = openssl_sign(p, PAYLOAD, *BPFTOOL)
    store = TrustStore()
    with pytest.raises(Exception, match="add_key refuses"):
        store.add(p.cert_der)
    assert rejected(sig, store).errno == ENOKEY


def test_unknown_signature_algorithm_is_enopkg() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    rsa = bytes.fromhex("2a864886f70d010101")
    patched = sig.replace(rsa, bytes.fromhex("2a864886f70d01010b"))  # sha256WithRSAEncryption
    err = rejected(patched, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        ENOPKG,
        "signature algorithm sha256WithRSAEncryption is not one the kernel supports: sign with an "
        "RSA (PKCS#1 v1.5) or EC P-256/P-384 key",
    )


def test_sha3_is_enopkg() -> None:  # row 34 (measured in the VM)
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL, md="sha3-256")
    err = rejected(sig, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        ENOPKG,
        "digest sha3-256 needs the kernel's sha3 module, which the measured kernel could not "
        "load (ENOPKG on 7.3.4): re-sign with -md sha256",
    )


def test_message_digest_mismatch_and_wrong_length() -> None:  # rows 39, 40
    p = pki("rsa2048")
    sig = openssl_sign(p, PAYLOAD, "-nosmimecap", "-nocerts", "-keyid")
    good = hashlib.sha256(PAYLOAD).digest()
    assert sig.count(good) == 1
    flipped = sig.replace(good, bytes((good[0] ^ 1,)) + good[1:])
    err = rejected(flipped, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EKEYREJECTED,
        "messageDigest attribute does not match the payload's hash: the payload was changed "
        "after signing, or the signature belongs to other content",
    )
    assert rejected(sig, trusting("rsa2048"), payload=PAYLOAD + b"!").errno == EKEYREJECTED
    # a 31-byte messageDigest: rebuild the SignerInfo around shorter attributes
    attrs = der.context(
        0,
        der.sequence(der.oid("1.2.840.113549.1.9.3"), der.set_of(der.oid("1.2.840.113549.1.7.1")))
        + der.sequence(der.oid("1.2.840.113549.1.9.4"), der.set_of(der.octet_string(good[:31]))),
    )
    cert = Certificate.from_der(p.cert_der)
    assert cert.skid is not None
    alg = der.sequence(der.oid("2.16.840.1.101.3.4.2.1"))
    info = der.sequence(
        der.integer(3), der.context(0, cert.skid, constructed=False), alg, attrs,
        der.sequence(der.oid("1.2.840.113549.1.1.1"), der.null()), der.octet_string(bytes(256)),
    )  # fmt: skip
    sd = der.sequence(
        der.integer(3),
        der.set_of(alg),
        der.sequence(der.oid("1.2.840.113549.1.7.1")),
        der.set_of(info),
    )
    short = der.sequence(der.oid("1.2.840.113549.1.7.2"), der.context(0, sd))
    err = rejected(short, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EBADMSG,
        "messageDigest attribute is 31 bytes, but a sha256 digest is 32: the signed attributes are corrupt",
    )


@pytest.mark.parametrize("keyring_id", [3, -1, -2, -7, -8, 0x3FFFFFF0])
def test_unresolvable_keyring_ids(keyring_id: int) -> None:  # row 2 (measured)
    err = rejected(b"garbage", trusting("rsa2048"), keyring_id=keyring_id)  # resolved first
    assert (err.errno, err.reason) == (
        EINVAL,
        f"cannot resolve signing keyring with keyring_id {keyring_id}",
    )


def test_enokey_keyrings() -> None:  # rows 3, 4, 45 (measured)
    p = pki("rsa2048")
    sig = openssl_sign(p, PAYLOAD, *BPFTOOL)
    store = TrustStore()
    key_serial = store.add(p.cert_der)
    for keyring_id, name in ((0, "builtin"), (1, "secondary"), (-4, "user"), (-5, "user-session")):
        err = rejected(sig, store, keyring_id=keyring_id)
        assert (err.errno, err.reason) == (ENOKEY, enokey_message(p, name, keyring_id))
    err = rejected(sig, store, keyring_id=2)
    assert (err.errno, err.reason) == (
        ENOKEY,
        "keyring_id 2 names the platform keyring, which is absent",
    )
    err = rejected(sig, store, keyring_id=key_serial)
    assert (err.errno, err.reason) == (
        ENOKEY,
        f"keyring_id {key_serial} is a key's serial, not a keyring: pass the keyring (-3 for the "
        "session keyring), not the serial add_key returned",
    )


def test_blacklisted_signer() -> None:  # row 43
    p = pki("rsa2048")
    store = trusting("rsa2048")
    store.blacklist_add(hashlib.sha256(p.cert_der).digest())
    err = rejected(openssl_sign(p, PAYLOAD, *BPFTOOL), store)
    assert (err.errno, err.reason) == (
        EKEYREJECTED,
        f"the trusted certificate 'CN=bpf-signing-test (rsa2048)' (sha256 "
        f"{hashlib.sha256(p.cert_der).hexdigest()}) is blacklisted",
    )
    err = rejected(openssl_sign(p, PAYLOAD, "-noattr"), store)  # embedded signer, pkcs7_verify
    assert (err.errno, err.reason) == (
        EKEYREJECTED,
        f"the embedded certificate 'CN=bpf-signing-test (rsa2048)' (sha256 "
        f"{hashlib.sha256(p.cert_der).hexdigest()}) in the signer's chain is blacklisted",
    )


def test_all_indefinite_ber_is_ebadmsg() -> None:  # row 54 (measured)
    sig = reencode(openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL), lambda el, depth: True)
    err = rejected(sig, trusting("rsa2048"))
    assert err.errno == EBADMSG
    assert (
        "digestAlgorithms entry uses an indefinite length, which the kernel's decoder cannot end"
        in err.reason
    )


def test_indefinite_algorithm_identifier_alone_is_ebadmsg() -> None:
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    alg_only = reencode(sig, lambda el, depth: depth == 5 and el.tag == 0x30)  # SignerInfo's AlgIds
    err = rejected(alg_only, trusting("rsa2048"))
    assert err.errno == EBADMSG and "digestAlgorithm uses an indefinite length" in err.reason


def test_version_mismatch_and_bad_versions() -> None:  # rows 36, 37
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    assert sig[23:26] == b"\x02\x01\x03"
    v1 = sig[:25] + b"\x01" + sig[26:]
    err = rejected(v1, trusting("rsa2048"))
    assert (err.errno, err.reason) == (
        EBADMSG,
        "SignerInfo v3 inside SignedData v1 (version mismatch, row 37)",
    )
    v2 = sig[:25] + b"\x02" + sig[26:]
    err = rejected(v2, trusting("rsa2048"))
    assert (err.errno, err.reason) == (EINVAL, "SignedData version 2 is not 1 or 3")


def test_content_type_other_than_signed_data_is_einval() -> None:  # row 36
    sig = openssl_sign(pki("rsa2048"), PAYLOAD, *BPFTOOL)
    patched = sig[:14] + b"\x03" + sig[15:]  # id-envelopedData
    err = rejected(patched, trusting("rsa2048"))
    assert err.errno == EINVAL and err.reason.startswith(
        "outer contentType is 1.2.840.113549.1.7.3, not signedData"
    )


def test_embedded_leaf_issued_by_a_trusted_ca(tmp_path: object) -> None:
    """§12.6 step 2: the embedded signer cert is checked against its trusted issuer."""
    from pathlib import Path

    from _pki import run

    ca, d = pki("p256"), Path(str(tmp_path))
    (d / "ext.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=leaf",
        "-keyout", d / "leaf.key", "-out", d / "leaf.csr")  # fmt: skip
    run("openssl", "x509", "-req", "-in", d / "leaf.csr", "-CA", ca.cert, "-CAkey", ca.key,
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", d / "ext.cnf", "-out", d / "leaf.pem")  # fmt: skip
    leaf = Pki(
        "leaf",
        d / "leaf.key",
        d / "leaf.pem",
        run("openssl", "x509", "-in", d / "leaf.pem", "-outform", "DER"),
    )
    store = trusting("p256")  # only the CA is trusted
    embedded = openssl_sign(leaf, PAYLOAD, "-noattr")  # issuer+serial names the embedded cert
    got = verify(PAYLOAD, embedded, store)
    assert (got.signer_subject, got.issuer, got.key_description) == (
        "CN=leaf",
        "CN=bpf-signing-test (p256)",
        "RSA-2048",
    )
    assert got.certificate_sha256 == hashlib.sha256(ca.cert_der).hexdigest()
    # without the embedded cert the kernel only looks for the signer's own key: ENOKEY
    bare = openssl_sign(leaf, PAYLOAD, *BPFTOOL)
    assert rejected(bare, store).errno == ENOKEY
    # pkcs7_find_key matches embedded certs by issuer+serial only, so a SKID (v3) signer
    # never finds its embedded cert, and the chain is not used: ENOKEY as well
    assert rejected(openssl_sign(leaf, PAYLOAD, "-noattr", "-keyid"), store).errno == ENOKEY
    # a tampered payload with the chain still fails on the signature
    assert rejected(embedded, store, payload=b"x").errno == EKEYREJECTED
