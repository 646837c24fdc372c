"""CMS/PKCS#7 SignedData: build the bpftool shape, and parse with the kernel's rules.

Building is a pure function of a certificate and a raw signature
(``build_signed_data``), so any ``Signer`` works: a key file, an HSM, a KMS.
The default output is byte-identical to
``openssl cms -sign -binary -noattr -nocerts -keyid -nosmimecap -md sha256 -outform DER``
(the shape bpftool emits; docs/cms.md §1.1).

Parsing walks the message in encoded order, the way the kernel's single-pass
decoder runs ``pkcs7.asn1`` and its actions (``pkcs7_parser.c``), so that
when a message breaks several rules we report the one the kernel hits first.
With ``kernel_rules=True`` the first broken rule raises ``VerificationError``
with the kernel's errno; otherwise semantic problems are collected in
``SignedData.problems`` and only undecodable input raises (EBADMSG).

BER indefinite lengths (all measured on 7.3.4 unless noted): accepted on the
three outer layers (ContentInfo, [0], SignedData), silently, and on the
digestAlgorithms SET, encapContentInfo, signerInfos SET and SignerInfo, with
a warning.  On an AlgorithmIdentifier they are EBADMSG: the kernel's decoder
takes the end-of-contents octets for the OPTIONAL parameters and then misses
the SEQUENCE's own end (lib/asn1_decoder.c), which is also why an
all-indefinite message fails.  Elsewhere (certificates, signed attributes,
issuer Name) they are accepted with a warning that says "not measured".

Deliberate difference from the kernel, on inputs no real signer makes: a
SignedData/SignerInfo that ends before its mandatory fields is EBADMSG (the
kernel skips the missing fields and fails later, usually with EINVAL/ENOPKG).
"""

from __future__ import annotations

from errno import EBADMSG, EINVAL, EKEYREJECTED, EMSGSIZE, ENOPKG

from ..errors import InputError, VerificationError
from . import _oids, der

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of start-up)
if TYPE_CHECKING:
    from typing import Literal, NamedTuple

    from .signer import HashName, KeyType, Signer

    SidKind = Literal["skid", "issuer_serial"]
else:
    from ._record import NamedTuple

#: PKCS#1 DigestInfo prefixes (with the NULL parameters PKCS#1 requires); docs/cms.md §6.3.
_DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_DIGEST_SIZE = {"sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64}
_EMITTABLE = ("sha224", "sha256", "sha384", "sha512")


def digest_info(hash_name: str, digest: bytes) -> bytes:
    """PKCS#1 v1.5 DigestInfo(hash_name, digest): what an RSA HSM mechanism
    like CKM_RSA_PKCS must sign for the result to verify as sha*WithRSA."""
    prefix = _DIGEST_INFO_PREFIX.get(hash_name)
    if prefix is None:
        raise ValueError(
            f"bpfsign does not sign with {hash_name!r}; use one of {', '.join(_EMITTABLE)}"
        )
    if len(digest) != _DIGEST_SIZE[hash_name]:
        raise ValueError(
            f"a {hash_name} digest is {_DIGEST_SIZE[hash_name]} bytes, got {len(digest)}"
        )
    return prefix + digest


# --- building ---------------------------------------------------------------


def build_signed_data(
    cert_der: bytes,
    signature: bytes,
    *,
    digest: HashName = "sha256",
    sid: SidKind = "skid",
    key_type: KeyType = "rsa",
) -> bytes:
    """Wrap a raw signature in a detached SignedData, the bpftool shape.

    ``signature`` is RSA PKCS#1 v1.5 over DigestInfo(digest, H(payload)), or a
    DER Ecdsa-Sig-Value over H(payload).  No key is touched here.
    """
    from .x509 import Certificate

    if digest not in _EMITTABLE:
        raise ValueError(
            f"refusing to emit a {digest!r} signature: use sha256 (default), sha384 or sha512"
        )
    cert = Certificate.from_der(cert_der)
    digest_alg = der.sequence(der.oid(_oids.DIGEST_OIDS[digest]))  # parameters absent, like OpenSSL
    if sid == "skid":
        if cert.skid is None:
            raise InputError(
                f"certificate {cert.subject_str!r} has no subjectKeyIdentifier, so the signer "
                "cannot be named by SKID: add one (subjectKeyIdentifier=hash) or use sid='issuer_serial'"
            )
        version = der.integer(3)
        sid_der = der.context(0, cert.skid, constructed=False)
    elif sid == "issuer_serial":
        version = der.integer(1)
        sid_der = der.sequence(cert.issuer, der.encode(der.INTEGER, cert.serial))
    else:
        raise ValueError(f"sid must be 'skid' or 'issuer_serial', not {sid!r}")
    if key_type == "rsa":
        sig_alg = der.sequence(der.oid(_oids.RSA_ENCRYPTION), der.null())
    elif key_type == "ec":
        sig_alg = der.sequence(der.oid(_oids.ECDSA_WITH[digest]))
    else:
        raise ValueError(f"key_type must be 'rsa' or 'ec', not {key_type!r}")
    signer_info = der.sequence(version, sid_der, digest_alg, sig_alg, der.octet_string(signature))
    signed_data = der.sequence(
        version,
        der.set_of(digest_alg),
        der.sequence(der.oid(_oids.DATA)),
        der.set_of(signer_info),
    )
    return der.sequence(der.oid(_oids.SIGNED_DATA), der.context(0, signed_data))


def sign(
    payload: bytes, signer: Signer, *, digest: HashName = "sha256", sid: SidKind = "skid"
) -> bytes:
    """Hash ``payload``, have ``signer`` sign the digest, return the SignedData DER."""
    if digest not in _EMITTABLE:
        raise ValueError(f"refusing to sign with {digest!r}: use sha256, sha384 or sha512")
    hashed = _oids.digest(digest, payload)
    raw = signer.sign_digest(hashed, digest)
    return build_signed_data(
        signer.certificate, raw, digest=digest, sid=sid, key_type=signer.key_type
    )


# --- the parsed model ---------------------------------------------------------
# Immutable named tuples, each written once with typing.NamedTuple's syntax; at run
# time ._record builds them from collections.namedtuple, so that the verify path
# never imports typing (see TYPE_CHECKING above).


class AlgorithmId(NamedTuple):
    """An AlgorithmIdentifier as received."""

    oid: bytes  #: OID content octets, as received
    parameters: bytes | None  #: raw encoding of the parameters, None when absent

    @property
    def name(self) -> str:
        return _oids.name(self.oid)


class SignerId(NamedTuple):
    """The SignerInfo's sid: a SKID, or an issuer Name and serial."""

    kind: SidKind
    raw: bytes  #: the sid element exactly as encoded
    skid: bytes | None  #: for kind "skid": the raw subjectKeyIdentifier
    issuer: bytes | None  #: for "issuer_serial": the issuer Name's full encoding
    serial: bytes | None  #: for "issuer_serial": the serial INTEGER content octets


class Attribute(NamedTuple):
    """One signed attribute: its type OID and its values, as elements."""

    oid: bytes
    values: tuple[der.Element, ...]


class SignerInfo(NamedTuple):
    """One SignerInfo; raw encodings are kept where the kernel hashes or matches them."""

    version: int
    sid: SignerId
    key_id: bytes  #: the id the kernel searches the keyring for (docs/kernel.md §12.5)
    digest_algorithm: AlgorithmId
    signed_attrs_raw: bytes | None  #: the [0] element exactly as received
    signed_attrs: tuple[Attribute, ...]
    signature_algorithm: AlgorithmId
    signature: bytes
    unsigned_attrs_raw: bytes | None

    def attribute(self, oid: bytes) -> Attribute | None:
        for attr in self.signed_attrs:
            if attr.oid == oid:
                return attr
        return None

    @property
    def signed_attrs_for_hashing(self) -> bytes | None:
        """What the signature covers when attributes are present: the attributes as
        received, with the [0] tag byte replaced by SET (0x31) (docs/kernel.md §12.3)."""
        raw = self.signed_attrs_raw
        return None if raw is None else b"\x31" + raw[1:]


class SignedData(NamedTuple):
    """A parsed ContentInfo/SignedData, plus what the parse noticed."""

    version: int
    digest_algorithms: tuple[AlgorithmId, ...]
    content_type: bytes  #: eContentType OID content octets
    content: bytes | None  #: embedded eContent (raw [0] content); None when detached
    certificates: tuple[bytes, ...]  #: embedded certificates, DER, in order
    signer_infos: tuple[SignerInfo, ...]
    length: int  #: bytes taken by the ContentInfo (trailing bytes excluded)
    warnings: tuple[str, ...]
    problems: tuple[tuple[int, str], ...]  #: kernel rejections found (non-strict parse)

    @property
    def detached(self) -> bool:
        return self.content is None


# --- parsing ------------------------------------------------------------------

_STRUCTURE_HINT = "the kernel's ASN.1 decoder rejects it; re-create the signature with bpfsign sign"


class _Walk:
    """Parse state, mirroring ``struct pkcs7_parse_context``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.problems: list[tuple[int, str]] = []
        self.warnings: list[str] = []
        self.data_type = b""
        # raw sid fields persist across SignerInfos, as in the kernel's context
        self.raw_skid = b""
        self.raw_serial = b""
        self.raw_issuer = b""

    def fail(self, errno: int, message: str) -> None:
        if self.strict:
            raise VerificationError(errno, message)
        self.problems.append((errno, message))


def _bad(reason: str, offset: int) -> der.DERError:
    return der.DERError(reason, offset)


def _cons(el: der.Element, tag: int, what: str) -> der.Element:
    """``el`` as the constructed ``tag`` the grammar expects.

    The kernel's decoder ignores the data's constructed bit where its grammar
    expects a constructed type (lib/asn1_decoder.c masks it out of the tag
    match), so a primitive-tagged SEQUENCE/SET/[n] with a definite length is
    parsed as constructed.  Measured on 7.3.4: the [0] wrapper as 0x80, the
    SignedData and a SignerInfo AlgorithmIdentifier as 0x10 and signerInfos as
    0x11 all load; a constructed signature OCTET STRING (0x24) is EBADMSG."""
    if el.tag == tag:
        return el
    if el.tag == tag & ~der.CONSTRUCTED:
        return el._replace(tag=tag)
    raise _bad(f"expected {what} (tag 0x{tag:02x}), found tag 0x{el.tag:02x}", el.offset)


def _is(el: der.Element | None, *tags: int) -> bool:
    """Does ``el`` match one of the constructed ``tags`` (constructed bit ignored)?"""
    return el is not None and (el.tag | der.CONSTRUCTED) in tags


def _next(children: list[der.Element], index: int, what: str, parent: der.Element) -> der.Element:
    if index >= len(children):
        raise _bad(f"{what} is missing", parent.end)
    return children[index]


def _algorithm(el: der.Element, what: str) -> AlgorithmId:
    """AlgorithmIdentifier ::= SEQUENCE { OID, ANY OPTIONAL }."""
    el = _cons(el, der.SEQUENCE, what)
    if el.indefinite:
        # lib/asn1_decoder.c skips an OPTIONAL element only when dp == datalen, which never
        # holds inside an indefinite-length element: the end-of-contents is taken as the
        # ANY parameters and the SEQUENCE then lacks its own EOC -> EBADMSG.  Matches the
        # all-indefinite measurement (docs/kernel.md §13 row 54).
        raise _bad(
            f"{what} uses an indefinite length, which the kernel's decoder cannot end", el.offset
        )
    kids = el.children()
    if not kids:
        raise _bad(f"{what} is empty", el.offset)
    if len(kids) > 2:
        raise _bad(f"{what} has {len(kids)} elements (OID and parameters expected)", el.offset)
    oid = der.expect(kids[0], der.OID, f"{what} OID").content
    return AlgorithmId(oid, kids[1].raw if len(kids) == 2 else None)


def _collection(el: der.Element, what: str) -> list[der.Element]:
    """A SET OF or SEQUENCE OF (the kernel's grammar accepts either)."""
    if not _is(el, der.SET, der.SEQUENCE):
        raise _bad(f"expected {what} (SET or SEQUENCE), found tag 0x{el.tag:02x}", el.offset)
    return list(_cons(el, el.tag | der.CONSTRUCTED, what).iter_children())


#: Elements below SignedData whose indefinite length the kernel was seen to accept
#: (7.3.4, each re-encoded alone from a bpftool-shape message).
_MEASURED_INDEFINITE = ("digestAlgorithms", "encapContentInfo", "signerInfos", "SignerInfo")


def _note_indefinite(walk: _Walk, el: der.Element, what: str) -> None:
    if el.indefinite:
        how = (
            "measured on 7.3.4"
            if what in _MEASURED_INDEFINITE
            else "its decoder allows it; not measured"
        )
        walk.warnings.append(
            f"{what} uses a BER indefinite length, which the kernel accepts ({how}); bpfsign emits DER"
        )


def parse_signed_data(sig: bytes, *, kernel_rules: bool = False) -> SignedData:
    """Parse a CMS/PKCS#7 ContentInfo holding SignedData.

    Undecodable input raises ``VerificationError(EBADMSG)``.  With
    ``kernel_rules`` every rule of ``pkcs7_parse_message`` applies, in the
    kernel's order, raising with its errno (docs/kernel.md §12.1-12.3).
    """
    if len(sig) > der.MAX_MESSAGE_SIZE:  # docs/kernel.md §13 row 33
        raise VerificationError(
            EMSGSIZE,
            f"PKCS#7 message is {len(sig)} bytes; the kernel's decoder takes at most 65535",
        )
    fast = _parse_bpftool_shape(sig)
    if fast is not None:
        return fast
    walk = _Walk(kernel_rules)
    try:
        return _parse(sig, walk)
    except der.DERError as exc:  # docs/kernel.md §13 rows 6, 7, 54
        raise VerificationError(
            EBADMSG, f"malformed PKCS#7 message: {exc.detail}; {_STRUCTURE_HINT}"
        ) from None


class _NotCanonical(Exception):
    pass


def _definite(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """(content start, content end) of a minimal definite-length ``tag`` element at pos."""
    if end - pos < 2 or data[pos] != tag:
        raise _NotCanonical
    first = data[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    elif first == 0x81 and end - pos >= 3 and data[pos + 2] >= 0x80:
        start, length = pos + 3, data[pos + 2]
    elif first == 0x82 and end - pos >= 4 and data[pos + 2]:
        start, length = pos + 4, (data[pos + 2] << 8) | data[pos + 3]
    else:
        raise _NotCanonical
    if start + length > end:
        raise _NotCanonical
    return start, start + length


_CANONICAL_DIGESTS = {der.sequence(der.oid(oid)): oid for oid in _oids.DIGESTS}
_CANONICAL_SIG_ALGS = {
    der.sequence(der.oid(_oids.RSA_ENCRYPTION), der.null()): AlgorithmId(
        _oids.RSA_ENCRYPTION, der.null()
    ),
    **{der.sequence(der.oid(oid)): AlgorithmId(oid, None) for oid in _oids.ECDSA_WITH.values()},
}
_SIGNED_DATA_TLV = der.oid(_oids.SIGNED_DATA)
_ENCAP_DATA_TLV = der.sequence(der.oid(_oids.DATA))
_V3 = der.integer(3)


def _parse_bpftool_shape(sig: bytes) -> SignedData | None:
    """Fast path for the exact canonical DER bpftool/bpfsign emit (SKID, no attributes,
    no certificates, nothing trailing); None sends anything else to the general walker.

    It accepts only bytes for which the general walker gives this same result
    (tests check both agree); it exists because verify's budget is ~10 µs of parsing."""
    try:
        n = len(sig)
        start, end = _definite(sig, 0, n, der.SEQUENCE)
        if end != n or sig[start : start + 11] != _SIGNED_DATA_TLV:
            return None
        start, end = _definite(sig, start + 11, n, 0xA0)
        if end != n:
            return None
        start, end = _definite(sig, start, n, der.SEQUENCE)
        if end != n or sig[start : start + 3] != _V3:
            return None
        set_start, set_end = _definite(sig, start + 3, n, der.SET)
        digest_tlv = sig[set_start:set_end]
        digest_oid = _CANONICAL_DIGESTS.get(digest_tlv)
        if digest_oid is None or sig[set_end : set_end + 13] != _ENCAP_DATA_TLV:
            return None
        infos_start, infos_end = _definite(sig, set_end + 13, n, der.SET)
        if infos_end != n:
            return None
        pos, info_end = _definite(sig, infos_start, n, der.SEQUENCE)
        if info_end != n or sig[pos : pos + 3] != _V3:
            return None
        sid_start = pos + 3
        skid_start, skid_end = _definite(sig, sid_start, n, 0x80)
        pos = skid_end + len(digest_tlv)
        if sig[skid_end:pos] != digest_tlv:
            return None
        alg_end = _definite(sig, pos, n, der.SEQUENCE)[1]
        sig_alg = _CANONICAL_SIG_ALGS.get(sig[pos:alg_end])
        if sig_alg is None:
            return None
        value_start, value_end = _definite(sig, alg_end, n, der.OCTET_STRING)
        if value_end != n:
            return None
    except _NotCanonical:
        return None
    skid = sig[skid_start:skid_end]
    info = SignerInfo(
        version=3,
        sid=SignerId("skid", sig[sid_start:skid_end], skid, None, None),
        key_id=skid,
        digest_algorithm=AlgorithmId(digest_oid, None),
        signed_attrs_raw=None,
        signed_attrs=(),
        signature_algorithm=sig_alg,
        signature=sig[value_start:value_end],
        unsigned_attrs_raw=None,
    )
    return SignedData(3, (info.digest_algorithm,), _oids.DATA, None, (), (info,), n, (), ())


def _parse(sig: bytes, walk: _Walk) -> SignedData:
    top = der.read(sig)
    top = _cons(top, der.SEQUENCE, "ContentInfo SEQUENCE")
    if top.end < len(sig):
        trailing = sig[top.end :]
        kind = "zero bytes" if not trailing.strip(b"\0") else "bytes"
        # docs/kernel.md §12.1: the decoder stops when the grammar completes (measured on 7.3.4)
        walk.warnings.append(
            f"{len(trailing)} trailing {kind} after the PKCS#7 message (the kernel ignores them)"
        )
    outer = top.iter_children()
    ctype = der.expect(next(outer, None) or _missing("contentType", top), der.OID, "contentType")
    if ctype.content != _oids.SIGNED_DATA:  # docs/kernel.md §13 row 36
        walk.fail(
            EINVAL,
            f"outer contentType is {_oids.name(ctype.content)}, not signedData: this is not a "
            "PKCS#7 signature; sign with bpfsign sign or openssl cms -sign",
        )
    wrapper = next(outer, None)
    if wrapper is None:  # content [0] OPTIONAL: skipped -> no SignerInfos (row 41)
        walk.fail(EINVAL, "ContentInfo has no SignedData content (no SignerInfo)")
        return _empty(top, walk)
    wrapper = _cons(wrapper, 0xA0, "[0] EXPLICIT content")
    if next(outer, None) is not None:
        raise _bad("extra element after the ContentInfo content", wrapper.end)
    inner = wrapper.children()
    if len(inner) != 1:
        raise _bad("[0] content must hold exactly one SignedData", wrapper.offset)
    sd = _cons(inner[0], der.SEQUENCE, "SignedData SEQUENCE")
    indefinite = [
        what
        for what, el in (("ContentInfo", top), ("[0]", wrapper), ("SignedData", sd))
        if el.indefinite
    ]
    if indefinite:  # docs/kernel.md §13 row 10: measured to load on 7.3.4
        walk.warnings.append(
            f"BER indefinite length on {', '.join(indefinite)} (the kernel accepts this on the "
            "three outer layers; bpfsign emits DER)"
        )
    fields = sd.iter_children()

    version_el = der.expect(
        next(fields, None) or _missing("version", sd), der.INTEGER, "SignedData version"
    )
    version = version_el.content[0] if version_el.length == 1 else -1
    if version not in (1, 3):  # docs/kernel.md §12.2, §13 row 36
        walk.fail(EINVAL, f"SignedData version {_int_text(version_el)} is not 1 or 3")

    algs_el = next(fields, None) or _missing("digestAlgorithms", sd)
    _note_indefinite(walk, algs_el, "digestAlgorithms")
    digest_algorithms = tuple(
        _algorithm(el, "digestAlgorithms entry") for el in _collection(algs_el, "digestAlgorithms")
    )

    encap = _cons(
        next(fields, None) or _missing("encapContentInfo", sd), der.SEQUENCE, "encapContentInfo"
    )
    _note_indefinite(walk, encap, "encapContentInfo")
    encap_kids = encap.children()
    content_type = der.expect(
        _next(encap_kids, 0, "eContentType", encap), der.OID, "eContentType"
    ).content
    content: bytes | None = None
    if len(encap_kids) > 1:
        econtent = _cons(encap_kids[1], 0xA0, "[0] eContent")
        if len(encap_kids) > 2:
            raise _bad("extra element in encapContentInfo", encap_kids[2].offset)
        content = econtent.content if econtent.length else None
    if content_type not in (_oids.DATA, _oids.MS_INDIRECT_DATA):  # docs/kernel.md §13 row 36
        walk.fail(
            EINVAL,
            f"eContentType is {_oids.name(content_type)}; the kernel accepts only id-data "
            "(sign the raw payload: openssl cms -sign -binary, not -receipt or other content types)",
        )
    walk.data_type = content_type

    certificates: list[bytes] = []
    el = next(fields, None)
    if el is not None and _is(el, 0xA0, 0xA2):  # certificates [0] or [2], optional
        _note_indefinite(walk, el, "certificates")
        el = _cons(el, el.tag | der.CONSTRUCTED, "certificates")
        certificates = [_embedded_cert(walk, cert) for cert in el.iter_children()]
        el = next(fields, None)
    if el is not None and _is(el, 0xA1, 0xA3):  # crls, skipped by the kernel
        walk.warnings.append("the message carries CRLs, which the kernel skips")
        el = next(fields, None)
    signer_infos: list[SignerInfo] = []
    if el is not None:
        _note_indefinite(walk, el, "signerInfos")
        for info in _collection(el, "signerInfos"):
            signer_infos.append(_signer_info(walk, info, version))
        extra = next(fields, None)
        if extra is not None:
            raise _bad("extra element after signerInfos", extra.offset)

    # pkcs7_check_authattrs (docs/kernel.md §12.2, §13 row 41)
    if not signer_infos:
        walk.fail(EINVAL, "the SignedData has no SignerInfo: nothing signs the payload")
    elif len({s.signed_attrs_raw is None for s in signer_infos}) > 1:
        walk.fail(
            EINVAL,
            "signed attributes are present in some SignerInfos but not all, which the kernel "
            "rejects: give every signer attributes, or none (-noattr)",
        )
    return SignedData(
        version=version,
        digest_algorithms=digest_algorithms,
        content_type=content_type,
        content=content,
        certificates=tuple(certificates),
        signer_infos=tuple(signer_infos),
        length=top.end,
        warnings=tuple(walk.warnings),
        problems=tuple(walk.problems),
    )


def _missing(what: str, parent: der.Element) -> der.Element:
    raise _bad(f"{what} is missing", parent.end)


def _empty(top: der.Element, walk: _Walk) -> SignedData:
    return SignedData(0, (), b"", None, (), (), top.end, tuple(walk.warnings), tuple(walk.problems))


def _int_text(el: der.Element) -> str:
    return str(int.from_bytes(el.content, "big", signed=True)) if el.content else "<empty>"


def _embedded_cert(walk: _Walk, el: der.Element) -> bytes:
    from .x509 import Certificate, CertificateError

    if el.tag != der.SEQUENCE:  # pkcs7_extract_cert: docs/kernel.md §12.2
        raise _bad(f"embedded certificate starts with tag 0x{el.tag:02x}, not SEQUENCE", el.offset)
    raw = el.raw
    try:
        cert = Certificate.from_der(raw)
    except CertificateError as exc:
        raise _bad(f"embedded certificate does not parse: {exc.reason}", el.offset) from None
    if cert.key_type not in ("rsa", "ec"):  # x509_extract_key_data -> ENOPKG
        walk.fail(
            ENOPKG,
            f"embedded certificate {cert.subject_str!r} has a {cert.key_description} key, which "
            "the kernel cannot parse: use an rsaEncryption or EC P-256/P-384 key",
        )
    return raw


def _signer_info(walk: _Walk, el: der.Element, sd_version: int) -> SignerInfo:
    el = _cons(el, der.SEQUENCE, "SignerInfo SEQUENCE")
    _note_indefinite(walk, el, "SignerInfo")
    fields = el.iter_children()

    version_el = der.expect(
        next(fields, None) or _missing("SignerInfo version", el), der.INTEGER, "SignerInfo version"
    )
    version = version_el.content[0] if version_el.length == 1 else -1
    if version == 1:  # pkcs7_note_signerinfo_version (docs/kernel.md §12.2)
        if sd_version != 1:
            walk.fail(EBADMSG, "SignerInfo v1 inside SignedData v3 (version mismatch, row 37)")
        expect_skid = False
    elif version == 3:
        if sd_version == 1:
            walk.fail(EBADMSG, "SignerInfo v3 inside SignedData v1 (version mismatch, row 37)")
        expect_skid = True
    else:
        walk.fail(EINVAL, f"SignerInfo version {_int_text(version_el)} is not 1 or 3")
        expect_skid = False

    sid_el = next(fields, None) or _missing("sid", el)
    if sid_el.tag == 0x80:  # [0] IMPLICIT SubjectKeyIdentifier
        sid = SignerId("skid", sid_el.raw, sid_el.content, None, None)
        walk.raw_skid = sid_el.content
    elif _is(sid_el, der.SEQUENCE):  # IssuerAndSerialNumber
        parts = _cons(sid_el, der.SEQUENCE, "IssuerAndSerialNumber").children()
        if len(parts) != 2:
            raise _bad("IssuerAndSerialNumber must hold a Name and a serial", sid_el.offset)
        name = _cons(parts[0], der.SEQUENCE, "issuer Name")
        _check_name(name)
        serial = der.expect(parts[1], der.INTEGER, "serialNumber").content
        sid = SignerId("issuer_serial", sid_el.raw, None, name.raw, serial)
        walk.raw_issuer, walk.raw_serial = name.content, serial
    else:
        raise _bad(
            f"sid has tag 0x{sid_el.tag:02x}: neither issuerAndSerialNumber nor [0] SKID",
            sid_el.offset,
        )

    digest = _algorithm(next(fields, None) or _missing("digestAlgorithm", el), "digestAlgorithm")
    if digest.oid not in _oids.DIGESTS and digest.oid not in _oids.MODULE_DIGESTS:
        # pkcs7_sig_note_digest_algo (docs/kernel.md §12.7, §13 row 34)
        walk.fail(
            ENOPKG,
            f"digest algorithm {digest.name} is not one the kernel knows: "
            "re-sign with -md sha256 (or sha384/sha512)",
        )

    attrs_raw: bytes | None = None
    attrs: tuple[Attribute, ...] = ()
    item = next(fields, None) or _missing("signatureAlgorithm", el)
    if _is(item, 0xA0, 0xA2):
        item = _cons(item, item.tag | der.CONSTRUCTED, "signed attributes")
        attrs = _signed_attributes(walk, item)
        if item.tag == 0xA0:  # [2] EXPLICIT SEQUENCE: the kernel does not note it for hashing
            attrs_raw = item.raw
        item = next(fields, None) or _missing("signatureAlgorithm", el)

    sig_alg = _algorithm(item, "signatureAlgorithm")
    if sig_alg.oid == _oids.RSASSA_PSS:  # docs/kernel.md §12.7: ENOPKG on 7.3.4 (measured)
        walk.fail(
            ENOPKG,
            "signature algorithm RSASSA-PSS is not supported by the kernel (ENOPKG on 7.3.4): "
            "re-sign with PKCS#1 v1.5 padding (drop -keyopt rsa_padding_mode:pss)",
        )
    elif sig_alg.oid != _oids.RSA_ENCRYPTION and sig_alg.oid not in _oids.ECDSA_WITH.values():
        walk.fail(  # pkcs7_sig_note_pkey_algo, row 34
            ENOPKG,
            f"signature algorithm {sig_alg.name} is not one the kernel supports: "
            "sign with an RSA (PKCS#1 v1.5) or EC P-256/P-384 key",
        )

    signature = der.expect(
        next(fields, None) or _missing("signature", el), der.OCTET_STRING, "signature OCTET STRING"
    ).content
    unsigned_raw: bytes | None = None
    item_or_none = next(fields, None)
    if item_or_none is not None:
        if not _is(item_or_none, 0xA1, 0xA3):
            raise _bad(
                f"unexpected tag 0x{item_or_none.tag:02x} after the signature", item_or_none.offset
            )
        unsigned_raw = item_or_none.raw
        extra = next(fields, None)
        if extra is not None:
            raise _bad("extra element after unsignedAttrs", extra.offset)

    if walk.data_type == _oids.MS_INDIRECT_DATA and attrs_raw is None:  # pkcs7_note_signed_info
        walk.fail(EBADMSG, "Authenticode content without signed attributes")
    # The id comes from the *version*, from whichever sid fields the context holds
    # (pkcs7_note_signed_info): a v3 SignerInfo naming issuer+serial gets an empty id.
    key_id = walk.raw_skid if expect_skid else walk.raw_serial + walk.raw_issuer
    return SignerInfo(
        version=version,
        sid=sid,
        key_id=key_id,
        digest_algorithm=digest,
        signed_attrs_raw=attrs_raw,
        signed_attrs=attrs,
        signature_algorithm=sig_alg,
        signature=signature,
        unsigned_attrs_raw=unsigned_raw,
    )


def _check_name(name: der.Element) -> None:
    """Name ::= SEQUENCE OF SET OF SEQUENCE { OID, ANY } (the kernel decodes it)."""
    for rdn in name.iter_children():
        rdn = _cons(rdn, der.SET, "RelativeDistinguishedName SET")
        for ava in rdn.iter_children():
            kids = _cons(ava, der.SEQUENCE, "AttributeTypeAndValue").children()
            if len(kids) != 2:
                raise _bad("AttributeTypeAndValue must hold a type and a value", ava.offset)
            der.expect(kids[0], der.OID, "attribute type")


_REPEAT = (
    "signed attribute {name} is repeated or has several values, which the kernel rejects "
    "(Repeated/multivalue AuthAttrs not permitted)"
)


def _signed_attributes(walk: _Walk, el: der.Element) -> tuple[Attribute, ...]:
    """Apply pkcs7_sig_note_authenticated_attr to each value, in order (docs/kernel.md §12.3)."""
    body = el
    if el.tag == 0xA2:
        inner = el.children()
        if len(inner) != 1:
            raise _bad("[2] signed attributes must hold one SEQUENCE", el.offset)
        body = _cons(inner[0], der.SEQUENCE, "SEQUENCE OF attributes")
    _note_indefinite(walk, el, "signed attributes")
    seen: set[bytes] = set()
    out: list[Attribute] = []
    for attr in body.iter_children():
        kids = _cons(attr, der.SEQUENCE, "Attribute SEQUENCE").children()
        if len(kids) != 2:
            raise _bad("Attribute must hold a type and a SET of values", attr.offset)
        oid = der.expect(kids[0], der.OID, "attribute type").content
        values = tuple(_cons(kids[1], der.SET, "attribute values SET").iter_children())
        out.append(Attribute(oid, values))
        for value in values:
            _attribute_value(walk, oid, value, seen)
    if el.tag == 0xA0 and not {_oids.CONTENT_TYPE, _oids.MESSAGE_DIGEST} <= seen:
        # pkcs7_sig_note_set_of_authattrs: docs/kernel.md §13 row 39
        missing = [
            n
            for o, n in (
                (_oids.CONTENT_TYPE, "contentType"),
                (_oids.MESSAGE_DIGEST, "messageDigest"),
            )
            if o not in seen
        ]
        walk.fail(
            EBADMSG,
            f"signed attributes lack {' and '.join(missing)}, which the kernel requires: "
            "re-sign with -noattr, or with openssl's standard attributes and -nosmimecap",
        )
    return tuple(out)


def _attribute_value(walk: _Walk, oid: bytes, value: der.Element, seen: set[bytes]) -> None:
    known = oid in (
        _oids.CONTENT_TYPE,
        _oids.SIGNING_TIME,
        _oids.MESSAGE_DIGEST,
        _oids.SMIME_CAPABILITIES,
        _oids.MS_SP_OPUS_INFO,
        _oids.MS_STATEMENT_TYPE,
    )
    if not known:
        return  # other attributes are ignored by the kernel
    if oid in seen:  # docs/kernel.md §13 row 40
        walk.fail(EKEYREJECTED, _REPEAT.format(name=_oids.name(oid)))
        return
    seen.add(oid)
    if oid == _oids.CONTENT_TYPE:
        if value.content != walk.data_type:  # row 39
            walk.fail(
                EBADMSG,
                f"signed contentType attribute ({_oids.name(value.content)}) differs from the "
                f"eContentType ({_oids.name(walk.data_type)})",
            )
    elif oid == _oids.SIGNING_TIME:
        from .x509 import decode_time

        try:
            decode_time(value.tag, value.content)
        except ValueError as exc:  # x509_decode_time -> EBADMSG
            walk.fail(EBADMSG, f"signingTime attribute does not decode: {exc}")
    elif oid == _oids.MESSAGE_DIGEST:
        if value.tag != der.OCTET_STRING:  # row 39
            walk.fail(EBADMSG, "messageDigest attribute is not an OCTET STRING")
    elif walk.data_type != _oids.MS_INDIRECT_DATA:
        if oid == _oids.SMIME_CAPABILITIES:  # docs/kernel.md §13 row 9 (measured on 7.3.4)
            walk.fail(
                EKEYREJECTED,
                "signed attributes include sMIMECapabilities, which the kernel rejects "
                "(S/MIME Caps only allowed with Authenticode): re-sign with -nosmimecap or -noattr",
            )
        else:  # Authenticode-only attributes, row 40
            walk.fail(
                EKEYREJECTED,
                f"signed attributes include the Authenticode attribute {_oids.name(oid)}, "
                "which the kernel rejects for non-Authenticode content: re-sign with -noattr",
            )
